"""doit's up-to-date check of targets, run through doit's own command line in this process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from ngixi_build.workflows.tasks import TargetsUnchanged, precompile_subtask

WRITTEN = b"built by the task"


class Build:
    """A one-task project whose task writes `out.bin` and counts its runs."""

    def __init__(self, directory: Path) -> None:
        self.target = directory / "out.bin"
        self.db = directory / "doit.db"
        self.runs = 0

    def write(self) -> None:
        self.runs += 1
        self.target.write_bytes(WRITTEN)

    def task_write(self) -> dict[str, object]:
        return {"actions": [self.write], "targets": [str(self.target)], "uptodate": [TargetsUnchanged()]}

    def run(self) -> int:
        """Runs `doit` and returns how many times the task has run so far."""
        tasks = {"task_write": self.task_write, "DOIT_CONFIG": {"dep_file": str(self.db), "backend": "sqlite3"}}
        assert DoitMain(ModuleTaskLoader(tasks)).run(["--verbosity", "0"]) == 0
        return self.runs


def replace(path: Path, data: bytes) -> None:
    """Writes as our atomic writers do: a new file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.fixture
def build(tmp_path: Path) -> Build:
    build = Build(tmp_path)
    assert build.run() == 1
    return build


def test_a_target_left_as_written_keeps_the_task_up_to_date(build: Build) -> None:
    assert build.run() == 1


@pytest.mark.parametrize("rewritten", [b"written by another tool", b"built by the tusk"], ids=["longer", "same size"])
def test_a_target_rewritten_by_something_else_runs_the_task_again(build: Build, rewritten: bytes) -> None:
    replace(build.target, rewritten)
    assert build.run() == 2
    assert build.target.read_bytes() == WRITTEN
    assert build.run() == 2


def test_a_target_rewritten_with_the_same_bytes_keeps_the_task_up_to_date(build: Build) -> None:
    replace(build.target, WRITTEN)
    assert build.run() == 1


def test_a_target_another_users_build_made_runs_the_task_again(
    build: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doit's record may have come with the project (its .ngixi/, with the outputs): a target this user's stamp key
    did not record is made again, once."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-user"))
    assert build.run() == 2
    assert build.run() == 2


def test_precompile_subtasks_are_named_by_triple_and_engine() -> None:
    assert precompile_subtask("hello", "x86_64-unknown-linux-gnu") == "hello@x86_64-unknown-linux-gnu"
    assert precompile_subtask("hello", "pulley64", "wasmtime") == "hello@pulley64.wasmtime"
