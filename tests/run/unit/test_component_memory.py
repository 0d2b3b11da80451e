"""A component's memory floor, read from the core modules it embeds, against limits.memory_pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.engines.base import RunLimits
from ngixi_runtime.engines.wasmtime_component import _memory_hint
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.component_memory import component_memory_problems
from ngixi_runtime.guest.manifest import load_manifest
from ngixi_runtime.spec.wasm import MAX_SECTIONS, component_core_modules, component_memory_floor, uleb128
from tests.wasmgen import module

HEADER = b"\0asm\x0d\x00\x01\x00"


def _section(section_id: int, body: bytes) -> bytes:
    assert len(body) < 0x80 * 0x80
    size = bytes([len(body) & 0x7F | 0x80, len(body) >> 7])
    return bytes([section_id]) + size + body


def component(*sections: bytes) -> bytes:
    return HEADER + b"".join(sections)


def test_core_modules_of_nested_components_count() -> None:
    outer = module(memory=(3, None))
    inner = component(_section(1, module(memory=(200, None))))
    wasm = component(_section(1, outer), _section(4, inner))
    assert component_core_modules(wasm, source="c") == [outer, module(memory=(200, None))]
    assert component_memory_floor(wasm, source="c") == 200


def test_components_nested_deeper_than_pythons_recursion_are_read_in_order() -> None:
    """Wasmtime loads a component nested 999 deep: reading it by recursion was a RecursionError at a trap (which
    looks for the guest's source map in its core modules) and at validation."""
    wasm = component(_section(1, module(memory=(1, None))))
    for depth in range(2, 1_500):
        wasm = component(_section(1, module(memory=(depth, None))), b"\x04" + uleb128(len(wasm)) + wasm)
    modules = component_core_modules(wasm, source="c")
    assert modules[0] == module(memory=(1_499, None)) and modules[-1] == module(memory=(1, None))
    assert len(modules) == 1_499 and component_memory_floor(wasm, source="c") == 1_499


def test_a_component_without_memories_has_no_floor() -> None:
    assert component_memory_floor(component(_section(1, module(memory=None))), source="c") == 0


def test_a_core_module_is_not_a_component() -> None:
    with pytest.raises(InvalidInput, match="missing the component header"):
        component_memory_floor(module(), source="guest.wasm")


def test_a_limit_below_the_floor_names_the_field_and_the_pages_needed(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('[guest]\nname = "big"\nversion = "0.1.0"\nabi = "component"\n\n[limits]\nmemory_pages = 16\n')
    wasm = component(_section(1, module(memory=(197, None))))
    assert component_memory_problems(load_manifest(path), wasm, source="big") == [
        f"{path}: limits.memory_pages: 16 pages, but the component's memory starts at 197 pages; "
        "raise limits.memory_pages to at least 197"
    ]
    path.write_text(path.read_text().replace("= 16", "= 197"))
    assert component_memory_problems(load_manifest(path), wasm, source="big") == []


def test_wasmtime_s_refusal_reads_in_the_manifest_s_terms() -> None:
    limits = RunLimits(timeout_ms=1000, memory_pages=16)
    assert _memory_hint("memory minimum size of 197 pages exceeds memory limits", limits) == (
        "limits.memory_pages: 16 pages, but the component's memory starts at 197 pages; "
        "raise limits.memory_pages to at least 197"
    )
    assert _memory_hint("something else", limits) == "something else"


def test_a_components_instances_hold_as_many_tables_together_as_a_core_guest() -> None:
    """Each of a component's 64 core instances could define 8 tables, each of `table_elements` (a million for
    limits.memory_pages = 1024, which a JavaScript or Python component needs): 60 instances of a module of 8 such
    tables, filled, held 3.9 GB of the host's memory, against 256 MiB for all four memories. A component's store holds
    MAX_TABLES tables in all, as a core guest's."""
    wasmtime = pytest.importorskip("wasmtime")
    from wasmtime import component as wasmtime_component

    from ngixi_runtime.engines.wasmtime import limit_store
    from ngixi_runtime.engines.wasmtime_component import COMPONENT_INSTANCES, COMPONENT_MEMORIES
    from ngixi_runtime.guest.limits import MAX_TABLES

    def tables_in(instances: int) -> bytes:
        made = "".join("(core instance (instantiate $m))" for _ in range(instances))
        return bytes(wasmtime.wat2wasm(f"(component (core module $m (table 1 funcref)) {made})"))

    config = wasmtime.Config()
    config.wasm_component_model = True
    engine = wasmtime.Engine(config)
    for instances in (MAX_TABLES, MAX_TABLES + 1):
        store = wasmtime.Store(engine)
        limit_store(store, RunLimits(1000, 1024), memories=COMPONENT_MEMORIES, instances=COMPONENT_INSTANCES)
        made = wasmtime_component.Component(engine, tables_in(instances))
        if instances == MAX_TABLES:
            wasmtime_component.Linker(engine).instantiate(store, made)
        else:
            with pytest.raises(wasmtime.WasmtimeError, match="table"):
                wasmtime_component.Linker(engine).instantiate(store, made)


def test_a_components_nested_components_hold_as_many_sections_together_as_one_module() -> None:
    """Each level was held to MAX_SECTIONS alone, so components nested in components multiplied what a trap reads."""
    empty = b"\x00\x01\x00"  # an empty custom section
    nested = b"\x04" + uleb128(len(component(empty * 6_000))) + component(empty * 6_000)
    assert component_core_modules(component(empty * 3_000, nested), source="c") == []
    with pytest.raises(InvalidInput, match=f"c: it has more than {MAX_SECTIONS} sections"):
        component_core_modules(component(empty * 4_000, nested), source="c")
