"""Core-guest bindings generated from a WIT catalog: every function with a core import, typed, in C, Zig and AS."""

from __future__ import annotations

import pytest

from ngixi_build.toolchains.corebindings import as_module, bindings, c_header, generate, zig_module
from ngixi_build.toolchains.wit import Catalog, Function, Interface, WitError, WitType

U8_LIST, LEVEL, ERROR, BYTES_RESULT, STATUS_RESULT, RESPONSE, RESPONSE_RESULT = range(7)
TYPES = (
    WitType("list", element="u8"),
    WitType("enum", name="level", owner="log", cases=("trace", "info", "error")),
    WitType("enum", name="error", owner="types", cases=("denied",)),
    WitType("result", ok=U8_LIST, err=ERROR),
    WitType("result", err=ERROR),
    WitType("record", name="response", owner="http", fields=(("status", "u16"), ("body", U8_LIST))),
    WitType("result", ok=RESPONSE, err=ERROR),
)


def catalog(*interfaces: Interface) -> Catalog:
    return Catalog("demo:host@0.1.0", interfaces, TYPES, ("guest",), "")


LOG = Interface(
    "log",
    "",
    (
        Function("write-at", (("level", LEVEL), ("message", "string")), None, "One line.\ncore: ngixi.log"),
        Function("write", (("message", "string"),), None, "No core import: not bound."),
    ),
)
KV = Interface(
    "kv",
    "",
    (
        Function("get", (("namespace", "string"), ("key", U8_LIST)), BYTES_RESULT, "core: ngixi.kv_get"),
        Function("delete", (("namespace", "string"), ("key", U8_LIST)), STATUS_RESULT, "core: ngixi.kv_delete"),
    ),
)
HTTP = Interface(
    "http", "", (Function("fetch", (("url", "string"),), RESPONSE_RESULT, "A request. */\ncore: ngixi.http_fetch"),)
)
CATALOG = catalog(LOG, KV, HTTP)


def test_only_functions_with_a_core_import_are_bound() -> None:
    assert [(b.interface, b.function.name, b.name) for b in bindings(CATALOG)] == [
        ("log", "write-at", "log"),
        ("kv", "get", "kv_get"),
        ("kv", "delete", "kv_delete"),
        ("http", "fetch", "http_fetch"),
    ]


def test_the_c_header_declares_each_import_with_its_types() -> None:
    header = c_header(CATALOG)
    assert (
        '__attribute__((import_module("ngixi"), import_name("log")))\n'
        "void ngixi_log_write_at(ngixi_log_level level, const char *message, size_t message_len);"
    ) in header
    assert (
        "ngixi_status ngixi_kv_get(const char *namespace, size_t namespace_len, const uint8_t *key, size_t key_len, "
        "uint8_t *buf, size_t buf_len, uint32_t *len);"
    ) in header
    assert "typedef struct ngixi_http_fetch_out { uint32_t status; uint32_t body_len; } ngixi_http_fetch_out;" in header
    assert "NGIXI_LOG_LEVEL_ERROR = 2," in header and "NGIXI_BUFFER_TOO_SMALL = 11," in header
    assert "A request. * / " in header  # a docs line cannot end the comment
    # one-line forms: a list read into memory the helper allocates, bytes given as a C string
    assert (
        "static inline void *ngixi_kv_get_alloc(const char *namespace, size_t namespace_len, const uint8_t *key, "
        "size_t key_len, uint32_t *len, ngixi_status *status) {"
    ) in header
    assert "ngixi_http_fetch_alloc" not in header  # a request is not repeated to learn its length


def test_the_c_header_ends_a_call_out_of_memory_as_the_zig_module_does() -> None:
    """Through `env.abort` with the allocator's `OutOfMemory`, which the loader reads as the memory running out (the
    template's guest says limits.memory_pages: test_guest_projects)."""
    header = c_header(CATALOG)
    assert '__attribute__((import_module("env"), import_name("abort")))\nvoid ngixi_abort_with(' in header
    assert "__attribute__((noreturn)) static inline void ngixi_out_of_memory(void) {" in header
    assert "{'O', 'u', 't', 'O', 'f', 'M', 'e', 'm', 'o', 'r', 'y'}" in header


def test_the_zig_module_names_imports_apart_and_quotes_keywords() -> None:
    module = zig_module(CATALOG)
    assert (
        "const raw_log_write_at = @extern(*const fn (i32, [*]const u8, usize) callconv(.c) void, "
        '.{ .name = "log", .library_name = "ngixi" });'
    ) in module
    assert 'pub const LogLevel = enum(i32) { trace, info, @"error" };' in module
    assert '@"unreachable" = 7,' in module
    assert "pub fn get(namespace: []const u8, key: []const u8, buf: []u8, out: *u32) Status {" in module
    assert "pub const FetchOut = extern struct { status: u32, body_len: u32 };" in module
    assert (
        "pub fn getAlloc(namespace: []const u8, key: []const u8, allocator: std.mem.Allocator) Error![]u8 {"
    ) in module
    assert "        .not_found => error.NotFound," in module
    assert "pub const panic = std.debug.FullPanic(panicToHost);" in module  # the panic handler a guest declares
    assert '.{ .name = "abort", .library_name = "env" },' in module  # its message goes to the host's abort


def test_the_assemblyscript_module_escapes_reserved_names() -> None:
    module = as_module(CATALOG)
    assert "export function delete_(namespace_: string, key: Uint8Array): i32 {" in module
    assert '@external("ngixi", "kv_get")' in module
    assert "@unmanaged export class FetchOut { status: u32 = 0; bodyLen: u32 = 0; }" in module


def test_every_language_gets_a_file() -> None:
    assert sorted(str(path) for path in generate(CATALOG)) == ["c/ngixi.h", "ngixi/index.ts", "zig/ngixi.zig"]


def test_a_type_without_a_core_shape_is_refused() -> None:
    odd = Interface("odd", "", (Function("f", (("x", RESPONSE),), None, "core: ngixi.f"),))
    with pytest.raises(WitError, match=r"odd\.f: a parameter of this type has no core-import counterpart"):
        bindings(catalog(odd))
