"""What crosses the call data ABI (capabilities/data.py): bytes, text or JSON, checked at the boundary.

A manifest declares, per export, `input = "bytes" | "text" | "json"` and `output = ...`. Text is
UTF-8; JSON is one UTF-8 JSON document (no NaN or Infinity, no number beyond a double's range, arrays and
objects nested at most MAX_JSON_DEPTH deep).
The host holds the input to `limits.input_bytes` before the call and the guest's output to
`limits.output_bytes` while it writes; each refusal is one line naming the guest, the export and
the limit or declaration.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterator
from itertools import accumulate, count, repeat
from typing import Any, Literal

from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.spec.doubles import beyond_double
from ngixi_runtime.spec.wasm import ModuleInfo

DataKind = Literal["bytes", "text", "json"]
DATA_KINDS: tuple[DataKind, ...] = ("bytes", "text", "json")
DataValue = Any  # bytes for "bytes", str for "text", a JSON value (dict, list, str, int, ...) for "json"
INPUT_IMPORT = ("ngixi", "input_read")
OUTPUT_IMPORT = ("ngixi", "output_write")
_KIND_WORDS = {"bytes": "bytes", "text": "text", "json": "JSON"}
MAX_JSON_DEPTH = 512  # the same in every process and at every depth of the host's own stack
_LARGEST_DOUBLE_DIGITS = 309  # 1.8e308
_OTHER_THAN_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_AS_STEPS = bytes.maketrans(b'[]"', b"\x02\x00\x01")  # a bracket's step in depth, plus one (a quote's: none)
_QUOTES_AS_ONES = bytes.maketrans(b'[]"', b"\x00\x00\x01")
_CHEAP_PASSES = 4
_JSON_SPACE = " \t\n\r"
# What to do about NaN, Infinity or -Infinity in JSON, worded for whoever writes it: a caller's input, a guest's
# output (ngixi-data's writer says the same).
_NO_NAN_IN_JSON = "RFC 8259 has no NaN or Infinity: write null or a string in its place"
_TOO_DEEP = f"JSON nested more than {MAX_JSON_DEPTH} deep, past the host's limit"


def kind_word(kind: DataKind) -> str:
    """How messages name a kind: "text input", "JSON output"."""
    return _KIND_WORDS[kind]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON ({_NO_NAN_IN_JSON})")


class BeyondJsonLimits(ValueError):
    """JSON the host refuses to read though the grammar allows it: one of the two kinds below."""


class NestedTooDeeply(BeyondJsonLimits):
    """Arrays and objects nested deeper than MAX_JSON_DEPTH."""


class NumberBeyondADouble(BeyondJsonLimits):
    """A number beyond a double's range (spec/doubles.py)."""


def _out_of_range(number: str) -> NumberBeyondADouble:
    shown = number if len(number) <= 40 else f"{number[:20]}... ({len(number)} characters)"
    return NumberBeyondADouble(f"JSON with the number {shown}, out of range of a double")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise _out_of_range(number)
    return value


def _integer(number: str) -> int:
    """An integer within a double's range, kept exact (a 64-bit id stays itself)."""
    if len(number.lstrip("-")) <= _LARGEST_DOUBLE_DIGITS:
        value = int(number)
        if not beyond_double(value):
            return value
    raise _out_of_range(number)


