"""Build profiles: dev bundles say so in their signed index, and never pass for release ones."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.bundle import render_index
from ngixi_build.stages.compile import AscOptions, asc_arguments
from ngixi_build.stages.signing import sign
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.workflows.clean import remove_leftovers
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.files import without_fsync, write_atomic
from ngixi_runtime.spec.bundle_format import INDEX_NAME, SIGNATURE_NAME, BundleIndex, trusted_comment
from ngixi_runtime.trust.signatures import load_trust
from tests.build.integration.test_build_safety import kill_once_writing
from tests.conftest import KeyFiles, entries, exit_code, make_bundle, repack
from tests.run.unit.test_bundle import WASM, fake_artifacts


def dev_bundle(directory: Path, keys: KeyFiles) -> Path:
    return make_bundle(directory, keys.key, wasm=WASM, artifacts=fake_artifacts(directory / "aot"), profile="dev")


def resign(path: Path, keys: KeyFiles, index_bytes: bytes, index: BundleIndex) -> None:
    signature = sign(index_bytes, keys.key, trusted_comment=trusted_comment(index))
    repack(path, [(INDEX_NAME, index_bytes), (SIGNATURE_NAME, signature), *entries(path)[2:]])


def test_the_profile_is_in_the_signed_index_and_shown_by_inspect(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dev_bundle(tmp_path, keys)
    assert read_bundle(path, load_trust(keys.trust)).index.profile == "dev"
    assert b'"profile":"dev"' in entries(path)[0][1]
    assert exit_code(["inspect", "--json", "--trust", str(keys.trust), str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "dev"
    assert exit_code(["inspect", "--trust", str(keys.trust), str(path)]) == 0
    assert capsys.readouterr().out.startswith("hello 0.1.0 (dev, dev profile, sequence 1)")


def test_an_index_without_a_profile_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=WASM)
    index = read_bundle(path, load_trust(keys.trust)).index
    resign(path, keys, render_index(index).replace(b',"profile":"release"', b""), index)
    assert b"profile" not in entries(path)[0][1]
    with pytest.raises(VerificationError, match=r"bundle\.json: profile: missing or not str"):
        read_bundle(path, load_trust(keys.trust))


def test_an_unknown_profile_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=WASM)
    index = read_bundle(path, load_trust(keys.trust)).index
    resign(path, keys, render_index(index).replace(b'"profile":"release"', b'"profile":"fast"'), index)
    with pytest.raises(VerificationError, match=r"bundle\.json: profile: 'fast' is not one of \('dev', 'release'\)"):
        read_bundle(path, load_trust(keys.trust))


def test_a_dev_build_is_never_signed_on_the_release_channel(tmp_path: Path, keys: KeyFiles) -> None:
    with pytest.raises(NgixiError, match="a dev-profile build cannot be signed on the release channel"):
        make_bundle(tmp_path, keys.key, wasm=WASM, channel="release", profile="dev")
    assert not list(tmp_path.glob("*.ngx")) and not list(tmp_path.glob(".*.tmp"))


def test_profiles_compile_with_their_own_flags_into_their_own_outputs(tmp_path: Path) -> None:
    release, dev = Project(tmp_path), Project(tmp_path, profile="dev")
    assert dev.bundle_path("hello", "0.1.0") == tmp_path / "artifacts" / "dev" / "bundles" / "hello-0.1.0.ngx"
    assert release.wasm_path("hello") == tmp_path / "artifacts" / "wasm" / "hello.wasm"
    toolchain = toolchain_for(tmp_path / ".ngixi")
    entry, output = Path("guests/hello/assembly/index.ts"), Path("out.wasm")

    def flags(options: AscOptions) -> list[str]:
        arguments = asc_arguments(toolchain, tmp_path, entry, output, options)
        return arguments[arguments.index(str(output)) + 1 : arguments.index("--maximumMemory")]

    assert flags(AscOptions("library", 16)) == ["-O3", "--debug"]
    assert flags(AscOptions("library", 16, profile="dev")) == ["-O0", "--debug", "--sourceMap"]


def test_clean_removes_what_a_killed_write_left_and_nothing_of_the_users(tmp_path: Path, keys: KeyFiles) -> None:
    project = Project(tmp_path / "project")
    bundles = project.artifacts_dir / "bundles"
    finished = make_bundle(bundles, keys.key, wasm=WASM)
    (bundles / "big.wasm").write_bytes(random.randbytes(64 << 20))
    assert any(kill_once_writing(bundles, keys) for _ in range(3)), "the writer always finished first"
    (killed,) = bundles.glob(".hello-0.1.0.ngx.*.tmp")
    ours = [
        killed,
        project.artifacts_dir / "wasm" / ".hello.k2j4_x9q.wasm",  # what a killed compile leaves
        project.artifacts_dir / "release" / ".1.0.0.a1b2c3d4.tmp" / ".SHA256SUMS.e5f6g7h8.tmp",
        project.state_dir / ".trust.toml.zz00yy11.tmp",
        project.keys_dir / ".dev.key.q1w2e3r4.tmp",
        project.artifacts_dir / "dev" / "bundles" / "hello-0.1.0.ngx",
        project.state_dir / "watch" / "dev" / "hello.wasm",
    ]
    users = [
        project.guests_dir / "hello" / "assembly" / ".index.ts.abcdefgh.tmp",
        project.state_dir / "sandbox" / "notes" / "files" / ".note.txt.abcdefgh.tmp",
        project.state_dir / "toolchain" / "x" / ".cache.abcdefgh.tmp",
        project.artifacts_dir / "wasm" / "notes.tmp",
    ]
    for path in [*ours[1:], *users]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    remove_leftovers(project)
    assert [p for p in ours if p.exists()] == []
    assert [p for p in users if not p.exists()] == []
    assert finished.exists() and not (project.artifacts_dir / "release" / ".1.0.0.a1b2c3d4.tmp").exists()


def test_writes_without_fsync_are_still_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    with without_fsync():
        write_atomic(tmp_path / "dev.ngx", b"dev")
    assert synced == [] and (tmp_path / "dev.ngx").read_bytes() == b"dev"
    write_atomic(tmp_path / "release.ngx", b"release")
    assert len(synced) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["dev.ngx", "release.ngx"]
