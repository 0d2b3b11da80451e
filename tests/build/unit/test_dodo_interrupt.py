"""Ctrl-C in `doit`: one line on stderr, not doit's traceback; other exceptions keep Python's report."""

from __future__ import annotations

import pytest

from ngixi_build.workflows.dodo_tasks import quiet_interrupt


def test_an_interrupt_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    quiet_interrupt(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert capsys.readouterr().err == "doit: interrupted; the outputs finished so far are kept, none is half-written\n"


def test_another_exception_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    quiet_interrupt(ValueError, ValueError("bad"), None)
    assert capsys.readouterr().err.endswith("ValueError: bad\n")
