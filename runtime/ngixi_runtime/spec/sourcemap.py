"""Where in the guest's own code a trap happened: its source map (dev builds) or its function names.

A dev build embeds the compiler's source map (sources and mappings, version 3, one "line" whose
columns are byte offsets in the module) in the custom section `SOURCE_MAP_SECTION`. A trap's frames,
innermost first, are (function index, module offset) pairs; the first frame in a source outside the
compiler's own library (`~lib/`) is the guest's line. Without a source map, the `name` section's name
of the innermost such function is what can be said, if the module has names.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ngixi_runtime.printable import clipped, printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.symbols import rust_path
from ngixi_runtime.spec.wasm import custom_sections, function_bodies, placed_core_modules

SOURCE_MAP_SECTION = "ngixi:source-map"
# Where no guest's own code is: AssemblyScript's library, and the panic handler of the Zig bindings (ngixi.zig)
# with std's parts that call it, so that a Zig panic's trap names the guest's function that panicked.
LIBRARY_PREFIXES = ("~lib/", "ngixi.", "debug.FullPanic(", "debug.panicExtra")
# Functions of a language's runtime that a trap passes through on the guest's behalf, never the guest's place: C's
# abort and its callers in wasi-libc (a failed assert, a stack protector), setjmp's and longjmp's runtime (`setjmp =
# true`), the memory functions a guest's copy past the memory's end or onto an overflowed stack traps in (its caller is
# the place to look), Rust's standard library and panic machinery (its names as `rust_path` reads them: rustc's name
# sections keep them mangled).
_RUNTIME_FUNCTIONS = frozenset(
    {"abort", "__assert_fail", "__stack_chk_fail", "__chk_fail", "memcpy", "memmove", "memset"}
    | {"__wasm_setjmp", "__wasm_setjmp_test", "__wasm_longjmp"}
    | {"rust_panic", "rust_begin_unwind", "rust_oom"}
)
_RUNTIME_PREFIXES = tuple(
    f"{lt}{crate}::" for lt in ("", "<") for crate in ("core", "std", "alloc", "panic_abort", "__rustc")
)
_RUNTIME_PREFIXES += ("__rust_", "__rdl_", "__rg_")
# The functions a Rust panic passes through (`panic = "abort"`, wasm32-wasi's), by the last part of their path.
_PANIC_FUNCTIONS = frozenset({"rust_begin_unwind", "rust_panic", "__rust_start_panic"})
# The modules of a component that are its language's runtime (componentize-py's): a Python guest's code is
# interpreted by them, never a wasm frame of its own; so are the shared libraries it links (`libc.so`, ...).
_RUNTIME_MODULES = ("componentize_py_runtime.",)
# The function whose trap is the guest's abort (C's abort(), which wasi-libc ends with `unreachable`).
ABORT_FUNCTION = "abort"
# Where a language's allocator traps with `unreachable` when the memory cannot grow for an allocation: every
# `unreachable` of AssemblyScript's runtime (its allocators, TLSF and stub, inlined into `~lib/rt/itcms/__new` by -O3).
_ALLOCATOR_PREFIXES = ("~lib/rt/", "~lib/ngixi-runtime/")
_PYTHON_NO_OBJECT = "pyo3::instance::panic_on_null"
_PYTHON_LOWERING = "wit_dylib_push_"
_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BASE64 = {c: i for i, c in enumerate(_DIGITS)}
_FUNCTION_NAMES = 1  # the name section's subsection of function names
_NAME_SHOWN = 200  # characters of a name the guest gives that a message shows
# The largest source map a trap reads: reading one costs the host CPU at every trap, in-process the host's own, and a
# module may carry one of hundreds of megabytes; a dev build's is far smaller. A larger one is read as none.
SOURCE_MAP_LIMIT = 4 << 20
# The most entries of the `name` section's function names a trap reads, and the most function bodies it looks for its
# frames among: each costs the host time at every trap (in-process its own CPU, past the call's
# deadline), and a module of a few MB may hold millions; yosys, 68 MB, has 46,473 functions. A name or body past them
# is not found: the trap is placed by the names before them, or not at all.
NAMES_READ = 100_000

Frame = tuple[int, int]  # (function index, module offset)


class SourceMap(NamedTuple):
    offsets: tuple[int, ...]  # sorted module offsets where a mapping starts
    places: tuple[tuple[int, int, int], ...]  # (source index, line, column), 1-based line and column
    sources: tuple[str, ...]

    def locate(self, offset: int, body: tuple[int, int]) -> tuple[str, int, int] | None:
        """The source file, line and column of the code at `offset`, within the function `body` (start, end).

        The nearest mapping at or before the offset in that function; an engine that reports a trap at
        the function's first bytes gets its first mapping.
        """
        at = bisect.bisect_right(self.offsets, offset) - 1
        if at < 0 or self.offsets[at] < body[0]:
            at = bisect.bisect_left(self.offsets, body[0])
        if at >= len(self.offsets) or self.offsets[at] >= body[1]:
            return None
        source, line, column = self.places[at]
        return (self.sources[source], line, column) if source < len(self.sources) else None


def _read(text: bytes) -> tuple[dict[str, Any], str, list[str]] | None:
    """A source map's document, its mappings and its sources as text; None for anything else: not JSON, fields of
    other types, or nested deeper than Python's decoder goes (the section is the module's author's: 100,000 `[`
    were a traceback at a trap)."""
    try:
        document = json.loads(text)
        return document, str(document["mappings"]), [str(s) for s in document["sources"]]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def parse_source_map(text: bytes) -> SourceMap | None:
    """A version 3 source map of a module; None for anything else."""
    read = _read(text)
    if read is None:
        return None
    _, mappings, sources = read
    offsets: list[int] = []
    places: list[tuple[int, int, int]] = []
    column = source = line = source_column = 0
    for segment in mappings.replace(";", ",").split(","):
        fields = _vlq(segment)
        if not fields:
            continue
        column += fields[0]
        if len(fields) < 4:  # code mapped to no source
            continue
        source, line, source_column = source + fields[1], line + fields[2], source_column + fields[3]
        offsets.append(column)
        places.append((source, line + 1, source_column + 1))
    order = sorted(range(len(offsets)), key=offsets.__getitem__)
    return SourceMap(tuple(offsets[i] for i in order), tuple(places[i] for i in order), tuple(sources))


def moved_source_map(text: bytes, by: int) -> bytes:
    """The source map with every module offset it maps moved `by` bytes, as the code was moved; unchanged if it is
    not one. Offsets after the first are relative to the one before, so only the first changes."""
    read = _read(text)
    if read is None:
        return text
    document, mappings, _ = read
    segments = mappings.replace(";", ",").split(",")  # one line, as `parse_source_map` reads it
    first = next((number for number, segment in enumerate(segments) if _vlq(segment)), None)
    if first is None:
        return text
    fields = _vlq(segments[first])
    segments[first] = "".join(vlq(value) for value in [fields[0] + by, *fields[1:]])
    document["mappings"] = ",".join(segments)
    return json.dumps(document, separators=(",", ":")).encode()


def _vlq(segment: str) -> list[int]:
    values, value, shift = [], 0, 0
    for char in segment:
        digit = _BASE64.get(char)
        if digit is None:
            return []
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        value, shift = 0, 0
    return values


def vlq(value: int) -> str:
    """`value` as a source map's base64 VLQ digits."""
    bits = (-value << 1) | 1 if value < 0 else value << 1
    out = ""
    while True:
        digit, bits = bits & 31, bits >> 5
        out += _DIGITS[digit | (32 if bits else 0)]
        if not bits:
            return out


