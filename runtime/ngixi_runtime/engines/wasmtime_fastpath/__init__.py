"""Faster calls between Python and a Wasmtime guest whose values are all numbers, on the wasmtime-py versions
they were tested on: calls of the guest's exports, and the guest's calls of host functions.

wasmtime-py's `Func.__call__` asks the C API for the function's type and converts every value
through Python objects on each call; `numeric_export` looks the types up once and calls Wasmtime's
unchecked C call. Likewise wasmtime-py's host-function trampoline makes a `Val` of every argument
and compares `ValType`s it creates anew to convert each result; `define_numeric_import` defines the
host function through Wasmtime's unchecked definition, reading and writing the raw values by the
types looked up once; and `memory_bounds` asks where a guest memory's bytes are, and how many, with two C
calls instead of wasmtime-py's wrappers. wasmtime-py carries a component's `list<u8>` (or any list) as one C value
per element, each converted by a Python call; `components.component_export` calls an export, and
`components.define_component_import` defines a host function (a module of its own, which only a component's load
imports), with each list of numbers in its types copied in bulk instead, element kinds and values
written and read at their stride in the C API's array of values. All need wasmtime-py's private names (`_ffi`,
`_func`, `Func._func`, `Store._context`, `Memory._memory`, `Linker.ptr`, `Trap._consume`, `component._enter`,
`FuncType._from_ptr`), so they are active only when the installed wasmtime-py is one of `TESTED_ON`: on any other
version `numeric_export` and `component_export` return None, `define_numeric_import` and `define_component_import`
False, `memory_bounds` None, nothing private is imported, and the engine takes the public API.
`bench/wasmtime_paths.py`, `bench/wasi.py` and `bench/component_bytes.py` measure the paths.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import wasmtime

from ngixi_runtime.engines.base import installed_version
from ngixi_runtime.guest.manifest import Number

# Versions whose private names this module was checked against, with tests/run/unit/test_wasmtime_calls.py and
# test_component_lists.py run on each.
TESTED_ON = frozenset({"50.0.1", "51.0.0"})
ACTIVE = installed_version("wasmtime", wasmtime) in TESTED_ON

if ACTIVE:
    from wasmtime import _ffi as ffi
    from wasmtime import _func as wasmtime_func

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
    host_failure, wasmtime_func.LAST_EXCEPTION = wasmtime_func.LAST_EXCEPTION, None  # as maybe_raise_last_exn
    try:
        raise failure if host_failure is None else host_failure
    finally:  # this frame, in the traceback of what it raises, would hold it: a cycle only the collector frees
        del failure, host_failure


def numeric_export(function: wasmtime.Func, store: wasmtime.Store) -> NumericExport | None:
    """The fast call of `function`, or None: on a wasmtime-py not in `TESTED_ON`, or for a value that is no number."""
    if not ACTIVE:
        return None
    kind = function.type(store)
    params, results = tuple(map(str, kind.params)), tuple(map(str, kind.results))
    if not set(params + results) <= _PYTHON_TYPES.keys():
        return None
    return NumericExport(function, params, results)


# The host functions defined by `define_numeric_import`, by the key Wasmtime hands back to the trampoline.
_HOST_FUNCTIONS: dict[int, tuple[Callable[..., Any], tuple[str, ...], str | None]] = {}
KEYS = itertools.count(1)


def _host_result(kind: str, value: object) -> object:
    """A host function's result as wasmtime-py's trampoline takes it for `kind`, or its TypeError."""
    if isinstance(value, _PYTHON_TYPES[kind]):
        return value
    raise TypeError(f"don't know how to convert {value!r} to {kind}")


def _call_host_function(key: int | None, values: Any) -> int | None:
    """Runs a host function on the raw values and writes its result over the first; a Python exception
    becomes the trap wasmtime-py's trampoline makes, and is raised again when the call returns."""
    try:
        function, params, result = _HOST_FUNCTIONS[key or 0]
        returned = function(*[getattr(values[slot], kind) for slot, kind in enumerate(params)])
        if result is not None:
            setattr(values[0], result, _host_result(result, returned))
        elif returned is not None:
            raise wasmtime.WasmtimeError("callback produced results when it shouldn't")
        return 0
    except BaseException as error:
        wasmtime_func.LAST_EXCEPTION = error  # type: ignore[assignment]  # as its own trampoline stores any
        trap: int | None = ctypes.cast(wasmtime.Trap("python exception")._consume(), ctypes.c_void_p).value
        return trap


if ACTIVE:
    _TRAMPOLINE = ffi.wasmtime_func_unchecked_callback_t(
        lambda key, _caller, values, _count: _call_host_function(key, values)
    )
    _RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda key: _HOST_FUNCTIONS.pop(key or 0, None))


def define_numeric_import(
    linker: wasmtime.Linker,
    module: str,
    name: str,
    signature: wasmtime.FuncType,
    function: Callable[..., Any],
) -> bool:
    """Defines a host function of numbers through the unchecked path; False (nothing defined) on a wasmtime-py
    not in `TESTED_ON`, or for a value that is no number or more than one result. Raises what
    `Linker.define_func` raises when Wasmtime refuses the definition."""
    params, results = tuple(map(str, signature.params)), tuple(map(str, signature.results))
    if not ACTIVE or len(results) > 1 or not set(params + results) <= _PYTHON_TYPES.keys():
        return False
    key = next(KEYS)
    _HOST_FUNCTIONS[key] = (function, params, results[0] if results else None)
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_bytes),
        len(module_bytes),
        ctypes.create_string_buffer(name_bytes),
        len(name_bytes),
        signature.ptr(),
        _TRAMPOLINE,
        key,
        _RELEASE,
    )
    return defined(error, _HOST_FUNCTIONS, key)


def defined(error: Any, functions: dict[int, Any], key: int) -> bool:
    """True for a host function Wasmtime defined; else its function forgotten and Wasmtime's refusal raised."""
    if error:
        functions.pop(key, None)
        raise wasmtime.WasmtimeError._from_ptr(error)
    return True


if ACTIVE:
    # Fresh function pointers on wasmtime-py's library, with the plain restypes these calls need.
    _MEMORY_DATA = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data", ffi.dll)
    )
    _MEMORY_DATA_SIZE = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
        ("wasmtime_memory_data_size", ffi.dll)
    )


def memory_bounds(
    memory: wasmtime.Memory, store: wasmtime.Store
) -> tuple[Callable[[], tuple[int, int]], Callable[[], int]] | None:
    """Functions giving the address of `memory`'s first byte and its length now (a memory that grows may move),
    and its length alone; None on a wasmtime-py not in `TESTED_ON`. The memory and the store must outlive them."""
    if not ACTIVE:
        return None
    context, extern = store._context(), ctypes.byref(memory._memory)

    def bounds() -> tuple[int, int]:
        return _MEMORY_DATA(context, extern) or 0, _MEMORY_DATA_SIZE(context, extern)

    return bounds, partial(_MEMORY_DATA_SIZE, context, extern)
