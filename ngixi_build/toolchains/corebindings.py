"""Core-guest bindings generated from the WIT catalog: a C header, a Zig module and an AssemblyScript module.

Every catalog function whose docs name a core import (`core: ngixi.kv_get`) becomes a typed
function of its interface, lowered under docs/host-abi.md's conventions (`wit.core_signature`
checks them): strings and byte lists are `(ptr, len)`, enums their ordinal, a `result<_, error>`
the returned status, and a `result<T, error>` adds an output buffer and the record the host
writes: for a list `T` its length, for a record `T` one `u32` per field (a list field's length).
Status codes come from `spec.abi.Status`, the core imports' own codes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.toolchains.ascanon import identifier as as_identifier
from ngixi_build.toolchains.wit import Catalog, Function, TypeRef, WitError, core_signature
from ngixi_runtime.spec.abi import Status

C_HEADER = Path("c") / "ngixi.h"
ZIG_MODULE = Path("zig") / "ngixi.zig"
AS_MODULE = Path("ngixi") / "index.ts"
_HEADER = "Generated from the WIT catalog ({package}) by ngixi-build; do not edit."
_INTEGERS = {"bool": "bool", "u8": "uint8_t", "s8": "int8_t", "u16": "uint16_t", "s16": "int16_t"}
_INTEGERS |= {"u32": "uint32_t", "s32": "int32_t", "u64": "uint64_t", "s64": "int64_t", "f32": "float", "f64": "double"}
_ZIG_SCALARS = {"bool": "bool", "u8": "u8", "s8": "i8", "u16": "u16", "s16": "i16", "u32": "u32", "s32": "i32"}
_ZIG_SCALARS |= {"u64": "u64", "s64": "i64", "f32": "f32", "f64": "f64"}
_AS_SCALARS = {"bool": "bool", "u8": "u8", "s8": "i8", "u16": "u16", "s16": "i16", "u32": "u32", "s32": "i32"}
_AS_SCALARS |= {"u64": "u64", "s64": "i64", "f32": "f32", "f64": "f64"}


@dataclass(frozen=True)
class Param:
    """One WIT parameter: `shape` is "bytes" (string or list, as ptr+len), "enum" or "scalar"."""

    name: str
    shape: str
    text: bool = False  # a string (UTF-8) rather than bytes
    enum: str | None = None  # the enum's name
    scalar: str | None = None  # a WIT primitive


@dataclass(frozen=True)
class Binding:
    """One core import with what its typed function takes and returns."""

    interface: str
    function: Function
    module: str
    name: str
    params: tuple[Param, ...]
    returns_status: bool
    out_fields: tuple[str, ...]  # the u32 fields the host writes for a result<T, error>; () for none

    @property
    def identifier(self) -> str:
        return _snake(f"{self.interface}_{self.function.name}")


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _camel(name: str) -> str:
    head, *rest = _snake(name).split("_")
    return head + "".join(part.capitalize() for part in rest)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in _snake(name).split("_"))


def _param(catalog: Catalog, name: str, ref: TypeRef) -> Param:
    ref = catalog.resolve(ref)
    if ref == "string":
        return Param(name, "bytes", text=True)
    if isinstance(ref, int) and catalog.types[ref].kind == "list":
        return Param(name, "bytes")
    if isinstance(ref, int) and catalog.types[ref].kind == "enum":
        return Param(name, "enum", enum=_enum_name(catalog, ref))
    return Param(name, "scalar", scalar=str(ref))


def _out_fields(catalog: Catalog, ok: TypeRef) -> tuple[str, ...]:
    ok = catalog.resolve(ok)
    kind = catalog.types[ok].kind if isinstance(ok, int) else "primitive"
    if ok == "string" or kind == "list":
        return ("len",)
    if kind == "record" and isinstance(ok, int):
        return tuple(_record_field(catalog, field, ref) for field, ref in catalog.types[ok].fields)
    raise WitError(f"a result of {ok!r} has no core-import counterpart (docs/host-abi.md)")


def _record_field(catalog: Catalog, field: str, ref: TypeRef) -> str:
    ref = catalog.resolve(ref)
    is_bytes = ref == "string" or (isinstance(ref, int) and catalog.types[ref].kind == "list")
    return _snake(f"{field}_len" if is_bytes else field)


def bindings(catalog: Catalog) -> list[Binding]:
    """Every function of the catalog that has a core import, checked against the core conventions."""
    found = []
    for interface in catalog.interfaces:
        for function in interface.functions:
            if function.core_import is None:
                continue
            core_signature(catalog, interface.name, function)  # refuses what has no core shape
            module, _, name = function.core_import.partition(".")
            result = catalog.resolve(function.result) if function.result is not None else None
            ok = catalog.types[result].ok if isinstance(result, int) else None
            found.append(
                Binding(
                    interface=interface.name,
                    function=function,
                    module=module,
                    name=name,
                    params=tuple(_param(catalog, n, ref) for n, ref in function.params),
                    returns_status=result is not None,
                    out_fields=_out_fields(catalog, ok) if ok is not None else (),
                )
            )
    return found


def _enum_name(catalog: Catalog, ref: int) -> str:
    """An enum's name qualified by the interface that defines it: `log-level`."""
    wit_type = catalog.types[ref]
    return f"{wit_type.owner}-{wit_type.name}" if wit_type.owner else str(wit_type.name)


