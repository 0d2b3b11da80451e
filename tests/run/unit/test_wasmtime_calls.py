"""Calls into Wasmtime guests take `wasmtime_fastpath`'s call where it is active, else wasmtime-py's
`Func.__call__`; host functions its unchecked definition, else `Linker.define_func`. Every path must give
the answers wasmtime-py's public API gives (the `wasmtime_call_path` fixture runs a test on each)."""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import math
import struct
import types
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

pytest.importorskip("wasmtime")

import wasmtime

from ngixi_runtime.capabilities.base import HostImport
from ngixi_runtime.capabilities.context import HostFunction
from ngixi_runtime.capabilities.registry import provisions
from ngixi_runtime.engines import base as engines_base
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.base import as_results
from ngixi_runtime.engines.wasmtime import (
    WasmtimeMemory,
    define_host_function,
    export_call,
    failure_summary,
    named_frames,
    trap_cause,
    trap_message,
)
from ngixi_runtime.errors import GuestError
from ngixi_runtime.guest.manifest import Number, parse_manifest
from ngixi_runtime.loading.calls import exhausted_stack
from ngixi_runtime.loading.loader import trap_place
from ngixi_runtime.spec.wasm import Signature
from tests.wasmgen import Func, Imp, module

ALL = ("i32", "i64", "f32", "f64")
LOCAL_GET = 0x20
UNREACHABLE = b"\x00"


def _locals(*indices: int) -> bytes:
    return b"".join(bytes([LOCAL_GET, n]) for n in indices)


FUNCTIONS = [
    Func("same", ALL, ALL, _locals(0, 1, 2, 3)),
    Func("reversed", ALL, ALL[::-1], _locals(3, 2, 1, 0)),
    Func("many_out", ("i32",), ("i32",) * 6, _locals(0, 0, 0, 0, 0, 0)),
    Func("nothing"),
    Func("traps", ("i32",), ("i32",), UNREACHABLE),
]


@pytest.fixture(scope="module")
def exports() -> tuple[wasmtime.Store, dict[str, wasmtime.Func]]:
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, module(functions=FUNCTIONS)), [])
    found = {f.name: instance.exports(store)[f.name] for f in FUNCTIONS}
    assert all(isinstance(f, wasmtime.Func) for f in found.values())
    return store, found  # type: ignore[return-value]


def _bits(values: Sequence[Number]) -> list[object]:
    """Floats by their bits (NaN payloads and -0.0 included), everything else as it is."""
    return [struct.pack("<d", v) if isinstance(v, float) else v for v in values]


EDGES: list[tuple[Number, Number, Number, Number]] = [
    (0, 0, 0.0, 0.0),
    (1, -1, 1.5, -2.25),
    (2**31 - 1, 2**63 - 1, 3.4028234663852886e38, 1.7976931348623157e308),
    (-(2**31), -(2**63), -0.0, -0.0),
    (2**31, 2**63, 0.1, 0.1),  # ints past their width wrap, as wasmtime-py wraps them; 0.1 rounds in f32
    (-1, 2**64 - 1, math.inf, -math.inf),
    (True, False, math.nan, math.nan),
]


@pytest.mark.parametrize("args", EDGES, ids=[str(n) for n in range(len(EDGES))])
@pytest.mark.parametrize("name", ["same", "reversed"])
def test_numbers_come_back_as_wasmtime_py_returns_them(
    exports: tuple[wasmtime.Store, dict[str, wasmtime.Func]],
    name: str,
    args: tuple[Number, ...],
    wasmtime_call_path: str,
) -> None:
    store, functions = exports
    call = export_call(functions[name], store)
    assert isinstance(call, wasmtime_fastpath.NumericExport) == (wasmtime_call_path == "fast path")
    assert _bits(as_results(call(store, args))) == _bits(as_results(functions[name](store, *args)))


