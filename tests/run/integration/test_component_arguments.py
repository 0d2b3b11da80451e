"""The same component export called in-process and isolated with arguments of odd Python types: both take or
refuse each alike (an isolated tenant's arguments cross to its child as JSON, where a set became a list)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import wasmtime

from ngixi_runtime.errors import NgixiError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from tests.conftest import make_bundle, make_key

pytestmark = pytest.mark.integration

# Each export answers a number: a list's length, an s32 itself, a tuple's sum, flags' bits, a record's quantity.
COMPONENT = """(component
  (core module $m (memory (export "memory") 1 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $at i32)
      (local.set $at (global.get $next))
      (global.set $next (i32.add (global.get $next) (local.get 3)))
      (local.get $at))
    (func (export "second") (param i32 i32) (result i32) (local.get 1))
    (func (export "first") (param i32) (result i32) (local.get 0))
    (func (export "sum") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "third") (param i32 i32 i32) (result i32) (local.get 2)))
  (core instance $i (instantiate $m))
  (type $flags (flags "cold" "bulky"))
  (export $handling "handling" (type $flags))
  (type $item (record (field "name" string) (field "quantity" u32)))
  (export $item-type "item" (type $item))
  (func (export "numbers") (param "xs" (list u32)) (result u32)
    (canon lift (core func $i "second") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "bytes") (param "data" (list u8)) (result u32)
    (canon lift (core func $i "second") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "number") (param "n" s32) (result u32) (canon lift (core func $i "first")))
  (func (export "pair") (param "p" (tuple u32 u32)) (result u32) (canon lift (core func $i "sum")))
  (func (export "needs") (param "h" $handling) (result u32) (canon lift (core func $i "first")))
  (func (export "quantity") (param "it" $item-type) (result u32)
    (canon lift (core func $i "third") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))"""
MANIFEST = '[guest]\nname = "g"\nversion = "0.1.0"\nabi = "component"\n\n'
MANIFEST += "".join(f"[exports.{name}]\n" for name in ("numbers", "bytes", "number", "pair", "needs", "quantity"))
MANIFEST += "\n[limits]\nmemory_pages = 1\ntimeout_ms = 2000\n"


def _generator() -> Iterator[int]:
    yield from (1, 2)


ODD_ARGUMENTS: list[tuple[str, Any]] = [
    ("numbers", {1, 2}),
    ("numbers", frozenset({1, 2})),
    ("numbers", (1, 2)),
    ("numbers", range(2)),
    ("numbers", {1: 2}),
    ("numbers", [True, 2]),
    ("numbers", [1.0, 2]),
    ("bytes", b"ab"),
    ("bytes", bytearray(b"ab")),
    ("bytes", memoryview(b"ab")),
    ("bytes", {1, 2}),
    ("bytes", [1, 2]),
    ("number", True),
    ("number", 2.0),
    ("number", 2.5),
    ("number", "2"),
    ("number", b"2"),
    ("number", bytearray(b"2")),
    ("numbers", "generator"),
    ("needs", "generator"),
    ("pair", [1, 2]),
    ("pair", {1, 2}),
    ("pair", (1, 2)),
    ("needs", {"cold"}),
    ("needs", frozenset({"cold", "bulky"})),
    ("needs", ("bulky",)),
    ("needs", {"cold": True}),
    ("quantity", {"name": "tea", "quantity": 3}),
    ("quantity", {"name": "tea", "quantity": 3, 1: 2}),
    ("quantity", {"name": "tea", "quantity": 3, ("q",): 2}),
    ("quantity", {"name": "tea", "quantity": {3}}),
    # keys naming no field that hold sets (a CrossedIterable in the child, shown by its address there)
    ("quantity", {"name": "tea", "quantity": 3, frozenset({"a", "b", "c"}): 2}),
    ("quantity", {"name": "tea", "quantity": 3, (range(2),): 2}),
    # a pair of surrogates in a str, which JSON's reader joined into one character in the child (taken there)
    ("quantity", {"name": "\ud800\udc00", "quantity": 3}),
    ("quantity", {"name": "tea", "quantity": 3, "\ud83d\ude00": 2}),
    ("needs", ["cold", "\ud83d\ude00"]),
]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessTenant, IsolatedTenant]]:
    directory = tmp_path_factory.mktemp("arguments")
    keys = make_key(directory / "keys")
    bundle = make_bundle(directory, keys.key, wasm=bytes(wasmtime.wat2wasm(COMPONENT)), manifest=MANIFEST, guest="g")
    with (
        open_tenant(bundle, trust_file=keys.trust, isolated=False) as in_process,
        open_tenant(bundle, trust_file=keys.trust, isolated=True) as isolated,
    ):
        assert isinstance(in_process, InProcessTenant) and isinstance(isolated, IsolatedTenant)
        yield in_process, isolated


def _outcome(tenant: InProcessTenant | IsolatedTenant, export: str, value: Any) -> tuple[Any, ...] | str:
    try:
        return tenant.call(export, (value,)).values
    except NgixiError as refused:
        return f"{type(refused).__name__}: {refused}"


@pytest.mark.parametrize(  # ids by position: a set's or memoryview's repr differs between xdist's workers
    ("export", "value"),
    ODD_ARGUMENTS,
    ids=[f"{export}-{type(value).__name__}-{i}" for i, (export, value) in enumerate(ODD_ARGUMENTS)],
)
def test_in_process_and_isolated_take_or_refuse_each_argument_alike(
    tenants: tuple[InProcessTenant, IsolatedTenant], export: str, value: Any
) -> None:
    in_process, isolated = tenants
    # An iterator is used up by the call: each tenant is given its own.
    first, second = (_generator(), _generator()) if value == "generator" else (value, value)
    assert _outcome(isolated, export, second) == _outcome(in_process, export, first)