def function_names(section: bytes, wanted: Collection[int] | None = None) -> dict[int, str]:
    """The function names of a `name` custom section's body, from its first `NAMES_READ` entries; with `wanted`, of
    those function indices alone, read until all are found."""
    names: dict[int, str] = {}
    position = 0
    try:
        while position < len(section):
            kind, position = section[position], position + 1
            size, position = _leb(section, position)
            if kind == _FUNCTION_NAMES:
                count, at = _leb(section, position)
                for _ in range(min(count, NAMES_READ)):
                    index, at = _leb(section, at)
                    length, at = _leb(section, at)
                    if wanted is None or index in wanted:
                        names[index] = section[at : at + length].decode("utf-8", errors="replace")
                        if wanted is not None and len(names) == len(wanted):
                            return names
                    at += length
            position += size
    except IndexError:
        return names
    return names


def _leb(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def trap_location(wasm: bytes, frames: Sequence[Frame], *, source: str) -> str | None:
    """Where the guest's own code was when it trapped: "at FILE:LINE:COLUMN (in NAME)", "in NAME" or None."""
    if not frames:
        return None
    sections = custom_sections(wasm, source=source)
    indices = {index for index, _ in frames}
    names = function_names(sections.get("name", b""), indices)
    text = sections.get(SOURCE_MAP_SECTION, b"")
    source_map = parse_source_map(text) if 0 < len(text) <= SOURCE_MAP_LIMIT else None
    if source_map is not None:
        bodies = function_bodies(wasm, source=source, up_to=min(max(indices), NAMES_READ))
        for index, offset in frames:
            place = source_map.locate(offset, bodies.get(index, (offset, offset + 1)))
            if place is not None and not place[0].startswith(LIBRARY_PREFIXES):
                name = rust_path(names.get(index, ""))
                function = f" (in {shown_name(name)})" if name and is_own(name) else ""
                return printable(f"at {shown_name(place[0])}:{place[1]}:{place[2]}{function}")  # the guest's names
    return named_location(names[index] for index, _ in frames if index in names)


def named_location(names: Iterable[str]) -> str | None:
    """ "in NAME": the innermost of a trap's function names (innermost first) that is the guest's own, if any (a
    Rust name as Rust writes its path)."""
    own = next((readable for name in names if is_own(readable := rust_path(name))), None)
    return printable(f"in {shown_name(own)}") if own else None


def shown_name(name: str) -> str:
    """A function or file name a guest's module gives, for a message: cut in the middle past `_NAME_SHOWN`
    characters (the name section holds names of any length; one of 100,000 characters made a trap's line)."""
    return clipped(name, _NAME_SHOWN)


def is_allocator_failure(innermost: str | None, message: str) -> bool:
    """Whether a trap (its innermost function's name, its message) is a language's allocator finding no memory."""
    return innermost is not None and innermost.startswith(_ALLOCATOR_PREFIXES) and message.endswith(": unreachable")


def is_python_argument_without_memory(names: Iterable[str]) -> bool:
    """Whether a component's trap (its frames' `module!function` names) is componentize-py's runtime panicking as
    CPython gave it no object for an argument it was lowering (pyo3's `panic_on_null` under `wit_dylib_push_...`):
    the only way a valid WIT value fails to become a Python object is the memory running out."""
    functions = [rust_path(name.rpartition("!")[2]) for name in names]
    return _PYTHON_NO_OBJECT in functions and any(function.startswith(_PYTHON_LOWERING) for function in functions)


def is_panic(names: Iterable[str]) -> bool:
    """Whether a trap's function names (`module!function` in a component's backtrace) are those of the guest's own
    Rust panic's abort (its message is on stderr already): not a language runtime's, as componentize-py's Rust ends
    a Python guest's uncaught exception."""
    return any(
        rust_path(function).rpartition("::")[2] in _PANIC_FUNCTIONS
        for module, _, function in (name.rpartition("!") for name in names)
        if not _in_runtime_module(module)
    )


def _in_runtime_module(module: str) -> bool:
    """Whether a component's module (by its backtrace's name) is its language's runtime or a shared library."""
    return module.endswith(".so") or module.startswith(_RUNTIME_MODULES)


def is_own(name: str) -> bool:
    """Whether a function name (`module!function` in a component's backtrace) can be the guest's own: not its
    language's library or runtime, nor in a component's runtime module or a shared library it links."""
    module, _, function = name.rpartition("!")
    function = rust_path(function)
    return (
        bool(function)
        and not _in_runtime_module(module)
        and function not in _RUNTIME_FUNCTIONS
        and not function.startswith(LIBRARY_PREFIXES + _RUNTIME_PREFIXES)
    )


def component_trap_location(component: bytes, frames: Sequence[tuple[str, int]], *, source: str) -> str | None:
    """`trap_location` in a component: in its core module that carries a source map (the guest's own), whose
    functions the frames (function name, offset in the component) name."""
    for start, module in placed_core_modules(component, source=source):
        sections = custom_sections(module, source=source)
        if SOURCE_MAP_SECTION in sections:
            indices = {name: index for index, name in function_names(sections.get("name", b"")).items()}
            own = [(indices[name], offset - start) for name, offset in frames if name in indices]
            return trap_location(module, own, source=source)
    return None
