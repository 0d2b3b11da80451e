"""One table of edge-case data through an echo guest in each core language (AssemblyScript with ngixi-data, C with
ngixi.h, Zig with its module `ngixi`, and a hand-made .wasm), made from the project's templates and built once:
every guest and mode treats the same data the same way, and as RFC 8259 and UTF-8 say (docs/host-abi.md, "Call
data": what is refused, what is normalised)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime.errors import GuestError, InvalidInput, NgixiError
from ngixi_runtime.loading.tenants import Tenant, open_tenant
from tests.conftest import REPO
from tests.integration import command_line, run, share_toolchains
from tests.wasmgen import DROP, Func, Imp, call_import, load_i32, module, push

pytestmark = pytest.mark.integration

EXPORTS = {  # name: (input, output); raw* write their input back as it is, whatever it holds
    "text": ("text", "text"),
    "json": ("json", "json"),
    "bytes": ("bytes", "bytes"),
    "rawtext": ("bytes", "text"),
    "rawjson": ("bytes", "json"),
}
AS_SOURCE = """\
import { input, output, Json } from "ngixi-data";

export function text(): void { output.text(input.text()); }
export function json(): void { output.json(input.json()); }
export function bytes(): void { output.bytes(input.bytes()); }
export function rawtext(): void { output.bytes(input.bytes()); }
export function rawjson(): void { output.bytes(input.bytes()); }
export function parse(): void { output.json(Json.parse(input.text())); }
export function number(): void { output.json(Json.fromNumber(parseFloat(input.text()))); }
"""
C_SOURCE = """\
#include <stdlib.h>
#include "ngixi.h"

static void echo(void) {
    uint32_t length = 0;
    char *data = ngixi_data_input_alloc(&length, NULL);
    if (data == NULL) ngixi_out_of_memory();
    ngixi_data_output((const uint8_t *)data, length);
    free(data);
}

/* Aborts 100 frames of 1 KiB deep: each frame lowered __stack_pointer, and the trap left it so. */
static int dive(int depth) {
    volatile char frame[1024];
    frame[0] = (char)depth;
    if (depth == 0) abort();
    return dive(depth - 1) + frame[0];
}
void deep(void) { dive(100); }
""" + "".join(f"void {name}(void) {{ echo(); }}\n" for name in EXPORTS)
ZIG_SOURCE = """\
const std = @import("std");
const ngixi = @import("ngixi");
const allocator = std.heap.wasm_allocator;
pub const panic = ngixi.panic;

fn echo() void {
    const data = ngixi.data.inputAlloc(allocator) catch |err| @panic(@errorName(err));
    defer allocator.free(data);
    _ = ngixi.data.output(data);
}
""" + "".join(f"export fn {name}() void {{ echo(); }}\n" for name in EXPORTS)
SOURCES = {
    "assemblyscript": ("assembly/index.ts", AS_SOURCE),
    "c": ("main.c", C_SOURCE),
    "zig": ("main.zig", ZIG_SOURCE),
}
LANGUAGES = (*SOURCES, "wasm")
COMPONENT_SOURCE = """\
export function text(value: string): string { return value; }
export function bytes(value: Uint8Array): Uint8Array { return value; }
export function lone(): string { return String.fromCharCode(0xd800) + "x"; }
"""
COMPONENT_MANIFEST = """\
[guest]
name = "echo-component"
version = "0.1.0"
kind = "library"
abi = "component"

