"""A manifest's `[[smoke]]` entries: the calls the build's smoke test makes, with what each must give.

Inputs: `args` (numbers for a library export; strings, the argv, for a command guest's `_start`),
`input` (text), `input_base64` or `input_json` for an export declaring input, `env` (a table of
strings its [capabilities.env] allows), `stdin` (text, for a guest granted [capabilities.stdin]).
Expectations: `expect` (the returned values), `expect_output` (text), `expect_output_base64`,
`expect_json`, `expect_stdout` (`stdout` is its older name), `expect_exit` (a command's exit code),
`expect_error` (text the error of an expected refusal or trap contains). An entry that its guest
or export cannot honour is refused when the manifest is read, never dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ngixi_runtime.errors import counted
from ngixi_runtime.guest.data import DataKind, kind_word
from ngixi_runtime.guest.kind import GuestType
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import Problems, string
from ngixi_runtime.spec.wasm import argument_problem, nearest_f32, value_problem

Number = int | float
CoreTypes = tuple[tuple[str, ...], tuple[str, ...]]
START = "_start"
SMOKE_KEYS = (
    "call",
    "args",
    "input",
    "input_base64",
    "input_json",
    "env",
    "stdin",
    "expect",
    "expect_output",
    "expect_output_base64",
    "expect_json",
    "expect_stdout",
    "stdout",
    "expect_exit",
    "expect_error",
)
_INPUTS = ("input", "input_base64", "input_json")
_OUTPUTS = ("expect_output", "expect_output_base64", "expect_json")
_RESULTS = ("expect", *_OUTPUTS, "expect_exit")


class SmokeCall(NamedTuple):
    call: str
    args: tuple[Any, ...] = ()  # a library export's arguments (a component's: JSON-able values, guest/typed.py)
    expect: tuple[Any, ...] | None = None
    stdout: str | None = None  # expect_stdout
    argv: tuple[str, ...] = ()  # a command guest's arguments
    input: bytes | None = None  # as the guest reads it
    env: Mapping[str, str] = MappingProxyType({})
    stdin: bytes | None = None
    expect_output: bytes | None = None  # from expect_output (UTF-8) or expect_output_base64
    expect_json: Any = None
    expects_json: bool = False  # whether expect_json was given (its value may be JSON's null)
    expect_exit: int | None = None
    expect_error: str | None = None
    keys: frozenset[str] = frozenset()  # the keys the entry set, for the checks against its export

    @property
    def is_command(self) -> bool:
        return self.call == START

    @property
    def own_instance(self) -> bool:
        """Whether the call needs an instance of its own (a command runs once; env and stdin are per instance)."""
        return self.is_command or bool(self.env) or self.stdin is not None


# A float's values TOML has but a manifest cannot carry (its bundle's index is JSON), as the CLI's JSON writes them.
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _numbers(value: object, field: str, problems: Problems) -> tuple[Number, ...]:
    items: list[Any] = [_FLOAT_WORDS.get(item, item) if isinstance(item, str) else item for item in _listed(value)]
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int | float):
            where = f"{field}[{index}]" if isinstance(value, list) else field
            problems.add(where, 'must be a number (a float\'s NaN and infinities: "NaN", "Infinity", "-Infinity")')
    return tuple(items)


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _strings(value: object, field: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.add(field, 'a command\'s args are its argv: an array of strings, like ["--count", "3"]')
        return ()
    return tuple(value)


def _env(value: object, field: str, problems: Problems) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        problems.add(field, 'must be a table of strings, like { GREETING = "hi" }')
        return {}
    return dict(value)


def _input(entry: Mapping[str, Any], field: str, problems: Problems) -> bytes | None:
    return _given_bytes(entry, _one_given(entry, _INPUTS, field, problems), field, problems)


def _one_given(entry: Mapping[str, Any], keys: tuple[str, ...], field: str, problems: Problems) -> str | None:
    """The one of `keys` that `entry` gives, the first if it gives several (a problem); None for none."""
    given = [key for key in keys if key in entry]
    if len(given) > 1:
        problems.add(field, f"give one of {', '.join(given)}, not {len(given)}")
    return given[0] if given else None


def _given_bytes(entry: Mapping[str, Any], key: str | None, field: str, problems: Problems) -> bytes | None:
    """The bytes `entry[key]` stands for: base64 for a `*_base64` key, a JSON document for a `*_json` key, else
    text; None for no key."""
    if key is None:
        return None
    if key.endswith("_base64"):
        return _base64(entry, key, field, problems)
    if key.endswith("_json"):
        return _json_document(entry, key)
    return string(entry, key, f"{field}.{key}", problems).encode()


def _json_document(entry: Mapping[str, Any], key: str) -> bytes:
    """A TOML value as the JSON document it stands for (a manifest holding a date, NaN or an infinity, which JSON
    lacks, was refused before its entries are read: `schema.oversized`)."""
    return json.dumps(entry[key], ensure_ascii=False, allow_nan=False).encode()


def _base64(entry: Mapping[str, Any], key: str, field: str, problems: Problems) -> bytes | None:
    text = string(entry, key, f"{field}.{key}", problems)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        problems.add(f"{field}.{key}", "is not base64")
        return None


def _expect_output(entry: Mapping[str, Any], field: str, problems: Problems) -> bytes | None:
    given = _one_given(entry, _OUTPUTS, field, problems)
    return None if given == "expect_json" else _given_bytes(entry, given, field, problems)  # JSON: parse_entry's


def _optional(entry: Mapping[str, Any], key: str, field: str, problems: Problems) -> str | None:
    return string(entry, key, f"{field}.{key}", problems) if key in entry else None


def parse_entry(entry: Mapping[str, Any], field: str, problems: Problems) -> SmokeCall:
    """One `[[smoke]]` table, its values checked; `check_entry` holds it to its guest and export."""
    problems.unknown_keys(entry, SMOKE_KEYS, field)
    call = string(entry, "call", f"{field}.call", problems)
    raw_args = entry.get("args", [])
    command = call == START
    if "stdout" in entry and "expect_stdout" in entry:
        problems.add(f"{field}.stdout", "is the older name of expect_stdout: give one of them")
    exit_code = entry.get("expect_exit")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        problems.add(f"{field}.expect_exit", "must be an integer")
    return SmokeCall(
        call=call,
        args=() if command else _numbers(raw_args, f"{field}.args", problems),
        expect=_numbers(entry["expect"], f"{field}.expect", problems) if "expect" in entry else None,
        stdout=_optional(entry, "expect_stdout" if "expect_stdout" in entry else "stdout", field, problems),
        argv=_strings(raw_args, f"{field}.args", problems) if command and "args" in entry else (),
        input=_input(entry, field, problems),
        env=_env(entry["env"], f"{field}.env", problems) if "env" in entry else {},
        stdin=string(entry, "stdin", f"{field}.stdin", problems).encode() if "stdin" in entry else None,
        expect_output=_expect_output(entry, field, problems),
        expect_json=entry.get("expect_json"),
        expects_json="expect_json" in entry,
        expect_exit=exit_code if isinstance(exit_code, int) else None,
        expect_error=_optional(entry, "expect_error", field, problems),
        keys=frozenset(entry),
    )


class SmokeTarget(NamedTuple):
    """What a smoke entry is held to: the guest's type and grants, and the export it calls (None: undeclared)."""

    guest_type: GuestType
    grants: frozenset[str]
    params: int | None  # the export's parameter count
    input: DataKind | None = None
    output: DataKind | None = None
    env_allow: tuple[str, ...] = ()  # the variables [capabilities.env] lets a caller set
    results: int | None = None  # how many values the export returns, where the manifest says
    limits: SmokeLimits | None = None
    core_types: CoreTypes | None = None  # a core export's params and results
    wit_types: CoreTypes | None = None  # a component export's declared params and results (WIT text)


