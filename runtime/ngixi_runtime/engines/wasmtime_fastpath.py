"""A faster call of a Wasmtime export whose values are all numbers, on the wasmtime-py versions it was tested on.

wasmtime-py's `Func.__call__` asks the C API for the function's type and converts every value
through Python objects on each call; this path looks the types up once and calls Wasmtime's
unchecked C call. It needs wasmtime-py's private names (`_ffi`, `Func._func`, `Store._context`,
`maybe_raise_last_exn`), so it is active only when the installed wasmtime-py is one of
`TESTED_ON`: on any other version `numeric_export` returns None, nothing private is imported, and
the engine calls through the public API. `bench/wasmtime_paths.py` measures both paths.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, NoReturn

import wasmtime

from ngixi_runtime.engines.base import installed_version
from ngixi_runtime.guest.manifest import Number

# Versions whose private names this module was checked against, with tests/test_wasmtime_calls.py run on each.
TESTED_ON = frozenset({"50.0.1", "51.0.0"})
ACTIVE = installed_version("wasmtime", wasmtime) in TESTED_ON

if ACTIVE:
    from wasmtime import _ffi as ffi
    from wasmtime._func import maybe_raise_last_exn

_PYTHON_TYPES: dict[str, type] = {"i32": int, "i64": int, "f32": float, "f64": float}  # as wasmtime-py converts them


class NumericExport:
    """An export of numbers called through the unchecked C call, with its types looked up once.

    Values are checked and converted as wasmtime-py does: ints for i32 and i64 (wrapped to their
    width), floats for f32 and f64. Traps and host-function exceptions are raised as its
    `enter_wasm` raises them.
    """

    def __init__(self, function: wasmtime.Func, params: tuple[str, ...], results: tuple[str, ...]) -> None:
        self._func = function._func
        self._params = params
        self._results = results
        self._slots = max(len(params), len(results), 1)  # one array holds the params, then the results

    def __call__(self, store: wasmtime.Store, args: Sequence[Number]) -> tuple[Number, ...]:
        if len(args) != len(self._params):
            raise wasmtime.WasmtimeError(f"{len(args)} parameters given, {len(self._params)} expected")
        values = (ffi.wasmtime_val_raw_t * self._slots)()
        for slot, (kind, value) in enumerate(zip(self._params, args, strict=True)):
            if not isinstance(value, _PYTHON_TYPES[kind]):
                raise TypeError(f"don't know how to convert {value!r} to {kind}")
            setattr(values[slot], kind, value)
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(
            store._context(), ctypes.byref(self._func), values, self._slots, ctypes.byref(trap)
        )
        if error or trap:
            _raise_call_failure(error, trap)
        return tuple(getattr(values[slot], kind) for slot, kind in enumerate(self._results))


def _raise_call_failure(error: Any, trap: Any) -> NoReturn:
    """What wasmtime-py's `enter_wasm` raises for a failed call, without its generator context manager:
    a host function's exception if one ended the call, else the error or the trap."""
    failure = wasmtime.WasmtimeError._from_ptr(error) if error else wasmtime.Trap._from_ptr(trap)
    maybe_raise_last_exn()
    raise failure


def numeric_export(function: wasmtime.Func, store: wasmtime.Store) -> NumericExport | None:
    """The fast call of `function`, or None: on a wasmtime-py not in `TESTED_ON`, or for a value that is no number."""
    if not ACTIVE:
        return None
    kind = function.type(store)
    params, results = tuple(map(str, kind.params)), tuple(map(str, kind.results))
    if not set(params + results) <= _PYTHON_TYPES.keys():
        return None
    return NumericExport(function, params, results)
