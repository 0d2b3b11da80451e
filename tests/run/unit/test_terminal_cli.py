"""Text that others wrote reaches the operator's terminal through ngixi's own commands escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.stages.signing import TrustEntry, render_trust_file
from ngixi_runtime import cli
from ngixi_runtime.capabilities.context import LogLine
from ngixi_runtime.loading.calls import empty_result
from tests.conftest import exit_code, make_key

FORGED = "who\nngixi: error: forged\x1b]0;title\x07\u202e"


def test_trust_list_shows_a_keys_comment_on_its_own_line_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project's dev trust file comes with the project: its comments are someone else's text."""
    keys = make_key(tmp_path)
    keys.trust.write_bytes(render_trust_file([TrustEntry(keys.key, ("hello",), ("dev",), FORGED)]))
    assert exit_code(["trust", "list", "--trust", str(keys.trust)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("  # who\\nngixi: error: forged\\x1b]0;title\\x07\\u202e")


def test_a_log_lines_level_from_a_tenant_process_is_escaped_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The level of an isolated call's log line comes over the wire from a process the guest runs in."""
    result = empty_result("ok")._replace(logs=(LogLine("warn\nngixi: ok\x1b[8m", "said\r\u202e"),))
    cli._show(result, as_json=False)
    assert capsys.readouterr().err == "warn\\nngixi: ok\\x1b[8m: said\\r\\u202e\n"
