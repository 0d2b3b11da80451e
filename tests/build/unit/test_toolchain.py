"""Toolchain bootstrap bookkeeping (the real install runs in the integration tests)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from ngixi_build import doctor
from ngixi_build.guests import read_guest
from ngixi_build.project import find_project
from ngixi_build.stages import precompile, validate
from ngixi_build.toolchains import assemblyscript as toolchain
from ngixi_build.toolchains import installs, javascript, ziglang
from ngixi_build.toolchains.asc_server import AscServer
from ngixi_build.workflows import devbuild, pipeline
from ngixi_build.workflows.devbuild import DevBuilder
from ngixi_build.workflows.dodo_tasks import ProjectTasks
from ngixi_build.workflows.scaffold import init_project, new_guest
from ngixi_runtime.errors import InvalidInput, ToolchainError
from ngixi_runtime.spec.bundle_format import ArtifactMeta
from ngixi_runtime.spec.targets import resolve_target
from ngixi_runtime.trust import project_trust


@pytest.fixture(autouse=True)
def user_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's state directory, where the install stamp key is kept."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    return tmp_path / "user-state"


def test_failed_install_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_install(chain: toolchain.Toolchain) -> None:
        (chain.root / "node_modules").mkdir()
        raise ToolchainError("npm ci failed")

    monkeypatch.setattr(toolchain, "_install", broken_install)
    with pytest.raises(ToolchainError):
        toolchain.ensure_toolchain(state_dir=tmp_path)
    assert not toolchain.toolchain_for(tmp_path).root.exists()


def test_complete_install_is_reused_and_stale_ones_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_install(chain: toolchain.Toolchain) -> None:
        calls.append(chain.root)
        installs.mark_complete(chain.root)

    stale = tmp_path / "toolchain" / "0000000000000000"
    stale.mkdir(parents=True)
    monkeypatch.setattr(toolchain, "_install", fake_install)
    first = toolchain.ensure_toolchain(state_dir=tmp_path)
    second = toolchain.ensure_toolchain(state_dir=tmp_path)
    assert first == second and len(calls) == 1
    assert not stale.exists()


def test_half_done_install_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = toolchain.toolchain_for(tmp_path)
    (chain.root / "node_modules").mkdir(parents=True)
    monkeypatch.setattr(toolchain, "_install", lambda c: installs.mark_complete(c.root))
    toolchain.ensure_toolchain(state_dir=tmp_path)
    assert chain.complete and not (chain.root / "node_modules").exists()


def test_pins_key_changes_with_the_lock_file(monkeypatch: pytest.MonkeyPatch) -> None:
    before = toolchain.toolchain_key()
    real = toolchain.pin_bytes()
    monkeypatch.setattr(toolchain, "pin_bytes", lambda: {**real, "package-lock.json": b"{}"})
    assert toolchain.toolchain_key() != before


@pytest.mark.parametrize("marker", ["plain", "another user's"])
def test_a_toolchain_that_came_with_the_project_is_installed_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, marker: str
) -> None:
    """A tarball's .ngixi/toolchain/<key>/ with a `node` of its author's and a marker: never run, replaced."""
    chain = toolchain.toolchain_for(tmp_path / "project" / ".ngixi")
    (chain.root / "env" / "bin").mkdir(parents=True)
    (chain.root / "env" / "bin" / "node").write_text("#!/bin/sh\necho theirs\n")
    if marker == "plain":
        (chain.root / ".complete").write_text(toolchain.toolchain_key() + "\n")  # as builds wrote it before
    else:
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "their-state"))
        installs.mark_complete(chain.root)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    assert not chain.complete
    monkeypatch.setattr(toolchain, "_install", lambda c: installs.mark_complete(c.root))
    assert toolchain.ensure_toolchain(state_dir=tmp_path / "project" / ".ngixi") == chain
    assert chain.complete and not (chain.root / "env").exists()
    assert f"{chain.root}: installing afresh: its marker is not one your builds made" in caplog.text


def test_doctor_says_a_moved_projects_toolchains_are_installed_again_not_missing(tmp_path: Path) -> None:
    """After a project moved with its `.ngixi/`, `ngixi doctor` called its stamped toolchains "not installed" and
    told an author outside this repository to run `make build`: they are there, and the next build installs them
    again in the new place."""
    init_project(tmp_path / "before")
    project = find_project(tmp_path / "before")
    new_guest(project, "js", language="javascript", kind="library", abi="component")
    for root in (toolchain.toolchain_for(project.state_dir).root, javascript.toolchain_for(project.state_dir).root):
        root.mkdir(parents=True)
        installs.mark_complete(root)
    assert all(finding.ok for finding in doctor.toolchain_findings(project))
    (tmp_path / "before").rename(tmp_path / "after")
    findings = doctor.toolchain_findings(find_project(tmp_path / "after"))
    assert [finding.what for finding in findings] == ["assemblyscript toolchain", "javascript toolchain"]
    for finding in findings:
        assert not finding.ok and "make" not in finding.detail
        assert "is not one your builds installed there (moved, copied or it came with the project)" in finding.detail
        assert finding.detail.endswith("`doit toolchain` (or the next build) installs it again")


def test_a_language_install_that_came_with_the_project_is_installed_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = installs.install_root(tmp_path, "javascript", {"package.json": b"{}"})
    root.mkdir(parents=True)
    (root / installs.COMPLETE).write_text(root.name + "\n")  # as builds wrote it before
    installed: list[Path] = []
    installs.ensure_install(root, installed.append)
    assert installed == [root] and installs.is_complete(root)
    installs.ensure_install(root, installed.append)
    assert installed == [root]  # this user's install is reused
    assert caplog.text.count("installing afresh") == 1  # said of the one made before stamps only


def test_a_stamp_key_others_may_read_is_not_used(
    user_state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = installs.stamp(tmp_path)
    (user_state / "ngixi" / "install-stamp.key").chmod(0o644)
    assert installs.stamp(tmp_path) != kept  # this process's own key, which no one else has
    assert "install-stamp.key: the key that marks what your builds made is not used: others may read it" in caplog.text


def test_a_stamp_once_the_key_is_there_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every up-to-date check of an install or artifact stamps, and each wrote (and synced) a key to find one
    there."""
    kept = installs.stamp(tmp_path)
    monkeypatch.setattr(project_trust, "write_atomic", lambda *_args, **_kwargs: pytest.fail("a key written"))
    assert installs.stamp(tmp_path) == kept