class SmokeLimits(NamedTuple):
    """The guest's limits a smoke entry's data must fit (limits.*)."""

    input_bytes: int
    output_bytes: int
    stdout_bytes: int


def check_entry(call: SmokeCall, field: str, target: SmokeTarget, problems: Problems) -> None:
    """Refuses what the entry's guest or export cannot honour, one line per problem."""
    add: Callable[[str, str], None] = lambda key, message: problems.add(f"{field}.{key}", message)  # noqa: E731
    _check_shared(call, target, add)
    if target.limits is not None:
        _check_sizes(call, target.limits, add)
    if call.is_command and target.guest_type.kind == "command":
        _check_command(call, target, add)
    elif target.params is None:
        add("call", f'"{call.call}" is not declared under [exports]')
    else:
        _check_library(call, target, target.params, add)


def _check_shared(call: SmokeCall, target: SmokeTarget, add: Callable[[str, str], None]) -> None:
    if call.stdin is not None and "stdin" not in target.grants:
        add("stdin", "the guest cannot read standard input: grant [capabilities.stdin], or remove stdin")
    if call.stdout and "stdio" not in target.grants:
        add(
            "expect_stdout" if "expect_stdout" in call.keys else "stdout",
            "the guest cannot write to standard output: grant [capabilities.stdio], or remove it",
        )
    if call.env and "env" not in target.grants:
        add("env", "the guest cannot read environment variables: grant [capabilities.env], or remove env")
    elif unknown := sorted(set(call.env) - set(target.env_allow)):
        allowed = ", ".join(target.env_allow) or "none"
        add("env", f"{', '.join(unknown)}: not in capabilities.env.allow (it lists: {allowed}), so not settable")
    if call.expect_error is not None:
        for key in sorted(call.keys & set(_RESULTS)):
            add(key, "an entry expecting an error (expect_error) expects no result; remove one of them")