def _by_interface(used: list[Binding]) -> dict[str, list[Binding]]:
    """The bindings of each interface, the interfaces in the order of their first binding."""
    grouped: dict[str, list[Binding]] = {}
    for binding in used:
        grouped.setdefault(binding.interface, []).append(binding)
    return grouped


def enums(catalog: Catalog, used: list[Binding]) -> list[tuple[str, tuple[str, ...]]]:
    """The enums the bindings' parameters use (qualified names), with their cases in ordinal order."""
    names = dict.fromkeys(p.enum for b in used for p in b.params if p.enum)
    defined = {_enum_name(catalog, i): t.cases for i, t in enumerate(catalog.types) if t.kind == "enum"}
    return [(name, defined[name]) for name in names if name is not None]


def _comment(binding: Binding) -> str:
    """The function's docs on one line, without its `core:` line (which the import itself says)."""
    docs = " ".join(line for line in binding.function.docs.splitlines() if not line.startswith("core:"))
    return " ".join(f"{binding.interface}.{binding.function.name}: {docs}".split()).replace("*/", "* /")


# --- C ----------------------------------------------------------------------------------------------


def _c_own_params(binding: Binding) -> Iterator[tuple[str, str]]:
    """The typed function's own parameters, each as its declaration and its name."""
    for param in binding.params:
        name = _snake(param.name)
        if param.shape == "bytes":
            yield f"const {'char' if param.text else 'uint8_t'} *{name}", name
            yield f"size_t {name}_len", f"{name}_len"
        elif param.shape == "enum":
            yield f"ngixi_{_snake(param.enum or '')} {name}", name
        else:
            yield f"{_INTEGERS[param.scalar or '']} {name}", name


def _c_params(binding: Binding) -> Iterator[str]:
    yield from (declaration for declaration, _ in _c_own_params(binding))
    if binding.out_fields:
        yield "uint8_t *buf"
        yield "size_t buf_len"
        yield "uint32_t *len" if binding.out_fields == ("len",) else f"ngixi_{binding.identifier}_out *out"


_C_ALLOC_OUT = ("uint32_t *len", "ngixi_status *status")


