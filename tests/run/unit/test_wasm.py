from __future__ import annotations

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.wasm import MemoryLimits, Signature, read_module_info
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
