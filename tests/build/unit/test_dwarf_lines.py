"""A C or Zig guest's DWARF line table, turned into the source map a dev bundle's traps are located with."""

from __future__ import annotations

import pytest

from ngixi_build.toolchains.dwarf_lines import LineRow, line_rows, with_line_source_map, without_debug_sections
from ngixi_runtime.spec.sourcemap import SOURCE_MAP_SECTION, trap_location
from ngixi_runtime.spec.wasm import custom_section, custom_sections, function_bodies, uleb128

OPCODE_LENGTHS = bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1])
SET_ADDRESS, END_SEQUENCE = b"\x00\x05\x02", b"\x00\x01\x01"
ADVANCE_LINE, SET_COLUMN, SET_FILE, COPY = b"\x03", b"\x05", b"\x04", b"\x01"


def program(file: int, address: int) -> bytes:
    """Line 10 column 5 at `address`, line 12 column 3 two bytes on (a special opcode), in `file`."""
    special = 13 + (12 - 10 - -5) + 14 * 2  # opcode base + (line delta - line base) + line range * address delta
    return (
        SET_ADDRESS + address.to_bytes(4, "little") + SET_FILE + bytes([file]) + ADVANCE_LINE + bytes([9])
        + SET_COLUMN + bytes([5]) + COPY + SET_COLUMN + bytes([3]) + bytes([special]) + END_SEQUENCE
    )  # fmt: skip


def unit(version: int, files: bytes, body: bytes) -> bytes:
    """A line table unit: its header (minimum length 1, line base -5, line range 14, opcode base 13) and `body`."""
    rules = bytes([1]) + (bytes([1]) if version >= 4 else b"") + bytes([1, 0xFB, 14, 13]) + OPCODE_LENGTHS + files
    head = version.to_bytes(2, "little") + (bytes([4, 0]) if version >= 5 else b"")
    rest = head + len(rules).to_bytes(4, "little") + rules + body
    return len(rest).to_bytes(4, "little") + rest


def v4_files(directory: str, name: str) -> bytes:
    return directory.encode() + b"\0\0" + name.encode() + b"\0\x01\0\0\0"


def v5_files(directory: str, name: str) -> bytes:
    """Directory 0 is the compilation's own; file 0 names the directory 1 (a DW_FORM_string path, a udata index)."""
    formats = bytes([1, 1, 0x08])
    directories = formats + bytes([2]) + b".\0" + directory.encode() + b"\0"
    return directories + bytes([2, 1, 0x08, 2, 0x0F, 1]) + name.encode() + b"\0\x01"


def keep_guest(path: str) -> str | None:
    return path if path.startswith("guests/c/") else None


@pytest.mark.parametrize(
    ("table", "file"),
    [
        (lambda: unit(4, v4_files("guests/c", "main.c"), program(1, 16)), 1),
        (lambda: unit(5, v5_files("guests/c", "main.c"), program(0, 16)), 0),
    ],
    ids=["dwarf4", "dwarf5"],
)
def test_rows_of_the_kept_files_with_line_column_and_address(table: object, file: int) -> None:
    assert callable(table)
    rows = line_rows({".debug_line": table()}, keep_guest)
    assert rows == [LineRow(16, "guests/c/main.c", 10, 5), LineRow(18, "guests/c/main.c", 12, 3)]


def test_a_unit_of_no_kept_file_is_left_out() -> None:
    libc = unit(4, v4_files("/zig/lib/libc", "string.c"), program(1, 0))
    assert line_rows({".debug_line": libc + unit(4, v4_files("guests/c", "main.c"), program(1, 16))}, keep_guest) == [
        LineRow(16, "guests/c/main.c", 10, 5),
        LineRow(18, "guests/c/main.c", 12, 3),
    ]


def module_with_dwarf(line_table: bytes, module_name: bytes = b"") -> bytes:
    """One function (index 0) of five bytes, its name `add`, and a DWARF line table; the module's own name, if
    given, as the linker writes it (its output file's name)."""
    types = b"\x01\x60\x00\x00"
    code_body = b"\x01" + bytes([5]) + b"\x00\x00\x01\x01\x0b"  # no locals, unreachable, nop, nop, end
    sections = (
        b"\x01" + uleb128(len(types)) + types + b"\x03\x02\x01\x00" + b"\x0a" + uleb128(len(code_body)) + code_body
    )
    names = b"\x01" + uleb128(6) + b"\x01\x00\x03add"
    if module_name:
        names = b"\x00" + uleb128(len(module_name) + 1) + uleb128(len(module_name)) + module_name + names
    return b"\0asm\x01\0\0\0" + sections + custom_section(".debug_line", line_table) + custom_section("name", names)


def test_a_dev_modules_trap_names_the_guests_file_and_line_and_the_dwarf_is_dropped() -> None:
    # DWARF addresses count from the code section's body: its count, the body's size, no locals, then
    # `unreachable` at 3 (line 10) and the second `nop` at 5 (line 12).
    wasm = module_with_dwarf(unit(4, v4_files("guests/c", "main.c"), program(1, 3)))
    mapped = with_line_source_map(wasm, keep_guest, source="c.wasm")
    sections = custom_sections(mapped, source="c.wasm")
    assert ".debug_line" not in sections and "name" in sections and SOURCE_MAP_SECTION in sections
    ((start, _),) = function_bodies(mapped, source="c.wasm").values()
    assert trap_location(mapped, [(0, start + 1)], source="c.wasm") == "at guests/c/main.c:10:5 (in add)"
    assert trap_location(mapped, [(0, start + 3)], source="c.wasm") == "at guests/c/main.c:12:3 (in add)"


def test_a_release_module_keeps_its_names_without_dwarf() -> None:
    wasm = module_with_dwarf(unit(4, v4_files("guests/c", "main.c"), program(1, 1)))
    stripped = without_debug_sections(wasm, source="c.wasm")
    assert set(custom_sections(stripped, source="c.wasm")) == {"name"}
    assert trap_location(stripped, [(0, 30)], source="c.wasm") == "in add"


def stripped_of_debug_info(wasm: bytes) -> bytes:
    return without_debug_sections(wasm, source="c.wasm")


def mapped_to_lines(wasm: bytes) -> bytes:
    return with_line_source_map(wasm, keep_guest, source="c.wasm")


def test_the_linkers_temporary_output_name_is_dropped_so_builds_anywhere_give_the_same_module() -> None:
    line_table = unit(4, v4_files("guests/c", "main.c"), program(1, 1))
    built_here = module_with_dwarf(line_table, module_name=b".c-counter.3qsexz4j.wasm")
    built_elsewhere = module_with_dwarf(line_table, module_name=b".c-counter.ac3zlxh9.wasm")
    for strip in (stripped_of_debug_info, mapped_to_lines):
        assert strip(built_here) == strip(built_elsewhere)
    assert stripped_of_debug_info(built_here) == stripped_of_debug_info(module_with_dwarf(line_table))
    assert trap_location(stripped_of_debug_info(built_here), [(0, 30)], source="c.wasm") == "in add"


def test_a_line_table_it_cannot_read_leaves_the_module_without_a_map() -> None:
    wasm = module_with_dwarf(b"\x08\0\0\0\x09\0" + bytes(6))  # version 9
    assert set(custom_sections(with_line_source_map(wasm, keep_guest, source="c.wasm"), source="c.wasm")) == {"name"}
