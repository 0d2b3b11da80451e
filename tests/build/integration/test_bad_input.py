"""Every command fed bad input, as a user types it: one `ngixi: error:` line naming the file, exit 2, no
traceback, no wait on a FIFO or a device."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from doit.exceptions import TaskFailed

from ngixi_build.guests import folders_without_manifest
from ngixi_build.project import Project
from ngixi_build.toolchains.asc_server import AscServer
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.workflows.devbuild import DevBuilder
from ngixi_build.workflows.dodo_tasks import ProjectTasks
from ngixi_build.workflows.scaffold import init_project, new_guest
from ngixi_build.workflows.watch import Rebuilds, _Session
from ngixi_runtime.errors import InvalidInput
from tests.conftest import make_bundle, make_key
from tests.integration import installed_toolchain, share_toolchains
from tests.wasmgen import ADD_BODY, Func, module

BIN = Path(sys.executable).parent
BAD_FILES: dict[str, Callable[[Path], object]] = {
    "missing": lambda path: None,
    "directory": lambda path: path.mkdir(),
    "empty": lambda path: path.write_bytes(b""),
    "binary": lambda path: path.write_bytes(bytes(range(256)) * 8),
    "not-utf8": lambda path: path.write_bytes(b'[guest]\nname = "\xff\xfe"\n'),
    "deep-array": lambda path: path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n"),
    "deep-table": lambda path: path.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"),
    "fifo": os.mkfifo,
    "dev-zero": lambda path: path.symlink_to("/dev/zero"),
}


@dataclass(frozen=True)
class World:
    root: Path
    trust: Path
    bundle: Path
    project: Path

    def bad(self, kind: str, name: str) -> Path:
        path = self.root / "bad" / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(path):
            BAD_FILES[kind](path)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bad-input")
    keys = make_key(root / "keys")
    bundle = make_bundle(
        root / "bundle", keys.key, wasm=module(functions=[Func("add", ["i32"] * 2, ["i32"], ADD_BODY)])
    )
    init_project(root / "project")
    return World(root, keys.trust, bundle, root / "project")


# Each command with the bad file in one of its file arguments ({} stands for it).
FILE_ARGUMENTS = {
    "run bundle": ["run", "--in-process", "--trust", "{trust}", "{}", "add", "1", "2"],
    "run --trust": ["run", "--in-process", "--trust", "{}", "{bundle}", "add", "1", "2"],
    "run --policy": ["run", "--in-process", "--trust", "{trust}", "--policy", "{}", "{bundle}", "add", "1", "2"],
    "run --sandbox": ["run", "--in-process", "--trust", "{trust}", "--sandbox", "{}", "{bundle}", "add", "1", "2"],
    "verify bundle": ["verify", "--trust", "{trust}", "{}"],
    "verify --trust": ["verify", "--trust", "{}", "{bundle}"],
    "inspect bundle": ["inspect", "--trust", "{trust}", "{}"],
    "trust list": ["trust", "list", "--trust", "{}"],
    "trust add key": ["trust", "add", "{}", "--guest", "x", "--channel", "dev", "--trust", "{root}/t.toml"],
    "trust add --trust": ["trust", "add", "{root}/keys/test.pub", "--guest", "x", "--channel", "dev", "--trust", "{}"],
    "trust remove": ["trust", "remove", "RWQ", "--trust", "{}"],
    "validate manifest": ["validate", "{}"],
    "validate --wasm": ["validate", "{project}/m/hello.toml", "--wasm", "{}"],
    "validate --policy": ["validate", "{project}/m/hello.toml", "--policy", "{}"],
    "keygen --trust": ["keygen", "--secret", "{root}/k/{kind}.key", "--public", "{root}/k/{kind}.pub", "--trust", "{}",
                       "--guest", "x", "--channel", "dev"],
    "pull --trust": ["pull", "127.0.0.1:9/x:1", "--trust", "{}"],
}  # fmt: skip
# Inputs a command may take as they are: an empty policy is the default policy, an empty or missing trust
# file for `trust add` is a new one, `validate`'s manifest is named by its stem.
ACCEPTED = {
    ("run --policy", "empty"),
    ("validate --policy", "empty"),
    ("trust add --trust", "missing"),
    ("trust add --trust", "empty"),
    ("keygen --trust", "missing"),
    ("keygen --trust", "empty"),
}
# A sandbox is a directory: missing, it is made.
ACCEPTED |= {("run --sandbox", kind) for kind in ("missing", "directory")}
CASES = [(c, k) for c in FILE_ARGUMENTS for k in BAD_FILES if (c, k) not in ACCEPTED]


def ngixi(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ngixi"), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *names: str, status: int = 2) -> None:
    """One error line naming one of `names` (a file, or the file a symlink names)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("ngixi: error: "), done.stderr
    assert any(name in lines[-1] for name in names), done.stderr
    assert done.returncode == status, done.stderr


