"""The host side of component guests: the world check, and the WIT functions over the shared capabilities."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.component import ComponentInfo, WitTypes, fallible
from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.capabilities.linking import open_context
from ngixi_runtime.capabilities.registry import capability
from ngixi_runtime.errors import GuestError
from ngixi_runtime.guest.check import check_component
from ngixi_runtime.guest.manifest import Manifest, parse_manifest

F = "manifests/hello-component.toml"
BUILD_WITHOUT = (
    "this host provides WASI 0.2's cli, clocks, filesystem, io, random and ngixi:host@0.1.0 (`ngixi wit`): build the "
    "component without the import"
)
MANIFEST = """\
[guest]
name = "hello-component"
version = "0.1.0"
abi = "component"

[exports.add]
params = ["i32", "i32"]
results = ["i32"]

[capabilities.log]

[capabilities.kv]
namespaces = ["counters"]
max_keys = 1

[limits]
log_bytes = 10
"""
LOG, KV, HTTP, TYPES = (f"ngixi:host/{i}@0.1.0" for i in ("log", "kv", "http", "types"))
ADD = {"add": (("s32", "s32"), ("s32",))}
FS_TYPES, OPEN_AT = "wasi:filesystem/types@0.2.12", "[method]descriptor.open-at"
KV_SET_RESULT = (fallible("_"),)


@pytest.fixture
def manifest() -> Manifest:
    return parse_manifest(MANIFEST, source=F, stem="hello-component")


@pytest.fixture
def context(manifest: Manifest, tmp_path: Path) -> HostContext:
    return open_context(
        manifest.guest.name,
        manifest.capabilities,
        log_quota=manifest.limits.log_bytes,
        stdio_quota=manifest.limits.stdout_bytes,
        sandbox=Sandbox.under(tmp_path),
    )


def test_a_smoke_call_gives_the_arguments_of_an_export_typed_by_its_wit() -> None:
    text = MANIFEST + '[exports.tally]\n[[smoke]]\ncall = "tally"\nargs = ["a b"]\nexpect = 2\n'
    exports = {**ADD, "tally": (("string", "u32"), ("u32",))}
    typed = parse_manifest(text, source=F, stem="hello-component")
    assert check_component(typed, ComponentInfo({}, exports)) == [
        f"{F}: smoke[0].args: tally takes 2 arguments (string, u32), the smoke call gives 1"
    ]
    refusal = text.replace("expect = 2", 'expect_error = "takes 2 arguments"')
    assert check_component(parse_manifest(refusal, source=F, stem="hello-component"), ComponentInfo({}, exports)) == []


RECORD = "record { words: u32, longest: string }"
# (the result's WIT type, the smoke call's expect in TOML, what is refused: None when it could match)
EXPECTED_VALUES = [
    ("u32", "2", None),
    ("u32", "2.0", None),  # compared as numbers
    ("u32", "-1", "smoke[0].expect: tally returns a u32, never -1 (out of range: u32 is 0 to 4294967295)"),
    ("u32", '"2"', 'smoke[0].expect: tally returns a u32, never "2"'),
    ("u32", "true", "smoke[0].expect: tally returns a u32, never true"),
    ("bool", "1", "smoke[0].expect: tally returns a bool, never 1"),
    ("f32", "0.5", None),
    (
        "f32",
        "0.1",
        "smoke[0].expect: tally returns an f32, never 0.1 (no f32 is exactly this number; expect 0.10000000149",
    ),
    ("f64", '"NaN"', None),
    ("char", '"ab"', 'smoke[0].expect: tally returns a char, never "ab" (a char is one character)'),
    ("list<u8>", "[0, 255]", None),
    ("list<u8>", "[0, 256]", "smoke[0].expect[1]: tally's result holds a u8 there, never 256 (out of range: u8 is 0"),
    (RECORD, '{ words = 1, longest = "x" }', None),
    (
        RECORD,
        '{ words = "nine", longest = "x" }',
        'smoke[0].expect.words: tally\'s result holds a u32 there, never "nine"',
    ),
    (RECORD, "{ words = 1 }", f'smoke[0].expect: tally returns a {RECORD}, never {{"words": 1}} (missing longest)'),
    (f"list<{RECORD}>", "[{ words = 1, longest = 2 }]", "smoke[0].expect[0].longest: tally's result holds a string"),
    ("tuple<s64, string>", '[1, "x"]', None),
    ("tuple<s64, string>", "[1]", "smoke[0].expect: tally returns a tuple<s64, string>, never [1] (a list of 2)"),
    ("option<u8>", "3", None),
    ("option<option<u8>>", "{ some = 3 }", None),
    ("option<option<u8>>", "3", "smoke[0].expect: tally returns an option<option<u8>>, never 3 (a value of a nested"),
    ("result<string, enum { a, b }>", '{ ok = "x" }', None),
    ("result<string, enum { a, b }>", '{ err = "c" }', "smoke[0].expect.err: tally's result holds an enum { a, b }"),
    ("result", "{ ok = 1 }", 'smoke[0].expect: tally returns a result, never {"ok": 1} (ok has no value)'),
    ("variant { circle(f32), empty }", "{ circle = 2.5 }", None),
    ("variant { circle(f32), empty }", '"empty"', "smoke[0].expect: tally returns a variant { circle(f32), empty }, "),
    ("flags { read, write, exec }", '["read", "exec"]', None),
    (
        "flags { read, write, exec }",
        '["exec", "read"]',
        "smoke[0].expect: tally returns a flags { read, write, exec }, ",
    ),
    ("own<thing>", "1", None),  # not a value this check knows
]


@pytest.mark.parametrize(("result", "expect", "refused"), EXPECTED_VALUES)
def test_a_smoke_call_expects_a_value_the_wit_result_type_could_be(
    result: str, expect: str, refused: str | None
) -> None:
    """Its arguments' count was checked against the WIT, its expected value never: one the result could never
    equal passed validation and failed only when the smoke call ran."""
    text = MANIFEST + f'[exports.tally]\n[[smoke]]\ncall = "tally"\nargs = ["a b"]\nexpect = {expect}\n'
    exports = {**ADD, "tally": (("string",), (result,))}
    found = check_component(parse_manifest(text, source=F, stem="hello-component"), ComponentInfo({}, exports))
    assert found == [] if refused is None else (len(found) == 1 and found[0].startswith(f"{F}: {refused}")), found


# (the parameter's WIT type, the smoke call's argument in TOML, what is refused: None when the engine takes it)
ARGUMENTS = [
    ("u32", "2", None),
    ("u32", '"2"', 'smoke[0].args[1]: tally\'s parameter 2 takes a u32, never "2"'),
    ("u8", "256", "smoke[0].args[1]: tally's parameter 2 takes a u8, never 256 (out of range: u8 is 0 to 255)"),
    ("f32", "0.1", None),  # the engine rounds it
    ("f32", "1e39", "smoke[0].args[1]: tally's parameter 2 takes an f32, never 1e+39 (out of range for an f32)"),
    ("variant { circle(f32), empty }", '"empty"', None),  # a case without a value, by its name
    ("variant { circle(f32), empty }", '"circle"', "smoke[0].args[1]: tally's parameter 2 takes a variant {"),
    ("flags { read, write, exec }", '["exec", "read"]', None),  # any order
    (
        RECORD,
        "{ words = 1, longest = 2 }",
        "smoke[0].args[1].longest: tally's parameter 2 holds a string there, never 2",
    ),
]


@pytest.mark.parametrize(("param", "argument", "refused"), ARGUMENTS)
def test_a_smoke_call_gives_arguments_its_wit_parameter_types_take(
    param: str, argument: str, refused: str | None
) -> None:
    text = MANIFEST + f'[exports.tally]\n[[smoke]]\ncall = "tally"\nargs = ["a b", {argument}]\n'
    exports = {**ADD, "tally": (("string", param), ())}
    found = check_component(parse_manifest(text, source=F, stem="hello-component"), ComponentInfo({}, exports))
    assert found == [] if refused is None else (len(found) == 1 and found[0].startswith(f"{F}: {refused}")), found
    expecting_the_refusal = text + 'expect_error = "expects"\n'
    assert (
        check_component(
            parse_manifest(expecting_the_refusal, source=F, stem="hello-component"), ComponentInfo({}, exports)
        )
        == []
    )


def test_a_smoke_call_expects_no_value_of_a_function_that_returns_none() -> None:
    text = MANIFEST + '[exports.tally]\n[[smoke]]\ncall = "tally"\nargs = ["a b"]\nexpect = 2\n'
    info = ComponentInfo({}, {**ADD, "tally": (("string",), ())})
    assert check_component(parse_manifest(text, source=F, stem="hello-component"), info) == [
        f"{F}: smoke[0].expect: tally returns nothing: remove expect"
    ]


@pytest.mark.parametrize(
    ("imports", "exports", "expected"),
    [
        ({LOG: frozenset({"write"}), TYPES: frozenset(), KV: frozenset({"get"})}, ADD, []),
        (
            {HTTP: frozenset({"fetch"})},
            ADD,
            [
                f"{F}: capabilities.http: the component imports {HTTP}, which needs [capabilities.http]; "
                "grant it in the manifest or remove the import"
            ],
        ),
        # WASI preview 2, as the preview 1 adapter imports it
        ({"wasi:cli/exit@0.2.12": frozenset({"exit"}), "wasi:cli/stderr@0.2.0": frozenset({"get-stderr"})}, ADD, []),
        (
            {"wasi:cli/stdin@0.2.0": frozenset({"get-stdin"}), FS_TYPES: frozenset({OPEN_AT, "filesystem-error-code"})},
            ADD,
            [
                f"{F}: capabilities.stdio: the component imports get-stdin from wasi:cli/stdin@0.2.0, which needs "
                "[capabilities.stdio] or [capabilities.stdin] or [capabilities.fs]; grant it in the manifest or "
                "remove the import",
                f"{F}: capabilities.fs: the component imports {OPEN_AT} from {FS_TYPES}, "
                "which needs [capabilities.fs]; grant it in the manifest or remove the import",
                f"{F}: capabilities.stdio: the component imports filesystem-error-code from {FS_TYPES}, which needs "
                "[capabilities.stdio] or [capabilities.stdin] or [capabilities.fs]; grant it in the manifest or "
                "remove the import",
            ],
        ),
        (
            {FS_TYPES: frozenset({"[method]descriptor.is-same-object"}), "wasi:sockets/tcp@0.2.12": frozenset()},
            ADD,
            [
                f"{F}: capabilities: the component imports [method]descriptor.is-same-object from {FS_TYPES}, "
                "which no Ngixi capability provides",
                f"{F}: capabilities: the component imports wasi:sockets/tcp@0.2.12, which no Ngixi capability "
                f"provides; {BUILD_WITHOUT}",
            ],
        ),
        (  # Rust's std (wasm32-wasip2) imports it in every program: removing the import is not the author's to do
            {"wasi:cli/environment@0.2.0": frozenset({"get-environment"})},
            ADD,
            [
                f"{F}: capabilities.env: the component imports get-environment from wasi:cli/environment@0.2.0, which "
                "needs [capabilities.env]; a language's standard library may import it (Rust's std, wasi-libc): grant "
                "it in the manifest, where a bare [capabilities.env] passes no variables, or remove the import"
            ],
        ),
        (
            {"wasi:cli/exit@0.3.0": frozenset({"exit"})},
            ADD,
            [
                f"{F}: capabilities: the component imports wasi:cli/exit@0.3.0, which no Ngixi capability provides; "
                + BUILD_WITHOUT
            ],
        ),
        (
            {"ngixi:host/log@9.9.9": frozenset({"write"})},
            ADD,
            [
                f"{F}: capabilities: the component imports ngixi:host/log@9.9.9, which no Ngixi capability provides; "
                + BUILD_WITHOUT
            ],
        ),
        ({LOG: frozenset({"shout"})}, ADD, [f"{F}: capabilities.log: {LOG} has no function 'shout' on this host"]),
        ({}, {}, [f"{F}: exports.add: the component has no function 'add'; it exports: nothing"]),
        (
            {},
            {"add": (("s64", "s32"), ())},
            [
                f"{F}: exports.add: declared as (s32, s32) -> (s32), the component exports (s64, s32) -> (); declare "
                'params = ["s64", "s32"], results = [], or leave out params and results to take the types from the '
                "component's WIT"
            ],
        ),
    ],
)
def test_check_component(
    manifest: Manifest,
    imports: dict[str, frozenset[str]],
    exports: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    expected: list[str],
) -> None:
    assert check_component(manifest, ComponentInfo(imports, exports)) == expected


def test_log_functions_share_the_core_quota(context: HostContext) -> None:
    capability("log").component_host["write-at"](context)("warn", "abcde")
    capability("log").component_host["write"](context)("fghij")
    assert [(line.level, line.message) for line in context.output.logs] == [("warn", "abcde"), ("info", "fghij")]
    with pytest.raises(GuestError, match="log output exceeded its quota of 10 bytes"):
        capability("log").component_host["write"](context)("k")


def test_kv_functions_return_values_or_error_cases(context: HostContext) -> None:
    kv = {name: bind(context) for name, bind in capability("kv").component_host.items()}
    assert kv["get"]("counters", b"n") == "not-found"
    assert kv["set"]("counters", b"n", b"1") is None
    assert kv["get"]("counters", b"n") == b"1"
    assert kv["set"]("counters", b"m", b"1") == "quota-exceeded"
    assert kv["keys"]("counters", b"") == [b"n"]
    assert kv["get"]("other", b"n") == "denied"
    assert kv["get"]("counters", b"") == "invalid"
    assert kv["delete"]("counters", b"n") is None
    assert [line.message.partition(" refused")[0] for line in context.output.logs] == [
        "hello-component: kv: a new key",
        'hello-component: kv: namespace "other"',
        "hello-component: kv: an empty key",
    ]


def test_a_component_has_the_call_data_only_while_an_export_runs(context: HostContext) -> None:
    """A core guest's input_read outside an export's call (its start function) is refused; a component's `input`
    returned the empty input there. Both are refused now, by the same check."""
    data = capability("data").component_host
    with pytest.raises(GuestError, match="input was called outside an export's call"):
        data["input"](context)()
    with pytest.raises(GuestError, match="output was called outside an export's call"):
        data["output"](context)(b"x")
    context.data.begin("add", b"in")
    assert data["input"](context)() == b"in"


def test_an_ungranted_capability_traps(context: HostContext) -> None:
    with pytest.raises(GuestError, match=r"called http without \[capabilities.http\]"):
        capability("http").component_host["fetch"](context)("GET", "http://127.0.0.1/", "", b"")


def test_an_import_of_the_hosts_interface_with_other_types_is_refused(manifest: Manifest) -> None:
    """Imports are linked by name, and the host function was handed what the component's own types lift to: a kv
    value declared a `string` was held to max_value_bytes in characters (4 bytes each, at most), a log level a
    `u32` failed the call as the host's fault ("report it")."""
    own: dict[str, Mapping[str, WitTypes]] = {
        LOG: {"write-at": (("u32", "string"), ())},
        KV: {**capability("kv").component_types, "set": (("string", "list<u8>", "string"), KV_SET_RESULT)},
    }
    info = ComponentInfo({name: frozenset(functions) for name, functions in own.items()}, ADD, own)
    assert check_component(manifest, info) == [
        f"{F}: capabilities.kv: the component imports {KV} set as (string, list<u8>, string) -> ({KV_SET_RESULT[0]}), "
        f"and this host's is (string, list<u8>, list<u8>) -> ({KV_SET_RESULT[0]}): build it against the host's WIT "
        "(`ngixi wit`)",
        f"{F}: capabilities.log: the component imports {LOG} write-at as (u32, string) -> (), and this host's is "
        "(enum { trace, debug, info, warn, error }, string) -> (): build it against the host's WIT (`ngixi wit`)",
    ]
    matching = {LOG: capability("log").component_types, KV: capability("kv").component_types}
    assert check_component(manifest, ComponentInfo(info.imports, ADD, matching)) == []