def test_builds_go_on_where_the_stamp_key_cannot_be_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only home (a container's, a sandboxed build's) failed every build, with doit's traceback; it built
    before stamps. What the build makes then counts in this process only, said once."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "a-file" / "state"))
    root = tmp_path / "toolchain" / "0123456789abcdef"
    installed: list[Path] = []
    for _ in range(2):
        installs.ensure_install(root, installed.append)
    assert installed == [root] and installs.is_complete(root)
    assert caplog.text.count("cannot be kept there") == 1 and "set XDG_STATE_HOME" in caplog.text


def test_a_stamped_install_copied_elsewhere_is_installed_afresh(tmp_path: Path) -> None:
    """The stamp named the pins only: this user's stamped `.ngixi/`, shipped in a tarball with another `node` in it
    and unpacked as another project, was taken for this user's install."""
    root = installs.install_root(tmp_path / "mine" / ".ngixi", "javascript", {"package.json": b"{}"})

    def install(place: Path) -> None:
        (place / "node").write_text("mine\n")

    installs.ensure_install(root, install)
    copy = installs.install_root(tmp_path / "theirs" / ".ngixi", "javascript", {"package.json": b"{}"})
    shutil.copytree(root, copy)
    (copy / "node").write_text("theirs\n")
    assert installs.is_complete(root) and not installs.is_complete(copy)
    (tmp_path / "link").symlink_to(tmp_path / "mine")
    assert installs.is_complete(tmp_path / "link" / root.relative_to(tmp_path / "mine"))  # the real path counts


def test_only_an_artifact_this_users_build_compiled_is_made_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine code that came with a project (its metadata too, a doit record calling it current) is never
    signed with this user's dev key: the precompile task runs again, and the bundle step refuses it."""
    meta = ArtifactMeta("wasmer", "6", "1", "cranelift", "x86_64-unknown-linux-gnu", (), "0" * 64)
    ours = tmp_path / "ours.bin"
    precompile._write(ours, b"machine code", meta)
    assert precompile.made_here(ours) and precompile.read_metadata(ours) == meta
    shipped = tmp_path / "shipped.bin"
    shipped.write_bytes(b"their machine code")
    record = {**meta._asdict(), "metered": False}
    precompile.metadata_path(shipped).write_text(json.dumps(record))  # as builds wrote it before stamps
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "their-state"))
    theirs = tmp_path / "theirs.bin"
    precompile._write(theirs, b"their machine code", meta)  # stamped with their key
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    ours.write_bytes(b"changed")
    assert not any(precompile.made_here(path) for path in (shipped, theirs, ours, tmp_path / "missing.bin"))


