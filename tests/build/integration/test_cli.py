"""The build side's `ngixi` commands: exits and messages (in-process)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.conftest import REPO, KeyFiles, exit_code, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module

HELLO_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)],
    functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY), Func("greet")],
)


def test_keygen_writes_a_private_secret_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, public = tmp_path / "k.key", tmp_path / "k.pub"
    assert exit_code(["keygen", "--secret", str(secret), "--public", str(public)]) == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    before = secret.read_bytes()
    assert exit_code(["keygen", "--secret", str(secret), "--public", str(public)]) == 2
    assert "k.key: already exists" in capsys.readouterr().err
    assert secret.read_bytes() == before


def test_validate_reports_all_lines_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "hello.toml"
    manifest.write_text('[guest]\nname = "hello"\nversion = "1"\n[limits]\nmemory_pages = 0\n')
    assert exit_code(["validate", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert 'guest.version: "1" is not a semantic version' in err and "limits.memory_pages" in err
    assert "Traceback" not in err


def test_validate_sample_manifest_against_generated_wasm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wasm = tmp_path / "hello.wasm"
    wasm.write_bytes(HELLO_WASM)
    assert exit_code(["validate", str(REPO / "manifests" / "hello.toml"), "--wasm", str(wasm)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_validate_checks_a_manifest_against_a_policy_as_run_does(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, policy = REPO / "manifests" / "hello.toml", tmp_path / "policy.toml"
    policy.write_text('[limits]\nmemory_pages = 8\n[capabilities]\nallow = ["stdio"]\n')
    assert exit_code(["validate", str(manifest), "--policy", str(policy)]) == 6
    refused = capsys.readouterr().err
    assert refused == (
        f"ngixi: error: {policy} refuses hello 0.1.0:\n"
        "  limits.memory_pages: asks for 16 (the default, unless the manifest sets it), the policy allows at most 8\n"
        "  capabilities.log: not allowed by the policy (it allows: stdio)\n"
    )
    bundle = make_bundle(tmp_path, keys.key, wasm=HELLO_WASM, manifest=manifest.read_text())
    run = ["run", "--in-process", "--trust", str(keys.trust), "--policy", str(policy), str(bundle), "add", "1", "2"]
    assert exit_code(run) == 6
    assert capsys.readouterr().err == refused
    policy.write_text('[limits]\nmemory_pages = 16\n[capabilities]\nallow = ["log"]\n')
    assert exit_code(["validate", str(manifest), "--policy", str(policy)]) == 0
    assert capsys.readouterr().out == f"ok: {manifest} (hello 0.1.0), within {policy}\n"


def test_doctor_reports_each_requirement(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    exit_code(["doctor"])
    out = capsys.readouterr().out
    for what in ("python + wasmer", "node", "assemblyscript toolchain", "dev signing key"):
        assert what in out
