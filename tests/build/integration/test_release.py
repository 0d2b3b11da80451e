"""Releases from a temporary git copy with a throwaway key; publishing through a real OCI registry."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.signing import SigningKey, generate_key_pair
from ngixi_build.toolchains.assemblyscript import adapter_pin
from ngixi_build.workflows import publish
from ngixi_build.workflows.publish import publish_release
from ngixi_build.workflows.release import ReleaseError, build_bundles, make_release
from ngixi_build.workflows.release_history import read_history
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.registry import oci, pull
from ngixi_runtime.registry.client import RegistryError
from ngixi_runtime.registry.pull import pull_bundle
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle, make_key
from tests.integration import copy_project, installed_toolchain, keep_only_guests, run, set_targets
from tests.oci_registry import free_port, serve_registry
from tests.system import require_program
from tests.wasmgen import ADD_BODY, Func, Imp, module

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=60)]

EPOCH = "1767225600"
# [tool.ngixi] release of the copy, the only guests it keeps: an AssemblyScript guest and one whose [build] command
# takes a tenth of a second, which the tests that release again bump and change.
GUESTS = ["handmade", "hello"]
BOMB_LIMIT = 1 << 20
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Release Tests",
    "GIT_AUTHOR_EMAIL": "release@example.invalid",
    "GIT_COMMITTER_NAME": "Release Tests",
    "GIT_COMMITTER_EMAIL": "release@example.invalid",
}


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, env={**os.environ, **GIT_IDENTITY}
    )
    return result.stdout.strip()


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key(tmp_path_factory.mktemp("release-key"), channels=["release"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A git repository holding a copy of the project with hello and handmade alone, released for this host only."""
    root = copy_project(tmp_path_factory.mktemp("release") / "project", toolchain_from=installed_toolchain())
    keep_only_guests(root, GUESTS)
    set_targets(root, [host_triple()])
    pyproject = root / "pyproject.toml"
    config = re.sub(r"(?m)^release = .*\n", "", pyproject.read_text())  # the repository's own choice
    pyproject.write_text(config.replace("[tool.ngixi]\n", f"[tool.ngixi]\nrelease = {GUESTS}\n"))
    run(root, "doit", "toolchain")
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("artifacts/\n.ngixi/\n")
    commit_all(root, "the project")
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
    commit_all(project.root, "record release 1.0.0")
    return project.artifacts_dir / "release" / "1.0.0"


def test_release_writes_bundles_checksums_signature_and_provenance(released: Path, release_keys: KeyFiles) -> None:
    names = sorted(p.name for p in released.iterdir())
    bundles = [f"{guest}-0.1.0.ngx" for guest in GUESTS]
    assert names == sorted(["SHA256SUMS", "SHA256SUMS.minisig", "provenance.json", "release.json", *bundles])
    sums = {
        name: digest
        for digest, name in (line.split("  ") for line in (released / "SHA256SUMS").read_text().splitlines())
    }
    for name, digest in sums.items():
        assert hashlib.sha256((released / name).read_bytes()).hexdigest() == digest
        bundle = read_bundle(released / name, load_trust(release_keys.trust))
        assert bundle.index.channel == "release" and bundle.index.sequence == 1
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
    assert make_release(project, key=release_keys.key, builder=lambda _p, _k, _s: bundles).already_existed
    changed = {**bundles, "hello-0.1.0.ngx": bundles["handmade-0.1.0.ngx"]}
    with pytest.raises(ReleaseError, match=r"the build made handmade-0\.1\.0\.ngx, hello-0\.1\.0\.ngx, not one"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k, _s: changed)


