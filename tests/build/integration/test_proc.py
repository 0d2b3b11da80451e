"""The subprocess helper: a failing tool's output reaches the error as plain text."""

from __future__ import annotations

import pytest

from ngixi_build.proc import run
from ngixi_runtime.errors import ToolchainError


def test_a_tools_terminal_colours_are_left_out_of_its_error() -> None:
    coloured = r"printf '\033[91mERROR\033[0m TS2304: \033[1;4mnope\033[0m\n' >&2; exit 1"
    with pytest.raises(ToolchainError) as failure:
        run(["sh", "-c", coloured], what="tool")
    assert str(failure.value) == "tool failed (exit 1):\nERROR TS2304: nope"