def _c_helpers(binding: Binding) -> list[str]:
    """One-line forms: a function giving a list reads it into memory it allocates (asking its length
    first; BUFFER_TOO_SMALL then a retry, docs/host-abi.md "Output buffers"), and one taking only bytes
    takes a C string."""
    own = [declaration for declaration, _ in _c_own_params(binding)]
    args = ", ".join(name for _, name in _c_own_params(binding))
    call = f"ngixi_{binding.identifier}({args + ', ' if args else ''}"
    if binding.out_fields == ("len",):
        return [
            f"/* {binding.interface}.{binding.function.name} into memory it allocates (malloc; the caller frees it),",
            "   NUL-terminated so that text is a C string; NULL with *status set when the host refuses or memory runs",
            "   out (NGIXI_TOO_LARGE). `len` and `status` may be NULL. */",
            f"static inline void *ngixi_{binding.identifier}_alloc({', '.join([*own, *_C_ALLOC_OUT])}) {{",
            "    uint32_t size = 0;",
            f"    ngixi_status got = {call}NULL, 0, &size);",
            "    uint8_t *data = NULL;",
            "    if (got == NGIXI_OK || got == NGIXI_BUFFER_TOO_SMALL) {",
            "        data = (uint8_t *)__builtin_malloc((size_t)size + 1);",
            f"        got = data == NULL ? NGIXI_TOO_LARGE : {call}data, size, &size);",
            "    }",
            "    if (got == NGIXI_OK) data[size] = 0;",
            "    else { __builtin_free(data); data = NULL; }",
            "    if (len != NULL) *len = size;",
            "    if (status != NULL) *status = got;",
            "    return data;",
            "}",
            "",
        ]
    if len(binding.params) == 1 and binding.params[0].shape == "bytes" and not binding.out_fields:
        name = _snake(binding.params[0].name)
        result = "ngixi_status" if binding.returns_status else "void"
        return [
            f"/* {binding.interface}.{binding.function.name} of a NUL-terminated string. */",
            f"static inline {result} ngixi_{binding.identifier}_str(const char *{name}) {{",
            f"    {'return ' if binding.returns_status else ''}ngixi_{binding.identifier}("
            f"({'const char' if binding.params[0].text else 'const uint8_t'} *){name}, __builtin_strlen({name}));",
            "}",
            "",
        ]
    return []


def c_header(catalog: Catalog) -> str:
    used = bindings(catalog)
    lines = [f"/* {_HEADER.format(package=catalog.package)} */", "#ifndef NGIXI_H", "#define NGIXI_H", ""]
    lines += ["#include <stdbool.h>", "#include <stddef.h>", "#include <stdint.h>", ""]
    lines.append("typedef enum ngixi_status {")
    lines += [f"    NGIXI_{status.name} = {status.value}," for status in Status]
    lines += ["} ngixi_status;", ""]
    for name, cases in enums(catalog, used):
        lines.append(f"typedef enum ngixi_{_snake(name)} {{")
        lines += [f"    NGIXI_{_snake(name).upper()}_{_snake(case).upper()} = {i}," for i, case in enumerate(cases)]
        lines += [f"}} ngixi_{_snake(name)};", ""]
    for binding in used:
        if binding.out_fields and binding.out_fields != ("len",):
            fields = " ".join(f"uint32_t {field};" for field in binding.out_fields)
            lines += [f"typedef struct ngixi_{binding.identifier}_out {{ {fields} }} ngixi_{binding.identifier}_out;"]
        result = "ngixi_status" if binding.returns_status else "void"
        lines += [f"/* {_comment(binding)} */"]
        lines.append(f'__attribute__((import_module("{binding.module}"), import_name("{binding.name}")))')
        lines += [f"{result} ngixi_{binding.identifier}({', '.join(_c_params(binding))});", ""]
        lines += _c_helpers(binding)
    lines += [_C_OUT_OF_MEMORY, "#endif"]
    return "\n".join(lines) + "\n"