def test_results_beyond_the_params_and_no_values_at_all(
    exports: tuple[wasmtime.Store, dict[str, wasmtime.Func]], wasmtime_call_path: str
) -> None:
    store, functions = exports
    assert as_results(export_call(functions["many_out"], store)(store, (7,))) == (7,) * 6
    assert as_results(export_call(functions["nothing"], store)(store, ())) == ()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((1.0, 1, 1.0, 1.0), TypeError),  # a float for an i32
        ((1, 1, 1, 1.0), TypeError),  # an int for an f32
        ((1, 1, 1.0), wasmtime.WasmtimeError),  # too few
        ((1, 1, 1.0, 1.0, 1), wasmtime.WasmtimeError),  # too many
    ],
)
def test_wrong_values_are_refused_as_wasmtime_py_refuses_them(
    exports: tuple[wasmtime.Store, dict[str, wasmtime.Func]],
    args: tuple[Number, ...],
    error: type[Exception],
    wasmtime_call_path: str,
) -> None:
    store, functions = exports
    with pytest.raises(error):
        functions["same"](store, *args)
    with pytest.raises(error):
        export_call(functions["same"], store)(store, args)


def test_a_trap_is_raised_as_a_trap(
    exports: tuple[wasmtime.Store, dict[str, wasmtime.Func]], wasmtime_call_path: str
) -> None:
    store, functions = exports
    with pytest.raises(wasmtime.Trap) as trapped:
        export_call(functions["traps"], store)(store, (1,))
    assert trapped.value.trap_code == wasmtime.TrapCode.UNREACHABLE


def test_guest_memory_is_read_and_written_up_to_its_end_and_not_past_it(wasmtime_call_path: str) -> None:
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, module(memory=(1, 2))), [])
    exported = instance.exports(store)["memory"]
    assert isinstance(exported, wasmtime.Memory)
    memory = WasmtimeMemory(exported, store, "probe")
    assert (memory.size_bytes, memory.page_count()) == (65536, 1)
    memory.write(65534, b"ab")
    memory.write(0, b"cd")
    assert (memory.read(65534, 2), memory.read(0, 2), memory.read(65536, 0)) == (b"ab", b"cd", b"")
    with pytest.raises(GuestError, match=r"probe: pointer 65535\+2 is outside the guest's memory"):
        memory.write(65535, b"ab")
    with pytest.raises(GuestError, match=r"probe: pointer 4294967295\+1 is outside the guest's memory"):
        memory.read((1 << 32) - 1, 1)
    with pytest.raises(GuestError, match=r"probe: pointer 0\+-1 is outside the guest's memory"):
        memory.read(0, -1)  # never a size ctypes is handed
    exported.grow(store, 1)  # a memory that grows may move: each access asks where it is now
    memory.write(131070, b"ef")
    assert (memory.read(65534, 2), memory.read(131070, 2)) == (b"ab", b"ef")
    assert (memory.size_bytes, memory.page_count()) == (131072, 2)


# Host functions: `define_host_function` gives Wasmtime their types; they must see the same arguments and
# give the guest the same results and failures as through `Linker.define_func` with wasmtime-py's own types.
CALL_THE_IMPORT = b"\x10\x00"
Define = Callable[[wasmtime.Linker, HostImport, HostFunction], None]


def _define_as_wasmtime_py_does(linker: wasmtime.Linker, host_import: HostImport, function: HostFunction) -> None:
    params, results = host_import.signature.params, host_import.signature.results
    signature = wasmtime.FuncType(
        [getattr(wasmtime.ValType, t)() for t in params], [getattr(wasmtime.ValType, t)() for t in results]
    )
    linker.define_func(host_import.module, host_import.name, signature, function)


DEFINITIONS: dict[str, Define] = {"wasmtime-py": _define_as_wasmtime_py_does, "ours": define_host_function}


def _relay_export(define: Define, signature: Signature, function: HostFunction) -> tuple[wasmtime.Store, wasmtime.Func]:
    """A guest export that passes its arguments to the host function and returns its result."""
    params, results = signature.params, signature.results
    body = _locals(*range(len(params))) + CALL_THE_IMPORT
    wasm = module(imports=[Imp("host", "f", params, results)], functions=[Func("relay", params, results, body)])
    store = wasmtime.Store()
    linker = wasmtime.Linker(store.engine)
    define(linker, HostImport("host", "f", signature), function)
    relay = linker.instantiate(store, wasmtime.Module(store.engine, wasm)).exports(store)["relay"]
    assert isinstance(relay, wasmtime.Func)
    return store, relay


def _relay(
    define: Define, signature: Signature, args: Sequence[Number], function: HostFunction
) -> tuple[Number, ...] | tuple[type[Exception], str]:
    """What the relaying export (`_relay_export`) gives back, called as the engine calls it."""
    store, relay = _relay_export(define, signature, function)
    try:
        given = as_results(export_call(relay, store)(store, args))
    except Exception as error:
        return type(error), str(error).splitlines()[0]
    return given


