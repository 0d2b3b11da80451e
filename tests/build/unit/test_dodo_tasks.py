"""The doit tasks every project gets: their order where no file says it, and Ctrl-C in `doit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import find_project
from ngixi_build.toolchains import installs
from ngixi_build.workflows.dodo_tasks import ProjectTasks, quiet_interrupt
from ngixi_build.workflows.scaffold import init_project


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
    tasks = ProjectTasks(find_project(tmp_path / "p"))
    assert tasks.toolchains_stamped in tasks.task_toolchain()["uptodate"]
    tasks.toolchain.root.mkdir(parents=True)
    (tasks.toolchain_done).write_text(tasks.toolchain.root.name + "\n")
    assert not tasks.toolchains_stamped()
    installs.mark_complete(tasks.toolchain.root)
    assert tasks.toolchains_stamped()
