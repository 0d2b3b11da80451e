"""What dodo.py declares its tasks with: actions that fail cleanly, sub-task names, an up-to-date check of targets."""

from __future__ import annotations

import contextlib
import functools
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from doit.exceptions import TaskFailed
from doit.task import Task

from ngixi_build.locking import build_lock
from ngixi_build.toolchains import installs
from ngixi_build.toolchains.npm_deps import tree_stat
from ngixi_runtime.errors import NgixiError, unexpected
from ngixi_runtime.files import sha256_of

_TARGETS_KEY = "targets"
_TREE_KEY = "tree"
_TOOL_FILES_KEY = "tool files"


def precompile_subtask(guest: str, triple: str, engine: str = "wasmer") -> str:
    """A precompile sub-task's name: `<guest>@<triple>` for Wasmer, `<guest>@<triple>.wasmtime` for Wasmtime."""
    return f"{guest}@{triple}" if engine == "wasmer" else f"{guest}@{triple}.{engine}"


@dataclass(frozen=True)
class StageAction:
    """A doit python-action that reports an NgixiError as a clean failure, not a traceback.

    A module-level class rather than a closure, so that `doit -n N` can pickle it where
    multiprocessing spawns its workers (macOS, Windows) instead of forking them. A `locked`
    action holds the build lock (shared with other doit tasks), so it never interleaves with a
    watcher's rebuild steps; actions outside the project's build outputs (release, publish) need not.
    """

    function: Callable[..., object]
    kwargs: dict[str, Any]
    locked: bool = True

    def __call__(self, **options: Any) -> TaskFailed | None:
        """`options`: the task's `params` as given on the command line (doit passes them to **kwargs)."""
        show_logs()
        with build_lock(self.kwargs["project"].state_dir, shared=True) if self.locked else contextlib.nullcontext():
            return clean_failure(lambda: self.function(**self.kwargs, **options))


Action = tuple[StageAction, list[Any], dict[str, Any]]


def as_action(function: Callable[..., object], *, locked: bool = True, **kwargs: Any) -> Action:
    return StageAction(function, kwargs, locked), [], {}


def show_logs() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")


def clean_failure(work: Callable[[], object]) -> TaskFailed | None:
    try:
        work()
    except NgixiError as error:
        return TaskFailed(str(error))
    except OSError as error:  # a file no check foresaw: named, without a traceback
        return TaskFailed(str(unexpected(error)))
    return None


def existing(paths: list[Path]) -> list[str]:
    """Paths that exist: a missing manifest is reported by validate, not as a doit error."""
    return [str(p) for p in paths if p.exists()]


class TargetsUnchanged:
    """doit's `uptodate` check that a task's targets are still the files it wrote, and that this user's build wrote
    them.

    doit itself checks only that targets exist. This also notices a target that something else
    rewrote since (a release-profile watch writes `doit build`'s outputs), and then runs the task
    again; a target rewritten with the same bytes keeps the task up to date. doit's record sits in .ngixi/, which
    may have come with the project (with its outputs, and a record made to match them): each target's digest is
    recorded with this user's stamp of it, and a target whose stamp does not verify is made again from the sources.
    """

    def configure_task(self, task: Task) -> None:
        task.value_savers.append(
            lambda: {_TARGETS_KEY: {target: _fingerprint(Path(target)) for target in task.targets}}
        )

    def __call__(self, task: Task, values: dict[str, Any]) -> bool:
        recorded = values.get(_TARGETS_KEY)
        if not isinstance(recorded, dict):
            return False
        return all(_unchanged(Path(target), recorded.get(target)) for target in task.targets)


def _stat(path: Path) -> list[int]:
    """What an atomic rewrite changes: size, modification time, inode."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _fingerprint(path: Path) -> list[object]:
    digest = sha256_of(path)
    return [*_stat(path), digest, None if digest is None else _output_stamp(digest)]  # None: never up to date


def _output_stamp(digest: str) -> str:
    return installs.user_stamp("build output", digest.encode())


def _unchanged(path: Path, recorded: object) -> bool:
    try:
        now = _stat(path)
    except OSError:
        return False
    if not _made_here(recorded, len(now)):
        return False
    *stat, digest, _ = recorded
    return stat == now or (stat[0] == now[0] and digest == sha256_of(path))


def _made_here(recorded: object, stat_fields: int) -> TypeGuard[list[object]]:
    """Whether `recorded` is a fingerprint this user's build recorded: its stamp of the digest verifies."""
    if not isinstance(recorded, list) or len(recorded) != stat_fields + 2:
        return False
    digest, stamp = recorded[-2:]
    return isinstance(digest, str) and isinstance(stamp, str) and hmac.compare_digest(stamp, _output_stamp(digest))


class TreeUnchanged:
    """doit's `uptodate` check that no file under a directory changed (path, size, mtime) since the task ran."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def configure_task(self, task: Task) -> None:
        task.value_savers.append(lambda: {_TREE_KEY: tree_stat(self.directory)})

    def __call__(self, task: Task, values: dict[str, Any]) -> bool:
        return bool(values.get(_TREE_KEY) == tree_stat(self.directory))


class ToolFilesUnchanged:
    """doit's `uptodate` check that files of ngixi-build itself a task reads (a generator, a library it compiles
    guests with) still hold what they held when it ran. They are told by their name inside the package and their
    content, not by where the package is installed, as a `file_dep` would be: the same files in another
    environment, a moved checkout or a reinstall keep the task up to date; changed ones run it again."""

    def __init__(self, files: list[Path], package_dir: Path) -> None:
        self.files = files
        self.package_dir = package_dir

    def digests(self) -> dict[str, str | None]:
        return {path.relative_to(self.package_dir).as_posix(): _content_digest(path) for path in self.files}

    def configure_task(self, task: Task) -> None:
        task.value_savers.append(lambda: {_TOOL_FILES_KEY: self.digests()})

    def __call__(self, task: Task, values: dict[str, Any]) -> bool:
        return bool(values.get(_TOOL_FILES_KEY) == self.digests())


@functools.cache
def _content_digest(path: Path) -> str | None:
    """A tool file's digest, read once per process (doit declares many tasks that read the same few files)."""
    return sha256_of(path)
