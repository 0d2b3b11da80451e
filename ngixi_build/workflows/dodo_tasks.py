"""The doit tasks of a project, for its dodo.py: `globals().update(declare(Path(__file__).parent))`.

Only declarations (file_dep, targets, config_changed, clean) that call the stage functions bound to a
project in pipeline.py and the other workflows. `ngixi build`, `ngixi smoke` and `ngixi release` run
the same tasks for the project found from the working directory, with no dodo.py at all.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from doit.tools import config_changed, run_once

from ngixi_build.guests import (
    folders_without_manifest,
    manifests_without_guest,
    read_guests,
    refuse_manifest_without_guest,
    warn_folder_without_manifest,
)
from ngixi_build.languages.registry import needs_node, toolchain_languages
from ngixi_build.proc import StopSignal, interrupting_on_stop_signals
from ngixi_build.project import NODE_MODULES, Project
from ngixi_build.reporter import ProgressReporter
from ngixi_build.stages import component, core_bindings
from ngixi_build.stages.precompile import made_here, metadata_path, precompile_inputs, wasmtime_precompile_inputs
from ngixi_build.toolchains import installs, npm_deps
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.workflows import clean, pipeline, release
from ngixi_build.workflows.scaffold import editor_link
from ngixi_build.workflows.tasks import (
    TargetsUnchanged,
    ToolFilesUnchanged,
    TreeUnchanged,
    as_action,
    existing,
    precompile_subtask,
)
from ngixi_build.workflows.watch import WatchAction
from ngixi_runtime.cli import fail
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import open_regular
from ngixi_runtime.spec.bundle_format import FORMAT_VERSION
from ngixi_runtime.trust.choice import state_override

Task = dict[str, Any]
PACKAGE_DIR = Path(__file__).parent.parent  # ngixi_build/, wherever it is installed


def project_tasks(root: Path) -> dict[str, Any]:
    """A dodo.py's globals for the project at `root` (its state in $NGIXI_PROJECT_STATE when set)."""
    sys.excepthook = quiet_interrupt
    project = checked_project(Project(root.resolve(), state_override=state_override()))
    interrupting_on_stop_signals()  # for doit's whole run, which this process is
    try:  # doit would show an error while loading dodo.py with its traceback
        return declare(project)
    except NgixiError as error:
        fail(error)


_SQLITE_HEADER = b"SQLite format 3\0"


def doit_database(path: Path) -> Path:
    """doit's record of the project's tasks, refused in one line where doit would show its traceback: anything but
    a regular file (a link that came with the project would have doit write into the file it names), or a file
    that is not a SQLite database (damaged, or another file)."""
    again = "remove it (the next build runs every task once and makes it again)"
    if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
        raise InvalidInput(f"{path}: doit's record of the tasks is not a regular file; {again}")
    with open_regular(path) as stream:
        header = b"" if stream is None else stream.read(len(_SQLITE_HEADER))
    if header and header != _SQLITE_HEADER:
        raise InvalidInput(f"{path}: not a doit database (damaged, or another file); {again}")
    return path


def publish_project_release(project: Project, *, force: bool = False, timeout: float | None = None) -> None:
    """`doit publish`'s action. The registry client (oras, requests, jsonschema) is imported by the one task that
    uses it: at the top of this module it was half of every doit command's start-up."""
    from ngixi_build.workflows.publish import publish_project_release as publish

    publish(project, force=force, timeout=timeout)


