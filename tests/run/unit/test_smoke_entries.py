"""`[[smoke]]` entries with call data, env, args and expected errors: what is refused when the manifest is read,
and what the harness reports when a call does not do what its entry expects."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ngixi_build.stages.smoke import SmokeFailure, smoke_bundle
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest
from tests.conftest import KeyFiles, make_bundle
from tests.run.integration.test_call_data import MANIFEST as ECHO_MANIFEST
from tests.run.integration.test_call_data import WASM as ECHO_WASM
from tests.wasmgen import DROP, Func, Imp, call_import, load_i32, module, push

LIBRARY = ECHO_MANIFEST + "[exports.add]\nparams = ['i32']\n"
COMMAND = '[guest]\nname = "echo"\nversion = "0.1.0"\nkind = "command"\n[capabilities.stdio]\n'
COMPONENT_COMMAND = COMMAND.replace('kind = "command"', 'kind = "command"\nabi = "component"')
COMPONENT_LIBRARY = (
    '[guest]\nname = "echo"\nversion = "0.1.0"\nabi = "component"\n'
    '[exports.count]\nparams = ["string"]\nresults = ["i32"]\n'
    '[exports.stats]\nparams = ["string"]\nresults = ["record"]\n'
)


def problems(manifest: str, smoke: str) -> list[str]:
    with pytest.raises(ManifestError) as error:
        parse_manifest(manifest + smoke, source="m.toml", stem="echo")
    return [line.removeprefix("m.toml: ") for line in error.value.lines]


@pytest.mark.parametrize(
    ("manifest", "smoke", "expected"),
    [
        (
            COMMAND,
            'call = "_start"\nargs = [2, 3]\n',
            'smoke[0].args: a command\'s args are its argv: an array of strings, like ["--count", "3"]',
        ),
        (
            COMMAND,
            'call = "_start"\nargs = ["x"]\n',
            "smoke[0].args: the guest cannot read its arguments: grant [capabilities.args], or remove args",
        ),
        (  # a command component's args are its argv too, not values for an export
            COMPONENT_COMMAND,
            'call = "_start"\nargs = [2, 3]\n',
            'smoke[0].args: a command\'s args are its argv: an array of strings, like ["--count", "3"]',
        ),
        (
            COMPONENT_COMMAND,
            'call = "_start"\nargs = ["x"]\n',
            "smoke[0].args: the guest cannot read its arguments: grant [capabilities.args], or remove args",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "x"\nexpect_stdout = "x"\n',
            "smoke[0].expect_stdout: the guest cannot write to standard output: grant [capabilities.stdio], or",
        ),
        (
            COMMAND,
            'call = "_start"\nexpect = 0\n',
            "smoke[0].expect: a command guest's _start takes no call data and returns no values; "
            "use expect_exit for its exit code",
        ),
        (
            COMMAND,
            'call = "_start"\ninput = "x"\n',
            "smoke[0].input: a command guest's _start takes no call data and returns no values",
        ),
        (
            LIBRARY,
            'call = "add"\nargs = [1]\ninput = "x"\n',
            "smoke[0].input: add takes no input (its manifest declares none)",
        ),
        (LIBRARY, 'call = "echo"\n', "smoke[0].call: echo takes text input: add input, input_base64 or input_json"),
        (
            LIBRARY,
            'call = "echo"\ninput_json = [1]\n',
            "smoke[0].input_json: echo takes text input, not JSON: use input or input_base64",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "x"\nexpect_json = 1\n',
            "smoke[0].expect_json: echo gives text output, not JSON: use expect_output",
        ),
        (
            LIBRARY,
            'call = "flood"\nexpect_output = "x"\n',
            "smoke[0].expect_output: flood gives bytes output: use expect_output_base64",
        ),
        (
            LIBRARY,
            'call = "add"\nargs = [1]\nexpect_json = 1\n',
            "smoke[0].expect_json: add gives no output (its manifest declares none)",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "x"\nenv = { A = "b" }\n',
            "smoke[0].env: the guest cannot read environment variables: grant [capabilities.env], or remove env",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "x"\nstdin = "y"\n',
            "smoke[0].stdin: the guest cannot read standard input: grant [capabilities.stdin], or remove stdin",
        ),
        (
            LIBRARY + '[capabilities.env]\nallow = ["A"]\n',
            'call = "echo"\ninput = "x"\nenv = { A = "a", B = "b" }\n',
            "smoke[0].env: B: not in capabilities.env.allow (it lists: A), so not settable",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "x"\nexpect_output = "x"\nexpect_error = "y"\n',
            "smoke[0].expect_output: an entry expecting an error (expect_error) expects no result; remove one of them",
        ),
        (
            LIBRARY,
            'call = "add"\nargs = [1]\nexpect_exit = 0\n',
            "smoke[0].expect_exit: add is a library export: it has no exit code (use expect for its values)",
        ),
        (LIBRARY, 'call = "echo"\ninput_base64 = "not base64!"\n', "smoke[0].input_base64: is not base64"),
        (LIBRARY, 'call = "echo"\ninput = "x"\nexpect = 0\n', "smoke[0].expect: echo returns 0 values, the smoke"),
        (LIBRARY, 'call = "json"\ninput_json = [nan]\n', "smoke[0].input_json[0]: nan: a manifest goes into its"),
        (
            LIBRARY,
            'call = "json"\ninput = "1"\nexpect_json = { a = inf }\n',
            "smoke[0].expect_json.a: inf: a manifest goes into its bundle's JSON index",
        ),
        (
            LIBRARY,
            'call = "echo"\ninput = "a"\ninput_base64 = "YQ=="\n',
            "smoke[0]: give one of input, input_base64, not 2",
        ),
        (
            LIBRARY,
            'call = "add"\nargs = [1]\nstdout = ""\nexpect_stdout = ""\n',
            "smoke[0].stdout: is the older name of expect_stdout: give one of them",
        ),
        (LIBRARY, 'call = "echo"\ninput = "x"\nexpect_outptu = "x"\n', "smoke[0].expect_outptu: unknown key"),
        (  # a component's declared result type, before its WIT is at hand
            COMPONENT_LIBRARY,
            'call = "count"\nargs = ["a"]\nexpect = "two"\n',
            'smoke[0].expect: count returns an s32, never "two"',
        ),
        (
            COMPONENT_LIBRARY,
            'call = "stats"\nargs = ["a"]\nexpect = 3\n',
            "smoke[0].expect: stats returns a record, never 3",
        ),
        (
            COMPONENT_LIBRARY,
            'call = "count"\nargs = [1]\n',
            "smoke[0].args[0]: count's parameter 1 takes a string, never 1",
        ),
        (  # an f32 result is compared as it is: 0.1 comes back as 0.10000000149011612
            LIBRARY + '[exports.half]\nparams = ["f32"]\nresults = ["f32"]\n',
            'call = "half"\nargs = [0.1]\nexpect = [0.1]\n',
            "smoke[0].expect[0]: no f32 is exactly 0.1; expect 0.10000000149011612",
        ),
        (  # TOML's 2 is an int, which no engine takes for an f32
            LIBRARY + '[exports.half]\nparams = ["f32"]\nresults = ["f32"]\n',
            'call = "half"\nargs = [2]\nexpect = [1]\n',
            "smoke[0].args[0]: 2 is not an f32 (a float); pass 2.0",
        ),
        (  # an engine made it infinity: the call would have been given another number than the entry's
            LIBRARY + '[exports.half]\nparams = ["f32"]\nresults = ["f32"]\n',
            'call = "half"\nargs = [1e300]\nexpect = [1.0]\n',
            "smoke[0].args[0]: 1e+300 is beyond an f32's range (±3.4028234663852886e+38; pass inf for infinity)",
        ),
        (  # TOML has nan and inf; a bundle's JSON index does not: refused when read, not at the bundle's step
            LIBRARY + '[exports.half]\nparams = ["f64"]\nresults = ["f64"]\n',
            'call = "half"\nargs = [nan]\nexpect = [1.0]\n',
            "smoke[0].args[0]: nan: a manifest goes into its bundle's JSON index, which has no form of it; remove it "
            '(a float\'s is written "NaN", "Infinity" or "-Infinity")',
        ),
        (
            COMPONENT_LIBRARY,
            'call = "count"\nargs = ["x"]\nexpect = -inf\n',
            "smoke[0].expect: -inf: a manifest goes into its bundle's JSON index",
        ),
        (
            LIBRARY,
            'call = "add"\nargs = [1]\nexpect_error = 1979-05-27T07:32:00Z\n',
            "smoke[0].expect_error: a datetime: a manifest goes into its bundle's JSON index, which has none; write it",
        ),
        (LIBRARY, 'call = "add"\nargs = ["NaN"]\n', "smoke[0].args[0]: nan is not an i32 (a whole number from"),
        (LIBRARY, 'call = "add"\nargs = ["2"]\n', "smoke[0].args[0]: must be a number (a float's NaN and"),
        (LIBRARY, 'call = "add"\nargs = [2.5]\n', "smoke[0].args[0]: 2.5 is not an i32 (a whole number from"),
        (LIBRARY, 'call = "add"\nargs = [2147483648]\n', "smoke[0].args[0]: 2147483648 does not fit in i32: give"),
        (  # data the guest's limits could never let through: refused when read, not when the smoke call runs
            LIBRARY,
            f'call = "echo"\ninput_base64 = "{"A" * 5464}"\n',
            "smoke[0].input_base64: is 4098 bytes, over limits.input_bytes (4096): shorten it, raise the limit, or "
            'expect the refusal (expect_error = "over its limit")',
        ),
        (
            LIBRARY,
            f'call = "echo"\ninput = "x"\nexpect_output = "{"x" * 4097}"\n',
            "smoke[0].expect_output: is 4097 bytes, over limits.output_bytes (4096), which the guest's output cannot",
        ),
        (
            COMMAND + "[limits]\nstdout_bytes = 4\n",
            'call = "_start"\nexpect_stdout = "hello"\n',
            "smoke[0].expect_stdout: is 5 bytes, over limits.stdout_bytes (4), which the guest's standard output",
        ),
    ],
)
def test_an_entry_its_guest_cannot_honour_is_refused_not_dropped(manifest: str, smoke: str, expected: str) -> None:
    found = problems(manifest, "[[smoke]]\n" + smoke)
    assert any(line.startswith(expected) for line in found), found


def test_a_core_float_s_nan_and_infinities_are_written_as_the_cli_s_json_writes_them() -> None:
    smoke = '[[smoke]]\ncall = "half"\nargs = ["NaN"]\nexpect = ["-Infinity"]\n'
    text = LIBRARY + '[exports.half]\nparams = ["f64"]\nresults = ["f64"]\n' + smoke
    (call,) = parse_manifest(text, source="m", stem="echo").smoke
    assert math.isnan(call.args[0]) and call.expect == (-math.inf,)
    assert parse_manifest(text.replace('"NaN"', '"Infinity"'), source="m", stem="echo").smoke[0].args == (math.inf,)


def test_the_older_stdout_key_still_works() -> None:
    manifest = parse_manifest(LIBRARY + '[[smoke]]\ncall = "add"\nargs = [1]\nstdout = ""\n', source="m", stem="echo")
    assert manifest.smoke[0].stdout == ""


def run_smoke(tmp_path: Path, keys: KeyFiles, manifest: str, wasm: bytes, smoke: str) -> list[str]:
    path = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=manifest + smoke, guest="echo")
    try:
        smoke_bundle(bundle_path=path, trust_file=keys.trust, label="m.toml")
    except SmokeFailure as failure:
        return str(failure).splitlines()
    return []


def test_call_data_expectations_pass_and_fail_with_what_was_given(tmp_path: Path, keys: KeyFiles) -> None:
    smoke = """