@pytest.mark.parametrize("args", EDGES, ids=[str(n) for n in range(len(EDGES))])
def test_host_functions_get_the_arguments_wasmtime_py_gives(args: tuple[Number, ...], wasmtime_call_path: str) -> None:
    seen: dict[str, list[object]] = {}

    def recorder(name: str) -> HostFunction:
        def record(*values: Number) -> int:
            seen[name] = _bits(values)
            return 7

        return record

    for name, define in DEFINITIONS.items():
        assert _relay(define, Signature(ALL, ("i64",)), args, recorder(name)) == (7,)
    assert seen["ours"] == seen["wasmtime-py"]


@pytest.mark.parametrize(
    ("results", "returned"),
    [
        (("i32",), -5),
        (("i64",), 2**63 - 1),
        (("i32",), 2**40),  # wraps to its width
        (("i32",), True),
        ((), None),
        (("i32",), None),  # no result where one is due
        ((), 5),  # a result where none is
        (("i32",), 1.5),
        (("f64",), 2),
        (("i32",), GuestError("probe: pointer 9+9 is outside the guest's memory")),
        (("i32",), KeyError("a bug in a host function")),
    ],
)
def test_host_function_results_and_failures_reach_the_guest_as_through_wasmtime_py(
    results: tuple[str, ...], returned: object, wasmtime_call_path: str
) -> None:
    def host(_value: int) -> int | None:
        if isinstance(returned, Exception):
            raise returned
        return returned  # type: ignore[return-value]

    given = {name: _relay(define, Signature(("i32",), results), (3,), host) for name, define in DEFINITIONS.items()}
    assert given["ours"] == given["wasmtime-py"]


@pytest.mark.parametrize("raised", [GuestError("probe: refused"), KeyError("a bug in a host function")])
def test_a_host_function_s_exception_ends_the_call_as_through_func_call(
    raised: Exception, wasmtime_call_path: str
) -> None:
    """The engine's call raises what wasmtime-py's `Func.__call__` raises when a host function fails."""

    def host(_value: int) -> int:
        raise raised

    store, relay = _relay_export(define_host_function, Signature(("i32",), ("i32",)), host)
    with pytest.raises(type(raised)) as through_func_call:
        relay(store, 3)
    with pytest.raises(type(raised)) as through_ours:
        export_call(relay, store)(store, (3,))
    assert through_ours.value is through_func_call.value is raised


def test_host_imports_have_at_most_one_result() -> None:
    """A `HostFunction` returns one number or None: the registry must never grant an import with more results."""
    assert max(len(p.host_import.signature.results) for p in provisions().values()) == 1


def test_a_host_function_is_released_with_the_linker_and_store_that_hold_it() -> None:
    def host(value: int) -> int:
        return value + 1

    released = weakref.ref(host)
    assert _relay(define_host_function, Signature(("i32",), ("i32",)), (4,), host) == (5,)
    del host
    gc.collect()
    assert released() is None


def test_the_fast_path_is_active_exactly_on_the_wasmtime_py_versions_it_was_tested_on() -> None:
    installed = importlib.metadata.version("wasmtime")
    assert wasmtime_fastpath.ACTIVE is (installed in wasmtime_fastpath.TESTED_ON)


def test_the_installed_version_is_read_beside_the_package_else_from_importlib_metadata(tmp_path: Path) -> None:
    assert engines_base.installed_version("wasmtime", wasmtime) == importlib.metadata.version("wasmtime")
    (tmp_path / "wasmtime").mkdir()
    elsewhere = types.ModuleType("wasmtime")
    elsewhere.__file__ = str(tmp_path / "wasmtime" / "__init__.py")  # no .dist-info beside it
    assert engines_base.installed_version("wasmtime", elsewhere) == importlib.metadata.version("wasmtime")


