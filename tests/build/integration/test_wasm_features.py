"""Prebuilt modules using the WebAssembly features real toolchains emit, as `wasm` guests of one project built for
Wasmer and Wasmtime (this machine and pulley64): each runs alike isolated and in-process on both engines, or its
build is refused in one line naming the guest and the feature (never a traceback, never a refusal at run time). A
library's start function that calls the host runs too: the build exports it as `_initialize`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.spec.wasm import custom_section

pytestmark = pytest.mark.integration
wasmtime = pytest.importorskip("wasmtime")  # its WAT assembler writes the modules

NGIXI = Path(sys.executable).with_name("ngixi")
MEMORY = '(memory (export "memory") 1 1)'
RUNS = {  # guest: the module's fields besides its memory, and what `run` answers on both engines
    "simd": (
        '(func (export "run") (result i32) (i32x4.extract_lane 0 (i32x4.add (v128.const i32x4 40 0 0 0)'
        " (v128.const i32x4 2 0 0 0))))",
        "42",
    ),
    "bulk-memory": (
        '(data $d "\\2a") (func (export "run") (result i32) (memory.init $d (i32.const 8) (i32.const 0) (i32.const 1))'
        " (data.drop $d) (memory.fill (i32.const 16) (i32.const 7) (i32.const 4)) (memory.copy (i32.const 24)"
        " (i32.const 8) (i32.const 1)) (i32.add (i32.load8_u (i32.const 24)) (i32.load8_u (i32.const 19))))",
        "49",
    ),
    "multi-value": (
        "(func $pair (result i32 i32) (i32.const 40) (i32.const 2))"
        ' (func (export "run") (result i32) (call $pair) (block (param i32 i32) (result i32) (i32.add)))',
        "42",
    ),
    "reference-types": (
        "(table $t 1 4 funcref) (table $u 1 1 externref) (type $r (func (result i32))) (func $f (result i32)"
        ' (i32.const 40)) (elem declare func $f) (func (export "run") (result i32) (table.set $t (i32.const 0)'
        " (ref.func $f)) (drop (table.grow $t (ref.null func) (i32.const 1))) (i32.add (table.size $t)"
        " (i32.add (ref.is_null (table.get $u (i32.const 0))) (call_indirect $t (type $r) (i32.const 0)))))",
        "43",
    ),
    "sign-extension": ('(func (export "run") (result i32) (i32.extend8_s (i32.const 0xd6)))', "-42"),
    "saturating-conversion": (
        '(func (export "run") (result i32) (i32.trunc_sat_f32_s (f32.const -1e20)))',
        "-2147483648",
    ),
    "mutable-global": (
        '(global $g (export "counter") (mut i32) (i32.const 41))'
        ' (func (export "run") (result i32) (global.set $g (i32.add (global.get $g) (i32.const 1))) (global.get $g))',
        "42",
    ),
    "start-function": (
        "(global $g (mut i32) (i32.const 0)) (func $init (global.set $g (i32.const 42))) (start $init)"
        ' (func (export "run") (result i32) (global.get $g))',
        "42",
    ),
    "start-calls-the-host": (  # the loader had not linked its memory yet: refused at every load on both engines
        '(import "ngixi" "log" (func $log (param i32 i32 i32))) (data (i32.const 0) "from start")'
        " (func $init (call $log (i32.const 2) (i32.const 0) (i32.const 10))) (start $init)"
        ' (func (export "run") (result i32) (i32.const 42))',
        "42",
    ),
    "large-table": ('(table $t 60000 60000 funcref) (func (export "run") (result i32) (table.size $t))', "60000"),
    "custom-sections": ('(func $answer (export "run") (result i32) (i32.const 42))', "42"),
}
REFUSED = {  # guest: the module's fields besides its memory, and what its build's one line says
    "tail-calls": (
        '(func $f (export "run") (result i32) (return_call $g)) (func $g (result i32) (i32.const 42))',
        "the module uses tail calls, which Wasmtime runs and Wasmer 2.1 does not",
    ),
    "exception-handling": (
        '(tag $e) (func (export "run") (result i32) (block $h (try_table (catch $e $h) (throw $e))) (i32.const 42))',
        "the module uses exception handling, which Wasmtime runs and Wasmer 2.1 does not",
    ),
    "extended-const": (
        "(global $a i32 (i32.const 40)) (global $b i32 (i32.add (global.get $a) (i32.const 2)))"
        ' (func (export "run") (result i32) (global.get $b))',
        "the module uses GC types or extended constant expressions, which Wasmtime runs and Wasmer 2.1 does not",
    ),
    "atomics": (
        '(func (export "run") (result i32) (i32.atomic.load (i32.const 0)))',
        "threads support is not enabled",  # Wasmer's words, and pulley64's: a refusal by either comes first
    ),
    "relaxed-simd": (
        '(func (export "run") (result i32)'
        " (i32x4.extract_lane 0 (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 0 0 0 0))))",
        "the module uses relaxed SIMD, which Wasmtime runs and Wasmer 2.1 does not",
    ),
    "late-simd": (
        '(func (export "run") (result i32) (i8x16.extract_lane_u 0 (i8x16.popcnt (v128.const i64x2 0 0))))',
        "the module uses the SIMD operator I8x16Popcnt, which Wasmtime runs and Wasmer 2.1 does not",
    ),
    "multiple-memories": (
        '(memory $b 1 1) (func (export "run") (result i32) (i32.load $b (i32.const 0)))',
        "it has 2 memories; a guest may have 1",
    ),
}
SHARED_MEMORY = (  # a wasm32-wasip1-threads build: its first line was about importing a memory
    '(import "env" "memory" (memory 1 1 shared)) (import "wasi" "thread-spawn" (func (param i32) (result i32)))'
    ' (export "memory" (memory 0)) (func (export "run") (result i32) (i32.const 42))'
)
MANIFEST = """\
[guest]
name = "{name}"
version = "0.1.0"
kind = "library"
description = "a module using {name}"