@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_the_bundle_step_refuses_an_artifact_not_made_here(tmp_path: Path, engine: str) -> None:
    """The last stop before this user's dev key signs machine code: one that came with the project is refused, and
    no bundle is written."""
    init_project(tmp_path / "p")
    project = find_project(tmp_path / "p")
    new_guest(project, "hello", language="c", kind="library", abi="core")
    project.wasm_path("hello").parent.mkdir(parents=True)
    project.wasm_path("hello").write_bytes(b"\0asm\1\0\0\0")
    project.validated_path("hello").parent.mkdir(parents=True)
    digests = validate._digests(project.manifest_path("hello"), project.wasm_path("hello"))
    project.validated_path("hello").write_text(json.dumps(digests))
    triple = "x86_64-unknown-linux-gnu"
    shipped = project.artifact_path("hello", triple, engine)
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"their machine code")
    record = {**ArtifactMeta(engine, "1", "1", "c", triple, (), "0" * 64)._asdict(), "metered": False}
    precompile.metadata_path(shipped).write_text(json.dumps(record))
    wasmer, wasmtime = ([triple], []) if engine == "wasmer" else ([], [triple])
    with pytest.raises(InvalidInput, match=r"hello.*: not compiled by your builds \(it came with the project\?\)"):
        pipeline.bundle(project, read_guest(project, "hello"), wasmer, wasmtime_triples=wasmtime)
    assert not project.bundle_path("hello", read_guest(project, "hello").version).parent.exists()


def test_every_precompile_task_asks_whether_its_artifact_was_made_here(tmp_path: Path) -> None:
    init_project(tmp_path / "p")
    new_guest(find_project(tmp_path / "p"), "hello", language="c", kind="library", abi="core")
    tasks = list(ProjectTasks(find_project(tmp_path / "p")).task_precompile())
    assert tasks and all(_asks_made_here(task) for task in tasks)


def _asks_made_here(task: dict[str, Any]) -> bool:
    """Its last up-to-date check is true for an artifact this user compiled, false once the bytes change."""
    artifact, check = Path(task["targets"][0]), task["uptodate"][-1]
    precompile._write(artifact, b"code", ArtifactMeta("e", "1", "1", "c", "t", (), "0" * 64))
    made = check()
    artifact.write_bytes(b"other code")
    return made is True and check() is False


def test_watch_mode_compiles_again_an_artifact_not_made_here(tmp_path: Path) -> None:
    """Watch mode asks the artifact's metadata whether it is current: a record that came with the project is not, nor
    one compiled with other engine settings (relaxed SIMD's, say), which Wasmtime would refuse to load."""
    pytest.importorskip("wasmtime")
    target = resolve_target("x86_64-unknown-linux-gnu", source="test")
    meta, artifact = precompile.wasmtime_artifact_metadata(target, "0" * 64), tmp_path / "a.cwasm"
    artifact.write_bytes(b"their machine code")
    precompile.metadata_path(artifact).write_text(json.dumps({**meta._asdict(), "metered": False}))
    assert not precompile.wasmtime_artifact_is_current(artifact, target=target, wasm_sha256="0" * 64, metered=False)
    precompile._write(artifact, b"our machine code", meta)  # as before Wasmtime's settings were recorded
    assert not precompile.wasmtime_artifact_is_current(artifact, target=target, wasm_sha256="0" * 64, metered=False)
    settings = pytest.importorskip("ngixi_runtime.engines.wasmtime").SETTINGS
    precompile._write(artifact, b"our machine code", meta, settings=settings)
    assert precompile.wasmtime_artifact_is_current(artifact, target=target, wasm_sha256="0" * 64, metered=False)


