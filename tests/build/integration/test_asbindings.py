"""The AssemblyScript bindings generated from the WIT catalog (compiled for real in test_component.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ngixi_build.toolchains.asbindings import CABI, INDEX, generate_bindings
from ngixi_build.toolchains.asexports import GLUE, generate_exports
from ngixi_build.toolchains.wit import Catalog, WitError, World, load_catalog, parse_resolved, parse_world
from tests.conftest import REPO


@pytest.fixture(scope="module")
def index() -> str:
    return generate_bindings(load_catalog(REPO / "wit"))[INDEX]


def one_interface(function: dict[str, Any], types: list[dict[str, Any]]) -> Catalog:
    return parse_resolved(
        {
            "packages": [{"name": "x:y@1.0.0"}],
            "interfaces": [{"name": "i", "functions": {function["name"]: function}}],
            "types": types,
            "worlds": [],
        }
    )


def test_every_function_is_imported_from_its_interface(index: str) -> None:
    catalog = load_catalog(REPO / "wit")
    externals = set(re.findall(r'@external\("([^"]+)", "([^"]+)"\)', index))
    expected = {(catalog.qualified(i.name), f.name) for i in catalog.interfaces for f in i.functions}
    assert externals == expected


def test_strings_are_lowered_to_utf8_pointer_and_length(index: str) -> None:
    assert "export function write(message: string): void {" in index
    # encoded to UTF-8 and pinned while the host reads it
    assert re.search(
        r"const (__s\d+) = __keep\(String.UTF8.encode\(__v\d+\)\);\n"
        r"\s*__log_write\(changetype<usize>\(\1\), \1.byteLength\);",
        index,
    )


def test_results_come_back_through_a_return_area_and_host_lists_are_freed(index: str) -> None:
    assert "export function get(namespace_: string, key: Uint8Array): Result<Uint8Array, types.ErrorCode> {" in index
    assert "const ret = memory.data(12, 4);" in index
    assert "heap.free(data)" in index


def test_names_are_camel_case_and_keywords_are_escaped(index: str) -> None:
    assert "export function writeAt(level: log.Level, message: string): void {" in index
    assert "export function delete_(" in index
    assert "export enum ErrorCode { Denied = 0," in index


def test_the_allocator_entry_exports_cabi_realloc() -> None:
    assert "export function cabi_realloc(" in generate_bindings(load_catalog(REPO / "wit"))[CABI]


def test_resource_parameters_are_refused_by_name() -> None:
    handle = {"name": "file", "kind": {"handle": {"own": 1}}, "owner": {"interface": 0}}
    catalog = one_interface({"name": "draw", "params": [{"name": "at", "type": 0}]}, [handle])
    with pytest.raises(WitError, match=r"x:y@1.0.0 i.draw: file: resources and async types are not supported"):
        generate_bindings(catalog)


def test_records_options_and_variants_are_lowered_flat_to_host_functions() -> None:
    point = {"name": "point", "kind": {"record": {"fields": [{"name": "x", "type": "f32"}]}}, "owner": {"interface": 0}}
    maybe = {"name": None, "kind": {"option": "s64"}, "owner": None}
    either = {"name": None, "kind": {"result": {"ok": "f32", "err": "u8"}}, "owner": None}
    params = [{"name": "at", "type": 0}, {"name": "m", "type": 1}, {"name": "e", "type": 2}]
    text = generate_bindings(one_interface({"name": "draw", "params": params}, [point, maybe, either]))[INDEX]
    assert "declare function __i_draw(p0: f32, p1: i32, p2: i64, p3: i32, p4: i32): void;" in text
    assert "reinterpret<i32>(" in text  # the f32 payload joined with the u8 error into one i32


def test_scalar_results_are_returned_directly() -> None:
    catalog = one_interface({"name": "now", "params": [], "result": "u64"}, [])
    text = generate_bindings(catalog)[INDEX]
    assert "declare function __i_now(): i64;" in text
    assert "return <u64>(flat);" in text


def guest_world(exports: dict[str, Any], types: list[dict[str, Any]]) -> World:
    return parse_world(
        {
            "packages": [{"name": "x:y@1.0.0"}, {"name": "g:w"}],
            "interfaces": [],
            "types": types,
            "worlds": [{"name": "w", "package": 1, "exports": {n: {"function": f} for n, f in exports.items()}}],
        },
        "w",
    )


def test_export_glue_lifts_flat_arguments_and_returns_one_core_value_directly() -> None:
    world = guest_world({"count": {"name": "count", "params": [{"name": "s", "type": "string"}], "result": "u32"}}, [])
    glue = generate_exports(world, implementation="../g/index")[GLUE]
    assert "export function count(p0: i32, p1: i32): i32 {" in glue
    assert "return <i32>__impl_count(__string(<usize>p0, <u32>p1));" in glue
    assert "export function cabi_post_count(p0: i32): void {" in glue
    assert 'import { count as __impl_count } from "../g/index";' in glue


def test_export_glue_takes_more_than_16_core_values_through_memory() -> None:
    params = [{"name": f"a{i}", "type": "string"} for i in range(9)]
    world = guest_world({"join": {"name": "join", "params": params, "result": "string"}}, [])
    glue = generate_exports(world, implementation="./index")[GLUE]
    assert "export function join(args: i32): i32 {" in glue
    assert "heap.free(<usize>args);" in glue


@pytest.mark.parametrize(
    ("name", "types", "param", "message"),
    [
        ("parse-line", [], "string", "export parse-line: a component guest's export name is lowercase letters"),
        ("open", [{"name": "file", "kind": {"resource": {}}, "owner": None}], 0, "file: resources and async types"),
    ],
)
def test_exports_the_glue_cannot_make_are_refused_by_name(
    name: str, types: list[dict[str, Any]], param: Any, message: str
) -> None:
    world = guest_world({name: {"name": name, "params": [{"name": "v", "type": param}]}}, types)
    with pytest.raises(WitError, match=message):
        generate_exports(world, implementation="./index")
