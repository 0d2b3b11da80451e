"""Modules crafted for what the host spends on them beside the guest's limits: the place of a trap, read in Python,
found in bounded time; the memory a compile takes, bounded by the module's size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ngixi_runtime.guest.limits import (
    BYTES_PER_ENTRY,
    LOCALS_PER_BYTE,
    MIN_ENTRIES,
    MIN_LOCALS,
    compile_cost_problem,
)
from ngixi_runtime.spec.wasm import CompileCounts, compile_counts, custom_section, uleb128
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle
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


def section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + uleb128(len(body)) + body


def test_a_module_may_declare_as_many_functions_types_segments_and_locals_as_its_size_allows() -> None:
    """Counted: functions, types (a recursion group's each) and element segments (Wasmtime took 6.8 KB of memory a
    type: 200,000 function types, 2.3 MB and no function, took 1.4 GB and 15 s; 5 KB an element segment; a global
    16 bytes in each of a component's up to 64 instances: a million, in 60, held 1 GB), and the locals functions
    declare (a function of 50,000 locals is 8 bytes, and took about 9 ms to compile)."""
    assert compile_cost_problem(module(functions=[Func("f")] * 3), source="m") is None
    over = MIN_ENTRIES + 1
    functions = section(3, uleb128(over) + b"\x00" * over)
    types = section(1, b"\x01\x4e" + uleb128(over) + b"\x60\x00\x00" * over)  # one recursion group of them
    segments, globals_ = section(9, uleb128(over)), section(6, uleb128(over))  # counted from their counts alone
    entries = "functions, types, element segments and globals in"
    locals_body = b"\x01" + uleb128(MIN_LOCALS + 1) + b"\x7f\x0b"  # one group of that many i32 locals
    code = section(10, b"\x01" + uleb128(len(locals_body)) + locals_body)
    cases: list[tuple[bytes, int, str, float]] = [(code, MIN_LOCALS, "locals in", 1 / LOCALS_PER_BYTE)]
    cases += [(declared, MIN_ENTRIES, entries, BYTES_PER_ENTRY) for declared in (functions, types, segments, globals_)]
    for declared, allowed, what, bytes_each in cases:
        wasm = b"\0asm\x01\0\0\0" + declared
        counts = compile_counts(wasm, source="m", at_most=CompileCounts(MIN_ENTRIES, MIN_LOCALS))
        assert max(counts.entries - MIN_ENTRIES, counts.locals - MIN_LOCALS) > 0
        problem = compile_cost_problem(wasm, source="m")
        assert problem is not None and f"more than {allowed} {what} {len(wasm)} bytes" in problem
        assert "; whoever built it can build it with fewer" in problem  # what to do about it
        padded = wasm + custom_section("padding", b"\0" * int((allowed + 1) * bytes_each))
        assert compile_cost_problem(padded, source="m") is None


def empty_functions(count: int, locals_each: int = 0) -> bytes:
    """A module of a memory and `count` functions that do nothing, each declaring `locals_each` i32 locals."""
    wasm = b"\0asm\x01\0\0\0" + section(1, b"\x01\x60\x00\x00")
    body = b"\x01" + uleb128(locals_each) + b"\x7f\x0b" if locals_each else b"\x00\x0b"
    wasm += section(3, uleb128(count) + b"\x00" * count) + section(5, b"\x01\x01\x01\x01")
    wasm += section(7, b"\x01\x06memory\x02\x00")
    return wasm + section(10, uleb128(count) + (uleb128(len(body)) + body) * count)


CRAFTED = {
    "functions": (
        empty_functions(60_000),
        "it declares more than 50000 functions, types, element segments and globals",
    ),
    "locals": (empty_functions(100, 50_000), "its functions declare more than 1000000 locals"),
}


@pytest.mark.parametrize("isolated", [True, False])
@pytest.mark.parametrize("crafted", CRAFTED)
def test_a_module_crafted_to_cost_its_compile_is_refused_before_it_is_compiled(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool, crafted: str
) -> None:
    """Compiling a function takes Wasmtime about 5.5 KB of memory (Wasmer 1.5 KB) beside its code's: 200,000 empty
    functions, 0.8 MB, took Wasmtime 17.5 s and 1.1 GB, a million 5.5 GB, in-process or in an isolated child, which
    has its address space capped only once the guest is instantiated; 100 functions of 50,000 locals each, 841 bytes,
    took 0.9 s (50,000 of them would take 450 s). Such a module is refused before any compile."""
    wasm, refusal = CRAFTED[crafted]
    manifest = HELLO_MANIFEST.split("[exports.add]")[0]
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=wasm, manifest=manifest)
    argv = [str(BIN / "ngixi"), "run", "--engine", engine_name, "--trust", str(keys.trust)]
    argv += [] if isolated else ["--in-process"]
    result = run_in(tmp_path, [*argv, str(bundle), "_start"], env=dict(os.environ), check=False, timeout=120)
    assert result.returncode == 6, result.stderr
    assert result.stderr.startswith(f"ngixi: error: hello: {refusal} in {len(wasm)} bytes"), result.stderr
    assert exit_code(["verify", "--trust", str(keys.trust), str(bundle)]) == 6  # as a load refuses it