[[smoke]]
call = "echo"
input = "héllo"
expect_output = "héllo"

[[smoke]]
call = "json"
input_json = { a = [1, 2] }
expect_json = { a = [1, 2] }

[[smoke]]
call = "flood"
expect_error = "wrote more than its output limit of 4096 bytes"

[[smoke]]
call = "echo"
input_base64 = "/w=="
expect_error = "not valid UTF-8"

[[smoke]]
call = "echo"
input = "a"
expect_output = "b"

[[smoke]]
call = "json"
input = "[1]"
expect_json = [2]

[[smoke]]
call = "echo"
input = "fine"
expect_error = "anything"

[[smoke]]
call = "broken"
expect_error = "not this"
"""
    smoke += f'[[smoke]]\ncall = "echo"\ninput = "{"x" * 4097}"\nexpect_error = "over its limit"\n'  # as README says
    assert run_smoke(tmp_path, keys, ECHO_MANIFEST, ECHO_WASM, smoke) == [
        "m.toml: smoke[4]: echo(input of 1 bytes) gave 'a', expected 'b'",
        "m.toml: smoke[5]: json(input of 3 bytes) gave [1], expected [2]",
        "m.toml: smoke[6]: echo(input of 4 bytes) succeeded, expected an error containing 'anything'",
        'm.toml: smoke[7]: broken() failed with \'echo: broken declares output = "json", but wrote not valid JSON: '
        "Expecting value: line 1 column 1 (char 0)', expected an error containing 'not this'",
    ]


EXIT = module(
    imports=[Imp("wasi_snapshot_preview1", "proc_exit", ["i32"])],
    functions=[Func("_start", body=call_import(0, 3))],
)


def test_each_command_call_runs_in_its_own_instance_and_its_exit_code_is_checked(
    tmp_path: Path, keys: KeyFiles
) -> None:
    smoke = '[[smoke]]\ncall = "_start"\nexpect_exit = 3\n' * 2 + '[[smoke]]\ncall = "_start"\n'
    assert run_smoke(tmp_path, keys, COMMAND, EXIT, smoke) == [
        "m.toml: smoke[2]: _start exited with code 3, expected 0"
    ]


# Reads stdin into 64.. (an iovec of 100 bytes at 0), writes what it read to stdout (an iovec built at 16).
CAT = module(
    imports=[
        Imp("wasi_snapshot_preview1", "fd_read", ["i32"] * 4, ["i32"]),
        Imp("wasi_snapshot_preview1", "fd_write", ["i32"] * 4, ["i32"]),
    ],
    functions=[
        Func(
            "_start",
            body=call_import(0, 0, 0, 1, 8)
            + DROP
            + push(20)
            + load_i32(8)
            + b"\x36\x02\x00"  # i32.store: the iovec's length is what fd_read read
            + call_import(1, 1, 16, 1, 24)
            + DROP,
        )
    ],
    data=[(0, b"\x40\x00\x00\x00\x64\x00\x00\x00"), (16, b"\x40\x00\x00\x00")],
)
CAT_MANIFEST = COMMAND + "[capabilities.stdin]\n"


def test_stdin_reaches_a_command_granted_it(tmp_path: Path, keys: KeyFiles) -> None:
    smoke = '[[smoke]]\ncall = "_start"\nstdin = "fed in"\nexpect_stdout = "fed in"\n'
    smoke += '[[smoke]]\ncall = "_start"\nstdin = "other"\nexpect_stdout = "fed in"\n'
    assert run_smoke(tmp_path, keys, CAT_MANIFEST, CAT, smoke) == [
        "m.toml: smoke[1]: _start printed 'other', expected 'fed in'"
    ]