def test_watch_mode_installs_the_assemblyscript_toolchain_at_the_first_compile_of_such_a_guest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watching installed Node.js and AssemblyScript at its start whatever the guests: a project of others needs
    none, and one that gains an AssemblyScript guest while watched installs them at that guest's first compile (a
    compile started early, while events settle, waits for that install and reports no failure of it)."""
    init_project(tmp_path / "p")
    project = find_project(tmp_path / "p")
    new_guest(project, "hello", language="assemblyscript", kind="library", abi="core")
    installed: list[Path] = []

    def install(*, state_dir: Path) -> toolchain.Toolchain:
        installed.append(state_dir)
        return toolchain.toolchain_for(state_dir)

    monkeypatch.setattr(devbuild, "ensure_toolchain", install)
    builder = DevBuilder(project, cast(AscServer, None))  # no compile is submitted before the install
    builder.prefetch("hello")
    builder.warm_up(["hello"])
    assert installed == []
    guest = read_guest(project, "hello")
    assert builder._argv(guest) == builder._argv(guest)
    assert installed == [project.state_dir]


def test_watch_mode_compiles_again_a_wasmer_artifact_not_made_here(tmp_path: Path) -> None:
    """As for Wasmtime's: DevBuilder's own check of a Wasmer artifact, whose metadata came with the project."""
    init_project(tmp_path / "p")
    project = find_project(tmp_path / "p")
    target = resolve_target("x86_64-unknown-linux-gnu", source="test")
    builder = DevBuilder(project, cast(AscServer, None))
    artifact, meta = (
        builder.project.artifact_path("hello", target.triple),
        precompile.artifact_metadata(target, "0" * 64),
    )
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"their machine code")
    precompile.metadata_path(artifact).write_text(json.dumps({**meta._asdict(), "metered": False}))
    assert not builder._artifact_fits("hello", target, "0" * 64)
    precompile._write(artifact, b"our machine code", meta)
    assert builder._artifact_fits("hello", target, "0" * 64)


def test_watch_never_has_asc_write_through_a_link_that_came_with_the_project(tmp_path: Path) -> None:
    """Watch mode's asc wrote each module by its fixed name under `.ngixi/watch/dev/`: a link there that came with the
    project (`hello.wasm` to the user's ~/.bashrc, or `watch/` to another folder) had the file it named overwritten."""
    init_project(tmp_path / "p")
    project = find_project(tmp_path / "p")
    victim = tmp_path / "bashrc"
    victim.write_text("mine\n")
    folder = project.watch_dir / "dev"
    folder.mkdir(parents=True)
    for name in ("hello.wasm", "hello.wasm.map"):
        (folder / name).symlink_to(victim)
    builder = DevBuilder(project, cast(AscServer, None))
    scratch = builder._scratch("hello")
    assert scratch == folder / "hello.wasm" and not os.path.lexists(scratch)
    assert not os.path.lexists(folder / "hello.wasm.map") and victim.read_text() == "mine\n"
    shutil.rmtree(project.watch_dir)
    project.watch_dir.symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match=rf"^{project.watch_dir}: is a symbolic link, where the build makes"):
        builder._scratch("hello")


def test_a_shared_install_is_made_whole_beside_its_place_then_moved_in(tmp_path: Path) -> None:
    """Every environment's build uses the one install: none may see half of it, or another one being made."""
    root = tmp_path / "cache" / "ziglang" / "0.17.0-key"
    seen: list[Path] = []

    def install(place: Path) -> None:
        seen.append(place)
        assert place.parent == root.parent and not root.exists()
        (place / "zig").write_text("zig\n")

    assert installs.ensure_shared_install(root, install) == root
    assert installs.ensure_shared_install(root, install) == root
    assert len(seen) == 1 and not seen[0].exists() and (root / "zig").read_text() == "zig\n"
    assert installs.is_complete(root)
    assert sorted(p.name for p in root.parent.iterdir() if not p.name.endswith(".lock")) == ["0.17.0-key"]


def test_a_failed_shared_install_leaves_nothing_and_another_version_is_kept(tmp_path: Path) -> None:
    other = tmp_path / "ziglang" / "0.16.0-key"  # another environment's pins: in use there
    installs.ensure_shared_install(other, lambda place: (place / "zig").write_text("old\n"))
    root = tmp_path / "ziglang" / "0.17.0-key"

    def broken(place: Path) -> None:
        (place / "zig").write_text("half\n")
        raise ToolchainError("pip failed")

    with pytest.raises(ToolchainError, match="pip failed"):
        installs.ensure_shared_install(root, broken)
    assert sorted(p.name for p in root.parent.iterdir() if not p.name.endswith(".lock")) == ["0.16.0-key"]
    assert installs.is_complete(other)


