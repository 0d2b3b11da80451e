"""The trust file the loader uses: --trust, else $NGIXI_TRUST, else the project in the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.trust.choice import DEV_TRUST_FILE, TRUST_VARIABLE, chosen_trust_file
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])


@pytest.fixture
def project_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a project's dev trust file, and no $NGIXI_TRUST."""
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    trust = tmp_path / DEV_TRUST_FILE
    trust.parent.mkdir()
    trust.write_text("")
    return trust


def test_an_explicit_trust_file_comes_first(project_trust: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUST_VARIABLE, "from-environment.toml")
    assert chosen_trust_file(Path("explicit.toml")) == Path("explicit.toml")


def test_the_environment_comes_before_the_working_directory(
    project_trust: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRUST_VARIABLE, "from-environment.toml")
    assert chosen_trust_file(None) == Path("from-environment.toml")


def test_the_project_in_the_working_directory_comes_last(project_trust: Path) -> None:
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
