"""The DWARF line table of a C or Zig guest's module (`.debug_line`, versions 2 to 5), read into the source map
a trap's frames are looked up in (spec/sourcemap.py), so that a dev build names the guest's own file and line.

Only what a line table needs is read: each unit's header (its directories and files) and its line program.
Addresses in a wasm module's DWARF are offsets into the code section's body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from ngixi_runtime.spec.sourcemap import SOURCE_MAP_SECTION, vlq
from ngixi_runtime.spec.wasm import custom_section, custom_sections, section_spans

_PATH, _DIRECTORY_INDEX = 1, 2  # DW_LNCT_path, DW_LNCT_directory_index
_STRING, _LINE_STRP, _STRP = 0x08, 0x1F, 0x0E
_FIXED_FORMS = {0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1E: 16}  # data1, data2, data4, data8, data16
_UDATA, _BLOCK = 0x0F, 0x09
_CODE = 10
_NAME_SECTION = b"name"
_MODULE_NAME = 0  # the name section's subsection that names the module itself
DEBUG_PREFIX = ".debug_"


class DwarfError(ValueError):
    """The line table is not one this reader understands."""


Keep = Callable[[str], "str | None"]  # a path as the compiler recorded it -> the path to show, or None


@dataclass(frozen=True)
class LineRow:
    address: int  # an offset into the code section's body
    path: str  # as `Keep` shows it
    line: int
    column: int


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def fixed(self, size: int) -> int:
        if self.pos + size > len(self.data):
            raise DwarfError("truncated line table")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "little")
        self.pos += size
        return value

    def signed_byte(self) -> int:
        value = self.fixed(1)
        return value - 256 if value > 127 else value

    def uleb(self) -> int:
        return self._leb(signed=False)

    def sleb(self) -> int:
        return self._leb(signed=True)

    def _leb(self, *, signed: bool) -> int:
        value = shift = 0
        while True:
            byte = self.fixed(1)
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value - (1 << shift) if signed and byte & 0x40 else value

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DwarfError("unterminated string")
        text = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return text


def _string_at(section: bytes, offset: int) -> str:
    return _Reader(section, offset).cstring()


def line_rows(sections: dict[str, bytes], keep: Keep) -> list[LineRow]:
    """The rows of the line programs whose path `keep` names, with that name (line 0, code of no source line,
    left out). A unit with no such file is skipped unread: a guest's C library brings many."""
    data = sections.get(".debug_line", b"")
    reader, rows = _Reader(data), list[LineRow]()
    while reader.pos < len(data):
        length = reader.fixed(4)
        offset_size = 8 if length == 0xFFFFFFFF else 4
        if offset_size == 8:
            length = reader.fixed(8)
        end = reader.pos + length
        rows += _unit(_Reader(data[:end], reader.pos), offset_size, sections, keep)
        reader.pos = end
    return rows


def _unit(reader: _Reader, offset_size: int, sections: dict[str, bytes], keep: Keep) -> Iterator[LineRow]:
    version = reader.fixed(2)
    if not 2 <= version <= 5:
        raise DwarfError(f"line table version {version}")
    address_size = reader.fixed(1) if version >= 5 else 4
    if version >= 5:
        reader.fixed(1)  # segment selector size
    program = reader.fixed(offset_size)
    program += reader.pos
    minimum_length = reader.fixed(1)
    if version >= 4:
        reader.fixed(1)  # maximum operations per instruction: 1 outside VLIW
    reader.fixed(1)  # default is_stmt
    line_base, line_range, opcode_base = reader.signed_byte(), reader.fixed(1), reader.fixed(1)
    operand_counts = [reader.fixed(1) for _ in range(opcode_base - 1)]
    files = [keep(f) for f in (_files_v5(reader, offset_size, sections) if version >= 5 else _files_v4(reader))]
    if not any(files):
        return
    reader.pos = program
    yield from _program(reader, _State(files, minimum_length, line_base, line_range, opcode_base, operand_counts),
                        address_size)  # fmt: skip


def _files_v4(reader: _Reader) -> list[str]:
    directories = [""]
    while (directory := reader.cstring()) != "":
        directories.append(directory)
    files = [""]  # file numbers start at 1
    while (name := reader.cstring()) != "":
        index = reader.uleb()
        reader.uleb(), reader.uleb()  # modification time, length
        files.append(_joined(directories, index, name))
    return files


def _files_v5(reader: _Reader, offset_size: int, sections: dict[str, bytes]) -> list[str]:
    directories = [str(entry.get(_PATH, "")) for entry in _entries(reader, offset_size, sections)]
    return [
        _joined(directories, int(entry.get(_DIRECTORY_INDEX, 0)), str(entry.get(_PATH, "")))
        for entry in _entries(reader, offset_size, sections)
    ]


def _entries(reader: _Reader, offset_size: int, sections: dict[str, bytes]) -> list[dict[int, str | int]]:
    formats = [(reader.uleb(), reader.uleb()) for _ in range(reader.fixed(1))]
    entries = []
    for _ in range(reader.uleb()):
        entries.append({content: _form(reader, form, offset_size, sections) for content, form in formats})
    return entries


def _form(reader: _Reader, form: int, offset_size: int, sections: dict[str, bytes]) -> str | int:
    if form == _STRING:
        return reader.cstring()
    if form in (_LINE_STRP, _STRP):
        section = ".debug_line_str" if form == _LINE_STRP else ".debug_str"
        return _string_at(sections.get(section, b""), reader.fixed(offset_size))
    if form in _FIXED_FORMS:
        return reader.fixed(_FIXED_FORMS[form])
    if form == _UDATA:
        return reader.uleb()
    if form == _BLOCK:
        reader.pos += reader.uleb()
        return 0
    raise DwarfError(f"form 0x{form:x} in a file entry")


