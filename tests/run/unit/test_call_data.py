"""The call data ABI: its host functions against a fake memory, the manifest's declarations, the checks."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from ngixi_runtime.call_io import call_export, read_input
from ngixi_runtime.capabilities.context import CallData, HostContext
from ngixi_runtime.capabilities.linking import core_imports
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.data import check_input, check_output, decode, encode, module_problems
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest
from ngixi_runtime.loading.loader import check_call, encoded_input, parse_arguments
from ngixi_runtime.loading.tenant_child import call_data_bytes
from ngixi_runtime.loading.tenants import Tenant
from ngixi_runtime.spec.abi import Status
from ngixi_runtime.spec.wasm import Import, ModuleInfo, Signature
from ngixi_runtime.trust.policy import load_policy
from tests.conftest import FakeMemory

HEADER = '[guest]\nname = "g"\nversion = "0.1.0"\n'
WORDS = HEADER + '[exports.words]\ninput = "text"\noutput = "json"\n[limits]\ninput_bytes = 16\n'


def context(output_limit: int = 8) -> HostContext:
    ctx = HostContext(guest="g", log_quota=0, stdio_quota=0, memory=FakeMemory(4096))
    ctx.data = CallData(input_limit=16, output_limit=output_limit)
    ctx.data.begin("words", b"hello")
    return ctx


def host(ctx: HostContext, name: str):  # type: ignore[no-untyped-def]
    ((_, linked),) = core_imports(ctx, [("ngixi", name)])
    return linked


def test_input_read_gives_the_length_then_the_bytes_when_they_fit() -> None:
    ctx = context()
    read = host(ctx, "input_read")
    assert read(100, 0, 0) == Status.BUFFER_TOO_SMALL
    assert struct.unpack("<I", ctx.mem.read(0, 4)) == (5,)
    assert ctx.mem.read(100, 5) == bytes(5)  # nothing copied
    assert read(100, 5, 0) == Status.OK
    assert ctx.mem.read(100, 5) == b"hello"
    assert ctx.output.host_calls["data"] == 2


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        ("input_read", (4000, 200, 0), r"g: words: input_read\(4000, 200\) names bytes outside its memory of 4096"),
        ("input_read", (0, -1, 8), r"input_read\(0, 4294967295\) names bytes outside"),  # a length is unsigned
        ("input_read", (0, 0, 4094), r"g: words: input_read's input_len pointer 4094 names bytes outside its memory"),
        ("input_read", (0, 0, -2), r"input_read's input_len pointer 4294967294 names bytes outside"),
        ("output_write", (4090, 8), r"g: words: output_write\(4090, 8\) names bytes outside its memory of 4096"),
        ("output_write", (0, 9), r"g: words wrote more than its output limit of 8 bytes \(limits.output_bytes\)"),
        ("output_write", (-1, 2**31), r"wrote more than its output limit"),  # checked before the memory range
    ],
)
def test_a_range_outside_memory_or_over_the_limit_ends_the_call(
    function: str, args: tuple[int, ...], message: str
) -> None:
    ctx = context()
    with pytest.raises(GuestError, match=message):
        host(ctx, function)(*args)
    assert ctx.data.output == b""


def test_output_write_appends_within_the_limit_and_take_output_empties_it() -> None:
    ctx = context()
    ctx.mem.write(0, b"abcdefgh")
    write = host(ctx, "output_write")
    assert write(0, 3) == Status.OK
    assert write(3, 5) == Status.OK
    with pytest.raises(GuestError, match="output limit of 8"):
        write(0, 1)
    assert ctx.data.take_output() == b"abcdefgh"
    assert ctx.data.take_output() == b""


def test_the_manifest_declares_input_and_output_per_export() -> None:
    manifest = parse_manifest(WORDS, source="g.toml", stem="g")
    words = manifest.export("words")
    assert words is not None
    assert (words.input, words.output) == ("text", "json")
    assert (manifest.limits.input_bytes, manifest.limits.output_bytes) == (16, 1 << 20)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[exports.f]\ninput = "txt"\n', 'g.toml: exports.f.input: "txt" is not a kind of data; did you mean "text"?'),
        ("[exports.f]\noutput = 3\n", "g.toml: exports.f.output: must be a string"),
        ("[limits]\noutput_bytes = -1\n", "g.toml: limits.output_bytes"),
    ],
)
def test_bad_declarations_are_named_by_field(table: str, message: str) -> None:
    with pytest.raises(ManifestError) as error:
        parse_manifest(HEADER + table, source="g.toml", stem="g")
    assert message in str(error.value)


def test_a_component_cannot_declare_call_data() -> None:
    text = HEADER.replace('version = "0.1.0"', 'version = "0.1.0"\nabi = "component"') + '[exports.f]\ninput = "text"\n'
    with pytest.raises(ManifestError, match=r"exports\.f\.input: the call data ABI is for core guests"):
        parse_manifest(text, source="g.toml", stem="g")


def info(*names: str) -> ModuleInfo:
    return ModuleInfo(tuple(Import("ngixi", n, "func", Signature((), ())) for n in names), (), ())


def test_the_module_must_import_what_its_declarations_need_and_nothing_more() -> None:
    both = lambda side: True  # noqa: E731
    assert module_problems(both, info("input_read", "output_write")) == []
    (missing,) = module_problems(both, info("input_read"))
    assert "an export declares output, but the .wasm does not import ngixi.output_write" in missing
    (unused,) = module_problems(lambda side: side == "output", info("input_read", "output_write"))
    assert "imports ngixi.input_read, but no export declares input" in unused


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        ("text", b"ok \xff", r"g: words takes text input, and this is not valid UTF-8 \(byte 3\)"),
        ("json", b"{", "g: words takes JSON input, and this is not valid JSON: Expecting"),
        (
            "json",
            b"NaN",
            r"not valid JSON: NaN is not JSON \(RFC 8259 has no NaN or Infinity: write null or a string in",
        ),
        # Python's words were "Unexpected UTF-8 BOM (decode using utf-8-sig)" and "Expecting value: line 1 column 1"
        (
            "json",
            b"\xef\xbb\xbf{}",
            r"not valid JSON: it starts with a byte order mark \(U\+FEFF\), which JSON text must",
        ),
        ("json", b"", r"not valid JSON: it holds no value \(it is empty or only whitespace\)$"),
        ("json", b" \r\n\t", r"not valid JSON: it holds no value \(it is empty or only whitespace\)$"),
        ("json", b"[" * 100_000, "this is JSON nested more than 512 deep, past the host's limit"),
        ("json", b"[" * 513 + b"]" * 513, "this is JSON nested more than 512 deep"),
        ("json", b'{"a": ' * 400 + b"[" * 113 + b"]" * 113 + b"}" * 400, "this is JSON nested more than 512 deep"),
        ("json", b"1" + b"0" * 400, r"number 10000000000000000000\.\.\. \(401 characters\), out of range of a"),
        ("json", b"[-1" + b"0" * 5000 + b"]", r"number -1000000000000000000\.\.\. \(5002 characters\), out of range"),
        ("json", b"1" + b"0" * 500 + b".5", r"number 10000000000000000000\.\.\. \(503 characters\), out of range"),
        ("bytes", b"x" * 17, r"g: words: the input is 17 bytes, over its limit of 16 \(limits.input_bytes\)"),
    ],
)
def test_bad_input_is_refused_in_one_line(kind: str, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as error:
        check_input("g", "words", kind, raw, 16 if kind == "bytes" else 1 << 20)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


def _at_stack_depth(frames: int, call: Callable[[], object]) -> object:
    return call() if frames == 0 else _at_stack_depth(frames - 1, call)


@pytest.mark.parametrize("frames", [0, 400])
def test_json_limits_are_the_same_whatever_the_host_s_stack(frames: int) -> None:
    """512 deep passes and 513 does not, however deep the host's own stack (an isolated child's is deeper);
    integers keep their value up to a double's range; brackets in strings are text."""
    deepest = b'["[[[{{", ' * 511 + b"[]" + b"]" * 511
    _at_stack_depth(frames, lambda: check_input("g", "f", "json", deepest, 1 << 20))
    _at_stack_depth(frames, lambda: check_input("g", "f", "json", b"[" * 512 + b"]" * 512, 1 << 20))
    with pytest.raises(InvalidInput, match="nested more than 512 deep"):
        _at_stack_depth(frames, lambda: check_input("g", "f", "json", b"[" * 513 + b"]" * 513, 1 << 20))
    with pytest.raises(GuestError, match='declares output = "json", but wrote JSON nested more than 512 deep'):
        _at_stack_depth(frames, lambda: check_output("g", "f", "json", b"{}" + b"[" * 600 + b"]" * 600))
    largest = str(2**1024 - 2**971).encode()  # the largest double, as an integer
    check_input("g", "f", "json", b"[18446744073709551616, -" + largest + b", 1e-400]", 1 << 20)
    assert decode("json", b"18446744073709551617") == 2**64 + 1


