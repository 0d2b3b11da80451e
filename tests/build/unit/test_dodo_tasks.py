"""The doit tasks every project gets: their order where no file says it, and Ctrl-C in `doit`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import find_project
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