def test_a_failed_call_is_summed_up_by_its_cause_and_its_innermost_named_functions() -> None:
    """Never by a language runtime's frames: shared libraries a component links, componentize-py's runtime module,
    Rust's std, C's abort (a Python guest's own code is interpreted: no frame of its own)."""
    runtime = (
        "error while executing at wasm backtrace:\n"
        "    0: 0xa9608f - <unknown>!<wasm function 0>\n"
        "    1: 0xaa9b2a - libc.so!stdout_get_stdout\n"
        "    2: 0xaac52a - libc.so!stdio_get_write_stream\n"
        "    3: 0xaa1581 - libc.so!write\n"
        "    4: 0xe213d8 - libpython3.14.so!_Py_write\n"
        "    5: 0xe213d9 - componentize_py_runtime.wasm!<std::sys::stdio::unix::Stderr as std::io::Write>::write_all\n"
        "    6: 0xe213da - componentize_py_runtime.wasm!exports\n"
        "    7: 0xe213db - std::panicking::begin_panic_handler\n"
        "    8: 0xe213dc - abort\n"
    )
    trap = "Caused by:\n    wasm trap: wasm `unreachable` instruction executed\n"
    assert failure_summary(wasmtime.WasmtimeError(runtime + "\n" + trap)) == "unreachable"
    own = runtime + "    9: 0xe213dd - <unknown>!greet\n    10: 0xe213de - guest.wasm!helper\n\n"
    assert failure_summary(wasmtime.WasmtimeError(own + trap)) == "unreachable (in greet < guest.wasm!helper)"
    assert failure_summary(wasmtime.WasmtimeError("out of fuel\nmore")) == "out of fuel"
    lone = failure_summary(wasmtime.WasmtimeError("invalid utf-8 sequence of 1 bytes from index 0"))  # a WIT string
    assert lone.startswith("a string it gave is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0): a")


def test_a_python_components_trap_names_the_guests_own_function_as_a_core_guests_does() -> None:
    """A trap's line names no frame of the language runtime (libc.so, libpython, componentize-py's, Rust's std):
    `greet trapped: unreachable in greet`, where it read `greet failed: unreachable (in greet < guest.wasm!helper)`."""
    runtime = "".join(f"    {n}: 0x{n:x} - {name}\n" for n, name in enumerate(_PYTHON_RUNTIME_FRAMES))
    own = "    9: 0xe213dd - <unknown>!greet\n    10: 0xe213de - guest.wasm!helper\n\n"
    error = wasmtime.WasmtimeError("error while executing at wasm backtrace:\n" + runtime + own + _UNREACHABLE)
    assert trap_cause(error) == "unreachable"
    manifest = parse_manifest('[guest]\nname = "g"\nversion = "0.1.0"\nabi = "component"\n', source="g.toml", stem="g")
    assert trap_place(manifest, GuestError("g: greet trapped: unreachable", named_frames=named_frames(error)), b"") == (
        "in greet"
    )


_PYTHON_RUNTIME_FRAMES = (
    "<unknown>!<wasm function 0>",
    "libc.so!stdout_get_stdout",
    "libc.so!stdio_get_write_stream",
    "libc.so!write",
    "libpython3.14.so!_Py_write",
    "componentize_py_runtime.wasm!exports",
    "std::panicking::begin_panic_handler",
    "abort",
)
_UNREACHABLE = "Caused by:\n    0: error while executing\n    1: wasm trap: wasm `unreachable` instruction executed\n"


def test_a_failed_component_call_names_the_guests_own_functions_of_an_unnamed_module() -> None:
    error = wasmtime.WasmtimeError(
        "error while executing at wasm backtrace:\n"
        "    0:   0x208e - <unknown>!~lib/array/Array<i32>#__get\n"
        "    1:   0x20ee - <unknown>!guests/calc/assembly/index/pick\n"
        "    2:   0x147f - <unknown>!artifacts/bindings/guests/calc/exports/pick\n\n"
        "Caused by:\n    wasm trap: wasm `unreachable` instruction executed\n"
    )
    assert failure_summary(error) == (
        "unreachable (in guests/calc/assembly/index/pick < artifacts/bindings/guests/calc/exports/pick)"
    )


def test_a_stack_overflow_is_worded_as_the_loader_tells_an_exhausted_stack() -> None:
    """The wording lives once (engines.base.STACK_EXHAUSTED): had Wasmtime's spelling of it drifted from what
    loading.calls looks for, an isolated child whose stack ran out would have gone on serving."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    recursing = wasmtime.Module(engine, '(module (func $f (export "f") call $f))')
    recurse = wasmtime.Instance(store, recursing, []).exports(store)["f"]
    assert isinstance(recurse, wasmtime.Func)
    with pytest.raises(wasmtime.Trap) as trapped:
        recurse(store)
    assert trap_message(trapped.value) == engines_base.STACK_EXHAUSTED
    assert exhausted_stack("trap", f"g: f trapped: {trap_message(trapped.value)}")
