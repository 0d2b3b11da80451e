"""The trust file the loader uses: --trust, else $NGIXI_TRUST, else the project at or above the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.trust.choice import DEV_TRUST_FILE, PROJECT_STATE_VARIABLE, TRUST_VARIABLE, chosen_trust_file
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])


@pytest.fixture
def project_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a project with its dev trust file, and no $NGIXI_TRUST."""
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.delenv(PROJECT_STATE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.ngixi]\n")
    trust = tmp_path / DEV_TRUST_FILE
    trust.parent.mkdir()
    trust.write_text("")
    return trust


def test_an_explicit_trust_file_comes_first(project_trust: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUST_VARIABLE, "/etc/from-environment.toml")
    assert chosen_trust_file(Path("explicit.toml")) == Path("explicit.toml")


def test_the_environment_comes_before_the_working_directory(
    project_trust: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRUST_VARIABLE, "/etc/from-environment.toml")
    assert chosen_trust_file(None) == Path("/etc/from-environment.toml")


def test_the_project_in_the_working_directory_comes_last(project_trust: Path) -> None:
    assert chosen_trust_file(None) == project_trust


def test_the_project_is_found_from_its_root_above_the_working_directory(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = tmp_path / "guests" / "hello" / "assembly"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    assert chosen_trust_file(None) == project_trust


def test_project_names_the_project_wherever_the_working_directory_is(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert chosen_trust_file(None, project=tmp_path / "guests") == project_trust


def test_a_state_dir_override_holds_the_dev_trust(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    (state).mkdir()
    (state / "trust.toml").write_text("")
    monkeypatch.setenv(PROJECT_STATE_VARIABLE, str(state))
    assert chosen_trust_file(None) == state / "trust.toml"


def test_a_trust_file_without_a_project_root_is_not_used(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.other]\n")
    with pytest.raises(InvalidInput, match="no trust file"):
        chosen_trust_file(None)


def test_the_project_file_counts_as_it_is_at_each_look(project_trust: Path, tmp_path: Path) -> None:
    """Its verdict is kept per exact text: an edit holds at the next look, and a broken one is refused every time."""
    assert chosen_trust_file(None) == project_trust
    (tmp_path / "pyproject.toml").write_text("[tool.other]\n")
    with pytest.raises(InvalidInput, match="no trust file"):
        chosen_trust_file(None)
    (tmp_path / "pyproject.toml").write_text("[tool]\nngixi = 1\n")
    for _ in range(2):
        with pytest.raises(InvalidInput, match=r"pyproject\.toml: tool\.ngixi: must be a table"):
            chosen_trust_file(None)
    (tmp_path / "pyproject.toml").write_text("[tool.ngixi]\n")
    assert chosen_trust_file(None) == project_trust


def test_a_working_directory_without_a_project_has_no_trust_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match=f"pass --trust FILE or set {TRUST_VARIABLE}"):
        chosen_trust_file(None)


def test_a_trust_file_near_the_bundle_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    keys = make_key(project / DEV_TRUST_FILE.parent)
    (project / "pyproject.toml").write_text("[tool.ngixi]\n")
    assert keys.trust == project / DEV_TRUST_FILE
    bundle = make_bundle(project / "artifacts", keys.key, wasm=WASM, manifest=HELLO_MANIFEST)
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    assert exit_code(["verify", str(bundle)]) == 2
    assert "no trust file" in capsys.readouterr().err
    monkeypatch.chdir(project)
    assert exit_code(["verify", str(bundle)]) == 0


def test_verify_uses_the_trust_file_from_the_environment(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TRUST_VARIABLE, str(keys.trust))
    assert exit_code(["verify", str(bundle)]) == 0


def test_run_keeps_sandboxes_in_the_projects_state_per_channel(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = make_key(tmp_path / "keys", channels=("dev", "release"))
    manifest = HELLO_MANIFEST + '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'
    bundles = {
        channel: make_bundle(tmp_path / channel, keys.key, wasm=WASM, manifest=manifest, channel=channel)
        for channel in ("dev", "release")
    }
    elsewhere = tmp_path.parent / f"{tmp_path.name}-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for channel, bundle in bundles.items():
        trust = ["--trust", str(keys.trust), "--state-dir", str(tmp_path / "rollback")]
        assert exit_code(["run", "--in-process", *trust, "--project", str(tmp_path), str(bundle), "add", "1", "2"]) == 0
        assert (tmp_path / ".ngixi" / "sandbox" / channel / "default" / "hello" / "files" / "data").is_dir()
    assert list(elsewhere.iterdir()) == []


def test_a_named_trust_file_that_is_not_there_is_refused_naming_who_named_it(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`$NGIXI_TRUST=/missing` said only "/missing: cannot read the trust file", leaving the operator to guess where
    the path came from; `ngixi trust add` still makes a missing file."""
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM)
    missing = tmp_path / "missing.toml"
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    assert exit_code(["verify", "--trust", str(missing), str(bundle)]) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: --trust {missing}: no such file; name the operator's trust file\n"
    )
    monkeypatch.setenv(TRUST_VARIABLE, str(missing))
    assert exit_code(["run", "--in-process", str(bundle), "add", "1", "2"]) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: ${TRUST_VARIABLE} ({missing}): no such file; set {TRUST_VARIABLE} to the operator's trust "
        "file, or unset it\n"
    )
    monkeypatch.setenv(TRUST_VARIABLE, str(tmp_path))
    assert exit_code(["trust", "list"]) == 2
    assert f"${TRUST_VARIABLE} ({tmp_path}): a directory, not a trust file;" in capsys.readouterr().err
    monkeypatch.setenv(TRUST_VARIABLE, str(missing))
    assert exit_code(["trust", "add", str(keys.trust.parent / "test.pub"), "--guest", "x", "--channel", "dev"]) == 0
    assert missing.is_file()


def test_project_where_a_named_trust_file_leaves_it_nothing_to_choose_is_refused(
    project_trust: Path,
    tmp_path: Path,
    keys: KeyFiles,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--project chooses the project's dev trust file (and `ngixi run`'s sandboxes): with --trust or $NGIXI_TRUST
    it was ignored without a word where it chose nothing else."""
    bundle = str(make_bundle(tmp_path / "out", keys.key, wasm=WASM))
    project = str(tmp_path)
    assert exit_code(["verify", "--project", project, "--trust", str(keys.trust), bundle]) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: --project {project}: it would choose the project's dev trust file, but --trust {keys.trust} "
        "names the trust file; drop --project, or --trust to use the project's\n"
    )
    sandbox = str(tmp_path / "sandboxes")
    run = ["run", "--in-process", "--project", project, "--sandbox", sandbox, bundle, "add", "1", "2"]
    monkeypatch.setenv(TRUST_VARIABLE, str(keys.trust))
    assert exit_code(run) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: --project {project}: it would choose the project's dev trust file and sandboxes, but "
        f"${TRUST_VARIABLE} ({keys.trust}) names the trust file and --sandbox {sandbox} the sandboxes; drop "
        f"--project, or unset {TRUST_VARIABLE} and drop --sandbox to use the project's\n"
    )
    assert exit_code(["trust", "list", "--project", project]) == 2
    assert exit_code(run[:4] + run[6:]) == 0  # the project's sandboxes, the variable's trust file


def test_no_trust_file_says_where_the_project_s_was_looked_for(
    project_trust: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_trust.unlink()
    with pytest.raises(InvalidInput, match=rf"; the project at {tmp_path} has no {project_trust}: its builds write"):
        chosen_trust_file(None)
    monkeypatch.setenv(PROJECT_STATE_VARIABLE, str(tmp_path / "moved"))
    with pytest.raises(
        InvalidInput,
        match=rf"has no {tmp_path / 'moved' / 'trust.toml'} \(\${PROJECT_STATE_VARIABLE} moves its state\)",
    ):
        chosen_trust_file(None)
