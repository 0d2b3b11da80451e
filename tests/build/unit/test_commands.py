"""The build side's commands are `ngixi` commands, and `ngixi run` finds the trust file its builds write."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.signing import ensure_dev_key
from ngixi_build.workflows import doit_run
from ngixi_build.workflows.dodo_tasks import declare
from ngixi_runtime.trust.choice import PROJECT_STATE_VARIABLE, TRUST_VARIABLE, chosen_trust_file
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import exit_code


def test_ngixi_lists_the_commands_of_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--help"]) == 0
    listed = capsys.readouterr().out
    for command in (
        "run",
        "verify",
        "inspect",
        "trust",
        "validate",
        "keygen",
        "publish",
        "pull",
        "wit",
        "doctor",
        "watch",
    ):
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


def test_keygen_writes_the_public_half_straight_into_a_trust_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = tmp_path / "ops" / "trust.toml"
    keygen = ["keygen", "--secret", str(tmp_path / "k.key"), "--public", str(tmp_path / "k.pub"), "--trust", str(trust)]
    assert exit_code([*keygen, "--guest", "hello", "--channel", "release"]) == 0
    (key,) = load_trust(trust).keys
    assert (key.guests, key.channels, key.native_code) == (("hello",), ("release",), False)
    assert f"trusted key {key.key_id} in {trust}" in capsys.readouterr().out
    again = ["keygen", "--secret", str(tmp_path / "2.key"), "--public", str(tmp_path / "2.pub"), "--trust", str(trust)]
    assert exit_code(again) == 2
    assert "keygen --trust: say what the key may sign with --guest and --channel" in capsys.readouterr().err
    assert not (tmp_path / "2.key").exists()
    trust.write_text("keys = 1\n")
    assert exit_code([*again, "--guest", "*", "--channel", "dev"]) == 2
    assert "keys: list at least one [[keys]] table" in capsys.readouterr().err and not (tmp_path / "2.key").exists()


def test_keygen_names_a_guest_pattern_the_loader_refuses_before_making_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust = tmp_path / "trust.toml"
    keygen = ["keygen", "--secret", str(tmp_path / "k.key"), "--public", str(tmp_path / "k.pub"), "--trust", str(trust)]
    assert exit_code([*keygen, "--guest", "Hello", "--channel", "release"]) == 2
    assert "keys[0].guests[0]: 'Hello' can match no guest name" in capsys.readouterr().err
    assert not (tmp_path / "k.key").exists() and not trust.exists()


def test_keygen_warns_when_the_secret_lands_in_a_git_work_tree(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".git").mkdir()
    keys = tmp_path / "keys"
    assert exit_code(["keygen", "--secret", str(keys / "release.key"), "--public", str(keys / "release.pub")]) == 0
    assert f"the secret key {keys / 'release.key'} is inside the git work tree {tmp_path}" in caplog.text


def test_keygen_does_not_warn_of_a_work_tree_a_dotdot_path_leaves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ngixi keygen --secret ../keys/release.key` run in a project warned that the key was inside the project's
    work tree, which `..` leaves: the path's parents were read without resolving `..`."""
    (tmp_path / "project" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    assert exit_code(["keygen", "--secret", "../keys/release.key", "--public", "../keys/release.pub"]) == 0
    assert (tmp_path / "keys" / "release.key").is_file()
    assert "work tree" not in caplog.text


@pytest.mark.parametrize("task", ["build", "smoke", "release"])
def test_ngixi_task_commands_take_every_option_their_doit_task_does(
    task: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ngixi release --guest hello` was refused ("unrecognized arguments") though README's `doit release --guest
    hello` chooses the guests: `ngixi release` is doit's task run without a dodo.py, and it took none of its options."""
    (tmp_path / "pyproject.toml").write_text("[tool.ngixi]\n")
    (tmp_path / "guests" / "g" / "assembly").mkdir(parents=True)
    (tmp_path / "guests" / "g" / "assembly" / "index.ts").write_text("export function f(): void {}\n")
    made = declare(Project(tmp_path))[f"task_{task}"]()
    declared = [made] if isinstance(made, dict) else list(made)
    options = [f"--{param['long']}" for each in declared for param in each.get("params", [])]
    assert exit_code([task, "--help"]) == 0
    listed = capsys.readouterr().out
    assert all(option in listed for option in options)
    ran: list[tuple[str, ...]] = []

    def run_task(_project: Project, *argv: str) -> int:
        ran.append(argv)
        return 0

    monkeypatch.setattr(doit_run, "run_task", run_task)
    given = [word for option in options for word in (option, "g") if option != "--allow-dirty"]
    given += ["--allow-dirty"] if "--allow-dirty" in options else []
    assert exit_code([task, "--project", str(tmp_path), *given]) == 0
    assert ran == [(task, *given)]


def test_state_dir_says_which_state_it_names_for_build_commands_and_for_run(capsys: pytest.CaptureFixture[str]) -> None:
    """`--state-dir` is the project's state for `ngixi build`, `smoke`, `release`, `watch` and the user's record of
    accepted sequences for `ngixi run` and `verify`: neither help said so, and the build's left out the variable that
    sets it ($NGIXI_PROJECT_STATE)."""
    helps = {}
    for command in ("build", "run", "verify"):
        assert exit_code([command, "--help"]) == 0
        helps[command] = " ".join(capsys.readouterr().out.split())
    assert (
        "(default: $NGIXI_PROJECT_STATE, else .ngixi/ in the project's root); not `ngixi run --state-dir`"
        in (helps["build"])
    )
    for command in ("run", "verify"):
        assert (
            "not a project's state, which the build commands' --state-dir names ($NGIXI_PROJECT_STATE)"
            in (helps[command])
        )
