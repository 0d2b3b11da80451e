"""What each engine makes of the WebAssembly features toolchains emit beyond the first standard: Wasmtime names the
proposals a module uses, refuses the withdrawn exception handling with what to do, and answers relaxed SIMD the same
for this machine and for pulley64."""

from __future__ import annotations

import math

import pytest

from ngixi_runtime.engines.base import PORTABLE_TRIPLE
from ngixi_runtime.errors import NgixiError

wasmtime = pytest.importorskip("wasmtime")
engine_wasmtime = pytest.importorskip("ngixi_runtime.engines.wasmtime")

USES = {  # a module using the proposal, and its name in messages
    "(func $f (return_call $f))": "tail calls",
    "(memory 1 1) (func (drop (i32.atomic.load (i32.const 0))))": "threads (atomic instructions or a shared memory)",
    "(tag $e) (func (try_table (throw $e)))": "exception handling",
    "(func (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i64x2 0 0))))": "relaxed SIMD",
    "(type $t (func)) (func $f (type $t) (call_ref $t (ref.func $f))) (elem declare func $f)": (
        "typed function references"
    ),
    "(type $s (struct (field i32))) (func (drop (struct.new $s (i32.const 1))))": (
        "GC types or extended constant expressions"
    ),
    "(global $a i32 (i32.const 1)) (global i32 (i32.add (global.get $a) (i32.const 1)))": (
        "GC types or extended constant expressions"
    ),
    "(memory i64 1 1)": "a 64-bit memory (memory64)",
}


@pytest.mark.parametrize("fields", USES)
def test_names_the_proposal_a_module_uses(fields: str) -> None:
    assert engine_wasmtime.proposals_used(wasmtime.wat2wasm(f"(module {fields})")) == (USES[fields],)


def test_a_module_of_the_second_standard_uses_none() -> None:
    wasm = wasmtime.wat2wasm(
        '(module (memory 1 1) (data "x") (func (result i32 i32) (memory.init 0 (i32.const 0) (i32.const 0)'
        " (i32.const 1)) (i32.extend8_s (i32.const 255)) (i32.trunc_sat_f32_s (f32.const 1e20))))"
    )
    assert engine_wasmtime.proposals_used(wasm) == ()


# (module (tag $e) (func try catch $e end)), which wasmtime.wat2wasm no longer writes
LEGACY_EXCEPTIONS = bytes.fromhex("0061736d01000000010401600000030201000d030100000a09010700064007000b0b")


def test_the_withdrawn_exception_handling_is_refused_with_what_to_build_instead() -> None:
    reason = engine_wasmtime.invalid_because(LEGACY_EXCEPTIONS)
    assert reason is not None and "legacy_exceptions feature required for try instruction" in reason
    assert reason.endswith(
        "rebuild it with the standard one (clang -fwasm-exceptions -mllvm -wasm-use-legacy-eh=false,"
        " Emscripten -sWASM_LEGACY_EXCEPTIONS=0)"
    )


def test_pulley64_says_to_leave_it_out_for_atomics_this_machine_runs() -> None:
    """Its refusal was `failed to compile: wasm[0]::function[0]`, the first line of Wasmtime's error."""
    wasm = wasmtime.wat2wasm("(module (memory 1 1) (func (drop (i32.atomic.load (i32.const 0)))))")
    with pytest.raises(NgixiError) as raised:
        engine_wasmtime.precompile(wasm, triple=PORTABLE_TRIPLE, cpu_features=(), metered=False, what="precompile a")
    assert "threads support is not enabled" in str(raised.value)
    assert str(raised.value).endswith("leave pulley64 out of [tool.ngixi] wasmtime_targets")


RELAXED = """(module
  (func (export "trunc") (param f32) (result i32)
    (i32x4.extract_lane 0 (i32x4.relaxed_trunc_f32x4_s (f32x4.splat (local.get 0)))))
  (func (export "swizzle") (param i32) (result i32)
    (i8x16.extract_lane_u 0 (i8x16.relaxed_swizzle (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
      (i8x16.splat (local.get 0))))))"""


def test_relaxed_simd_answers_alike_on_this_machine_and_on_pulley64() -> None:
    """x86_64's artifact answered -2147483648 for a NaN lane and 2 for lane 17, pulley64's 0 and 0: which artifact
    the loader picked changed the answer."""
    answers = []
    for target in (None, PORTABLE_TRIPLE):
        engine = engine_wasmtime.engine_for(target)
        store = wasmtime.Store(engine)
        store.set_epoch_deadline(1 << 30)
        exports = wasmtime.Instance(store, wasmtime.Module(engine, wasmtime.wat2wasm(RELAXED)), []).exports(store)
        answers.append((exports["trunc"](store, math.nan), exports["trunc"](store, 3e9), exports["swizzle"](store, 17)))
    assert answers[0] == answers[1] == (0, 2147483647, 0)