def _nested_too_deeply(raw: bytes) -> bool:
    """Whether the document's arrays and objects nest deeper than MAX_JSON_DEPTH (brackets in strings aside):
    the parser's own recursion would give way at a depth that depends on the host's stack."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False
    structure = _structure(raw)
    if b'"' in structure:
        return max(_depths_outside_strings(structure)) > MAX_JSON_DEPTH
    brackets = structure
    levels = 0
    while levels < _CHEAP_PASSES and b"[]" in brackets:  # a pass takes away the innermost level of nesting
        brackets = brackets.replace(b"[]", b"")
        levels += 1
    if levels + brackets.count(b"[") <= MAX_JSON_DEPTH:
        return False
    depths: Iterator[int] = map(operator.sub, accumulate(brackets.translate(_AS_STEPS)), count(1))  # in C
    return levels + max(depths) > MAX_JSON_DEPTH


def _depths_outside_strings(structure: bytes) -> Iterator[int]:
    """The depth after each byte of a document's structure (`_structure`), a bracket in a string not counted: one
    is in a string when an odd number of quotes come before it. Iterators in C, holding no piece of the document
    (a regular expression's substitution of its strings held 13 bytes per byte of an array of small objects)."""
    outside = map(operator.xor, accumulate(structure.translate(_QUOTES_AS_ONES)), repeat(1))  # 1 or 0 (in a string)
    steps = map(operator.sub, structure.translate(_AS_STEPS), repeat(1))  # [ +1, ] -1, " 0
    return accumulate(map(operator.mul, steps, map(operator.and_, outside, repeat(1))))


def _structure(raw: bytes) -> bytes:
    """A document's brackets (an object's as an array's) and the quotes of its strings that hold brackets: two quotes
    side by side are a string without brackets, or the end of one and the start of the next, and taking them out
    changes no bracket's count of quotes before it by an odd number."""
    if b"\\" in raw:  # escaped backslashes first, then escaped quotes: each quote left opens or closes a string
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return raw.translate(_OBJECTS_AS_ARRAYS, _OTHER_THAN_STRUCTURE).replace(b'""', b"")


def _problem(kind: DataKind, raw: bytes) -> str | None:
    """Why `raw` is not a valid value of `kind`, or None."""
    if kind == "bytes":
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not valid UTF-8 (byte {error.start})"
    return None if kind == "text" else _json_problem(raw, text)


def read_json(text: str, raw: bytes | None = None) -> Any:
    """One JSON document (`raw`: the same as UTF-8, if the caller has it), read within the host's fixed limits.

    Raises ValueError when it is not JSON, BeyondJsonLimits (a ValueError) when it is but past the limits."""
    return _parsed(text, raw, _finite, _integer, None)


def _parsed(
    text: str,
    raw: bytes | None,
    parse_float: Callable[[str], Any],
    parse_int: Callable[[str], Any],
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None,
) -> Any:
    if _nested_too_deeply(text.encode() if raw is None else raw):
        raise NestedTooDeeply(_TOO_DEEP)
    try:
        return json.loads(
            text,
            parse_constant=_no_constants,
            parse_float=parse_float,
            parse_int=parse_int,
            object_pairs_hook=object_pairs_hook,
        )
    except RecursionError:  # an API caller's own stack already deep
        raise NestedTooDeeply(
            f"JSON nested {MAX_JSON_DEPTH} deep or less, but deeper than this caller's stack leaves room for"
        ) from None


def _checked_float(number: str) -> None:
    _finite(number)


def _checked_integer(number: str) -> None:
    _integer(number)


def _let_go(_pairs: list[tuple[str, Any]]) -> None:
    return None


def _json_problem(raw: bytes, text: str) -> str | None:
    """Why `raw` is not JSON within the host's limits, or None: read as `read_json` reads it, keeping no value it does
    not need to go on (each object let go as it closes, each number checked and dropped), so that checking a call's
    data holds a few bytes per byte of it rather than the 6 to 23 its Python values take."""
    try:
        _parsed(text, raw, _checked_float, _checked_integer, _let_go)
    except BeyondJsonLimits as error:
        return str(error)
    except ValueError as error:
        return f"not valid JSON: {_why_not_json(text, error)}"
    return None


def _why_not_json(text: str, error: ValueError) -> str:
    """Python's reason, but in JSON's words where Python's name the wrong thing: a BOM (its advice is to decode with
    a codec of Python's), and text with no value at all (`Expecting value` at its end)."""
    if text.startswith("\ufeff"):
        return "it starts with a byte order mark (U+FEFF), which JSON text must not (RFC 8259, 8.1): remove it"
    if not text.strip(_JSON_SPACE):
        return "it holds no value (it is empty or only whitespace)"
    return str(error)


def check_input(guest: str, export: str, kind: DataKind, raw: bytes, limit: int) -> None:
    """The input of a call, before it reaches the guest: within `limit` bytes, and valid for `kind`."""
    if len(raw) > limit:
        raise InvalidInput(
            f"{guest}: {export}: the input is {len(raw)} bytes, over its limit of {limit} (limits.input_bytes)"
        )
    problem = _problem(kind, raw)
    if problem is not None:
        raise InvalidInput(f"{guest}: {export} takes {kind_word(kind)} input, and this is {problem}")


def check_output(guest: str, export: str, kind: DataKind, raw: bytes) -> None:
    """The output a guest wrote must be what its export declares (its size was held to the limit as it wrote)."""
    problem = _problem(kind, raw)
    if problem is not None:
        raise GuestError(f'{guest}: {export} declares output = "{kind}", but wrote {problem}', outcome="output")


def encode(kind: DataKind, value: DataValue, *, what: str) -> bytes:
    """A caller's value as the bytes the guest reads: bytes as they are (for JSON: a document), str as UTF-8,
    anything else (JSON only) serialized. A JSON string holding a lone surrogate is written with `\\u` escapes, as
    JSON can carry it and the caller's `json.loads` reads it back; as text it is refused, as UTF-8 has no form of it."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if kind == "json":
        try:
            document = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"{what}: the input cannot be written as JSON: {error}") from None
        except RecursionError:  # deeper than json.dumps recurses: far past the limit the guest would be held to
            raise InvalidInput(f"{what} takes JSON input, and this is {_TOO_DEEP}") from None
        try:
            return document.encode()
        except UnicodeEncodeError:  # a lone surrogate, which only an escape can hold
            return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError as error:
            raise InvalidInput(
                f"{what} takes text input, and this str holds a lone surrogate ({error.object[error.start]!a} at "
                f"index {error.start}), which UTF-8 cannot carry: pass valid text, or bytes"
            ) from None
    raise InvalidInput(f"{what} takes {kind_word(kind)} input: pass bytes or str, not {type(value).__name__}")


def decode(kind: DataKind, raw: bytes) -> DataValue:
    """Checked output as the caller gets it: bytes, str, or the JSON value."""
    if kind == "bytes":
        return raw
    text = raw.decode("utf-8")
    return text if kind == "text" else json.loads(text)


def module_problems(declares: Callable[[str], bool], info: ModuleInfo) -> list[str]:
    """What the module lacks for the data its exports declare, or imports without any declaring it.

    `declares("input")` says whether any export declares an input (likewise "output").
    """
    imported = {(i.module, i.name) for i in info.imports}
    problems = []
    for side, (module, name) in (("input", INPUT_IMPORT), ("output", OUTPUT_IMPORT)):
        if declares(side) and (module, name) not in imported:
            problems.append(
                f"exports: an export declares {side}, but the .wasm does not import {module}.{name}; "
                f'read and write the call\'s data through the data ABI (docs/host-abi.md, "Call data")'
            )
        elif not declares(side) and (module, name) in imported:
            problems.append(
                f"exports: the .wasm imports {module}.{name}, but no export declares {side}; "
                f'add {side} = "bytes", "text" or "json" to the export that uses it'
            )
    return problems