def test_release_refuses_a_dev_profile_bundle(
    project: Project, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "3.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    dev = make_bundle(tmp_path, release_keys.key, wasm=b"\0asm\1\0\0\0", profile="dev").read_bytes()
    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: profile: built with the dev profile; a release ships"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k, _s: {"hello-0.1.0.ngx": dev})
    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: not a readable bundle"):
        make_release(project, key=release_keys.key, builder=lambda _p, _k, _s: {"hello-0.1.0.ngx": b"other bytes"})
    assert not (project.artifacts_dir / "release" / "3.0.0").exists()


def test_gate_refuses_a_nondeterministic_build_naming_the_members(
    project: Project, release_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "2.0.0")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)

    def nondeterministic(clean: Project, key: SigningKey, sequences: Mapping[str, int]) -> dict[str, bytes]:
        source = clean.guests_dir / "hello" / "assembly" / "index.ts"
        source.write_text(source.read_text() + f"\nexport const nonce: i64 = {time.perf_counter_ns()};\n")
        return build_bundles(clean, key, sequences)

    with pytest.raises(ReleaseError, match=r"hello-0\.1\.0\.ngx: .*guest\.wasm.* differ") as caught:
        make_release(project, key=release_keys.key, builder=nondeterministic)
    assert "handmade" not in str(caught.value)
    assert not (project.artifacts_dir / "release" / "2.0.0").exists()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_registry(tmp_path_factory.mktemp("registry")) as host:
        yield f"{host}/ngixi"


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
    """Pushes `blob` as hello's only layer under `tag`, as another (or an older) publisher would; returns the
    reference pinned to the manifest's digest (a tag other than the bundle's version is refused by pull)."""
    path = scratch / "layer"
    path.write_bytes(blob)
    response = oci.client_for(registry).push(
        target=f"{registry}/hello:{tag}", files=[f"{path}:{media_type}"], disable_path_validation=True, quiet=True
    )
    return f"{registry}/hello@{response.headers['Docker-Content-Digest']}"