@pytest.mark.parametrize(
    ("document", "most"),
    [
        (b"[" + b",".join(b"%d" % (n * 7919) for n in range(20_000)) + b"]", 3),
        (b"[" + b",".join(b'{"a":%d,"b":[%d,0.5]}' % (n, n) for n in range(10_000)) + b"]", 8),
    ],
    ids=["numbers", "small objects"],
)
def test_checking_json_holds_a_few_bytes_per_byte_of_it(document: bytes, most: int) -> None:
    """Checking a call's JSON built its Python values (6 bytes per byte of an array of numbers) and took its strings
    out of it with a regular expression (13 per byte of an array of small objects): an isolated child checking 8 MB
    of output held 85 MB. It keeps no value now, and takes the strings out of the brackets and quotes alone."""
    tracemalloc.start()
    try:
        check_input("g", "f", "json", document, 1 << 30)
        check_output("g", "f", "json", document)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < most * len(document)


def test_output_must_be_what_the_export_declares() -> None:
    check_output("g", "f", "json", b'{"a": 1}')
    with pytest.raises(GuestError, match='g: f declares output = "text", but wrote not valid UTF-8'):
        check_output("g", "f", "text", b"\xc3")


def test_values_cross_as_bytes_str_or_json() -> None:
    assert encode("json", {"a": [1, "é"]}, what="w") == '{"a":[1,"é"]}'.encode()
    assert encode("json", b"[1, 2]", what="w") == b"[1, 2]"  # bytes are a document as it is
    assert encode("text", "é", what="w") == "é".encode()
    with pytest.raises(InvalidInput, match="w takes bytes input: pass bytes or str, not int"):
        encode("bytes", 3, what="w")
    with pytest.raises(InvalidInput, match="w: the input cannot be written as JSON"):
        encode("json", {1j}, what="w")
    assert decode("json", b'{"a": 1}') == {"a": 1}
    assert decode("text", b"hi") == "hi"
    assert decode("bytes", b"\0") == b"\0"


