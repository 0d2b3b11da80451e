"""The warnings `ngixi` logs without importing `logging` up front (s-start): each appears once, on stderr, as its
one line, with and without -v; -v still shows the traceback of an unexpected error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyFiles, make_bundle, make_key
from tests.run.unit.test_loader import MANIFEST, WASM


def ngixi(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ngixi_runtime.cli", *arguments], capture_output=True, text=True, check=False
    )


def signed_downgrade(tmp_path: Path) -> tuple[KeyFiles, Path, Path]:
    """A key, and the bundles it signed of one guest at sequence 9 and then 8: verified in turn, a downgrade."""
    keys = make_key(tmp_path / "keys")
    newer, older = (
        make_bundle(tmp_path / str(sequence), keys.key, wasm=WASM, manifest=MANIFEST, sequence=sequence)
        for sequence in (9, 8)
    )
    return keys, newer, older


@pytest.mark.parametrize("verbose", [(), ("-v",)])
def test_the_downgrade_warning_is_one_line_on_stderr(tmp_path: Path, verbose: tuple[str, ...]) -> None:
    keys, newer, older = signed_downgrade(tmp_path)
    state = ("--trust", str(keys.trust), "--state-dir", str(tmp_path / "state"))
    assert ngixi("verify", *state, str(newer)).returncode == 0
    result = ngixi(*verbose, "verify", *state, str(older), "--allow-downgrade")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "--allow-downgrade" in line]
    assert warnings == [f"{older}: accepting sequence 8 of guest 'hello' on channel 'dev' below 9 (--allow-downgrade)"]
    assert result.stdout.startswith("ok: ")
    if not verbose:
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("verbose", [(), ("-v",)])
def test_the_unmetered_fuel_note_is_one_line_on_stderr(tmp_path: Path, verbose: tuple[str, ...]) -> None:
    pytest.importorskip("wasmer")
    keys = make_key(tmp_path / "keys")
    manifest = MANIFEST + "\n[limits]\nfuel = 1000000\n"
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=manifest)
    result = ngixi(*verbose, "run", "--trust", str(keys.trust), "--engine", "wasmer", str(bundle), "add", "2", "3")
    assert (result.returncode, result.stdout) == (0, "5\n"), result.stderr
    notes = [line for line in result.stderr.splitlines() if "limits.fuel" in line]
    assert notes == [
        "note: hello: wasmer cannot meter fuel, so limits.fuel is not enforced; limits.timeout_ms caps its CPU time"
    ]


# Runs `ngixi` with one module made unimportable, as a broken or partial install would leave it.
WITHOUT_MODULE = """
import sys
sys.modules[sys.argv[1]] = None
from ngixi_runtime.cli import main
sys.argv[1:2] = []
sys.exit(main())
"""


@pytest.mark.parametrize(
    ("module", "smoke"),
    [("ngixi_runtime.guest.smoke", True), ("ngixi_runtime.loading.aot_cache", False)],
)
def test_a_lazily_imported_module_that_fails_to_import_is_one_line(tmp_path: Path, module: str, smoke: bool) -> None:
    keys = make_key(tmp_path / "keys")
    manifest = MANIFEST + ('\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = [5]\n' if smoke else "")
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=manifest)
    command = ["run", "--in-process", "--trust", str(keys.trust), str(bundle), "add", "2", "3"]
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_MODULE, module, *command], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith("ngixi: error: unexpected ModuleNotFoundError: ") and result.stderr.count("\n") == 1
    assert module in result.stderr
    verbose = subprocess.run(
        [sys.executable, "-c", WITHOUT_MODULE, module, "-v", *command], capture_output=True, text=True, check=False
    )
    assert verbose.returncode != 0 and "Traceback (most recent call last)" in verbose.stderr
