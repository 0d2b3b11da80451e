"""The `ngixi` command that installing ngixi-runtime alone gives (`make test-loader`): run, verify, inspect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module

pytestmark = pytest.mark.skipif(
    os.environ.get("NGIXI_TEST_INSTALLED_RUNTIME") != "1",
    reason="checks the environment where the Makefile installs ngixi-runtime alone (make test-loader)",
)
NGIXI = Path(sys.executable).parent / "ngixi"


def ngixi(*arguments: str, cwd: Path) -> str:
    """What the installed `ngixi` prints, run away from the source tree."""
    result = subprocess.run([NGIXI, *arguments], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout


def test_ngixi_offers_the_run_sides_commands_alone(tmp_path: Path) -> None:
    assert "{run,verify,inspect,trust,pull}\n" in ngixi("--help", cwd=tmp_path)


def test_ngixi_verifies_and_runs_a_bundle(tmp_path: Path, keys: KeyFiles) -> None:
    wasm = module(
        imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
    )
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=wasm)
    trust = ("--trust", str(keys.trust))
    assert ngixi("verify", *trust, str(bundle), cwd=tmp_path).startswith("ok: hello 0.1.0")
    assert ngixi("run", "--in-process", *trust, str(bundle), "add", "2", "3", cwd=tmp_path) == "5\n"