def _check_sizes(call: SmokeCall, limits: SmokeLimits, add: Callable[[str, str], None]) -> None:
    """Data a call under the guest's limits could never pass or give: refused now, not when the smoke call runs."""
    if call.input is not None and len(call.input) > limits.input_bytes and call.expect_error is None:
        add(
            next(key for key in _INPUTS if key in call.keys),
            f"is {len(call.input)} bytes, over limits.input_bytes ({limits.input_bytes}): shorten it, raise the "
            'limit, or expect the refusal (expect_error = "over its limit")',
        )
    if call.expect_output is not None and len(call.expect_output) > limits.output_bytes:
        key = next(key for key in _OUTPUTS if key in call.keys)
        add(
            key,
            f"is {len(call.expect_output)} bytes, over limits.output_bytes ({limits.output_bytes}), which "
            "the guest's output cannot pass: shorten it, or raise the limit",
        )
    if call.stdout is not None and len(call.stdout.encode()) > limits.stdout_bytes:
        key = "expect_stdout" if "expect_stdout" in call.keys else "stdout"
        add(
            key,
            f"is {len(call.stdout.encode())} bytes, over limits.stdout_bytes ({limits.stdout_bytes}), "
            "which the guest's standard output cannot pass: shorten it, or raise the limit",
        )


def _check_command(call: SmokeCall, target: SmokeTarget, add: Callable[[str, str], None]) -> None:
    for key in sorted(call.keys & {*_INPUTS, *_OUTPUTS, "expect"}):
        hint = "; use expect_exit for its exit code" if key == "expect" else ""
        add(key, f"a command guest's _start takes no call data and returns no values{hint}")
    if call.argv and "args" not in target.grants:
        add("args", "the guest cannot read its arguments: grant [capabilities.args], or remove args")


def _check_library(call: SmokeCall, target: SmokeTarget, params: int, add: Callable[[str, str], None]) -> None:
    name = call.call
    if len(call.args) != params:
        add("args", f"{name} takes {counted(params, 'argument')}, the smoke call gives {len(call.args)}")
    if "expect_exit" in call.keys:
        add("expect_exit", f"{name} is a library export: it has no exit code (use expect for its values)")
    if call.expect is not None and target.results is not None and len(call.expect) != target.results:
        add("expect", f"{name} returns {target.results} values, the smoke call expects {len(call.expect)}")
    if target.core_types is not None:
        _check_values(call, target.core_types, add)
    if target.wit_types is not None:
        for key, message in typed_call_problems(call, *target.wit_types):
            add(key, message)
    given = sorted(call.keys & set(_INPUTS))
    if target.input is None:
        for key in given:
            add(key, f"{name} takes no input (its manifest declares none)")
    elif not given and call.expect_error is None:
        add("call", f"{name} takes {kind_word(target.input)} input: add input, input_base64 or input_json")
    elif "input_json" in given and target.input != "json":
        add("input_json", f"{name} takes {kind_word(target.input)} input, not JSON: use input or input_base64")
    _check_expected_output(call, target, add)


def _check_values(call: SmokeCall, types: CoreTypes, add: Callable[[str, str], None]) -> None:
    """Arguments the export's parameters cannot take (refused when the call runs, so fine for an entry expecting
    that error) and results it cannot return."""
    params, results = types
    args = call.args if call.expect_error is None else ()
    for key, values, kinds in (("args", args, params), ("expect", call.expect or (), results)):
        for index, (value, kind) in enumerate(zip(values, kinds, strict=False)):
            if key == "args":
                problem = argument_problem(value, kind)
            else:
                problem = value_problem(value, kind) or _never_returned(value, kind)
            if problem is not None:
                add(f"{key}[{index}]", problem)


def _never_returned(value: Number, kind: str) -> str | None:
    """Why an f32 result can never equal `value`: no float32 is exactly it (an argument is rounded, a result is
    compared as it is)."""
    if kind != "f32" or not isinstance(value, float) or not math.isfinite(value):
        return None
    nearest = nearest_f32(value)
    if nearest is None:
        return f"{value!r} is beyond an f32's range"
    return None if nearest == value else f"no f32 is exactly {value!r}; expect {nearest!r}"


def typed_call_problems(call: SmokeCall, params: tuple[str, ...], results: tuple[str, ...]) -> list[tuple[str, str]]:
    """What a component smoke call's `args` and `expect` could never be, given its export's parameter and result
    types (WIT text), as (the key under the entry, the message). The arguments of an entry expecting an error, or
    of one giving the wrong count of them (a problem of its own), are left alone."""
    from ngixi_runtime.guest.smoke_values import argument_problems, expect_problem  # here: only for a component

    found = []
    if call.expect_error is None and len(call.args) == len(params):
        found += [(f"args{where}", message) for where, message in argument_problems(call.call, params, call.args)]
    if call.expect:
        expected = expect_problem(call.call, results, call.expect[0])
        if expected is not None:
            found.append((f"expect{expected[0]}", expected[1]))
    return found


def _check_expected_output(call: SmokeCall, target: SmokeTarget, add: Callable[[str, str], None]) -> None:
    name = call.call
    for key in sorted(call.keys & set(_OUTPUTS)):
        if target.output is None:
            add(key, f"{name} gives no output (its manifest declares none)")
        elif key == "expect_json" and target.output != "json":
            add(key, f"{name} gives {kind_word(target.output)} output, not JSON: use expect_output")
        elif key == "expect_output" and target.output == "bytes":
            add(key, f"{name} gives bytes output: use expect_output_base64")
