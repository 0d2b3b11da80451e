"""A module crafted for what the host reads of it in Python: a trap's place is found in a bounded time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ngixi_runtime.spec.wasm import custom_section, uleb128
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle
from tests.integration import BIN, run_in
from tests.wasmgen import Func, Imp, module

TRAPPING = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], b"\x00")])


def with_names(wasm: bytes, entries: int) -> bytes:
    """`wasm` with a `name` section of `entries` function names, each an empty name for function 0 (2 bytes)."""
    names = uleb128(entries) + b"\x00\x00" * entries
    return wasm + custom_section("name", b"\x01" + uleb128(len(names)) + names)


@pytest.mark.parametrize(("engine", "in_process"), [("wasmtime", False), ("wasmer", True)])
def test_a_trap_in_a_module_of_millions_of_names_is_told_as_the_trap(
    tmp_path: Path, keys: KeyFiles, engine: str, in_process: bool
) -> None:
    """Where a trap happened is read from the module's `name` section, in Python, at every trap: 5 million names (10 MB)
    took 15 s after `add` trapped at once, in-process past any limits.timeout_ms (Wasmtime), or ended as
    `add exceeded its 2000 ms timeout` (an isolated child, and Wasmer's watcher in-process). A trap reads at most
    `NAMES_READ` of them, and only until its frames' names are found."""
    pytest.importorskip(engine)
    manifest = HELLO_MANIFEST.replace("[capabilities.log]", "[limits]\ntimeout_ms = 2000\n\n[capabilities.log]")
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=with_names(TRAPPING, 3_000_000), manifest=manifest)
    argv = [str(BIN / "ngixi"), "run", "--engine", engine, "--trust", str(keys.trust)]
    argv += ["--in-process"] if in_process else []
    result = run_in(tmp_path, [*argv, str(bundle), "add", "1", "2"], env=dict(os.environ), check=False, timeout=120)
    assert result.returncode == 5, result.stderr
    assert result.stderr.endswith("ngixi: error: hello: add trapped: unreachable\n"), result.stderr