def quiet_interrupt(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    """sys.excepthook of `doit`: Ctrl-C, SIGTERM or SIGHUP ends with one line instead of doit's traceback, and the
    process ends as the signal's (Python does so for SIGINT itself). Every output is written to a temporary file and
    renamed, so an interrupted one is absent."""
    if issubclass(kind, KeyboardInterrupt):
        print("doit: interrupted; the outputs finished so far are kept, none is half-written", file=sys.stderr)
        if isinstance(value, StopSignal):
            _end_as_signalled(value.signum)
        return
    sys.__excepthook__(kind, value, traceback)


def _end_as_signalled(signum: int) -> None:
    """Ends this process by `signum`'s default action, as Python ends one that Ctrl-C interrupted."""
    sys.stdout.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def checked_project(project: Project) -> Project:
    """`project` with its configuration checked and its state directory made; a bad one exits with the message."""
    try:
        project.check_config()
        project.refuse_linked_outputs()
    except NgixiError as error:
        fail(error)
    return with_state_dir(project)


def with_state_dir(project: Project) -> Project:
    """`project` (its configuration checked, as `find_project` does) with its state directory made."""
    try:
        project.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(InvalidInput(f"{project.state_dir}: cannot make the project's state directory: {error.strerror}"))
    return project


def made_here_check(artifact: Path) -> Callable[[], bool]:
    """An up-to-date check that the artifact is this user's build's (`precompile.made_here`): doit's record sits
    in .ngixi/, which may have come with the project, with the artifacts."""
    return lambda: made_here(artifact)


def declare(project: Project) -> dict[str, Any]:
    """What a dodo.py holds for `project`: DOIT_CONFIG and every task_* function.

    doit keeps its record of each file by the name a task gives it. Run in the project's root (as doit runs a
    dodo.py, and `ngixi build` runs its tasks), a file of the project is named relative to it, so that a project
    moved or renamed with its .ngixi/ finds its builds up to date. The files of ngixi-build itself that a task
    reads are not named at all: `ToolFilesUnchanged` checks their content, so that the same ngixi-build installed
    elsewhere (another environment, a moved checkout) leaves every task up to date."""
    tasks = ProjectTasks(project)
    inside = project.root if _is_working_directory(project.root) else None
    declared: dict[str, Any] = {
        name: _portable(inside, method) for name, method in inspect.getmembers(tasks) if name.startswith("task_")
    }
    return {"DOIT_CONFIG": tasks.config(), **declared}


def _is_working_directory(root: Path) -> bool:
    try:
        return Path.cwd().resolve() == root.resolve()
    except OSError:  # the working directory was removed
        return False


def _portable(root: Path | None, method: Callable[[], Any]) -> Callable[[], Any]:
    """`method`, a task_* method, with its tasks' files named so that a task stays up to date wherever the project
    and ngixi-build are: the project's files relative to `root` (all absolute, with no root), ngixi-build's by
    content alone."""

    @functools.wraps(method)
    def declared() -> Any:
        made = method()
        return _made_portable(root, made) if isinstance(made, dict) else (_made_portable(root, t) for t in made)

    return declared


def _made_portable(root: Path | None, task: Task) -> Task:
    tool_files = [Path(p) for p in task.get("file_dep", []) if Path(p).is_relative_to(PACKAGE_DIR)]
    if tool_files:
        task["file_dep"] = [p for p in task["file_dep"] if not Path(p).is_relative_to(PACKAGE_DIR)]
        task["uptodate"] = [*task.get("uptodate", []), ToolFilesUnchanged(tool_files, PACKAGE_DIR)]
    if root is None:
        return task
    for key in ("file_dep", "targets"):
        if key in task:
            task[key] = [_relative_if_inside(root, Path(path)) for path in task[key]]
    return task


def _relative_if_inside(root: Path, path: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


class ProjectTasks:
    """The tasks of one project, declared from its guests as they are when doit loads them."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.guests = read_guests(project)  # read once: every task below is declared from these
        self.manifests_without_guest = manifests_without_guest(project)
        self.folders_without_manifest = folders_without_manifest(project)
        self.plans = {g: pipeline.artifact_plan(project, guest) for g, guest in self.guests.items()}
        self.wasmer_triples = {g: [t.triple for t in targets] for g, (targets, _) in self.plans.items()}
        self.wasmtime_for = {g: triples for g, (_, triples) in self.plans.items()}  # components: Wasmtime only
        self.toolchain = toolchain_for(project.state_dir)  # the AssemblyScript one, whose npm installs dependencies
        languages = toolchain_languages(project, list(self.guests.values()))  # none of C, Zig or wasm guests' Node
        self.toolchain_markers = pipeline.toolchain_markers(project, languages)
        self.editor_links = [editor_link(project.state_dir)] if needs_node(languages) else []

    def dependency_record(self, guest: str) -> list[Path]:
        """What the guest's installed npm packages are, for a guest that has any."""
        guest_dir = self.project.guests_dir / guest
        return [npm_deps.record_path(guest_dir)] if npm_deps.has_dependencies(guest_dir) else []

    def config(self) -> dict[str, Any]:
        return {
            "default_tasks": ["build"],
            "reporter": ProgressReporter,
            "dep_file": str(doit_database(self.project.doit_db)),
            "backend": "sqlite3",
            "continue": True,  # one broken guest does not stop the others; the summary lists each
        }

    def task_toolchain(self) -> Task:
        """Install wasm-tools and the pinned toolchains the guests need (AssemblyScript's: nodeenv + npm ci)."""
        return {
            "actions": [as_action(pipeline.install_toolchain, project=self.project)],
            "targets": [str(p) for p in [*self.toolchain_markers, *self.editor_links]],
            "uptodate": [
                # each install's key (its pins) is in its marker's path; a guest in a new language adds one
                config_changed(
                    {"toolchains": [str(m.relative_to(self.project.state_dir)) for m in self.toolchain_markers]}
                ),
                pipeline.wasm_tools_installed,
                self.toolchains_stamped,  # never the doit record's word alone: it may have come with the project
            ],
        }

    def toolchains_stamped(self) -> bool:
        """Whether this user's builds made every toolchain install the build uses (`installs.is_complete`)."""
        return all(installs.is_complete(marker.parent) for marker in self.toolchain_markers)

    def task_devkey(self) -> Task:
        """Create the development signing key and its trust file on first use."""
        return {
            "actions": [as_action(pipeline.make_dev_key, project=self.project)],
            "targets": [str(self.project.keys_dir / "dev.pub")],
            "uptodate": [run_once],
        }

    def task_bindings(self) -> Task:
        """Generate bindings of the WIT catalog (wit/) into artifacts/bindings/: components' AssemblyScript, and
        core guests' C header, Zig module and AssemblyScript module."""
        project = self.project
        return {
            "actions": [
                as_action(component.generate_bindings, project=project),
                as_action(core_bindings.generate, project=project),
            ],
            "file_dep": [
                *(str(p) for p in component.catalog_sources(project)),
                component.GENERATOR,
                *component.GLUE_GENERATOR,
                core_bindings.GENERATOR,
            ],
            "targets": [str(p) for p in [*component.bindings_paths(project), *core_bindings.paths(project)]],
            "task_dep": ["toolchain"],  # which installs wasm-tools, which reads the catalog
            "uptodate": [TargetsUnchanged()],
            "clean": True,
        }

    def task_dependencies(self) -> Any:
        """Install each guest's own npm dependencies (package.json + package-lock.json) with npm ci."""
        for name in self.guests:
            guest_dir = self.project.guests_dir / name
            if npm_deps.has_dependencies(guest_dir):
                yield {
                    "name": name,
                    "actions": [as_action(pipeline.install_dependencies, project=self.project, guest=name)],
                    "file_dep": existing(npm_deps.dependency_inputs(guest_dir)),
                    "task_dep": ["toolchain"],
                    "targets": [str(npm_deps.record_path(guest_dir))],
                    "uptodate": [
                        config_changed({"pins": self.toolchain.root.name}),
                        TreeUnchanged(guest_dir / NODE_MODULES),
                    ],
                }

    def task_compile(self) -> Any:
        """Compile each guest with its language's toolchain to artifacts/wasm/<guest>.wasm (or a component)."""
        for name, guest in self.guests.items():
            deps = pipeline.compile_deps(self.project, guest)
            yield {
                "name": name,
                "actions": [as_action(pipeline.compile_guest, project=self.project, guest=guest)],
                "file_dep": [str(p) for p in [*deps.file_dep, *self.dependency_record(name)]],
                "task_dep": ["toolchain"],  # its install is told by the pins in the language's settings
                "targets": [str(p) for p in deps.targets],
                "uptodate": [config_changed(deps.settings), TargetsUnchanged()],
                "clean": True,
            }

    def task_validate(self) -> Any:
        """Check each manifest, and the .wasm against it (imports granted, exports declared)."""
        for name in self.guests:
            yield {
                "name": name,
                "actions": [as_action(pipeline.validate, project=self.project, guest=name)],
                "file_dep": [
                    *existing([self.project.manifest_path(name)]),
                    str(self.project.wasm_path(name)),
                ],
                "targets": [str(self.project.validated_path(name))],
                "uptodate": [TargetsUnchanged()],
                "clean": True,
            }

    def task_precompile(self) -> Any:
        """Precompile Wasmer/Cranelift AOT artifacts for each guest and target triple."""
        for name, guest in self.guests.items():
            for target in self.plans[name][0]:
                artifact = self.project.artifact_path(name, target.triple)
                yield {
                    "name": precompile_subtask(name, target.triple),
                    "actions": [as_action(pipeline.precompile, project=self.project, guest=name, target=target)],
                    "file_dep": [str(self.project.wasm_path(name))],
                    "task_dep": [f"validate:{name}"],  # never minutes of compiling what validation refuses
                    "targets": [str(artifact), str(metadata_path(artifact))],
                    "uptodate": [
                        config_changed(precompile_inputs(target)),
                        TargetsUnchanged(),
                        made_here_check(artifact),
                    ],
                    "clean": True,
                }
            for triple in self.wasmtime_for[name]:
                artifact = self.project.artifact_path(name, triple, "wasmtime")
                inputs = wasmtime_precompile_inputs(self.project.wasmtime_target(triple), metered=guest.metered)
                yield {
                    "name": precompile_subtask(name, triple, "wasmtime"),
                    "actions": [
                        as_action(pipeline.precompile_with_wasmtime, project=self.project, guest=guest, triple=triple)
                    ],
                    "file_dep": [str(self.project.wasm_path(name))],
                    "task_dep": [f"validate:{name}"],
                    "targets": [str(artifact), str(metadata_path(artifact))],
                    "uptodate": [config_changed(inputs), TargetsUnchanged(), made_here_check(artifact)],
                    "clean": True,
                }

    def task_bundle(self) -> Any:
        """Package each guest into a signed bundle, artifacts/bundles/<guest>-<version>.ngx."""
        for name, guest in self.guests.items():
            artifacts = [
                *(self.project.artifact_path(name, t) for t in self.wasmer_triples[name]),
                *(self.project.artifact_path(name, t, "wasmtime") for t in self.wasmtime_for[name]),
            ]
            yield {
                "name": name,
                "actions": [
                    as_action(
                        pipeline.bundle,
                        project=self.project,
                        guest=guest,
                        triples=self.wasmer_triples[name],
                        wasmtime_triples=self.wasmtime_for[name],
                    )
                ],
                "file_dep": [
                    str(self.project.validated_path(name)),
                    *existing([self.project.manifest_path(name)]),
                    str(self.project.wasm_path(name)),
                    str(self.project.keys_dir / "dev.pub"),
                    *(str(a) for a in artifacts),
                    *(str(metadata_path(a)) for a in artifacts),
                ],
                "targets": [str(self.project.bundle_path(name, guest.version))],
                "uptodate": [
                    config_changed(
                        {
                            "format": FORMAT_VERSION,  # a checkout upgraded to a new format rebuilds its bundles
                            "sequence": self.project.source_epoch(),
                            "channel": "dev",
                            "triples": self.wasmer_triples[name],
                            "wasmtime_triples": self.wasmtime_for[name],
                        }
                    ),
                    TargetsUnchanged(),
                ],
                "clean": True,
            }

        for manifest in self.manifests_without_guest:  # fails alone: the other guests are built
            yield {
                "name": manifest.stem,
                "actions": [
                    as_action(refuse_manifest_without_guest, locked=False, project=self.project, manifest=manifest)
                ],
            }
        for folder in self.folders_without_manifest:  # passed over, said at every build
            yield {
                "name": folder.name,
                "actions": [as_action(warn_folder_without_manifest, locked=False, project=self.project, folder=folder)],
            }

    def task_smoke(self) -> Any:
        """Load each built bundle through the loader and run its [[smoke]] calls (an http guest gets a local server)."""
        for name, guest in self.guests.items():
            yield {
                "name": name,
                "actions": [as_action(pipeline.smoke, project=self.project, guest=guest)],
                "file_dep": [str(self.project.bundle_path(name, guest.version))],
                "uptodate": [False],
            }

    def task_build(self) -> Task:
        """Build every guest: compile, validate, precompile and bundle (the default)."""
        return {
            "actions": None,
            "task_dep": ["bundle"],
            # `doit clean` also removes what killed builds left and watch mode's dev outputs.
            "clean": [as_action(clean.clean, locked=False, project=self.project)],
        }

    def task_release(self) -> Task:
        """Build the release's guests twice from clean copies; write artifacts/release/<version>/ and the record."""
        return {
            "actions": [as_action(release.release, locked=False, project=self.project)],
            "params": [
                {"name": "guest", "long": "guest", "type": list, "default": [], "help": "a guest to release (repeat)"},
                {
                    "name": "allow_dirty",
                    "long": "allow-dirty",
                    "type": bool,
                    "default": False,
                    "help": "allow a dirty tree",
                },
            ],
            "task_dep": ["toolchain"],
            "uptodate": [False],
            "verbosity": 2,
        }

    def task_publish(self) -> Task:
        """Push the release bundles to the OCI registry in $NGIXI_REGISTRY."""
        return {
            "actions": [as_action(publish_project_release, locked=False, project=self.project)],
            "params": [
                {
                    "name": "force",
                    "long": "force",
                    "type": bool,
                    "default": False,
                    "help": "overwrite a changed tag, or publish a sequence below a published one",
                },
                {
                    "name": "timeout",
                    "long": "timeout",
                    "type": float,
                    "default": None,
                    "help": "the most the whole publish may take, in seconds",
                },
            ],
            "uptodate": [False],
            "verbosity": 2,
        }

    def task_watch(self) -> Task:
        """Rebuild a guest's dev bundle whenever its sources or manifest change; Ctrl-C stops."""
        return {
            "actions": [WatchAction(self.project)],
            "params": [
                {"name": "poll", "long": "poll", "type": bool, "default": False, "help": "poll for changes"},
                {"name": "smoke", "long": "smoke", "type": bool, "default": False, "help": "run [[smoke]] calls"},
                {
                    "name": "release",
                    "long": "release",
                    "type": bool,
                    "default": False,
                    "help": "build with release flags",
                },
            ],
            "verbosity": 2,
        }