@pytest.mark.parametrize("value", ["\ud800", {"k\udcff": ["é", "x\ud83c"]}])
def test_a_lone_surrogate_crosses_as_json_and_is_refused_as_text(value: object) -> None:
    """JSON carries a lone surrogate as a \\u escape, which the caller's json.loads reads back as it was; UTF-8 text
    has no form of it: a one-line refusal, not the encoder's UnicodeEncodeError (a traceback for an operator)."""
    raw = encode("json", value, what="w")
    check_input("g", "f", "json", raw, 1 << 20)
    assert decode("json", raw) == value
    with pytest.raises(InvalidInput, match=r"^w takes text input, and this str holds a lone surrogate \('\\ud800' at"):
        encode("text", "ab\ud800", what="w")


def test_arguments_that_are_no_sequence_of_them_are_refused_in_one_line() -> None:
    manifest = parse_manifest(WORDS + "[exports.add]\nparams = ['i32']\n", source="g.toml", stem="g")
    for args in (5, "5", b"5"):
        with pytest.raises(InvalidInput, match=r"^g: add's arguments are a tuple or list, like \(value,\), not "):
            check_call(manifest, "add", args)  # type: ignore[arg-type]
    check_call(manifest, "add", [5])


COMPONENT = '[guest]\nname = "c"\nversion = "0.1.0"\nabi = "component"\n[exports.digest]\nparams = ["list<u8>"]\n'


