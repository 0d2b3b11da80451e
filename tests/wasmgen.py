"""Assembles small, valid core modules for tests, without any toolchain."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ngixi_runtime.spec.wasm import uleb128

_TYPES = {"i32": 0x7F, "i64": 0x7E, "f32": 0x7D, "f64": 0x7C, "v128": 0x7B}
_ZERO = {"i32": b"\x41\x00", "i64": b"\x42\x00", "f32": b"\x43" + bytes(4), "f64": b"\x44" + bytes(8)}


@dataclass(frozen=True)
class Func:
    name: str
    params: Sequence[str] = ()
    results: Sequence[str] = ()
    body: bytes | None = None  # instructions before `end`; default returns zeros


@dataclass(frozen=True)
class Imp:
    module: str
    name: str
    params: Sequence[str] = ()
    results: Sequence[str] = ()


def _name(text: str) -> bytes:
    raw = text.encode()
    return uleb128(len(raw)) + raw


def _vec(items: Sequence[bytes]) -> bytes:
    return uleb128(len(items)) + b"".join(items)


def _section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + uleb128(len(body)) + body


def _functype(params: Sequence[str], results: Sequence[str]) -> bytes:
    return b"\x60" + _vec([bytes([_TYPES[p]]) for p in params]) + _vec([bytes([_TYPES[r]]) for r in results])


def module(
    *,
    imports: Sequence[Imp] = (),
    functions: Sequence[Func] = (),
    memory: tuple[int, int | None] | None = (1, 16),
    export_memory: bool = True,
    data: Sequence[tuple[int, bytes]] = (),
    start: str | None = None,
) -> bytes:
    """A module importing and exporting the given functions, with one memory holding `data` segments;
    `start` names the function that runs at instantiation."""
    signatures = [(tuple(i.params), tuple(i.results)) for i in imports]
    signatures += [(tuple(f.params), tuple(f.results)) for f in functions]
    distinct = list(dict.fromkeys(signatures))
    sections = [_section(1, _vec([_functype(*s) for s in distinct]))]
    import_entries = [
        _name(i.module) + _name(i.name) + b"\x00" + uleb128(distinct.index((tuple(i.params), tuple(i.results))))
        for i in imports
    ]
    sections.append(_section(2, _vec(import_entries)))
    sections.append(
        _section(3, _vec([uleb128(distinct.index((tuple(f.params), tuple(f.results)))) for f in functions]))
    )
    if memory is not None:
        minimum, maximum = memory
        limits = b"\x00" + uleb128(minimum) if maximum is None else b"\x01" + uleb128(minimum) + uleb128(maximum)
        sections.append(_section(5, _vec([limits])))
    exports = [_name(f.name) + b"\x00" + uleb128(len(imports) + n) for n, f in enumerate(functions)]
    if memory is not None and export_memory:
        exports.append(_name("memory") + b"\x02\x00")
    sections.append(_section(7, _vec(exports)))
    if start is not None:
        sections.append(_section(8, uleb128(len(imports) + [f.name for f in functions].index(start))))
    bodies = []
    for f in functions:
        code = (f.body if f.body is not None else b"".join(_ZERO[r] for r in f.results)) + b"\x0b"
        body = b"\x00" + code  # no locals
        bodies.append(uleb128(len(body)) + body)
    sections.append(_section(10, _vec(bodies)))
    if data:
        segments = [b"\x00\x41" + _sleb(offset) + b"\x0b" + uleb128(len(raw)) + raw for offset, raw in data]
        sections.append(_section(11, _vec(segments)))
    return b"\0asm" + struct.pack("<I", 1) + b"".join(sections)


@dataclass(frozen=True)
class I64:
    value: int


def call_import(index: int, *args: int | I64) -> bytes:
    """Instructions that push i32 (or `I64`) constants and call imported function `index`."""
    return push(*args) + b"\x10" + uleb128(index)


def push(*args: int | I64) -> bytes:
    return b"".join(b"\x42" + _sleb(a.value) if isinstance(a, I64) else b"\x41" + _sleb(a) for a in args)


def load_i32(address: int) -> bytes:
    """Instructions that push the i32 stored at `address`."""
    return push(address) + b"\x28\x02\x00"


DROP = b"\x1a"


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


ADD_BODY = b"\x20\x00\x20\x01\x6a"  # local.get 0, local.get 1, i32.add