[limits]
memory_pages = 64
timeout_ms = 10000
"""
COMPONENT_EXPORTS = {"text": (["string"], ["string"]), "bytes": (["list<u8>"], ["list<u8>"]), "lone": ([], ["string"])}
COMPONENT_MANIFEST += "".join(
    f"\n[exports.{name}]\nparams = {json.dumps(params)}\nresults = {json.dumps(results)}\n"
    for name, (params, results) in COMPONENT_EXPORTS.items()
)

# The input's length into address 0, the input at 1024, and written back: any toolchain's echo.
BUFFER = 1024
WAT_ECHO = call_import(0, BUFFER, 0, 0) + DROP + push(BUFFER) + load_i32(0) + push(0) + b"\x10\x00" + DROP
WAT_ECHO += push(BUFFER) + load_i32(0) + b"\x10\x01" + DROP
WASM = module(
    imports=[Imp("ngixi", "input_read", ["i32"] * 3, ["i32"]), Imp("ngixi", "output_write", ["i32"] * 2, ["i32"])],
    functions=[Func(name, body=WAT_ECHO) for name in EXPORTS],
    memory=(16, 64),  # room for the largest case at BUFFER without growing
)


def manifest(name: str, language: str) -> str:
    lines = [f'[guest]\nname = "{name}"\nversion = "0.1.0"\nkind = "library"\nlanguage = "{language}"\n']
    own = {"parse": ("text", "json"), "number": ("text", "json")}
    exports = {**EXPORTS, **own} if language == "assemblyscript" else EXPORTS
    lines += [f'[exports.{e}]\ninput = "{i}"\noutput = "{o}"\n' for e, (i, o) in exports.items()]
    if language == "c":
        lines.append("[exports.deep]\n")
    lines.append("[limits]\nmemory_pages = 64\ntimeout_ms = 10000\n")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new project with one echo guest per language, each made by `ngixi new` and built once."""
    root = tmp_path_factory.mktemp("conformance") / "project"
    run(tmp_path_factory.getbasetemp(), "ngixi", "init", str(root))
    share_toolchains(REPO / ".ngixi", root / ".ngixi")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("targets = [")
    pyproject.write_text(text[:start] + "targets = []\n" + text[text.index("]\n", start) + 2 :])
    for language, (source, code) in SOURCES.items():
        run(root, "ngixi", "new", f"echo-{language}", "--lang", language)
        (root / "guests" / f"echo-{language}" / source).write_text(code)
        (root / "manifests" / f"echo-{language}.toml").write_text(manifest(f"echo-{language}", language))
    (root / "guests" / "echo-wasm").mkdir()
    (root / "guests" / "echo-wasm" / "echo-wasm.wasm").write_bytes(WASM)
    (root / "manifests" / "echo-wasm.toml").write_text(manifest("echo-wasm", "wasm"))
    run(root, "ngixi", "new", "echo-component", "--lang", "assemblyscript", "--abi", "component")
    (root / "guests" / "echo-component" / "assembly" / "index.ts").write_text(COMPONENT_SOURCE)
    (root / "manifests" / "echo-component.toml").write_text(COMPONENT_MANIFEST)
    run(root, "ngixi", "build")
    return root


MODES = [("in-process", "wasmtime"), ("isolated", "wasmtime"), ("in-process", "wasmer"), ("isolated", "wasmer")]


@pytest.fixture(scope="module", params=MODES, ids=["-".join(m) for m in MODES])
def tenants(request: pytest.FixtureRequest, project: Path) -> Iterator[dict[str, Tenant]]:
    """Each language's echo guest, opened in one mode on one engine."""
    isolation, engine = request.param
    trust = project / ".ngixi" / "trust.toml"
    opened: dict[str, Tenant] = {}
    try:
        for language in LANGUAGES:
            bundle = project / "artifacts" / "bundles" / f"echo-{language}-0.1.0.ngx"
            opened[language] = open_tenant(bundle, trust_file=trust, isolated=isolation == "isolated", engine=engine)
        yield opened
    finally:
        for tenant in opened.values():
            tenant.close()


