"""A manifest's `[build]` table: how a guest of any toolchain (`language = "wasm"`) gets its module.

Either a committed module (`output` alone) or a command that writes it, run in `workdir` with the
files matching `inputs` as what the build's up-to-date check and watch mode follow (like Spin's
`[component.build]` command, workdir and watch). Every path is relative and stays inside the
guest's directory, so the build and watch mode see every file the guest is made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import Problems, optional_table, string, type_name

BUILD_KEYS = ("command", "workdir", "inputs", "output")


class BuildCommand(NamedTuple):
    """`command` is empty for a committed module; paths are relative to guests/<name>/ (`inputs`: globs)."""

    command: tuple[str, ...]
    workdir: str
    inputs: tuple[str, ...]
    output: str

    @property
    def output_path(self) -> str:
        """The module's path relative to the guest's directory."""
        return str(PurePosixPath(self.workdir) / self.output)


def parse_build(raw: Mapping[str, Any], problems: Problems) -> BuildCommand | None:
    """The `[build]` table, if the manifest has one; every problem goes to `problems`."""
    table = optional_table(raw, "build", BUILD_KEYS, problems)
    if table is None:
        return None
    command = _command(table.get("command"), problems)
    workdir = _relative(table, "workdir", problems, default=".")
    output = _relative(table, "output", problems, default=None)
    inputs = _inputs(table, problems, required=bool(command))
    return BuildCommand(command, workdir, inputs or (output,), output)


def _command(value: object, problems: Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        import shlex

        try:
            words = shlex.split(value)
        except ValueError as error:
            problems.add("build.command", f"cannot split it into words: {error}")
            return ()
    elif isinstance(value, list) and all(isinstance(word, str) for word in value):
        words = list(value)
    else:
        problems.add("build.command", f"must be a string or an array of strings, not {type_name(value)}")
        return ()
    if not words or not words[0]:
        problems.add("build.command", "is empty; give the program and its arguments, or remove it")
    return tuple(words)


def _relative(table: Mapping[str, Any], key: str, problems: Problems, *, default: str | None) -> str:
    field = f"build.{key}"
    value = string(table, key, field, problems, default=default)
    if value and not is_inside(value):
        problems.add(field, f'"{value}" must be a relative path inside the guest\'s directory (no "..")')
    return value


def _inputs(table: Mapping[str, Any], problems: Problems, *, required: bool) -> tuple[str, ...]:
    value = table.get("inputs")
    if value is None:
        if required:
            problems.add("build.inputs", 'is required with a command: the files it reads, e.g. ["src/**/*.rs"]')
        return ()
    if not isinstance(value, list) or not value:
        problems.add("build.inputs", f"must be a non-empty array of glob patterns, not {type_name(value)}")
        return ()
    for index, pattern in enumerate(value):
        if not isinstance(pattern, str) or not pattern or not is_inside(pattern):
            problems.add(f"build.inputs[{index}]", 'must be a relative glob pattern inside the workdir (no "..")')
    return tuple(str(pattern) for pattern in value)


def is_inside(path: str) -> bool:
    """Whether a relative path (or glob) stays beneath the directory it is relative to."""
    pure = PurePosixPath(path)
    return not pure.is_absolute() and "\\" not in path and ".." not in pure.parts


def lenient_build(raw: Mapping[str, Any]) -> BuildCommand | None:
    """The `[build]` table for declaring build steps from a manifest that may be broken: None when it is wrong."""
    problems = Problems("")
    build = parse_build(raw, problems)
    return None if problems.lines else build