def test_a_call_gives_input_exactly_when_the_export_declares_it() -> None:
    manifest = parse_manifest(WORDS + "[exports.add]\nparams = ['i32']\n", source="g.toml", stem="g")
    check_call(manifest, "words", (), b"hi")
    with pytest.raises(InvalidInput, match=r"g: words takes text input: use --input \(input=\.\.\. in the API\)$"):
        check_call(manifest, "words", ())
    json_export = parse_manifest(WORDS.replace('input = "text"', 'input = "json"'), source="g.toml", stem="g")
    with pytest.raises(InvalidInput, match=r"in the API, where JSON's null is b'null'\)$"):
        check_call(json_export, "words", ())
    with pytest.raises(InvalidInput, match=r"g: add takes no input \(its manifest declares none\)"):
        check_call(manifest, "add", (1,), encoded_input(manifest, "add", "x"))
    component = parse_manifest(COMPONENT, source="c.toml", stem="c")
    with pytest.raises(InvalidInput, match=r"^c: digest takes no input \(a component's export takes its WIT arguments"):
        check_call(component, "digest", ([1],), b"x")


def test_input_for_an_export_taking_none_is_refused_for_that_before_its_size(tmp_path: Path) -> None:
    # An outsider's `ngixi run COMPONENT echobytes --input @big.bin` was told the file was over limits.input_bytes:
    # raising the limit then gave the line that was the answer all along.
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 2_000_000)
    component = parse_manifest(COMPONENT, source="c.toml", stem="c")
    tenant = cast(Tenant, SimpleNamespace(manifest=component))  # only its manifest is read before the refusal
    with pytest.raises(InvalidInput, match=r"^c: digest takes no input \(a component's export takes its WIT arguments"):
        call_export(tenant, tmp_path / "c.ngx", "digest", [], f"@{big}")


def test_the_policy_caps_the_data_limits_and_data_is_not_a_grantable_capability(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text("[limits]\ninput_bytes = 8\noutput_bytes = 4096\n")
    manifest = parse_manifest(WORDS, source="g.toml", stem="g")
    assert load_policy(policy_file).exceeded(manifest) == [
        "limits.input_bytes: asks for 16, the policy allows at most 8",
        "limits.output_bytes: asks for 1048576 (the default, unless the manifest sets it), "
        "the policy allows at most 4096",
    ]
    with pytest.raises(ManifestError, match=r"capabilities\.data: unknown capability"):
        parse_manifest(HEADER + "[capabilities.data]\n", source="g.toml", stem="g")


def test_text_given_to_a_numeric_parameter_points_to_the_call_data_abi() -> None:
    manifest = parse_manifest(WORDS + "[exports.add]\nparams = ['i32']\n", source="g.toml", stem="g")
    add = manifest.export("add")
    assert add is not None
    with pytest.raises(InvalidInput, match=r"'hello' is not an i32; to pass text, declare input = \"text\" on the"):
        parse_arguments(add, ["hello"], guest="g")


def test_an_isolated_tenant_counts_the_copies_of_its_call_data_and_json_values() -> None:
    manifest = parse_manifest(WORDS, source="g.toml", stem="g")  # text in (16 bytes), JSON out (1 MiB)
    assert call_data_bytes(manifest) == 4 * 16 + 28 * (1 << 20)


@pytest.mark.parametrize(("function", "args"), [("input_read", (0, 0, 0)), ("output_write", (0, 1))])
def test_the_data_abi_outside_a_call_is_refused_in_one_line(function: str, args: tuple[int, ...]) -> None:
    ctx = HostContext(guest="g", log_quota=0, stdio_quota=0, memory=FakeMemory(4096))  # a start function's
    with pytest.raises(GuestError, match=f"^g: {function} was called outside an export's call"):
        host(ctx, function)(*args)


def test_input_at_sign_alone_names_no_file() -> None:
    """`--input @` read the working directory ("cannot read it: Is a directory", naming `@.`, which nobody typed)."""
    with pytest.raises(InvalidInput, match=r"^g: f: --input @ names no file: give @FILE, or @@ for the text @$"):
        read_input("@", limit=10, what="g: f", timeout_ms=100)
    assert read_input("@@", limit=10, what="g: f", timeout_ms=100) == b"@"
