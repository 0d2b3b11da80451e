"""The doit tasks every project gets: their order where no file says it, and Ctrl-C in `doit`."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from doit.task import Task
from doit.tools import config_changed

from ngixi_build.project import Project, find_project
from ngixi_build.toolchains import installs
from ngixi_build.workflows.dodo_tasks import PACKAGE_DIR, ProjectTasks, declare, doit_database, quiet_interrupt
from ngixi_build.workflows.scaffold import editor_link, init_project, new_guest
from ngixi_build.workflows.tasks import ToolFilesUnchanged
from ngixi_runtime.errors import InvalidInput
from tests.conftest import REPO


def test_the_catalogs_bindings_wait_for_the_toolchain_that_installs_wasm_tools(tmp_path: Path) -> None:
    init_project(tmp_path / "fresh")  # a fresh environment's first build: no file orders the two
    assert ProjectTasks(find_project(tmp_path / "fresh")).task_bindings()["task_dep"] == ["toolchain"]


def test_an_interrupt_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    quiet_interrupt(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert capsys.readouterr().err == "doit: interrupted; the outputs finished so far are kept, none is half-written\n"


def test_another_exception_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    quiet_interrupt(ValueError, ValueError("bad"), None)
    assert capsys.readouterr().err.endswith("ValueError: bad\n")


def test_the_toolchain_task_never_trusts_the_doit_record_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doit's record sits in .ngixi/ with the installs, so both may have come with the project: the task asks
    for this user's stamp on each install every time."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    init_project(tmp_path / "p")
    new_guest(find_project(tmp_path / "p"), "hello", language="assemblyscript", kind="library", abi="core")
    tasks = ProjectTasks(find_project(tmp_path / "p"))
    assert tasks.toolchains_stamped in tasks.task_toolchain()["uptodate"]
    tasks.toolchain.root.mkdir(parents=True)
    (tasks.toolchain.root / installs.COMPLETE).write_text(tasks.toolchain.root.name + "\n")
    assert not tasks.toolchains_stamped()
    installs.mark_complete(tasks.toolchain.root)
    assert tasks.toolchains_stamped()


def test_the_toolchain_task_installs_node_once_an_assemblyscript_guest_needs_it(tmp_path: Path) -> None:
    """A project of C and `wasm` guests installed Node.js and AssemblyScript at its first build; one that gains an
    AssemblyScript guest later installs them then (the task's targets and its recorded configuration change)."""
    init_project(tmp_path / "p")
    new_guest(find_project(tmp_path / "p"), "c", language="c", kind="library", abi="core")
    before = ProjectTasks(find_project(tmp_path / "p"))
    assert before.task_toolchain()["targets"] == [] and before.toolchains_stamped()
    new_guest(find_project(tmp_path / "p"), "hello", language="assemblyscript", kind="library", abi="core")
    after = ProjectTasks(find_project(tmp_path / "p"))
    task = after.task_toolchain()
    assert task["targets"] == [str(after.toolchain.root / installs.COMPLETE), str(editor_link(after.project.state_dir))]
    assert task["uptodate"][0].config != before.task_toolchain()["uptodate"][0].config
    assert not after.toolchains_stamped()


def repository_tasks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every task of the repository's project (guests in every language), as doit gets them."""
    monkeypatch.setattr(Project, "source_epoch", lambda _self: 1)  # git's, which a unit test does not run
    tasks: list[dict[str, Any]] = []
    for name, declared in declare(find_project(REPO)).items():
        if name.startswith("task_"):
            made = declared()
            tasks += [made] if isinstance(made, dict) else list(made)
    return tasks


def test_no_task_names_where_ngixi_build_or_an_install_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    """doit's record holds what a task names: a path of ngixi-build (another environment's is elsewhere) or an
    install's marker (its stamp names its place) ran every compile again in a moved project or a new environment."""
    tasks = repository_tasks(monkeypatch)
    named = [path for task in tasks for path in task.get("file_dep", [])]
    assert named and not [p for p in named if Path(p).is_relative_to(PACKAGE_DIR) or Path(p).name == installs.COMPLETE]
    assert any(isinstance(check, ToolFilesUnchanged) for task in tasks for check in task.get("uptodate", []))
    settings = [
        json.dumps(check.config, default=str)
        for t in tasks
        for check in t.get("uptodate", [])
        if isinstance(check, config_changed)
    ]
    places = (str(REPO), str(PACKAGE_DIR), sys.prefix, str(Path.home()))
    assert settings and not [s for s in settings if any(place in s for place in places)]


def test_ngixi_builds_files_are_told_by_their_name_in_the_package_and_content(tmp_path: Path) -> None:
    for package in ("here", "there"):
        (tmp_path / package / "toolchains").mkdir(parents=True)
        (tmp_path / package / "toolchains" / "gen.py").write_text("same")
    here = ToolFilesUnchanged([tmp_path / "here" / "toolchains" / "gen.py"], tmp_path / "here")
    there = ToolFilesUnchanged([tmp_path / "there" / "toolchains" / "gen.py"], tmp_path / "there")
    recorded = {"tool files": here.digests()}
    assert there(Task("t", None), recorded)
    changed = ToolFilesUnchanged([tmp_path / "here" / "toolchains" / "gen.py"], tmp_path)
    assert not changed(Task("t", None), recorded)  # another file of the package


@pytest.mark.parametrize("kind", ["link", "garbage", "folder", "short"])
def test_a_doit_database_doit_cannot_use_is_refused_in_one_line(tmp_path: Path, kind: str) -> None:
    """A doit.db that was not SQLite's (damaged, or a link that came with the project to a file of the user's) made
    every `ngixi build` and `doit` print doit's traceback, and a link to a database had doit write into it."""
    database = tmp_path / "doit.db"
    victim = tmp_path / "mine.txt"
    victim.write_text("mine\n")
    if kind == "link":
        database.symlink_to(victim)
    elif kind == "folder":
        database.mkdir()
    else:
        database.write_bytes(b"garbage, not a database" if kind == "garbage" else b"SQLite")
    with pytest.raises(InvalidInput, match=rf"^{database}: .*; remove it \(the next build runs every task once"):
        doit_database(database)
    assert victim.read_text() == "mine\n"


def test_a_missing_empty_or_sqlite_doit_database_is_doits(tmp_path: Path) -> None:
    database = tmp_path / "doit.db"
    assert doit_database(database) == database
    database.write_bytes(b"")
    assert doit_database(database) == database
    sqlite3.connect(database).execute("create table t (x)").connection.commit()
    assert doit_database(database) == database
