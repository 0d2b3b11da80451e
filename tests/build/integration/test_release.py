"""Releases from a temporary copy with a throwaway key; publishing through a real OCI registry."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.signing import SigningKey
from ngixi_build.toolchains.assemblyscript import adapter_pin
from ngixi_build.workflows import publish
from ngixi_build.workflows.publish import publish_release, pull_bundle
from ngixi_build.workflows.release import ReleaseError, build_bundles, make_release
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import VerificationError
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO, KeyFiles, make_bundle, make_key
from tests.integration import copy_project, run
from tests.system import require_program

pytestmark = pytest.mark.integration

EPOCH = "1767225600"
GUESTS = Project(REPO).guest_names()
BOMB_LIMIT = 1 << 20


@pytest.fixture(scope="module")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key(tmp_path_factory.mktemp("release-key"), channels=["release"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = copy_project(tmp_path_factory.mktemp("release") / "project")
    run(root, "doit", "toolchain")
    return Project(root)


@pytest.fixture(scope="module")
def released(project: Project, release_keys: KeyFiles) -> Path:
    result = run(
        project.root,
        "doit",
        "release",
        env={
            "NGIXI_SIGNING_KEY": str(release_keys.secret),
            "NGIXI_RELEASE_VERSION": "1.0.0",
            "SOURCE_DATE_EPOCH": EPOCH,
        },
    )
    assert "written (2 bundles)" in result.stderr or "written" in result.stdout + result.stderr
    return project.artifacts_dir / "release" / "1.0.0"


def test_release_writes_bundles_checksums_signature_and_provenance(released: Path, release_keys: KeyFiles) -> None:
    names = sorted(p.name for p in released.iterdir())
    bundles = [f"{guest}-0.1.0.ngx" for guest in GUESTS]
    assert names == sorted(["SHA256SUMS", "SHA256SUMS.minisig", "provenance.json", *bundles])
    sums = {
        name: digest
        for digest, name in (line.split("  ") for line in (released / "SHA256SUMS").read_text().splitlines())
    }
    for name, digest in sums.items():
        assert hashlib.sha256((released / name).read_bytes()).hexdigest() == digest
        bundle = read_bundle(released / name, load_trust(release_keys.trust))
        assert bundle.index.channel == "release" and bundle.index.sequence == int(EPOCH)
    statement = json.loads((released / "provenance.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"]: s["digest"]["sha256"] for s in statement["subject"]} == sums
    parameters = statement["predicate"]["buildDefinition"]["internalParameters"]
    assert parameters["assemblyscript"] == "0.28.20" and parameters["wasmer"] == "2.1.1"
    assert parameters["wasi_adapter"] == "@bytecodealliance/jco@1.35.0"
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    adapters = {sha256 for _, sha256 in adapter_pin().files.values()}
    assert adapters <= {d["digest"]["sha256"] for d in dependencies}


def test_real_minisign_verifies_the_checksum_signature(released: Path, release_keys: KeyFiles) -> None:
    minisign = require_program("minisign", "minisign")
    result = subprocess.run(
        [minisign, "-Vm", str(released / "SHA256SUMS"), "-p", str(release_keys.public)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Trusted comment: ngixi-release version=1.0.0 file=SHA256SUMS" in result.stdout


def test_release_without_a_key_fails_cleanly(project: Project) -> None:
    result = run(project.root, "doit", "release", check=False, env={"NGIXI_RELEASE_VERSION": "9.9.9"})
    assert result.returncode != 0
    assert "NGIXI_SIGNING_KEY is not set" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert not (project.artifacts_dir / "release" / "9.9.9").exists()


def test_rerelease_identical_is_accepted_and_different_is_refused(
    project: Project, released: Path, release_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "1.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    bundles = {p.name: p.read_bytes() for p in released.glob("*.ngx")}
    assert make_release(project, key=release_keys.key, builder=lambda _p, _k: bundles).already_existed
    changed = {**bundles, "hello-0.1.0.ngx": bundles["wasi-hello-0.1.0.ngx"]}
    with pytest.raises(ReleaseError, match=r"already exists with different content \(SHA256SUMS, SHA256SUMS.minisig"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k: changed)


def test_release_refuses_a_dev_profile_bundle(
    project: Project, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "3.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    dev = make_bundle(tmp_path, release_keys.key, wasm=b"\0asm\1\0\0\0", profile="dev").read_bytes()
    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: profile: built with the dev profile; a release ships"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k: {"hello-0.1.0.ngx": dev})
    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: not a readable bundle"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k: {"hello-0.1.0.ngx": b"other bytes"})
    assert not (project.artifacts_dir / "release" / "3.0.0").exists()


def test_gate_refuses_a_nondeterministic_build_naming_the_members(
    project: Project, release_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "2.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)

    def nondeterministic(clean: Project, key: SigningKey) -> dict[str, bytes]:
        source = clean.guests_dir / "hello" / "assembly" / "index.ts"
        source.write_text(source.read_text() + f"\nexport const nonce: i64 = {time.perf_counter_ns()};\n")
        return build_bundles(clean, key)

    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: .*guest\.wasm.* differ") as caught:
        make_release(project, key=release_keys.key, builder=nondeterministic)
    assert "wasi-hello" not in str(caught.value)
    assert not (project.artifacts_dir / "release" / "2.0.0").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real CNCF distribution registry (Debian's docker-registry) on loopback."""
    program = require_program("docker-registry", "docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen([program, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("the registry did not start")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}/ngixi"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_publish_pull_verify_run_round_trip(
    released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    published = publish_release(release_dir=released, registry=registry, key=release_keys.key)
    assert [p.reference for p in published] == [f"{registry}/{guest}:0.1.0" for guest in GUESTS]
    assert all(p.digest.startswith("sha256:") for p in published)
    path = pull_bundle(reference=f"{registry}/hello:0.1.0", out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert path.read_bytes() == (released / "hello-0.1.0.ngx").read_bytes()
    result = run(tmp_path, "ngixi", "run", "--trust", str(release_keys.trust), str(path), "add", "2", "3")
    assert result.stdout == "5\n"


def push_layer(registry: str, tag: str, blob: bytes, media_type: str, scratch: Path) -> str:
    """Pushes `blob` as hello's only layer under `tag`, as another (or an older) publisher would."""
    path = scratch / "layer"
    path.write_bytes(blob)
    reference = f"{registry}/hello:{tag}"
    publish._client(registry).push(
        target=reference, files=[f"{path}:{media_type}"], disable_path_validation=True, quiet=True
    )
    return reference


def test_the_layer_is_deterministic_gzip_and_the_uncompressed_one_still_pulls(
    released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    first, again = (publish_release(release_dir=released, registry=registry, key=release_keys.key) for _ in "12")
    assert first == again  # the same bundles give the same manifests, layers included
    bundle = (released / "hello-0.1.0.ngx").read_bytes()
    client = publish._client(registry)
    (layer,) = client.get_manifest(client.get_container(f"{registry}/hello:0.1.0"))["layers"]
    gzipped = publish.compressed(bundle)
    assert layer["mediaType"] == publish.GZIP_BUNDLE_MEDIA_TYPE and layer["size"] == len(gzipped) < len(bundle) / 3
    assert layer["digest"] == f"sha256:{hashlib.sha256(gzipped).hexdigest()}"
    old = push_layer(registry, "uncompressed", bundle, publish.BUNDLE_MEDIA_TYPE, tmp_path)
    path = pull_bundle(reference=old, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert path.read_bytes() == bundle


@pytest.mark.parametrize(
    "bad",
    [
        (gzip.compress(bytes(2 * BOMB_LIMIT)), rf"the bundle layer inflates to more than {BOMB_LIMIT} bytes, .* bomb$"),
        (b"not gzip at all", "the bundle layer is not valid gzip: Not a gzipped file"),
        (gzip.compress(bytes(1000))[:-20], "the bundle layer is not valid gzip: Compressed file ended"),
    ],
    ids=["bomb", "not-gzip", "truncated"],
)
def test_pull_refuses_a_bad_gzip_layer_and_writes_nothing(
    registry: str, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: tuple[bytes, str]
) -> None:
    blob, message = bad
    monkeypatch.setattr(publish, "MAX_BUNDLE_BYTES", BOMB_LIMIT)
    reference = push_layer(registry, "bad", blob, publish.GZIP_BUNDLE_MEDIA_TYPE, tmp_path)
    with pytest.raises(VerificationError, match=rf"^{re.escape(reference)}: {message}"):
        pull_bundle(reference=reference, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert not (tmp_path / "hello-bad.ngx").exists()


def test_pull_refuses_a_bundle_signed_by_an_untrusted_key(
    released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    publish_release(release_dir=released, registry=registry, key=release_keys.key)
    stranger = make_key(tmp_path / "stranger", channels=["release"])
    result = run(
        tmp_path,
        "ngixi",
        "pull",
        f"{registry}/hello:0.1.0",
        "--out",
        str(tmp_path),
        "--trust",
        str(stranger.trust),
        check=False,
    )
    assert result.returncode == 3 and "does not trust" in result.stderr
    assert not (tmp_path / "hello-0.1.0.ngx").exists()