# The message is an AssemblyScript string, as `env.abort` reads it (UTF-16LE, its byte length in the u32 before it):
# the Zig module's panic handler passes an allocator's `OutOfMemory` the same way, and the loader reads either as the
# memory running out.
_C_OUT_OF_MEMORY = """\
/* Ends the call as out of memory: the host's line names limits.memory_pages, the limit to raise. For an allocation
   that failed, e.g. ngixi_data_input_alloc's NULL; abort() would end it as "aborted", naming no limit. */
__attribute__((import_module("env"), import_name("abort")))
void ngixi_abort_with(const uint16_t *message, const uint16_t *file, uint32_t line, uint32_t column);
__attribute__((noreturn)) static inline void ngixi_out_of_memory(void) {
    static const struct { uint32_t size; uint16_t text[11]; } out_of_memory = {
        sizeof out_of_memory.text, {'O', 'u', 't', 'O', 'f', 'M', 'e', 'm', 'o', 'r', 'y'}};
    ngixi_abort_with(out_of_memory.text, NULL, 0, 0);
    __builtin_trap();
}
"""


# --- Zig --------------------------------------------------------------------------------------------


_ZIG_KEYWORDS = frozenset(
    {
        "addrspace",
        "align",
        "allowzero",
        "and",
        "anyframe",
        "anytype",
        "asm",
        "break",
        "callconv",
        "catch",
        "comptime",
        "const",
        "continue",
        "defer",
        "else",
        "enum",
        "errdefer",
        "error",
        "export",
        "extern",
        "fn",
        "for",
        "if",
        "inline",
        "linksection",
        "noalias",
        "noinline",
        "nosuspend",
        "opaque",
        "or",
        "orelse",
        "packed",
        "pub",
        "resume",
        "return",
        "struct",
        "suspend",
        "switch",
        "test",
        "threadlocal",
        "try",
        "union",
        "unreachable",
        "usingnamespace",
        "var",
        "volatile",
        "while",
    }
)


def _zig_name(name: str) -> str:
    """A WIT name as a Zig identifier: snake_case, quoted when it is a keyword."""
    return _zig_escape(_snake(name))


def _zig_escape(identifier: str) -> str:
    return f'@"{identifier}"' if identifier in _ZIG_KEYWORDS else identifier


def _zig_extern_types(binding: Binding) -> Iterator[str]:
    for param in binding.params:
        if param.shape == "bytes":
            yield from ("[*]const u8", "usize")
        else:
            yield "i32" if param.shape == "enum" else _ZIG_SCALARS[param.scalar or ""]
    if binding.out_fields:
        yield from ("[*]u8", "usize", "*anyopaque")


def _zig_extern(binding: Binding) -> str:
    """The import, under a name of its own (an `extern fn` would take the import's name, e.g. `log`)."""
    result = "i32" if binding.returns_status else "void"
    function = f"*const fn ({', '.join(_zig_extern_types(binding))}) callconv(.c) {result}"
    where = f'.{{ .name = "{binding.name}", .library_name = "{binding.module}" }}'
    return f"const raw_{binding.identifier} = @extern({function}, {where});"


def _zig_wrapper(binding: Binding, top_level: frozenset[str]) -> list[str]:
    """The typed function; a parameter named like a top-level declaration (Zig forbids shadowing) gets `_arg`."""
    params, args = [], []
    for param in binding.params:
        name = _zig_name(param.name)
        name = f"{name}_arg" if name in top_level else name
        if param.shape == "bytes":
            params.append(f"{name}: []const u8")
            args += [f"{name}.ptr", f"{name}.len"]
        elif param.shape == "enum":
            params.append(f"{name}: {_pascal(param.enum or '')}")
            args.append(f"@intFromEnum({name})")
        else:
            params.append(f"{name}: {_ZIG_SCALARS[param.scalar or '']}")
            args.append(name)
    if binding.out_fields:
        out = "*u32" if binding.out_fields == ("len",) else f"*{_pascal(binding.function.name)}Out"
        params += ["buf: []u8", f"out: {out}"]
        args += ["buf.ptr", "buf.len", "out"]
    call = f"raw_{binding.identifier}({', '.join(args)})"
    result, body = ("Status", f"return @enumFromInt({call});") if binding.returns_status else ("void", f"{call};")
    lines = [f"    /// {_comment(binding)}"]
    if binding.out_fields and binding.out_fields != ("len",):
        fields = ", ".join(f"{field}: u32" for field in binding.out_fields)
        lines.append(f"    pub const {_pascal(binding.function.name)}Out = extern struct {{ {fields} }};")
    signature = f"{_zig_escape(_camel(binding.function.name))}({', '.join(params)}) {result}"
    lines += [f"    pub fn {signature} {{", f"        {body}", "    }"]
    if binding.out_fields == ("len",):
        lines += _zig_alloc(binding, params[:-2], args[:-3])
    return lines


