"""A component's lists of numbers cross as wasmtime-py's public `component.Func.__call__` carries them, through
`wasmtime_fastpath.component_export`'s bulk copies where it is active: every byte value, each number type's extremes,
empty lists, beside parameters wasmtime-py converts itself. A component written in WAT, no build."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("wasmtime")

import wasmtime
import wasmtime.component as wc

from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.wasmtime_fastpath import components
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import make_bundle, make_key

ELEMENTS = ("u8", "s8", "u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64")
LIFTED = '(memory (core memory $i "memory")) (realloc (core func $i "realloc"))'
# Lists of numbers inside other types, each echoed (flattened to a discriminant or number and a list, or one list),
# with a value of it as wasmtime-py takes it.
NESTED: dict[str, tuple[str, str, Any]] = {
    "maybe": ("(option (list u8))", "echo3", b"\x01\xfe"),
    "outcome": ("(result (list u8) (error string))", "echo3", b"\x00\xff" * 10),
    "tagged-record": ("$rec-t", "echo3", None),
    "pair": ("(tuple u32 (list f64))", "echo3", (7, [0.5, -1e300])),
    "shape": ("$shape-t", "echo3", b"\x07"),
    "lists": ("(list (list u8))", "echo", [b"", b"\x00", bytes(range(256))]),
    "nested-lists": ("(list (list (list s16)))", "echo", [[[-1, 2]], [], [[], [32767]]]),
}
# Each export returns its argument (the core function gives back the pointer and length, or the three values, it was
# given); `tagged` takes a string before its bytes, `names` a list of strings, which wasmtime-py converts.
# A memory and its bump allocator, growing the memory as needed.
ALLOCATOR = """    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $at i32) (local $end i32)
      (local.set $at (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                              (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $at) (local.get 3)))
      (global.set $next (local.get $end))
      (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
        (then (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end)
                  (i32.shl (memory.size) (i32.const 16))) (i32.const 65535)) (i32.const 16))) (i32.const -1))
          (then unreachable))))
      (local.get $at))