def test_two_shared_installs_at_once_install_once(tmp_path: Path) -> None:
    root = tmp_path / "ziglang" / "0.17.0-key"
    calls: list[int] = []
    started = threading.Event()

    def slow_install(place: Path) -> None:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        (place / "zig").write_text("zig\n")

    other = threading.Thread(target=installs.ensure_shared_install, args=(root, slow_install))
    other.start()
    started.wait(5)
    assert installs.ensure_shared_install(root, slow_install) == root
    other.join(5)
    assert calls == [1] and installs.is_complete(root)


def test_a_shared_install_not_this_users_is_installed_afresh(tmp_path: Path) -> None:
    root = tmp_path / "ziglang" / "0.17.0-key"
    root.mkdir(parents=True)
    (root / "zig").write_text("someone else's\n")
    (root / installs.COMPLETE).write_text("0.17.0-key\n")
    installs.ensure_shared_install(root, lambda place: (place / "zig").write_text("pinned\n"))
    assert (root / "zig").read_text() == "pinned\n" and installs.is_complete(root)


def test_a_shared_install_where_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ToolchainError, match=f"{shared} may be written by any user; set XDG_CACHE_HOME"):
        installs.ensure_shared_install(shared / "ziglang" / "0.17.0-key", lambda place: None)
    assert list(shared.iterdir()) == []


def test_a_shared_install_killed_half_way_is_cleared_by_the_next_build(tmp_path: Path) -> None:
    """A build killed while installing left its temporary directory (as large as the install) for good."""
    root = tmp_path / "ziglang" / "0.17.0-key"
    abandoned = tmp_path / "ziglang" / ".0.17.0-key.k1lled00"
    (abandoned / "ziglang").mkdir(parents=True)
    (abandoned / "ziglang" / "zig").write_text("half\n")
    other_version = tmp_path / "ziglang" / ".0.16.0-key.k1lled00"  # another version's: its own builds clear it
    other_version.mkdir()
    installs.ensure_shared_install(root, lambda place: (place / "zig").write_text("zig\n"))
    assert not abandoned.exists() and other_version.exists() and installs.is_complete(root)


def test_a_link_at_the_shared_install_place_is_replaced_and_the_install_kept(tmp_path: Path) -> None:
    """A link of this user's at the place (a stale one, or to an install elsewhere) failed the rename with a
    traceback; stamped through the link, the install was then made afresh at every build."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine").write_text("kept\n")
    root = tmp_path / "ziglang" / "0.17.0-key"
    root.parent.mkdir()
    root.symlink_to(elsewhere)
    calls: list[Path] = []

    def install(place: Path) -> None:
        calls.append(place)
        (place / "zig").write_text("zig\n")

    assert installs.ensure_shared_install(root, install) == root
    assert installs.ensure_shared_install(root, install) == root
    assert len(calls) == 1 and not root.is_symlink() and installs.is_complete(root)
    assert (elsewhere / "mine").read_text() == "kept\n"


def _state_linked_to_a_victim(tmp_path: Path, linked: str) -> tuple[Path, Path]:
    """A folder holding `precious` (the victim), and a project's `.ngixi/` whose `linked` is a link to it."""
    victim = tmp_path / "home"
    (victim / "precious").mkdir(parents=True)
    state = tmp_path / "project" / ".ngixi"
    (state / linked).parent.mkdir(parents=True, exist_ok=True)
    (state / linked).symlink_to(victim)
    return victim, state


@pytest.mark.parametrize("linked", ["toolchains", "toolchains/python", "toolchains/python/key"])
def test_a_link_where_a_project_install_goes_is_refused_and_where_it_points_kept(tmp_path: Path, linked: str) -> None:
    """A project's `.ngixi/` may come with it: a link at toolchains/python made the build remove every directory
    where it pointed but its own install."""
    victim, state = _state_linked_to_a_victim(tmp_path, linked)
    root = state / "toolchains" / "python" / "key"
    with pytest.raises(ToolchainError, match=rf"^{state / linked}: is a symbolic link, where the build makes"):
        installs.ensure_install(root, lambda place: None)
    assert sorted(p.name for p in victim.iterdir()) == ["precious"]


