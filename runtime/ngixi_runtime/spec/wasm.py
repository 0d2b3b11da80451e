"""Reads what a .wasm module imports, exports and declares, without compiling it."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.printable import clipped
from ngixi_runtime.records import NamedTuple

ExternKind = Literal["func", "table", "memory", "global", "tag"]

_VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
# The reference types of the exception-handling, function-references and GC proposals, written as
# one byte (`exnref`, e.g., which C++ built with wasm exceptions puts in its function types).
_ABSTRACT_HEAP_TYPES = {
    0x74: "nullexn",
    0x73: "nofunc",
    0x72: "noextern",
    0x71: "none",
    0x70: "func",
    0x6F: "extern",
    0x6E: "any",
    0x6D: "eq",
    0x6C: "i31",
    0x6B: "struct",
    0x6A: "array",
    0x69: "exn",
}
_REF_NULL, _REF = 0x63, 0x64
_SHARED = 0x02  # of a memory's limits flags
_PAGE_SIZE = 0x08  # of a memory's limits flags: the custom page sizes proposal's (a page size follows the bounds)
_CUSTOM_PAGE_SIZES = (
    "a memory declares its own page size (the custom page sizes proposal), which neither engine runs:"
    " build it with WebAssembly's 64 KiB pages"
)
_KINDS: dict[int, ExternKind] = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
_TYPE, _IMPORT, _FUNCTION, _TABLE, _MEMORY, _GLOBAL, _EXPORT, _ELEMENT, _CODE = 1, 2, 3, 4, 5, 6, 7, 9, 10


class Signature(NamedTuple):
    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


class Import(NamedTuple):
    module: str
    name: str
    kind: ExternKind
    signature: Signature | None

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


class Export(NamedTuple):
    name: str
    kind: ExternKind
    signature: Signature | None


class MemoryLimits(NamedTuple):
    minimum_pages: int
    maximum_pages: int | None
    shared: bool = False  # the threads proposal's shared memory


class TableLimits(NamedTuple):
    minimum_elements: int
    maximum_elements: int | None


class ModuleInfo(NamedTuple):
    """What a module imports and exports, and the memories and tables it declares (or, read from an
    engine's compiled module, those it imports or exports: an engine does not show the others)."""

    imports: tuple[Import, ...]
    exports: tuple[Export, ...]
    memories: tuple[MemoryLimits, ...]
    tables: tuple[TableLimits, ...] = ()

    def export(self, name: str) -> Export | None:
        return next((e for e in self.exports if e.name == name), None)


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> InvalidInput:
        return InvalidInput(f"{self.source}: not a valid WebAssembly module: {what} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def peek(self) -> int | None:
        """The next byte, not consumed; None at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else None

    def u32(self) -> int:
        return self._unsigned(last_shift=28)

    def u64(self) -> int:
        return self._unsigned(last_shift=63)

    def _unsigned(self, *, last_shift: int) -> int:
        result, shift = 0, 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > last_shift:
                raise self.fail("LEB128 integer too long")

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise self.fail("unexpected end")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def name(self) -> str:
        raw = self.take(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("name is not UTF-8") from None

    def valtype(self) -> str:
        code = self.byte()
        if code in _VALTYPES:
            return _VALTYPES[code]
        if code in _ABSTRACT_HEAP_TYPES:
            return f"{_ABSTRACT_HEAP_TYPES[code]}ref"
        if code in (_REF_NULL, _REF):
            return f"(ref {'null ' if code == _REF_NULL else ''}{self.heap_type()})"
        raise self.fail(f"unknown value type 0x{code:02x}")

    def heap_type(self) -> str:
        """An abstract heap type's name, or a concrete one's type index (a non-negative s33)."""
        code = self.peek()
        if code in _ABSTRACT_HEAP_TYPES:
            self.pos += 1
            return _ABSTRACT_HEAP_TYPES[code]
        return str(self.u32())

    def limits(self) -> tuple[int, int | None, int]:
        """A limits record and its flags; a memory64 record's wider bounds read as LEB128 integers all the same."""
        flags = self.limits_flags()
        minimum = self.u64()
        maximum = self.u64() if flags & 1 else None
        return minimum, maximum, flags

    def limits_flags(self) -> int:
        """A limits record's flags: a maximum (1), shared (2), 64-bit (4); a page size (8) is refused by name."""
        flags = self.byte()
        if flags & _PAGE_SIZE and not flags & ~0x0F:
            raise InvalidInput(f"{self.source}: {_CUSTOM_PAGE_SIZES}")
        if flags & ~0x07:
            raise self.fail(f"unknown limits flags 0x{flags:02x}")
        return flags

    def memory(self) -> MemoryLimits:
        minimum, maximum, flags = self.limits()
        return MemoryLimits(minimum, maximum, shared=bool(flags & _SHARED))

    def table(self) -> TableLimits:
        self.valtype()
        return TableLimits(*self.limits()[:2])


def custom_sections(data: bytes, *, source: str) -> dict[str, bytes]:
    """A module's custom sections by name (the first of each name); other sections are skipped unread."""
    found: dict[str, bytes] = {}
    for section_id, _, body in _sections(data, source):
        if section_id == 0:
            named = _Reader(body, source)
            name = named.name()
            found.setdefault(name, body[named.pos :])
    return found


_MODULE_HEADER = b"\0asm\x01\0\0\0"
# The most sections a module or component (each nested one apart) may have: the host reads them in Python at every
# load and every trap, and an empty custom section is 3 bytes (docs/performance.md, thirty-eighth pass); the largest
# of real programs seen have about 220 (a Python component's).
MAX_SECTIONS = 10_000
_TOO_MANY_SECTIONS = (
    f"it has more than {MAX_SECTIONS} sections, where toolchains write a few dozen; refused, as the host reads them at"
    " every load and every trap"
)
_COMPONENT_HEADER = b"\0asm\x0d\x00\x01\x00"
_HEADER_NAMES = {_MODULE_HEADER: "the \\0asm version 1 header", _COMPONENT_HEADER: "the component header"}


def section_spans(
    data: bytes, *, source: str, header: bytes = _MODULE_HEADER, within: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Each section of a module (a component: its `header`) after its checked header: its id, where it starts,
    where its body starts, where it ends; `within`: of the one that `data[start:end]` holds (a component's
    nested component), its places counted in `data`, with no copy of its bytes."""
    start, end = (0, len(data)) if within is None else within
    reader = _Reader(data, source)
    reader.pos = start
    if reader.take(len(header)) != header:
        raise reader.fail(f"missing {_HEADER_NAMES[header]}")
    sections = 0
    while reader.pos < end:
        sections += 1
        if sections > MAX_SECTIONS:
            raise InvalidInput(f"{source}: {_TOO_MANY_SECTIONS}")
        section_start, section_id = reader.pos, reader.byte()
        size = reader.u32()
        body = reader.pos
        if body + size > end:
            raise reader.fail("unexpected end")
        reader.pos += size
        yield section_id, section_start, body, reader.pos


def _sections(data: bytes, source: str) -> Iterator[tuple[int, int, bytes]]:
    """Each section of a module after its checked header: its id, where its body starts, its body."""
    for section_id, _, body, end in section_spans(data, source=source):
        yield section_id, body, data[body:end]


def function_bodies(data: bytes, *, source: str, up_to: int | None = None) -> dict[int, tuple[int, int]]:
    """Where each defined function's body lies in the module, (start, end) byte offsets, by function index (with
    `up_to`, of the functions up to that index)."""
    imported, bodies = 0, {}
    for section_id, start, body in _sections(data, source):
        if section_id == _IMPORT:
            imported = sum(1 for i in read_module_info(data, source=source).imports if i.kind == "func")
        elif section_id == _CODE:
            code = _Reader(body, source)
            count = code.u32()
            for number in range(count if up_to is None else min(count, max(0, up_to + 1 - imported))):
                body_size = code.u32()
                bodies[imported + number] = (start + code.pos, start + code.pos + body_size)
                code.take(body_size)
    return bodies


def read_module_info(data: bytes, *, source: str) -> ModuleInfo:
    """Parses the type, import, function, table, memory and export sections of a core module."""
    sections = {section_id: body for section_id, _, body in _sections(data, source) if section_id != 0}
    types = _read_types(_section(sections, _TYPE, source))
    imports, imported_memories, imported_tables = _read_imports(_section(sections, _IMPORT, source), types)
    type_indices = _read_function_type_indices(_section(sections, _FUNCTION, source), types)
    tables = tuple(r.table() for r in _vec(_section(sections, _TABLE, source)))
    memories = tuple(r.memory() for r in _vec(_section(sections, _MEMORY, source)))
    imported_funcs: list[Signature | None] = [i.signature for i in imports if i.kind == "func"]
    functions = _Functions(imported_funcs, type_indices, types)
    exports = _read_exports(_section(sections, _EXPORT, source), functions)
    return ModuleInfo(imports, exports, imported_memories + memories, imported_tables + tables)


def _section(sections: dict[int, bytes], section_id: int, source: str) -> _Reader:
    """A reader over one section's body; a missing section reads as an empty vector."""
    return _Reader(sections.get(section_id, b"\0"), source)


def _vec(reader: _Reader) -> list[_Reader]:
    """Yields the reader once per vector element; the caller consumes one element each time."""
    return [reader] * reader.u32()


def _index(reader: _Reader, table: list[Signature | None]) -> int:
    """A function's type index: in range, and a function type's."""
    index = reader.u32()
    if index >= len(table):
        raise reader.fail(f"type index {index} out of range")
    if table[index] is None:
        raise reader.fail(f"type {index} is not a function type")
    return index


_FUNC_TYPE, _STRUCT_TYPE, _ARRAY_TYPE, _REC_GROUP, _SUB_TYPE, _SUB_FINAL_TYPE = 0x60, 0x5F, 0x5E, 0x4E, 0x50, 0x4F
_PACKED_TYPES = (0x78, 0x77)  # i8 and i16, a GC field's storage types


def _read_types(reader: _Reader) -> list[Signature | None]:
    """Each type by index: a function's signature, or None for the GC proposal's struct and array types (a
    recursion group's types each take an index)."""
    types: list[Signature | None] = []
    for r in _vec(reader):
        if r.peek() == _REC_GROUP:
            r.pos += 1
            types += [_sub_type(r) for _ in range(r.u32())]
        else:
            types.append(_sub_type(r))
    return types


def _sub_type(r: _Reader) -> Signature | None:
    if r.peek() in (_SUB_TYPE, _SUB_FINAL_TYPE):
        r.pos += 1
        for _ in range(r.u32()):
            r.u32()  # a supertype's index
    form = r.byte()
    if form == _FUNC_TYPE:
        params = tuple(r.valtype() for _ in range(r.u32()))
        results = tuple(r.valtype() for _ in range(r.u32()))
        return Signature(params, results)
    if form == _STRUCT_TYPE:
        for _ in range(r.u32()):
            _field(r)
    elif form == _ARRAY_TYPE:
        _field(r)
    else:
        raise r.fail(f"unknown type form 0x{form:02x}")
    return None


def _field(r: _Reader) -> None:
    """Skips a struct's or an array's field type: its storage type and mutability."""
    if r.peek() in _PACKED_TYPES:
        r.pos += 1
    else:
        r.valtype()
    r.byte()


def _read_function_type_indices(reader: _Reader, types: list[Signature | None]) -> Sequence[int]:
    count = reader.u32()
    indices = reader.data[reader.pos :]
    all_functions = None not in types
    if all_functions and len(indices) == count and not indices.translate(None, bytes(range(min(len(types), 0x80)))):
        return indices  # the common case, all one-byte indices, checked at C speed
    return [_index(reader, types) for _ in range(count)]


class _Functions:
    """The module's function signatures by function index, looked up only for the few that are exported."""

    __slots__ = ("imported", "type_indices", "types")

    def __init__(
        self, imported: list[Signature | None], type_indices: Sequence[int], types: list[Signature | None]
    ) -> None:
        self.imported = imported
        self.type_indices = type_indices
        self.types = types

    def __len__(self) -> int:
        return len(self.imported) + len(self.type_indices)

    def __getitem__(self, index: int) -> Signature | None:
        if index < len(self.imported):
            return self.imported[index]
        return self.types[self.type_indices[index - len(self.imported)]]


def _read_imports(
    reader: _Reader, types: list[Signature | None]
) -> tuple[tuple[Import, ...], tuple[MemoryLimits, ...], tuple[TableLimits, ...]]:
    """The imports, and the limits of the memories and tables among them."""
    imports, memories, tables = [], [], []
    for r in _vec(reader):
        module, name, kind_code = r.name(), r.name(), r.byte()
        kind = _KINDS.get(kind_code)
        signature = None
        if kind == "func":
            signature = types[_index(r, types)]
        elif kind == "table":
            tables.append(r.table())
        elif kind == "memory":
            memories.append(r.memory())
        elif kind == "global":
            r.valtype()
            r.byte()
        elif kind == "tag":
            r.byte()
            _index(r, types)
        else:
            raise r.fail(f"unknown import kind 0x{kind_code:02x}")
        imports.append(Import(module, name, kind, signature))
    return tuple(imports), tuple(memories), tuple(tables)


def _read_exports(reader: _Reader, functions: _Functions) -> tuple[Export, ...]:
    exports = []
    for r in _vec(reader):
        name, kind_code, index = r.name(), r.byte(), r.u32()
        kind = _KINDS.get(kind_code)
        if kind is None:
            raise r.fail(f"unknown export kind 0x{kind_code:02x}")
        signature = None
        if kind == "func":
            if index >= len(functions):
                raise r.fail(f"function index {index} out of range")
            signature = functions[index]
        exports.append(Export(name, kind, signature))
    return tuple(exports)


_CORE_MODULE_SECTION, _COMPONENT_SECTION = 1, 4


def component_core_modules(data: bytes, *, source: str) -> list[bytes]:
    """The core modules a component binary embeds, those of its nested components included."""
    return [module for _, module in placed_core_modules(data, source=source)]


def placed_core_modules(data: bytes, *, source: str) -> list[tuple[int, bytes]]:
    """`component_core_modules`, each with where it starts in the component (Wasmtime's backtrace offsets of a
    component's code count from the component's start), in the order they are written. Nested components are
    read from a list, not by recursion, and in place: Wasmtime loads a component nested 999 deep, which was a
    RecursionError here (and each level a copy of the rest)."""
    modules = []
    pending = [(0, len(data))]  # the components still to read, where each starts and ends
    sections = 0
    while pending:
        component = pending.pop()
        for section_id, _, body, end in section_spans(data, source=source, header=_COMPONENT_HEADER, within=component):
            sections += 1
            if sections > MAX_SECTIONS:  # its nested components' together, as one module's
                raise InvalidInput(f"{source}: {_TOO_MANY_SECTIONS}")
            if section_id == _CORE_MODULE_SECTION:
                modules.append((body, data[body:end]))
            elif section_id == _COMPONENT_SECTION:
                pending.append((body, end))
    return sorted(modules, key=lambda placed: placed[0])


class CompileCounts(NamedTuple):
    """What an engine compiles at a cost each that a module declares (a component: its core modules together)."""

    entries: int  # functions, types (each of a recursion group), element segments and globals
    locals: int  # the functions' declared locals, each set to zero as its function starts


def compile_counts(data: bytes, *, source: str, at_most: CompileCounts) -> CompileCounts:
    """The module's `CompileCounts`, each counted up to a little past `at_most`'s, then no further."""
    header = data[: len(_MODULE_HEADER)]
    modules = [data] if header == _MODULE_HEADER else component_core_modules(data, source=source)
    entries = locals_ = 0
    for module in modules:
        for found, _, body, end in section_spans(module, source=source):
            if found in (_FUNCTION, _ELEMENT, _GLOBAL):
                entries += _Reader(module[body:end], source).u32()
            elif found == _TYPE:
                entries += _type_count(_Reader(module[body:end], source), at_most.entries - entries)
            elif found == _CODE:
                locals_ += _declared_locals(_Reader(module[body:end], source), at_most.locals - locals_)
            if entries > at_most.entries or locals_ > at_most.locals:
                return CompileCounts(entries, locals_)
    return CompileCounts(entries, locals_)


def _declared_locals(code: _Reader, at_most: int) -> int:
    """How many locals a code section's functions declare: up to a little past `at_most`."""
    count = 0
    for _ in range(code.u32()):
        size = code.u32()
        end = code.pos + size
        for _ in range(code.u32()):
            count += code.u32()
            code.valtype()
        if count > at_most:
            return count
        code.pos = end
    return count


def _type_count(reader: _Reader, at_most: int) -> int:
    """How many types a type section declares, each of a recursion group counted: up to a little past `at_most`
    (a recursion group's types are read one by one, as it gives no size)."""
    count = 0
    for r in _vec(reader):
        if r.peek() == _REC_GROUP:
            r.pos += 1
            group = r.u32()
            count += group
            if count > at_most:
                return count
            for _ in range(group):
                _sub_type(r)
        else:
            count += 1
            _sub_type(r)
        if count > at_most:
            return count
    return count


def component_memory_floor(data: bytes, *, source: str) -> int:
    """The most pages any memory of a component starts with: its limits.memory_pages may not be lower."""
    memories = (
        m
        for core in component_core_modules(data, source=source)
        for m in read_module_info(core, source=source).memories
    )
    return max((memory.minimum_pages for memory in memories), default=0)


def with_memory_maximum(data: bytes, pages: int, *, source: str) -> bytes:
    """The module with `pages` as the maximum of each memory it defines without one; the rest byte for byte.

    Imported memories are left as they are. The caller checks that `pages` is at least each such
    memory's minimum: this does not.
    """
    return _with_section_rewritten(data, _MEMORY, lambda body: _bounded(body, pages, "memory", source), source)


def with_table_maximum(data: bytes, elements: int, *, source: str) -> bytes:
    """The module with `elements` as the maximum of each table it defines without one; the rest byte for byte.

    Imported tables are left as they are; so is a table section of a form this does not read (a table with an
    initializer expression). The caller checks that `elements` is at least each such table's minimum."""
    try:
        return _with_section_rewritten(data, _TABLE, lambda body: _bounded(body, elements, "table", source), source)
    except InvalidInput:
        return data  # validation reads the module again and says what is wrong with it


def _with_section_rewritten(data: bytes, section_id: int, rewrite: Callable[[bytes], bytes], source: str) -> bytes:
    out = bytearray(_MODULE_HEADER)
    for found, start, body, end in section_spans(data, source=source):
        if found != section_id:
            out += data[start:end]
            continue
        rewritten = rewrite(data[body:end])
        out += bytes([section_id]) + uleb128(len(rewritten)) + rewritten
    return bytes(out)


def _bounded(body: bytes, maximum_when_none: int, what: str, source: str) -> bytes:
    """A memory or table section whose entries without a maximum get `maximum_when_none`."""
    reader = _Reader(body, source)
    count = reader.u32()
    entries = bytearray(uleb128(count))
    for _ in range(count):
        if what == "table":
            type_start = reader.pos
            reader.valtype()
            entries += body[type_start : reader.pos]
        flags = reader.limits_flags()
        minimum = reader.u64()
        maximum = reader.u64() if flags & 1 else maximum_when_none
        entries += bytes([flags | 1]) + uleb128(minimum) + uleb128(maximum)
    if reader.pos != len(reader.data):
        raise reader.fail(f"the {what} section has bytes after its {what}s")
    return bytes(entries)


_START = 8


def with_start_exported(data: bytes, name: str, *, source: str) -> bytes:
    """The module without its start section, its start function exported as `name` instead (for the host to call
    once the instance's memory is linked to its host functions); the module as it is without a start section, or
    when it already exports `name`. A module with no export section gets one where its start section stood: the
    export section comes right before it in a module's order."""
    spans = list(section_spans(data, source=source))
    starts = [_Reader(data[body:end], source).u32() for found, _, body, end in spans if found == _START]
    if not starts or read_module_info(data, source=source).export(name) is not None:
        return data
    entry = uleb128(len(name.encode())) + name.encode() + b"\0" + uleb128(starts[0])
    has_exports = any(found == _EXPORT for found, *_ in spans)
    out = bytearray(_MODULE_HEADER)
    for found, start, body, end in spans:
        if found == _EXPORT:
            exports = _Reader(data[body:end], source)
            entries = uleb128(exports.u32() + 1) + data[body + exports.pos : end] + entry
            out += bytes([_EXPORT]) + uleb128(len(entries)) + entries
        elif found == _START:
            if not has_exports:
                out += bytes([_EXPORT]) + uleb128(len(entry) + 1) + b"\x01" + entry
        else:
            out += data[start:end]
    return bytes(out)


def code_start(data: bytes, *, source: str) -> int | None:
    """Where the module's code section's body starts (a module offset), or None without one."""
    return next((body for found, _, body, _ in section_spans(data, source=source) if found == _CODE), None)


def with_custom_section_replaced(data: bytes, name: str, replace: Callable[[bytes], bytes], *, source: str) -> bytes:
    """The module with the payload of each custom section named `name` replaced by `replace(payload)`."""

    def replaced(body: bytes) -> bytes:
        named = _Reader(body, source)
        if named.name() != name:
            return body
        return body[: named.pos] + replace(body[named.pos :])

    return _with_section_rewritten(data, 0, replaced, source)


def custom_section(name: str, payload: bytes) -> bytes:
    """A custom section named `name` holding `payload`, encoded to append to a module."""
    body = uleb128(len(name.encode())) + name.encode() + payload
    return b"\0" + uleb128(len(body)) + body


def uleb128(value: int) -> bytes:
    """`value` (unsigned) in LEB128, as the binary format writes sizes and indices."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


_INTEGER_BITS = {"i32": 32, "i64": 64}
_FLOAT_KINDS = frozenset({"f32", "f64"})


def value_problem(value: object, kind: str) -> str | None:
    """Why `value` cannot be a core `kind` value (an i32/i64 is a whole number in its signed range: an engine would
    wrap one beyond it), or None."""
    bits = _INTEGER_BITS.get(kind)
    if bits is None:
        return None
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{_shown(value)} is not an {kind} (a whole number from {low} to {high})"
    if not low <= value <= high:
        return f"{_shown(value)} does not fit in {kind}: give a whole number from {low} to {high}"
    return None


def argument_problem(value: object, kind: str) -> str | None:
    """Why `value` cannot be passed as a core `kind` argument: `value_problem`'s, or for an f32/f64 anything but a
    float, which is all the engines take (an int is written as a float: 2.0), or for an f32 a finite number no f32
    holds even rounded (the engines made it infinity), or None."""
    if kind in _FLOAT_KINDS and not isinstance(value, float):
        hint = ""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 53:
            hint = f"; pass {float(value)!r}"
        return f"{_shown(value)} is not an {kind} (a float){hint}"
    if kind == "f32" and isinstance(value, float) and math.isfinite(value) and nearest_f32(value) is None:
        return f"{value!r} is beyond an f32's range (±{F32_MAX!r}; pass inf for infinity)"
    return value_problem(value, kind)


def _shown(value: object) -> str:
    """A value in a refusal, short: an integer of more digits than Python writes is told by its size."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    return clipped(repr(value), 40)


F32_MAX = 3.4028234663852886e38  # the largest float32


def nearest_f32(value: float) -> float | None:
    """The float32 nearest `value` (a double): what an f32 holds of it, None beyond an f32's range."""
    try:
        nearest: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return None
    return nearest