def _zig_alloc(binding: Binding, params: list[str], args: list[str]) -> list[str]:
    """The list a function gives, read into memory from `allocator` (its length asked first, then read)."""
    function = _zig_escape(_camel(binding.function.name))
    signature = ", ".join([*params, "allocator: std.mem.Allocator"])
    own = [name.split(":")[0] for name in params]
    call = ", ".join([*own, ""]) if own else ""
    return [
        f"    /// {binding.interface}.{binding.function.name} into memory from `allocator` (the caller frees it).",
        f"    pub fn {_camel(binding.function.name)}Alloc({signature}) Error![]u8 {{",
        "        var size: u32 = 0;",
        "        var none: [0]u8 = .{};",
        f"        const asked = {function}({call}&none, &size);",
        "        if (asked != .ok and asked != .buffer_too_small) return failure(asked);",
        "        const bytes = try allocator.alloc(u8, size);",
        "        errdefer allocator.free(bytes);",
        f"        const got = {function}({call}bytes, &size);",
        "        if (got != .ok) return failure(got);",
        "        return bytes;",
        "    }",
    ]


def _zig_errors() -> list[str]:
    """An error for each status but OK, and OutOfMemory: what the allocating helpers return."""
    failing = [status for status in Status if status != Status.OK]
    lines = ["/// A status other than OK as an error (and OutOfMemory), for the helpers that allocate."]
    lines.append("pub const Error = error{")
    lines += [f"    {_pascal(status.name)}," for status in failing] + ["    OutOfMemory,", "};", ""]
    lines += ["fn failure(status: Status) Error {", "    return switch (status) {"]
    lines += [f"        .{_zig_name(status.name)} => error.{_pascal(status.name)}," for status in failing]
    lines += ["        else => error.HostFailure,", "    };", "}", ""]
    return lines


_ZIG_PANIC = """\
/// The guest's panic handler: `pub const panic = ngixi.panic;` in its root file. A `@panic` or a failed safety
/// check ends the call with its message, in one line naming the guest and the export, through the `env.abort`
/// every guest is granted; std's default handler would print it through WASI files the guest is not granted.
pub const panic = std.debug.FullPanic(panicToHost);

const raw_abort = @extern(
    *const fn (?[*]const u16, ?[*]const u16, u32, u32) callconv(.c) void,
    .{ .name = "abort", .library_name = "env" },
);
const panic_capacity = 1024;
var panic_text: [2 + panic_capacity]u16 align(4) = undefined;

fn panicToHost(message: []const u8, _: ?usize) noreturn {
    @branchHint(.cold);
    // env.abort reads an AssemblyScript string: UTF-16LE, its byte length in the u32 just before it.
    var end = @min(message.len, panic_capacity);
    while (end < message.len and end > 0 and message[end] & 0xC0 == 0x80) end -= 1; // a whole character
    const text = panic_text[2..];
    const units = std.unicode.utf8ToUtf16Le(text, message[0..end]) catch latin1: {
        for (message[0..end], 0..) |byte, i| text[i] = byte;
        break :latin1 end;
    };
    std.mem.writeInt(u32, std.mem.asBytes(panic_text[0..2]), @intCast(units * 2), .little);
    raw_abort(text.ptr, null, 0, 0);
    @trap();
}
"""