NO_NAN = "RFC 8259 has no NaN or Infinity: write null or a string in its place"
MUST_NOT = "JSON text must not (RFC 8259, 8.1): remove it"
# JSON text and whether the host takes it (RFC 8259 within its limits: 512 deep, numbers within a double's range).
JSON_CASES: list[tuple[bytes, str | None]] = [
    (b'"\\ud800"', None),  # a lone surrogate escaped: JSON can carry it
    (b'"\\udc00x"', None),
    (b'"\\ud83d\\ude00"', None),
    (b'"\\u0000"', None),
    (b'"\\/"', None),
    ('"é日😀\U0010ffff"'.encode(), None),
    (b"-0", None),
    (b"-0.0", None),
    (b"-0e0", None),
    (b"1e-400", None),  # below the smallest double: 0
    (b"-1e-400", None),
    (b"9007199254740993", None),
    (b"18446744073709551617", None),
    (b"1.7976931348623157e308", None),
    (b"5e-324", None),
    (b"1E2", None),
    (b'{"a":1,"a":2}', None),
    (b'{"\\u0000":[{"b":-0}]}', None),
    (b"[" * 512 + b"]" * 512, None),
    (b" \t\r\n1 \t\r\n", None),
    (b"true", None),
    (b"null", None),
    (b'"' + b"a" * 200_000 + b'"', None),
    (b"1e400", "JSON with the number 1e400, out of range of a double"),
    (b"[-1e400]", "JSON with the number -1e400, out of range of a double"),
    (b"[" * 513 + b"]" * 513, "JSON nested more than 512 deep, past the host's limit"),
    (b"NaN", f"not valid JSON: NaN is not JSON ({NO_NAN})"),
    (b"-Infinity", f"not valid JSON: -Infinity is not JSON ({NO_NAN})"),
    (b"01", "not valid JSON: Extra data: line 1 column 2 (char 1)"),
    (b"+1", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"1.", "not valid JSON: Extra data: line 1 column 2 (char 1)"),
    (b".5", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"[1,]", "not valid JSON: Expecting value: line 1 column 4 (char 3)"),
    (b'"\x01"', "not valid JSON: Invalid control character at: line 1 column 2 (char 1)"),
    (b'"\\x"', "not valid JSON: Invalid \\escape: line 1 column 2 (char 1)"),
    (b'"\\u12"', "not valid JSON: Invalid \\uXXXX escape: line 1 column 3 (char 2)"),
    (b"\xef\xbb\xbf1", f"not valid JSON: it starts with a byte order mark (U+FEFF), which {MUST_NOT}"),
    (b"\x0c1", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"\xc2\xa01", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"1 2", "not valid JSON: Extra data: line 1 column 3 (char 2)"),
    (b"", "not valid JSON: it holds no value (it is empty or only whitespace)"),
    (b" \n", "not valid JSON: it holds no value (it is empty or only whitespace)"),
    (b'"a\xed\xa0\x80"', "not valid UTF-8 (byte 2)"),  # a surrogate encoded in UTF-8
]
TEXT_CASES: list[tuple[bytes, str | None]] = [
    (b"", None),
    (b"a\x00b", None),
    (b"\r\n", None),
    ("é日😀\U0010ffff\ufeff".encode(), None),
    (b"\xef\xbb\xbfx", None),  # a BOM is text like any other
    (b"x" * 300_000, None),
    *(
        (bad, "not valid UTF-8 (byte 0)")
        for bad in (b"\xc0\x80", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
    ),
    (b"\xff", "not valid UTF-8 (byte 0)"),
    (b"ab\xe2\x82", "not valid UTF-8 (byte 2)"),
]
BYTES_CASES = [b"", bytes(range(256)), b"\x00", b"\xff" * 100_001, bytes(range(256)) * 1000]


def outcome(tenant: Tenant, export: str, data: bytes) -> tuple[str, Any]:
    """("ok", (output, data)), or the error's class and its line with the guest's name taken out."""
    try:
        result = tenant.call(export, input=data)
    except NgixiError as error:
        return type(error).__name__, str(error).replace(tenant.manifest.guest.name, "GUEST")
    return "ok", (result.output, result.data)


def test_call_data_is_checked_alike_for_every_language(tenants: dict[str, Tenant]) -> None:
    """Text and JSON input the host refuses are refused, before any guest runs, in the same line; what it takes,
    C, Zig and any .wasm give back byte for byte, and AssemblyScript's JSON as the same value read as doubles."""
    for data, refused in JSON_CASES:
        for language, tenant in tenants.items():
            kind, got = outcome(tenant, "json", data)
            if refused is not None:
                assert (kind, got) == ("InvalidInput", f"GUEST: json takes JSON input, and this is {refused}"), data
            elif language == "assemblyscript":
                assert kind == "ok" and same_doubles(got[1], data), (data, got)
            else:
                assert kind == "ok" and got[0] == data, (language, data, got)
    for data, refused in TEXT_CASES:
        for language, tenant in tenants.items():
            kind, got = outcome(tenant, "text", data)
            expected = ("ok", (data, data.decode())) if refused is None else ("InvalidInput", refused_text(refused))
            assert (kind, got) == expected, (language, data[:20])
    for data in BYTES_CASES:
        for tenant in tenants.values():
            assert outcome(tenant, "bytes", data) == ("ok", (data, data))


def refused_text(problem: str) -> str:
    return f"GUEST: text takes text input, and this is {problem}"


def same_doubles(value: Any, document: bytes) -> bool:
    """Equal to the document read as a reader of every number as a double reads it (JavaScript's, AssemblyScript's):
    `-0` is -0.0 there, where Python's `json` reads the integer 0."""
    as_doubles = json.loads(json.dumps(value), parse_int=float)  # as text: 512 deep is past Python's recursion
    return json.dumps(as_doubles) == json.dumps(json.loads(document, parse_int=float))


def test_output_a_guest_writes_is_checked_alike_for_every_language(tenants: dict[str, Tenant]) -> None:
    """Output of another kind than the export declares fails the call in one line naming the guest and the export;
    a guest in any language writes the same bytes, and the caller gets the same value."""
    for data, refused in JSON_CASES:
        results = {language: outcome(tenant, "rawjson", data) for language, tenant in tenants.items()}
        expected = (
            ("ok", (data, json.loads(data)))
            if refused is None
            else ("CallFailed", f'GUEST: rawjson declares output = "json", but wrote {refused}')
        )
        for language, got in results.items():
            assert got == expected if refused else same_value(got, expected), (language, data)
    for data, refused in TEXT_CASES:
        for tenant in tenants.values():
            got = outcome(tenant, "rawtext", data)
            if refused is None:
                assert got == ("ok", (data, data.decode()))
            else:
                assert got == ("CallFailed", f'GUEST: rawtext declares output = "text", but wrote {refused}')


def same_value(got: tuple[str, Any], expected: tuple[str, Any]) -> bool:
    """Both ok, with the same bytes and the same JSON value: as JSON text, -0.0 told from 0 (`==` does not)."""
    ok = got[0] == expected[0] == "ok"
    return ok and got[1][0] == expected[1][0] and json.dumps(got[1][1]) == json.dumps(expected[1][1])


def test_assemblyscript_json_parse_reads_what_the_host_reads(tenants: dict[str, Tenant]) -> None:
    """ngixi-data's `Json.parse` took what no JSON reader takes, and read it wrong: "+1" as 0, "--1" as -0, "1.2.3"
    as 1.23, "1e400" as Infinity (written back as null), an unknown escape as its letter, a raw control character,
    and recursed without a bound (nested 100,000 deep it ran out of shadow stack). It now takes exactly the documents
    the host takes, and refuses the others in a line saying what is wrong and at which byte."""
    tenant = tenants["assemblyscript"]
    cases = [*JSON_CASES, (b"--1", "x"), (b"1.2.3", "x"), (b"1e", "x"), (b"[" * 100_000, "x"), (b"tru", "x")]
    for data, refused in cases:
        if not is_utf8(data):
            continue  # `parse` takes text: refused before it runs
        kind, got = outcome(tenant, "parse", data)
        if refused is None:
            assert kind == "ok" and same_doubles(got[1], data), (data[:40], got)
        else:
            assert kind == "CallFailed" and got.startswith("GUEST: parse aborted: JSON: "), (data[:40], got)
            assert " at byte " in got and "\n" not in got
    assert outcome(tenant, "parse", b"+1")[1].startswith("GUEST: parse aborted: JSON: not a JSON value at byte 0")
    deep = outcome(tenant, "parse", b"[" * 600)[1]
    assert deep.startswith("GUEST: parse aborted: JSON: arrays and objects nested more than 512 deep at byte 512")


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_a_guest_that_failed_many_calls_still_answers(tenants: dict[str, Tenant]) -> None:
    """Every abort left AssemblyScript's shadow stack pointer lowered by the frames it left, as C's `__stack_pointer`
    was: after 14 inputs nested 100 deep refused by a throw, the AssemblyScript guest aborted on every call, and after
    41 aborts 100 frames deep the C guest trapped on every call (out of bounds), for good, in each mode on both
    engines. A core guest's instance is made afresh after a failed call, as a component's is."""
    cases = (("assemblyscript", "parse", b"[" * 100 + b"x", 20), ("c", "deep", None, 45))
    for language, export, data, failures in cases:
        tenant = tenants[language]
        for _ in range(failures):
            with pytest.raises(GuestError, match=f"^{tenant.manifest.guest.name}: {export} aborted"):
                tenant.call(export, input=data)
        assert tenant.call("text", input="still here").data == "still here"


def test_text_from_the_api_is_refused_when_utf_8_cannot_carry_it(tenants: dict[str, Tenant]) -> None:
    """A str with a lone surrogate is refused as text, in one line, for every language; as JSON it is escaped."""
    for tenant in tenants.values():
        with pytest.raises(InvalidInput, match=r"lone surrogate \('\\ud800' at index 1\)"):
            tenant.call("text", input="a\ud800")
        assert tenant.call("json", input=["a\ud800"]).data == ["a\ud800"]
        assert math.copysign(1, tenant.call("json", input=-0.0).data) == -1


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_component_takes_and_gives_the_same_text_and_bytes(project: Path, isolated: bool) -> None:
    """A WIT string is Unicode text: NUL, CRLF, a BOM and every plane cross as they are; a str holding a surrogate
    is refused before the call, and a lone surrogate the guest returns fails the call in a line saying what it is
    (it said `invalid utf-8 sequence of 1 bytes from index 0`)."""
    bundle = project / "artifacts" / "bundles" / "echo-component-0.1.0.ngx"
    with open_tenant(bundle, trust_file=project / ".ngixi" / "trust.toml", isolated=isolated) as tenant:
        for data, refused in TEXT_CASES:
            if refused is None:
                assert tenant.call("text", (data.decode(),)).values == (data.decode(),)
        for data in BYTES_CASES:
            assert tenant.call("bytes", (data,)).values == (data,)
        with pytest.raises(InvalidInput, match=r"text's arg0 expects a string, got .* \(not valid Unicode"):
            tenant.call("text", ("a\ud800",))
        with pytest.raises(GuestError) as failed:
            tenant.call("lone", ())
        assert str(failed.value) == (
            "echo-component: lone failed: a string it gave is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from"
            " index 0): a WIT string holds Unicode text, never a lone surrogate (a UTF-16 string's half of a pair)"
        )
        assert tenant.call("text", ("next",)).values == ("next",)


def test_a_command_line_argument_that_is_not_utf_8_is_refused_as_such(project: Path) -> None:
    """Python keeps argv's bytes that are not UTF-8 as lone surrogates: `text $'ab\\xff'` was refused as a string
    holding "\\udcff", a character the caller never wrote. Core guests' --input keeps the bytes as they are."""
    bundles = project / "artifacts" / "bundles"
    argument = os.fsdecode(b"ab\xff")
    failed = run(project, "ngixi", "run", str(bundles / "echo-component-0.1.0.ngx"), "text", argument, check=False)
    assert (failed.returncode, failed.stdout) == (2, "")
    assert failed.stderr == (
        "ngixi: error: echo-component: text: argument 1 is not valid UTF-8 (byte 2): give text as UTF-8, and bytes"
        " as a JSON list of numbers\n"
    )
    echo = command_line(["ngixi", "run", str(bundles / "echo-c-0.1.0.ngx"), "bytes", "--input", argument])
    echoed = subprocess.run(echo, cwd=project, capture_output=True, timeout=120, check=False)
    assert (echoed.returncode, echoed.stdout) == (0, b"ab\xff")


def test_nan_and_infinity_from_assemblyscript_fail_the_call_as_from_any_guest(tenants: dict[str, Tenant]) -> None:
    """ngixi-data wrote a NaN or an infinity as null: the caller got a value the guest never computed, where the host
    refuses `NaN` written by any other guest. It ends the call now, in a line saying so."""
    for text in ("NaN", "Infinity", "-Infinity"):
        kind, got = outcome(tenants["assemblyscript"], "number", text.encode())
        assert kind == "CallFailed" and got.startswith(f"GUEST: number aborted: JSON: {text} is not JSON ({NO_NAN})")
        kind, got = outcome(tenants["c"], "rawjson", text.encode())
        assert (kind, got) == (
            "CallFailed",
            f'GUEST: rawjson declares output = "json", but wrote not valid JSON: {text} is not JSON ({NO_NAN})',
        )
    assert tenants["assemblyscript"].call("number", input="-2.5").data == -2.5