def test_the_layer_is_deterministic_gzip_and_the_uncompressed_one_still_pulls(
    released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    first, again = (publish_release(release_dir=released, registry=registry, key=release_keys.key) for _ in "12")
    assert [p.digest for p in first] == [p.digest for p in again]  # the same bundles, the same manifests
    bundle = (released / "hello-0.1.0.ngx").read_bytes()
    client = oci.client_for(registry)
    (layer,) = client.get_manifest(client.get_container(f"{registry}/hello:0.1.0"))["layers"]
    gzipped = publish.compressed(bundle)
    assert layer["mediaType"] == oci.GZIP_BUNDLE_MEDIA_TYPE and layer["size"] == len(gzipped) < len(bundle) / 2
    assert layer["digest"] == f"sha256:{hashlib.sha256(gzipped).hexdigest()}"
    old = push_layer(registry, "uncompressed", bundle, oci.BUNDLE_MEDIA_TYPE, tmp_path)
    path = pull_bundle(reference=old, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert path.read_bytes() == bundle


@pytest.mark.parametrize(
    "bad",
    [
        (gzip.compress(bytes(2 * BOMB_LIMIT)), "member bundle.json is missing"),  # refused at its start
        (b"not gzip at all", "the bundle layer is not valid gzip: Not a gzipped file"),
        (gzip.compress(bytes(1000))[:-20], "the bundle layer is not valid gzip: Compressed file ended"),
    ],
    ids=["bomb", "not-gzip", "truncated"],
)
def test_pull_refuses_a_bad_gzip_layer_and_writes_nothing(
    registry: str, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: tuple[bytes, str]
) -> None:
    blob, message = bad
    monkeypatch.setattr(pull, "MAX_BUNDLE_BYTES", BOMB_LIMIT)
    reference = push_layer(registry, "bad", blob, oci.GZIP_BUNDLE_MEDIA_TYPE, tmp_path)
    with pytest.raises(VerificationError, match=rf"^{re.escape(reference)}: {message}"):
        pull_bundle(reference=reference, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert not (tmp_path / "hello-bad.ngx").exists()


def test_pull_refuses_a_signed_layer_inflating_past_the_largest_bundle(
    registry: str, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layer whose start is a trusted signer's bundle, and then a bomb's zeros, is stopped at the bundle limit."""
    signed = make_bundle(tmp_path / "b", release_keys.key, wasm=ADD_WASM, channel="release").read_bytes()
    monkeypatch.setattr(pull, "MAX_BUNDLE_BYTES", BOMB_LIMIT)
    blob = gzip.compress(signed + bytes(2 * BOMB_LIMIT))
    reference = push_layer(registry, "bomb", blob, oci.GZIP_BUNDLE_MEDIA_TYPE, tmp_path)
    with pytest.raises(VerificationError, match=rf"^{re.escape(reference)}: the bundle layer inflates to more than "):
        pull_bundle(reference=reference, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert not (tmp_path / "hello-bomb.ngx").exists()


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


# Releases that mean what they say: the record, dirty trees, bumped versions, immutable tags. These run after
# the tests above, which expect both guests at 0.1.0: they bump handmade.

ADD_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
)


def release_env(keys: KeyFiles, version: str) -> dict[str, str]:
    return {"NGIXI_SIGNING_KEY": str(keys.secret), "NGIXI_RELEASE_VERSION": version}


def sha256_of_file(path: Path) -> str:
    return f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"


def test_the_release_manifest_record_and_provenance_name_each_guest_version(project: Project, released: Path) -> None:
    manifest = json.loads((released / "release.json").read_text())
    expected = [
        {
            "name": guest,
            "version": "0.1.0",
            "channel": "release",
            "sequence": 1,
            "digest": sha256_of_file(released / f"{guest}-0.1.0.ngx"),
            "bundle": f"{guest}-0.1.0.ngx",
        }
        for guest in GUESTS
    ]
    assert manifest == {"release": "1.0.0", "guests": expected}
    record = read_history(project.root).release("1.0.0")
    assert record is not None and not record.dirty and len(record.commit) == 40
    assert [(g.name, g.sequence, g.digest) for g in record.guests] == [(g["name"], 1, g["digest"]) for g in expected]
    (source,) = [
        d
        for d in json.loads((released / "provenance.json").read_text())["predicate"]["buildDefinition"][
            "resolvedDependencies"
        ]
        if d["name"] == "source-tree"
    ]
    assert source["digest"]["gitCommit"] == record.commit
    assert source["annotations"] == {"dirty": False, "uncommitted": []}


def test_a_dirty_tree_is_refused_then_allowed_and_recorded(
    project: Project, released: Path, release_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.root / "notes.txt").write_text("a draft nobody committed\n")
    refused = run(project.root, "doit", "release", check=False, env=release_env(release_keys, "1.0.1"))
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert "the source tree has uncommitted or untracked changes (notes.txt): commit them" in refused.stdout
    assert not (project.artifacts_dir / "release" / "1.0.1").exists()
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "1.0.1")
    bundles = {p.name: p.read_bytes() for p in released.glob("*.ngx")}  # the same guest versions: the same bundles
    made = make_release(project, key=release_keys.key, builder=lambda _p, _k, _s: bundles, allow_dirty=True)
    statement = json.loads((made.directory / "provenance.json").read_text())
    (source,) = [
        d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"] if d["name"] == "source-tree"
    ]
    assert source["annotations"] == {"dirty": True, "uncommitted": ["notes.txt"]}
    record = read_history(project.root).release("1.0.1")
    assert record is not None and record.dirty
    (project.root / "notes.txt").unlink()
    commit_all(project.root, "record release 1.0.1")


def test_a_secret_key_in_the_source_tree_is_never_released(
    project: Project, released: Path, release_keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = project.root / "keys" / "release.key"  # where a README reader might put it: untracked, not ignored
    generate_key_pair(secret_path=secret, public_path=project.root / "keys" / "release.pub", comment="misplaced")
    os.mkfifo(project.root / "keys" / "pipe.key")  # waited on, it would hang the release
    (project.root / "keys" / "zero.key").symlink_to("/dev/zero")
    (project.root / "keys" / "dangling.key").symlink_to(project.root / "keys" / "missing")
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "1.0.9")

    def never(_p: Project, _k: SigningKey, _s: Mapping[str, int]) -> dict[str, bytes]:
        raise AssertionError("built from a tree holding a secret key")

    with pytest.raises(ReleaseError, match=r"keys/release\.key: a minisign secret key inside the source tree: move it"):
        make_release(project, key=release_keys.key, builder=never, allow_dirty=True)
    shutil.rmtree(project.root / "keys")


def test_a_source_file_linked_out_of_the_project_is_never_released(
    project: Project, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone keeps a committed link (`guests/hello/assembly/config.ts -> ../../../../../home/u/work/config.ts`):
    the release's clean copy took the file it names as the project's, past every check of the build for links out of
    a guest's folder, and signed what was compiled from it with the release key."""
    builders = tmp_path / "config.ts"
    builders.write_text('export const TOKEN = "the builder\'s";\n')
    link = project.guests_dir / "hello" / "assembly" / "config.ts"
    link.symlink_to(os.path.relpath(builders, link.parent))
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "1.0.9")

    def never(_p: Project, _k: SigningKey, _s: Mapping[str, int]) -> dict[str, bytes]:
        raise AssertionError("built from a tree holding a link out of it")

    try:
        with pytest.raises(ReleaseError, match=rf"config\.ts: is a link to {re.escape(str(builders))}, outside the"):
            make_release(project, key=release_keys.key, builder=never, allow_dirty=True)
    finally:
        link.unlink()


def bump(project: Project, guest: str, old: str, new: str) -> None:
    manifest = project.manifest_path(guest)
    manifest.write_text(manifest.read_text().replace(f'version = "{old}"', f'version = "{new}"', 1))
    commit_all(project.root, f"{guest} {new}")


def test_a_bumped_release_pulls_and_runs_and_the_older_one_is_a_rollback(
    project: Project, released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    bump(project, "handmade", "0.1.0", "0.2.0")
    result = run(project.root, "doit", "release", "--guest", "handmade", env=release_env(release_keys, "1.1.0"))
    assert "release 1.1.0 will ship:\n  handmade 0.2.0: new, sequence 2\n" in result.stderr
    commit_all(project.root, "record release 1.1.0")
    published = run(
        project.root, "doit", "publish", env={**release_env(release_keys, "1.1.0"), "NGIXI_REGISTRY": registry}
    )
    pin = re.search(
        rf"{re.escape(registry)}/handmade:0\.2\.0: published; pin (\S+@sha256:[0-9a-f]{{64}})", published.stderr
    )
    assert pin is not None, published.stderr
    host_trust = tmp_path / "host" / "trust.toml"  # the operator's, as the README has them make it
    trust_add = ["trust", "add", str(release_keys.public), "--guest", "handmade", "--channel", "release"]
    run(tmp_path, "ngixi", *trust_add, "--trust", str(host_trust))
    older_dir, newer_dir = tmp_path / "older", tmp_path / "newer"
    trust = load_trust(host_trust)
    newer = pull_bundle(reference=pin.group(1), out_dir=newer_dir, trust=trust)
    older = pull_bundle(reference=f"{registry}/handmade:0.1.0", out_dir=older_dir, trust=trust)
    assert newer.name == "handmade-0.2.0.ngx" and read_bundle(newer, trust).index.sequence == 2
    ran = run(tmp_path, "ngixi", "run", "--trust", str(host_trust), str(newer), "answer")
    assert ran.stdout == "42\n"
    refused = run(tmp_path, "ngixi", "run", "--trust", str(host_trust), str(older), "answer", check=False)
    assert refused.returncode == 3
    assert "sequence 1 of guest 'handmade' on channel 'release' is lower than 2" in refused.stderr


def test_a_released_version_with_other_content_is_refused(project: Project, release_keys: KeyFiles) -> None:
    (project.guests_dir / "handmade" / "answer.txt").write_text("43\n")
    commit_all(project.root, "handmade: other content, same version")
    history = (project.root / "release-history.toml").read_bytes()
    refused = run(
        project.root, "doit", "release", "--guest", "handmade", check=False, env=release_env(release_keys, "1.2.0")
    )
    recorded = read_history(project.root).released("handmade", "0.2.0", "release")
    assert recorded is not None
    assert (
        f"handmade 0.2.0 was released in 1.1.0 as {recorded.guest.digest}; this build is sha256:" in refused.stdout
        and "bump [guest].version in manifests/handmade.toml" in refused.stdout
    ), refused.stdout
    assert not (project.artifacts_dir / "release" / "1.2.0").exists()
    assert (project.root / "release-history.toml").read_bytes() == history
    git(project.root, "revert", "--no-edit", "HEAD")


def test_a_release_from_an_older_commit_still_gets_a_higher_sequence(
    project: Project, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_record = git(project.root, "log", "--format=%H", "--grep", "record release 1.0.0")
    older = Project(tmp_path / "older")
    git(project.root, "worktree", "add", "-q", "--detach", str(older.root), first_record)
    older.state_dir.mkdir()
    (older.state_dir / "toolchain").symlink_to(project.state_dir / "toolchain")
    bump(older, "handmade", "0.1.0", "0.1.1")
    monkeypatch.setenv("NGIXI_RELEASE_VERSION", "1.0.2")
    asked: dict[str, int] = {}

    def hotfix(_clean: Project, key: SigningKey, sequences: Mapping[str, int]) -> dict[str, bytes]:
        asked.update(sequences)
        manifest = HELLO_MANIFEST.replace('name = "hello"', 'name = "handmade"').replace('"0.1.0"', '"0.1.1"')
        directory = tmp_path / f"hotfix-{len(asked)}-{time.perf_counter_ns()}"
        path = make_bundle(
            directory,
            key,
            wasm=ADD_WASM,
            manifest=manifest,
            guest="handmade",
            version="0.1.1",
            channel="release",
            sequence=sequences["handmade"],
        )
        return {"handmade-0.1.1.ngx": path.read_bytes()}

    make_release(older, key=release_keys.key, builder=hotfix, guests=["handmade"])
    assert asked == {"handmade": 3}  # above 1.1.0's handmade 0.2.0 (sequence 2), which only the branch's record names
    merged = read_history(older.root)
    assert [r.version for r in merged.releases if r.version.startswith("1.")] == ["1.0.0", "1.0.1", "1.1.0", "1.0.2"]


def test_an_unknown_guest_to_release_is_named(project: Project, release_keys: KeyFiles) -> None:
    refused = run(
        project.root, "doit", "release", "--guest", "helo", check=False, env=release_env(release_keys, "9.0.0")
    )
    assert "--guest helo: no guest 'helo'; did you mean \"hello\"?" in refused.stdout, refused.stdout
    # `ngixi release` says so before any task runs (it named the field `--guest[0]`, after the toolchain's task)
    direct = run(
        project.root, "ngixi", "release", "--guest", "helo", check=False, env=release_env(release_keys, "9.0.0")
    )
    expected = "ngixi: error: --guest helo: no guest 'helo'; did you mean \"hello\"?\n"
    assert (direct.returncode, direct.stdout, direct.stderr) == (2, "", expected)


def test_a_published_tag_is_immutable_unless_forced(
    project: Project, released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    namespace = f"{registry}-immutable"
    first = publish_release(release_dir=released, registry=namespace, key=release_keys.key)
    assert [p.state for p in first] == ["published"] * len(GUESTS)
    again = publish_release(release_dir=released, registry=namespace, key=release_keys.key)
    assert [(p.state, p.digest) for p in again] == [("unchanged", p.digest) for p in first]
    other_dir = tmp_path / "other"
    other = make_bundle(other_dir, release_keys.key, wasm=ADD_WASM, channel="release", sequence=7)
    fresh_manifest = HELLO_MANIFEST.replace('name = "hello"', 'name = "fresh"')
    make_bundle(other_dir, release_keys.key, wasm=ADD_WASM, manifest=fresh_manifest, guest="fresh", channel="release")
    (hello,) = [p for p in first if p.reference.endswith("/hello:0.1.0")]
    with pytest.raises(RegistryError) as refused:
        publish_release(release_dir=other_dir, registry=namespace, key=release_keys.key)
    client = oci.client_for(namespace)
    assert publish._tagged(client, client.get_container(f"{namespace}/fresh:0.1.0")) is None  # nothing pushed
    assert re.fullmatch(
        rf"{re.escape(hello.reference)}: already published as {hello.digest}, other content than this bundle's "
        r"sha256:[0-9a-f]{64}; published tags never change: bump \[guest\]\.version in the manifest \(or --force "
        r"to overwrite\)",
        str(refused.value),
    )
    pulled = pull_bundle(reference=hello.pinned, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert pulled.read_bytes() == (released / "hello-0.1.0.ngx").read_bytes()
    fresh, forced = publish_release(release_dir=other_dir, registry=namespace, key=release_keys.key, force=True)
    assert (fresh.state, forced.state) == ("published", "overwritten") and forced.digest != hello.digest
    with pytest.raises(InvalidInput, match=r"hello-0\.1\.0\.ngx: already exists, with other content than this pull"):
        pull_bundle(reference=f"{namespace}/hello:0.1.0", out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert pulled.read_bytes() == (released / "hello-0.1.0.ngx").read_bytes()  # what the host had stays
    pulled = pull_bundle(
        reference=f"{namespace}/hello:0.1.0", out_dir=tmp_path / "b", trust=load_trust(release_keys.trust)
    )
    assert pulled.read_bytes() == other.read_bytes()

    publishing = {**release_env(release_keys, "1.0.0"), "NGIXI_REGISTRY": namespace}
    by_doit = run(project.root, "doit", "publish", check=False, env=publishing)
    assert by_doit.returncode != 0 and f"{hello.reference}: already published as {forced.digest}" in by_doit.stdout
    forced_by_doit = run(project.root, "doit", "publish", "--force", env=publishing)
    assert f"{hello.reference}: OVERWRITTEN (--force); pin {hello.pinned}" in forced_by_doit.stderr


def test_an_unreachable_registry_is_one_line_at_once(released: Path, release_keys: KeyFiles) -> None:
    started = time.monotonic()
    with pytest.raises(
        RegistryError, match=r"^127\.0\.0\.1:\d+: cannot reach the registry \(\[Errno 111\] Connection refused\)"
    ):
        publish_release(release_dir=released, registry=f"127.0.0.1:{free_port()}/ngixi", key=release_keys.key)
    assert time.monotonic() - started < 5  # not oras's retries, which take minutes


def test_a_sequence_not_above_another_published_version_is_refused_unless_forced(
    release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    namespace = f"{registry}-order"

    def release_of(version: str, sequence: int) -> Path:
        manifest = HELLO_MANIFEST.replace('version = "0.1.0"', f'version = "{version}"')
        directory = tmp_path / f"{version}-{sequence}"
        make_bundle(
            directory,
            release_keys.key,
            wasm=ADD_WASM,
            manifest=manifest,
            version=version,
            channel="release",
            sequence=sequence,
        )
        return directory

    publish_release(release_dir=release_of("0.2.0", 2), registry=namespace, key=release_keys.key)
    for sequence, what in ((1, "refuse this one as a rollback"), (2, "not know which is newer")):
        expected = (
            rf"hello:0\.3\.0: sequence {sequence}, but .*hello:0\.2\.0 \(0\.2\.0\) was published with sequence 2: "
            rf"hosts that pulled it would {what}; if release-history\.toml lost releases"
        )
        with pytest.raises(RegistryError, match=expected):
            publish_release(release_dir=release_of("0.3.0", sequence), registry=namespace, key=release_keys.key)
    (forced,) = publish_release(
        release_dir=release_of("0.3.0", 1), registry=namespace, key=release_keys.key, force=True
    )
    assert forced.state == "published"
    (hotfix,) = publish_release(release_dir=release_of("0.1.1", 3), registry=namespace, key=release_keys.key)
    assert hotfix.state == "published"  # an older version's fix, made after: a higher sequence


def test_a_bundle_that_fails_verification_is_named_and_nothing_is_pushed(
    release_keys: KeyFiles, registry: str, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "bad", release_keys.key, wasm=ADD_WASM, channel="release")
    data = bytearray(bundle.read_bytes())
    data[data.index(ADD_WASM) + len(ADD_WASM) - 1] ^= 0xFF  # the last byte of guest.wasm
    bundle.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"hello-0\.1\.0\.ngx: member guest\.wasm does not match its digest"):
        publish_release(release_dir=bundle.parent, registry=f"{registry}-unverified", key=release_keys.key)
    client = oci.client_for(registry)
    assert publish._tagged(client, client.get_container(f"{registry}-unverified/hello:0.1.0")) is None


def racing_publishers(
    released: Path, release_keys: KeyFiles, namespace: str, tmp_path: Path
) -> tuple[Path, Callable[..., list[publish.Published]]]:
    """Our release directory, and the rival's publish of other content under the same tag."""
    rival_dir = tmp_path / "rival"
    make_bundle(rival_dir, release_keys.key, wasm=ADD_WASM, channel="release", sequence=7)
    ours = tmp_path / "ours"
    ours.mkdir()
    shutil.copy(released / "hello-0.1.0.ngx", ours)
    return ours, lambda **options: publish_release(
        release_dir=rival_dir, registry=namespace, key=release_keys.key, **options
    )


def assert_rival_won(lost: RegistryError, rival: publish.Published, happened: str) -> None:
    assert f"{rival.reference}: another publisher tagged it as {rival.digest} {happened}" in str(lost)
    client = oci.client_for(rival.reference.rpartition("/")[0])
    assert publish._tagged(client, client.get_container(rival.reference))[0] == rival.digest  # type: ignore[index]


@pytest.mark.parametrize("force", [False, True])
def test_a_rival_tagging_after_our_check_leaves_the_tag_to_it(
    released: Path,
    release_keys: KeyFiles,
    registry: str,
    tmp_path: Path,
    *,
    monkeypatch: pytest.MonkeyPatch,
    force: bool,
) -> None:
    """With --force too (given to publish out of sequence, or over the tag the check found), which overwrote the
    rival's new tag and called it "published"."""
    namespace = f"{registry}-race-before-{'forced' if force else 'plain'}"
    ours, rival_publishes = racing_publishers(released, release_keys, namespace, tmp_path)
    tagged, looked, rival = publish._tagged, [], []

    def rival_between_check_and_tag(*args: Any) -> Any:
        looked.append(args)
        if len(looked) == 2:  # the look just before tagging, after the one that found the tag free
            rival.extend(rival_publishes())
        return tagged(*args)

    monkeypatch.setattr(publish, "_tagged", rival_between_check_and_tag)
    with pytest.raises(RegistryError) as lost:
        publish_release(release_dir=ours, registry=namespace, key=release_keys.key, force=force)
    assert_rival_won(lost.value, rival[0], "while this publish ran; not tagged (this bundle's manifest is at ")


def test_a_rival_tagging_right_after_us_is_reported(
    released: Path, release_keys: KeyFiles, registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"{registry}-race-after"
    ours, rival_publishes = racing_publishers(released, release_keys, namespace, tmp_path)
    put = publish._put_manifest
    rival: list[publish.Published] = []

    def rival_right_after_our_tag(*args: Any, **options: Any) -> None:
        put(*args, **options)
        if "precondition" in options and not rival:
            rival.extend(rival_publishes(force=True))

    monkeypatch.setattr(publish, "_put_manifest", rival_right_after_our_tag)
    with pytest.raises(RegistryError) as lost:
        publish_release(release_dir=ours, registry=namespace, key=release_keys.key)
    assert_rival_won(lost.value, rival[0], "right after this publish tagged it as sha256:")


def test_pull_refuses_a_signed_version_that_is_a_path(registry: str, release_keys: KeyFiles, tmp_path: Path) -> None:
    """The pulled file is named from the verified index, whose guest name and version the reader checks."""
    manifest = HELLO_MANIFEST.replace('version = "0.1.0"', 'version = "1/../../evil"')
    (tmp_path / "b" / "hello-1" / ".." / "..").mkdir(parents=True, exist_ok=True)
    bundle = make_bundle(
        tmp_path / "b" / "x",
        release_keys.key,
        wasm=ADD_WASM,
        manifest=manifest,
        version="1/../../evil",
        channel="release",
    )
    layer = publish.compressed(bundle.read_bytes())
    reference = push_layer(registry, "path", layer, oci.GZIP_BUNDLE_MEDIA_TYPE, tmp_path)
    with pytest.raises(
        VerificationError,
        match=rf"^{re.escape(reference)}!manifest\.toml: guest\.version: \"1/\.\./\.\./evil\" is not a semantic",
    ):
        pull_bundle(reference=reference, out_dir=tmp_path / "out", trust=load_trust(release_keys.trust))
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.ngx").exists()