def zig_module(catalog: Catalog) -> str:
    used = bindings(catalog)
    top_level = frozenset({"std", "Status", "Error", "failure", "panic", *(_zig_name(b.interface) for b in used)})
    lines = [f"//! {_HEADER.format(package=catalog.package)}", "", 'const std = @import("std");', ""]
    lines += ["pub const Status = enum(i32) {"]
    lines += [f"    {_zig_name(status.name)} = {status.value}," for status in Status]
    lines += ["    _,", "};", "", *_zig_errors()]
    lines += [_zig_extern(binding) for binding in used] + [""]
    for interface, mine in _by_interface(used).items():
        lines.append(f"pub const {_snake(interface)} = struct {{")
        for name, cases in enums(catalog, mine):
            lines.append(f"    pub const {_pascal(name)} = enum(i32) {{ {', '.join(_zig_name(c) for c in cases)} }};")
        for binding in mine:
            lines += _zig_wrapper(binding, top_level)
        lines += ["};", ""]
    return "\n".join(lines) + "\n" + _ZIG_PANIC


# --- AssemblyScript ---------------------------------------------------------------------------------


def _as_wrapper(binding: Binding) -> list[str]:
    raw = f"{binding.interface}_{binding.name}".replace("-", "_")
    extern_params, params, prelude, args = [], [], [], []
    for param in binding.params:
        name = as_identifier(param.name)
        if param.shape == "bytes":
            extern_params += [f"{name}: usize", f"{name}Length: usize"]
            if param.text:
                params.append(f"{name}: string")
                prelude.append(f"    const {name}Bytes = String.UTF8.encode({name});")
                args += [f"changetype<usize>({name}Bytes)", f"<usize>{name}Bytes.byteLength"]
            else:
                params.append(f"{name}: Uint8Array")
                args += [f"{name}.dataStart", f"<usize>{name}.byteLength"]
        elif param.shape == "enum":
            extern_params.append(f"{name}: i32")
            params.append(f"{name}: {_pascal(param.enum or '')}")
            args.append(f"<i32>{name}")
        else:
            extern_params.append(f"{name}: {_AS_SCALARS[param.scalar or '']}")
            params.append(f"{name}: {_AS_SCALARS[param.scalar or '']}")
            args.append(name)
    if binding.out_fields:
        out = f"{_pascal(binding.function.name)}Out"
        extern_params += ["buf: usize", "bufLength: usize", "out: usize"]
        params += ["buf: Uint8Array", f"out: {out}"]
        args += ["buf.dataStart", "<usize>buf.byteLength", "changetype<usize>(out)"]
    result = "i32" if binding.returns_status else "void"
    lines = [f'  @external("{binding.module}", "{binding.name}")']
    lines.append(f"  declare function {raw}({', '.join(extern_params)}): {result};")
    if binding.out_fields:
        fields = " ".join(f"{_camel(field)}: u32 = 0;" for field in binding.out_fields)
        lines.append(f"  /** What the host writes for {binding.function.name}. */")
        lines.append(f"  @unmanaged export class {out} {{ {fields} }}")
    lines.append(f"  /** {_comment(binding)} */")
    lines.append(f"  export function {as_identifier(binding.function.name)}({', '.join(params)}): {result} {{")
    lines += prelude
    lines.append(f"    {'return ' if binding.returns_status else ''}{raw}({', '.join(args)});")
    lines.append("  }")
    return lines


def as_module(catalog: Catalog) -> str:
    used = bindings(catalog)
    lines = [f"// {_HEADER.format(package=catalog.package)}", "", "export namespace Status {"]
    lines += [f"  export const {_pascal(status.name.lower())}: i32 = {status.value};" for status in Status]
    lines += ["}", ""]
    for interface, mine in _by_interface(used).items():
        lines.append(f"export namespace {_camel(interface)} {{")
        for name, cases in enums(catalog, mine):
            lines.append(f"  export enum {_pascal(name)} {{ {', '.join(_pascal(c) for c in cases)} }}")
        for binding in mine:
            lines += _as_wrapper(binding)
        lines += ["}", ""]
    return "\n".join(lines)


def generate(catalog: Catalog) -> dict[Path, str]:
    """Each generated file's text by its path under the bindings directory."""
    return {C_HEADER: c_header(catalog), ZIG_MODULE: zig_module(catalog), AS_MODULE: as_module(catalog)}