[exports.run]
results = ["i32"]

[capabilities.log]

[limits]
memory_pages = 1
"""
LOGGED = {"start-calls-the-host": "info: from start\n"}


def module(name: str, fields: str) -> bytes:
    wasm = bytes(wasmtime.wat2wasm(fields if name == "threads" else f"(module {fields} {MEMORY})"))
    if name == "custom-sections":  # what a C or Rust toolchain leaves in: producers, and DWARF a debugger reads
        wasm += custom_section("producers", b"\x01\x08language\x01\x04Rust\x06 1.80.0")
        wasm += custom_section(".debug_info", b"\x07\x00\x00\x00\x04\x00" + bytes(64))
        wasm += custom_section(".debug_line", bytes(range(256)))
    return wasm


def environment(root: Path) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("NGIXI_")}
    return {**variables, "CI": "1", "NGIXI_STATE_DIR": str(root / "state"), "NGIXI_AOT_CACHE": str(root / "aot")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The project, built once (some guests fail, by design), and the build's output."""
    root = tmp_path_factory.mktemp("features")
    baseline = '["sse2", "sse4.1"]' if host_triple().startswith("x86_64") else "[]"  # Cranelift's SIMD lanes
    target = f'{{ triple = "{host_triple()}", cpu_features = {baseline} }}'
    (root / "pyproject.toml").write_text(
        f'[tool.ngixi]\ntargets = [{target}]\nwasmtime_targets = ["host", "pulley64"]\n'
    )
    (root / "manifests").mkdir()
    guests = {name: fields for name, (fields, _) in {**RUNS, **REFUSED}.items()}
    for name, fields in {**guests, "threads": f"(module {SHARED_MEMORY})"}.items():
        (root / "manifests" / f"{name}.toml").write_text(MANIFEST.replace("{name}", name))
        (root / "guests" / name).mkdir(parents=True)
        (root / "guests" / name / f"{name}.wasm").write_bytes(module(name, fields))
    built = subprocess.run(
        [str(NGIXI), "build"], cwd=root, capture_output=True, text=True, env=environment(root), timeout=300, check=False
    )
    assert built.returncode != 0 and "Traceback" not in built.stdout + built.stderr
    return root, built.stdout + built.stderr


@pytest.mark.parametrize("guest", RUNS)
def test_a_feature_both_engines_run_answers_alike_in_every_mode(built: tuple[Path, str], guest: str) -> None:
    root, _ = built
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    for engine in ("wasmer", "wasmtime"):
        for mode in ((), ("--in-process",)):
            ran = subprocess.run(
                [str(NGIXI), "run", "--engine", engine, *mode, bundle, "run"],
                cwd=root,
                capture_output=True,
                text=True,
                env=environment(root),
                timeout=60,
                check=False,
            )
            assert (engine, mode, ran.returncode, ran.stdout.strip(), ran.stderr) == (
                engine,
                mode,
                0,
                RUNS[guest][1],
                LOGGED.get(guest, ""),
            )


@pytest.mark.parametrize("guest", [*REFUSED, "threads"])
def test_a_feature_an_engine_lacks_is_refused_at_build_in_one_line(built: tuple[Path, str], guest: str) -> None:
    root, output = built
    said = "its memory is shared" if guest == "threads" else REFUSED[guest][1]
    lines = [line for line in output.splitlines() if line.startswith(f"failed: {guest} (")]
    assert len(lines) == 1 and said in lines[0], output
    assert not (root / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx").exists()