@pytest.mark.parametrize(("command", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_a_bad_file_is_named_in_one_line(world: World, command: str, kind: str) -> None:
    (world.project / "m").mkdir(exist_ok=True)
    (world.project / "m" / "hello.toml").write_text('[guest]\nname = "hello"\nversion = "0.1.0"\n')
    bad = world.bad(kind, "hello.toml" if command == "validate manifest" else "input.toml")
    fields = {"trust": world.trust, "bundle": world.bundle, "project": world.project, "root": world.root}
    argv = [a.replace("{}", str(bad)).format(kind=kind, **fields) for a in FILE_ARGUMENTS[command]]
    done = ngixi(argv, world.root)
    damaged = command.endswith("bundle") and kind in ("empty", "binary", "not-utf8", "deep-array", "deep-table")
    assert_refused(done, str(bad), os.path.realpath(bad), status=3 if damaged else 2)


PYPROJECTS = {
    "tool.ngixi not a table": "[tool]\nngixi = 3\n",
    "targets not an array": "[tool.ngixi]\ntargets = 5\n",
    "release not an array": '[tool.ngixi]\nrelease = "x"\n',
    "wasmtime_targets wrong": "[tool.ngixi]\nwasmtime_targets = [1e400]\n",
    "deep": "[tool.ngixi]\nx = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    "not UTF-8": "[tool.ngixi]\n# \udcff\n",
}
PROJECT_COMMANDS = (["build"], ["wit"], ["new", "two"], ["publish"])


@pytest.mark.parametrize("problem", PYPROJECTS, ids=list(PYPROJECTS))
def test_a_bad_project_file_is_named_by_every_project_command(world: World, problem: str) -> None:
    project = world.root / "projects" / problem.replace(" ", "-")
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_bytes(PYPROJECTS[problem].encode(errors="surrogateescape"))
    for argv in PROJECT_COMMANDS:
        assert_refused(ngixi(argv, project), "pyproject.toml")


@pytest.mark.parametrize("kind", ["directory", "fifo", "deep-table"])
def test_doit_names_a_bad_manifest_without_a_traceback(world: World, kind: str) -> None:
    project = world.root / "doit" / kind
    init_project(project)
    toolchain = installed_toolchain()
    if toolchain is not None:  # the guest's compile is refused; installing the toolchain again is no part of it
        share_toolchains(toolchain / ".ngixi", project / ".ngixi")
    (project / "guests" / "hi" / "assembly").mkdir(parents=True)
    (project / "guests" / "hi" / "assembly" / "index.ts").write_text("export function one(): i32 { return 1 }\n")
    manifest = project / "manifests" / "hi.toml"
    manifest.parent.mkdir(exist_ok=True)
    BAD_FILES[kind](manifest)
    done = subprocess.run(
        [str(BIN / "doit"), "validate"], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode != 0 and "hi.toml" in done.stderr + done.stdout


def test_keygen_leaves_no_secret_key_without_its_public_half(world: World) -> None:
    secret, public = world.root / "lone.key", world.bad("empty", "file") / "lone.pub"
    done = ngixi(["keygen", "--secret", str(secret), "--public", str(public)], world.root)
    assert_refused(done, str(public.parent))
    assert not secret.exists()


def test_a_manifest_without_its_guest_fails_its_own_bundle_task_and_stops_no_other(tmp_path: Path) -> None:
    """Refused while doit loaded the tasks, it stopped every doit command (`doit list` and `doit clean` too)."""
    init_project(tmp_path)
    new_guest(Project(tmp_path), "kept", language="c", kind="library", abi="core")
    (tmp_path / "manifests" / "gone.toml").write_text('[guest]\nname = "gone"\n')
    bundles = {task["name"]: task for task in ProjectTasks(Project(tmp_path)).task_bundle()}
    assert sorted(bundles) == ["gone", "kept"]
    action, _, _ = bundles["gone"]["actions"][0]
    failure = action()
    assert isinstance(failure, TaskFailed) and "guest 'gone' has no directory" in str(failure)


class _Builder:
    """What the watch session asks of its builder, building nothing."""

    def __init__(self) -> None:
        self.built: list[str] = []

    def rebuild(self, guest: str, _times: object) -> object:
        self.built.append(guest)
        return object()

    def warm_up(self, _guests: list[str]) -> None:
        pass

    def drop(self, _guest: str) -> None:
        pass


def test_watch_and_build_say_the_same_of_a_manifest_without_guest_and_a_folder_without_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`ngixi watch` passed over a manifest whose guest has no directory (`doit build` fails that guest), and both
    passed over a folder under guests/ without a manifest, saying nothing."""
    init_project(tmp_path)
    project = Project(tmp_path)
    new_guest(project, "kept", language="c", kind="library", abi="core")
    (tmp_path / "manifests" / "gone.toml").write_text('[guest]\nname = "gone"\n')
    (tmp_path / "guests" / "common").mkdir()
    (tmp_path / "guests" / "common" / "util.c").write_text("int util(void) { return 1; }\n")
    (tmp_path / "guests" / ".hidden").mkdir()
    assert folders_without_manifest(project) == [tmp_path / "guests" / "common"]
    bundles = {task["name"]: task for task in ProjectTasks(project).task_bundle()}
    action, _, _ = bundles["common"]["actions"][0]
    assert action() is None  # the build goes on
    passed_over = f"{tmp_path}/guests/common/: not built: it has no manifest {tmp_path}/manifests/common.toml; write"
    assert passed_over in caplog.text
    lines: list[str] = []
    builder = _Builder()
    session = _Session(project, cast(DevBuilder, builder), Rebuilds(lambda: None, lines.append), smoke=False)
    session.build_all()
    failed = f"gone: failed\n{tmp_path}/manifests/gone.toml: guest 'gone' has no directory {tmp_path}/guests/gone/"
    assert builder.built == ["kept"] and lines[0].startswith("kept: rebuilt") and len(lines) == 3, lines
    assert lines[1].startswith(failed) and lines[2].startswith(passed_over)
    session.handle("common")
    session.handle("gone")
    assert lines[3:] == [lines[2], lines[1]]
    shutil.rmtree(tmp_path / "guests" / "kept")
    session.handle("kept")
    session.rebuilds.wait_idle()
    assert lines[5].startswith("kept: failed\n") and "guest 'kept' has no directory" in lines[5]
    project.manifest_path("kept").unlink()
    session.handle("kept")
    assert lines[6:] == ["kept: removed; no longer built"]


class _FailingBackground(_Builder):
    """A builder whose background step fails as one does when the guest's manifest changes under it."""

    def prefetch(self, _guest: str) -> None:
        pass

    def background_step(self, guest: str) -> None:
        raise InvalidInput(f"artifacts/dev/wasm/{guest}.wasm: not validated against its manifest as it is now")


def test_a_background_step_failing_because_its_guest_changed_under_it_is_not_reported(tmp_path: Path) -> None:
    """A guest removed (or saved) while watch built its other targets' artifacts printed 'other targets' artifacts
    failed: ... not validated against ... as it is now' before 'removed; no longer built' (a race seen in CI)."""
    init_project(tmp_path)
    project = Project(tmp_path)
    for name in ("kept", "saved", "gone"):
        new_guest(project, name, language="c", kind="library", abi="core")
    lines: list[str] = []
    session = _Session(
        project, cast(DevBuilder, _FailingBackground()), Rebuilds(lambda: None, lines.append), smoke=False
    )
    session._background_step("kept", None)
    assert lines == [
        "other targets' artifacts failed:\nartifacts/dev/wasm/kept.wasm: not validated against its "
        "manifest as it is now"
    ]
    session.arrived("saved")  # its save's first event, while the step ran
    session._background_step("saved", None)
    shutil.rmtree(project.guests_dir / "gone")
    project.manifest_path("gone").unlink()
    session._background_step("gone", None)
    assert len(lines) == 1, lines


class _RemovedWhileBuilding(_Builder):
    """A builder during whose rebuild the user removes the guest (`rm -r guests/g manifests/g.toml`)."""

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project

    def rebuild(self, guest: str, _times: object) -> object:
        shutil.rmtree(self.project.guests_dir / guest)
        self.project.manifest_path(guest).unlink()
        raise InvalidInput(f"manifests/{guest}.toml: cannot read it: No such file or directory")


def test_a_rebuild_failing_because_its_guest_was_removed_under_it_is_not_reported(tmp_path: Path) -> None:
    """A guest removed while its rebuild ran printed that rebuild's failure before 'removed; no longer built'."""
    init_project(tmp_path)
    project = Project(tmp_path)
    new_guest(project, "gone", language="c", kind="library", abi="core")
    lines: list[str] = []
    builder = _RemovedWhileBuilding(project)
    session = _Session(project, cast(DevBuilder, builder), Rebuilds(lambda: None, lines.append), smoke=False)
    session._rebuild_now("gone")
    session.handle("gone")
    session.rebuilds.wait_idle()
    assert lines == ["gone: removed; no longer built"]


class _IdleServer:
    """A warm compiler that accepts compiles and never finishes one: a broken manifest fails before its result."""

    def submit(self, _argv: object) -> Future[object]:
        return Future()

    def compile(self, _argv: object, *, timeout: float) -> None:
        pass


BROKEN_FIELDS = {
    "half-edited": "[exports.greet]\nparams = [",
    "wrong-type": '[exports.greet]\nparams = "string"',
    "unknown-field": "[exports.greet]\nparms = []",
}


@pytest.mark.parametrize("broken", sorted(BROKEN_FIELDS))
def test_watch_reports_a_manifest_broken_while_it_runs_and_keeps_going(tmp_path: Path, broken: str) -> None:
    """The compile started while events settle (and the warm-up) read the manifest unguarded: a library
    component's manifest saved half-edited ended `ngixi watch` instead of failing the rebuild that follows."""
    init_project(tmp_path)
    project = Project(tmp_path)
    new_guest(project, "lib", language="assemblyscript", kind="library", abi="component")
    path = project.manifest_path("lib")
    path.write_text(path.read_text().replace('[exports.greet]\nparams = ["string"]', BROKEN_FIELDS[broken]))
    builder = DevBuilder(project, cast(AscServer, _IdleServer()))
    builder._toolchain = toolchain_for(project.state_dir)  # as after the first AssemblyScript compile
    lines: list[str] = []
    session = _Session(project, builder, Rebuilds(lambda: None, lines.append), smoke=False)
    session.arrived("lib")
    builder.warm_up(["lib"])
    session.handle("lib")
    session.rebuilds.wait_idle()
    [line] = lines  # one failure line, then one line per problem, each naming the file and the field
    heading, *problems = line.splitlines()
    assert heading.startswith("lib: failed after ") and problems, line
    assert all(problem.startswith(f"{path}: ") for problem in problems), line