@pytest.mark.parametrize("linked", ["toolchain", f"toolchain/{toolchain.toolchain_key()}"])
def test_a_link_where_the_assemblyscript_toolchain_goes_is_refused_and_where_it_points_kept(
    tmp_path: Path, linked: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AssemblyScript toolchain had an install loop of its own, without the refusal of links: a project that came
    with `.ngixi/toolchain` linked to `../..` had its build remove every other folder there (the user's projects)."""
    victim, state = _state_linked_to_a_victim(tmp_path, linked)
    monkeypatch.setattr(toolchain, "_install", lambda made: (made.root / "env").mkdir())
    with pytest.raises(ToolchainError, match=rf"^{state / linked}: is a symbolic link, where the build makes"):
        toolchain.ensure_toolchain(state_dir=state)
    assert sorted(p.name for p in victim.iterdir()) == ["precious"]


def test_a_link_to_an_install_this_user_finished_is_used_and_nothing_beside_it_removed(tmp_path: Path) -> None:
    """Projects that share another's installs (a link at toolchains/, as the suite's copies do) build with them:
    only an install through a link is refused, not the use of one this user's build finished."""
    finished = tmp_path / "home" / "toolchains" / "python" / "key"
    installs.ensure_install(finished, lambda place: (place / "tool").mkdir())
    (finished.parent / "other-version").mkdir()
    state = tmp_path / "project" / ".ngixi"
    state.mkdir(parents=True)
    (state / "toolchains").symlink_to(tmp_path / "home" / "toolchains")
    root = state / "toolchains" / "python" / "key"
    assert installs.ensure_install(root, lambda place: pytest.fail("installed again")) == root
    assert sorted(p.name for p in finished.parent.iterdir() if not p.name.startswith(".")) == ["key", "other-version"]


def test_a_shared_install_under_a_umask_of_000_makes_directories_no_one_else_may_change(tmp_path: Path) -> None:
    """The folders above the install were made with the umask's mode alone: anyone's under 000, where another user
    could swap the install for their own zig after it was checked (and the next build refused the place)."""
    root = tmp_path / "cache" / "ngixi" / "toolchains" / "ziglang" / "0.17.0-key"
    previous = os.umask(0)
    try:
        installs.ensure_shared_install(root, lambda place: (place / "zig").write_text("zig\n"))
    finally:
        os.umask(previous)
    for made in (root.parent, root.parent.parent, tmp_path / "cache"):
        assert made.stat().st_mode & 0o022 == 0, oct(made.stat().st_mode)
    assert installs.ensure_shared_install(root, lambda place: None) == root


def test_the_pinned_zig_is_one_per_user_version_and_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Zig's global cache keys the wasi-libc it compiles on its lib directory's path: a zig in each environment
    compiled it again (about 50 s) at each new environment's first C or Zig build."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = ziglang.install_root()
    assert root.parent == tmp_path / "cache" / "ngixi" / "toolchains" / "ziglang"
    assert root.name.startswith(f"{ziglang.pinned_version()}-")
    installed, detail = ziglang.status()
    assert not installed and detail == f"ziglang 0.17.0 not installed in {root}; `doit toolchain` installs it"
    (root / "ziglang").mkdir(parents=True)
    (root / "ziglang" / "zig").write_text("")
    assert ziglang.zig_executable() is None  # not finished by this user's build
    installs.mark_complete(root)
    assert ziglang.zig_executable() == root / "ziglang" / "zig"
    assert ziglang.lib_dir(root / "ziglang" / "zig") == root / "ziglang" / "lib"


def test_a_project_install_under_a_umask_of_000_is_no_one_elses_to_change(tmp_path: Path) -> None:
    """Under a umask of 000 a project's install (npm's and pip's files) and the folders its lock made were anyone's:
    another user could change the compiler the project's builds run."""
    root = tmp_path / ".ngixi" / "toolchains" / "javascript" / "key"

    def install(place: Path) -> None:
        (place / "node_modules" / "asc").mkdir(parents=True)
        (place / "node_modules" / "asc" / "asc.js").write_text("compile()\n")

    previous = os.umask(0)
    try:
        installs.ensure_install(root, install)
    finally:
        os.umask(previous)
    made = [root.parent, root.parent.parent, tmp_path / ".ngixi", *root.rglob("*"), root]
    assert [p for p in made if p.stat().st_mode & 0o022] == []
    assert os.umask(previous) == previous  # the umask is the caller's again
