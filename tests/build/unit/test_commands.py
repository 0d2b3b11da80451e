"""The build side's commands are `ngixi` commands, and `ngixi run` finds the trust file its builds write."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.signing import ensure_dev_key
from ngixi_runtime.trust.choice import PROJECT_STATE_VARIABLE, TRUST_VARIABLE, chosen_trust_file
from tests.conftest import exit_code


def test_ngixi_lists_the_commands_of_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--help"]) == 0
    listed = capsys.readouterr().out
    for command in ("run", "verify", "inspect", "validate", "keygen", "publish", "pull", "wit", "doctor", "watch"):
        assert f"    {command} " in listed


def test_the_dev_trust_a_build_writes_is_the_one_ngixi_finds_in_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ngixi]\n")
    project = Project(tmp_path)
    ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert chosen_trust_file(None) == project.dev_trust_file
    state = tmp_path / "elsewhere"
    moved = Project(tmp_path, state_override=state)
    ensure_dev_key(keys_dir=moved.keys_dir, trust_file=moved.dev_trust_file)
    monkeypatch.setenv(PROJECT_STATE_VARIABLE, str(state))
    assert chosen_trust_file(None) == moved.dev_trust_file == state / "trust.toml"
