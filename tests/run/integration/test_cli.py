"""`ngixi run` and `ngixi verify`: exits and messages (in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import KeyFiles, exit_code, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module


def test_run_refuses_a_file_that_is_not_a_bundle(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.ngx"
    junk.write_bytes(b"not a tar file at all" * 50)
    assert exit_code(["run", str(junk), "add", "1", "2", "--trust", str(keys.trust)]) == 3
    assert "junk.ngx" in capsys.readouterr().err


def test_run_with_explicit_trust_prints_the_result(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    wasm = module(
        imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
    )
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm)
    assert exit_code(["run", "--trust", str(keys.trust), str(bundle), "add", "2", "3"]) == 0
    assert capsys.readouterr().out == "5\n"
    assert exit_code(["verify", "--trust", str(keys.trust), str(bundle)]) == 0
    assert f"signed by {keys.key.key_id}" in capsys.readouterr().out


def test_run_without_any_trust_file_says_how_to_give_one(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NGIXI_TRUST", raising=False)
    bundle = make_bundle(tmp_path, keys.key, wasm=module())
    assert exit_code(["run", str(bundle), "add"]) == 2
    assert "no trust file: pass --trust FILE or set NGIXI_TRUST" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "verify", "inspect"])
def test_a_path_that_names_no_bundle_is_told_before_the_trust_file(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ngixi run hello.ngz` outside a project said "no trust file: pass --trust FILE", sending the user to look for
    keys when the bundle's path was mistyped."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NGIXI_TRUST", raising=False)
    assert exit_code([command, "hello.ngz"]) == 2
    assert capsys.readouterr().err == (
        "ngixi: error: hello.ngz: cannot read the bundle: No such file or directory; name an existing file\n"
    )
    assert exit_code([command, str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"ngixi: error: {tmp_path}: not a regular file; a bundle is a .ngx file\n"


def test_a_project_option_that_names_no_project_is_refused(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ngixi run B add 1 2 --trust T --project DIR`, DIR in no project (a typo, a folder moved), ran the guest with
    the state directory's sandboxes, as if --project had not been given."""
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32", "i32"], ["i32"])]))
    (tmp_path / "elsewhere").mkdir()
    run = ["run", str(bundle), "add", "1", "2", "--trust", str(keys.trust), "--in-process"]
    assert exit_code([*run, "--project", str(tmp_path / "elsewhere")]) == 2
    assert f"--project {tmp_path / 'elsewhere'}: no ngixi project at or above it" in capsys.readouterr().err