"""
COMPONENT = """(component
  (core module $m
{ALLOCATOR}    (func (export "echo") (param i32 i32) (result i32)
      (i32.store (i32.const 8) (local.get 0)) (i32.store (i32.const 12) (local.get 1)) (i32.const 8))
    (func (export "second") (param i32 i32 i32 i32) (result i32)
      (i32.store (i32.const 8) (local.get 2)) (i32.store (i32.const 12) (local.get 3)) (i32.const 8))
    (func (export "count") (param i32 i32) (result i32) (local.get 1))
    (func (export "echo3") (param i32 i32 i32) (result i32)
      (i32.store (i32.const 16) (local.get 0)) (i32.store (i32.const 20) (local.get 1))
      (i32.store (i32.const 24) (local.get 2)) (i32.const 16)))
  (core instance $i (instantiate $m))
  (type $r (record (field "tag" u32) (field "data" (list u8))))
  (export $rec-t "blob-record" (type $r))
  (type $v (variant (case "none") (case "data" (list u8)) (case "text" string)))
  (export $shape-t "blob-shape" (type $v))
  {functions})"""


def _function(name: str, params: str, result: str, core: str) -> str:
    return f'(func (export "{name}") {params} (result {result}) (canon lift (core func $i "{core}") {LIFTED}))'


FUNCTIONS = [
    *(_function(f"echo-{t}", f'(param "v" (list {t}))', f"(list {t})", "echo") for t in ELEMENTS),
    _function("tagged", '(param "tag" string) (param "data" (list u8))', "(list u8)", "second"),
    _function("names", '(param "v" (list string))', "u32", "count"),
    *(_function(name, f'(param "v" {ty})', ty, core) for name, (ty, core, _) in NESTED.items()),
]
COMPONENT = COMPONENT.replace("{ALLOCATOR}", ALLOCATOR).replace("{functions}", "\n  ".join(FUNCTIONS))
# Its export `run` passes its argument to the host function `swap` and returns what that returns.
IMPORTING = """(component
  (import "host" (instance $h (export "swap" (func (param "v" (list u8)) (result (list u8))))))
  (alias export $h "swap" (func $swap))
  (core module $mem
{ALLOCATOR})
  (core instance $mi (instantiate $mem))
  (core func $lowered (canon lower (func $swap) {LIFTED_MI}))
  (core module $m
    (import "host" "swap" (func $swap (param i32 i32 i32)))
    (func (export "run") (param i32 i32) (result i32)
      (call $swap (local.get 0) (local.get 1) (i32.const 32)) (i32.const 32)))
  (core instance $i (instantiate $m (with "host" (instance (export "swap" (func $lowered))))))
  (func (export "run") (param "v" (list u8)) (result (list u8))
    (canon lift (core func $i "run") {LIFTED_MI})))"""
IMPORTING = IMPORTING.replace("{ALLOCATOR}", ALLOCATOR).replace("{LIFTED_MI}", LIFTED.replace("$i ", "$mi "))
MANIFEST = '[guest]\nname = "lists"\nversion = "0.1.0"\nabi = "component"\n\n'
MANIFEST += "".join(f"[exports.{name}]\n" for name in (*(f"echo-{t}" for t in ELEMENTS), "tagged", "names", *NESTED))
MANIFEST += "\n[limits]\nmemory_pages = 64\ntimeout_ms = 5000\n"

F32_VALUES = [0.5, -0.0, math.inf, -math.inf, 3.4028234663852886e38, 1.401298464324817e-45, math.nan]
VALUES: dict[str, Any] = {
    "u8": bytes(range(256)) * 3,
    "s8": [-128, -1, 0, 1, 127],
    "u16": [0, 1, 65535],
    "s16": [-32768, -1, 32767],
    "u32": [0, 1, 2**32 - 1],
    "s32": [-(2**31), -1, 2**31 - 1],
    "u64": [0, 1, 2**64 - 1],
    "s64": [-(2**63), -1, 2**63 - 1],
    "f32": F32_VALUES,
    "f64": [0.1, -0.0, math.inf, -math.inf, 1.7976931348623157e308, 5e-324, math.nan],
}


def _bits(element: str, values: Any) -> Any:
    """Floats by their bits (a NaN equals no NaN), other values as they are."""
    code = {"f32": "f", "f64": "d"}.get(element)
    return struct.pack(f"<{len(values)}{code}", *values) if code else values


@pytest.fixture(scope="module")
def component() -> Iterator[tuple[wasmtime.Store, wc.Instance]]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    yield store, wc.Linker(engine).instantiate(store, wc.Component(engine, COMPONENT))


@pytest.mark.skipif(not wasmtime_fastpath.ACTIVE, reason="no fast path on this wasmtime-py")
@pytest.mark.parametrize("element", ELEMENTS)
@pytest.mark.parametrize("size", ["empty", "values"])
def test_the_bulk_copy_gives_what_wasmtime_py_gives(
    component: tuple[wasmtime.Store, wc.Instance], element: str, size: str
) -> None:
    store, instance = component
    function = instance.get_func(store, f"echo-{element}")
    assert function is not None
    bulk = components.component_export(function, store)
    assert bulk is not None
    value = VALUES[element] if size == "values" else (b"" if element == "u8" else [])
    public = function(store, value)
    function.post_return(store)
    assert _bits(element, bulk(store, [value])) == _bits(element, public) == _bits(element, value)


@pytest.mark.skipif(not wasmtime_fastpath.ACTIVE, reason="no fast path on this wasmtime-py")
def test_values_wasmtime_py_refuses_are_refused_and_other_types_are_its_own(
    component: tuple[wasmtime.Store, wc.Instance],
) -> None:
    store, instance = component
    bytes_export, numbers, names = (instance.get_func(store, name) for name in ("echo-u8", "echo-u32", "names"))
    assert bytes_export is not None and numbers is not None and names is not None
    bulk_bytes, bulk_numbers = (components.component_export(f, store) for f in (bytes_export, numbers))
    assert bulk_bytes is not None and bulk_numbers is not None
    for call, value in ((bulk_bytes, [1, 2]), (bulk_numbers, b"\x01"), (bulk_numbers, [2**32])):
        with pytest.raises((TypeError, OverflowError)):
            call(store, [value])
    with pytest.raises(TypeError, match="wrong number of parameters provided: given 2, expected 1"):
        bulk_bytes(store, [b"", b""])
    assert components.component_export(names, store) is None  # no list of numbers: wasmtime-py's own call


def _nested_value(name: str) -> Any:
    if name != "tagged-record":
        return NESTED[name][2]
    record = wc.Record()
    record.__dict__.update(tag=3, data=b"\x00\x01\xff")
    return record


@pytest.mark.skipif(not wasmtime_fastpath.ACTIVE, reason="no fast path on this wasmtime-py")
@pytest.mark.parametrize("name", NESTED)
def test_lists_of_numbers_inside_other_types_are_copied_in_bulk_as_wasmtime_py_converts_them(
    component: tuple[wasmtime.Store, wc.Instance], name: str
) -> None:
    store, instance = component
    function = instance.get_func(store, name)
    assert function is not None
    bulk = components.component_export(function, store)
    assert bulk is not None
    value = _nested_value(name)
    public = function(store, value)
    assert bulk(store, [value]) == public == value
    if name == "maybe":
        assert bulk(store, [None]) is function(store, None) is None
    if name == "outcome":
        assert bulk(store, ["refused"]) == function(store, "refused") == "refused"


@pytest.mark.parametrize("defined_by", ["define_component_import", "add_func"])
def test_a_host_function_s_lists_of_numbers_cross_as_wasmtime_py_carries_them(defined_by: str) -> None:
    if defined_by == "define_component_import" and not wasmtime_fastpath.ACTIVE:
        pytest.skip("no fast path on this wasmtime-py")
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    seen = []

    def swap(_store: Any, data: bytes) -> bytes:
        seen.append(data)
        if data == b"boom":
            raise ValueError("the host refused")
        return data[::-1]

    with linker.root() as root, root.add_instance("host") as host:
        if defined_by == "add_func":
            host.add_func("swap", swap)
        else:
            assert components.define_component_import(host, "swap", swap)
    run = linker.instantiate(store, wc.Component(engine, IMPORTING)).get_func(store, "run")
    assert run is not None
    for data in (b"", bytes(range(256)), b"\x00\xff" * 10_000):
        assert run(store, data) == data[::-1]
    assert seen == [b"", bytes(range(256)), b"\x00\xff" * 10_000]
    with pytest.raises(ValueError, match="the host refused"):
        run(store, b"boom")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("lists")
    keys = make_key(directory / "keys")
    wasm = bytes(wasmtime.wat2wasm(COMPONENT))
    return make_bundle(directory, keys.key, wasm=wasm, manifest=MANIFEST, guest="lists"), keys.trust


def test_lists_of_numbers_round_trip_through_the_loader(bundle: tuple[Path, Path], wasmtime_call_path: str) -> None:
    path, trust = bundle
    with open_tenant(path, trust_file=trust, isolated=False) as guest:
        for element in ELEMENTS:
            for value in (VALUES[element], b"" if element == "u8" else []):
                (echoed,) = guest.call(f"echo-{element}", (value,)).values
                assert _bits(element, echoed) == _bits(element, value), (wasmtime_call_path, element)
        assert guest.call("echo-u8", (list(range(256)),)).values == (bytes(range(256)),)
        assert guest.call("tagged", ("t", b"\x00\xff" * 5000)).values == (b"\x00\xff" * 5000,)
        assert guest.call("names", (["a", "b", "c"],)).values == (3,)
        assert guest.call("outcome", ({"ok": b"\x00\xff"},)).values == ({"ok": b"\x00\xff"},)
        assert guest.call("outcome", ({"err": "no"},)).values == ({"err": "no"},)
        assert guest.call("tagged-record", ({"tag": 1, "data": b"\x05"},)).values == ({"tag": 1, "data": b"\x05"},)
        assert guest.call("lists", ([b"", bytes(range(256))],)).values == ([b"", bytes(range(256))],)