def _joined(directories: list[str], index: int, name: str) -> str:
    if name.startswith("/") or not 0 <= index < len(directories):
        return name
    return str(PurePosixPath(directories[index]) / name)


@dataclass
class _State:
    files: list[str | None]
    minimum_length: int
    line_base: int
    line_range: int
    opcode_base: int
    operand_counts: list[int]
    address: int = 0
    file: int = 1
    line: int = 1
    column: int = 0

    def reset(self) -> None:
        self.address, self.file, self.line, self.column = 0, 1, 1, 0

    def row(self) -> LineRow | None:
        path = self.files[self.file] if 0 <= self.file < len(self.files) else None
        return LineRow(self.address, path, self.line, self.column) if path is not None and self.line else None


def _program(reader: _Reader, state: _State, address_size: int) -> Iterator[LineRow]:
    standard: dict[int, Callable[[], None]] = {
        2: lambda: setattr(state, "address", state.address + reader.uleb() * state.minimum_length),
        3: lambda: setattr(state, "line", state.line + reader.sleb()),
        4: lambda: setattr(state, "file", reader.uleb()),
        5: lambda: setattr(state, "column", reader.uleb()),
        8: lambda: setattr(
            state, "address", state.address + (255 - state.opcode_base) // state.line_range * state.minimum_length
        ),
        9: lambda: setattr(state, "address", state.address + reader.fixed(2)),
    }
    while reader.pos < len(reader.data):
        opcode = reader.fixed(1)
        if opcode >= state.opcode_base:
            adjusted = opcode - state.opcode_base
            state.address += adjusted // state.line_range * state.minimum_length
            state.line += state.line_base + adjusted % state.line_range
            row = state.row()
        elif opcode == 0:
            row = _extended(reader, state, address_size)
        elif opcode == 1:
            row = state.row()
        else:
            row = None
            action = standard.get(opcode)
            if action is not None:
                action()
            else:  # no operands (6, 7, 10, 11) or an opcode this reader does not know: skip its operands
                for _ in range(state.operand_counts[opcode - 1]):
                    reader.uleb()
        if row is not None:
            yield row


def _extended(reader: _Reader, state: _State, address_size: int) -> LineRow | None:
    size = reader.uleb()
    end = reader.pos + size
    sub = reader.fixed(1) if size else 0
    if sub == 1:  # end of sequence
        state.reset()
    elif sub == 2:
        state.address = reader.fixed(address_size)
    reader.pos = end
    return None


def source_map(rows: list[LineRow], code_start: int) -> bytes | None:
    """A version 3 source map of the rows (its columns are module offsets); None without rows."""
    sources: dict[str, int] = {}
    segments, previous = [], (0, 0, 0, 0)
    for row in sorted(rows, key=lambda r: r.address):
        source = sources.setdefault(row.path, len(sources))
        current = (code_start + row.address, source, row.line - 1, max(row.column, 1) - 1)
        segments.append("".join(vlq(now - before) for now, before in zip(current, previous, strict=True)))
        previous = current
    if not segments:
        return None
    return json.dumps({"version": 3, "sources": list(sources), "mappings": ",".join(segments)}).encode()


def code_section_start(wasm: bytes, *, source: str) -> int:
    """Where the code section's body starts (the offset DWARF addresses in a wasm module count from)."""
    return next((body for section_id, _, body, _ in section_spans(wasm, source=source) if section_id == _CODE), 0)


def without_debug_sections(wasm: bytes, *, source: str) -> bytes:
    """The module without its `.debug_*` custom sections (DWARF) and without the module's own name (the linker's
    output file, a temporary one: a build elsewhere would differ by it); every other section byte for byte."""
    out = bytearray(wasm[:8])
    for section_id, start, body, end in section_spans(wasm, source=source):
        if section_id == 0:
            reader = _Reader(wasm[:end], body)
            length = reader.uleb()
            name = wasm[reader.pos : reader.pos + length]
            if name.startswith(DEBUG_PREFIX.encode()):
                continue
            if name == _NAME_SECTION:
                out += custom_section(_NAME_SECTION.decode(), _without_module_name(wasm[reader.pos + length : end]))
                continue
        out += wasm[start:end]
    return bytes(out)


def _without_module_name(names: bytes) -> bytes:
    """The name section's subsections but the module name (subsection 0)."""
    reader, kept = _Reader(names), bytearray()
    while reader.pos < len(names):
        start, subsection = reader.pos, reader.fixed(1)
        size = reader.uleb()
        reader.pos += size
        if subsection != _MODULE_NAME:
            kept += names[start : reader.pos]
    return bytes(kept)


def with_line_source_map(wasm: bytes, keep: Keep, *, source: str) -> bytes:
    """The module without DWARF, plus a source map of its line table's rows in the files `keep` names (it returns
    the path to show, or None to leave the file out), if there are any."""
    try:
        rows = line_rows(custom_sections(wasm, source=source), keep)
    except DwarfError:
        rows = []
    slim = without_debug_sections(wasm, source=source)
    mapped = source_map(rows, code_section_start(slim, source=source))
    return slim + custom_section(SOURCE_MAP_SECTION, mapped) if mapped is not None else slim
