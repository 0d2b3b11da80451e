"""Whether a component smoke call's `expect` could ever equal what its export returns, from the WIT text of the
result's type (as `ngixi inspect` and the manifest write it).

The smoke harness compares the result as JSON (spec/wit_json.py): bytes as a list of ints, tuples as lists, a
record as a table of its fields, an option as its value, a result as `{ok = v}` or `{err = e}`, a variant as
`{case = v}`, an enum as its name, flags as the list of the set ones in declaration order, a float that JSON
cannot write as "NaN", "Infinity" or "-Infinity". An expected value no result of the type could be is refused
when the manifest is checked, not when the smoke call runs. A type named by its kind alone (`record`) is checked
for its shape only; one this module does not know (a resource) is not checked.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any

from ngixi_runtime.records import NamedTuple

_TOKENS = re.compile(r"[%\w][\w%-]*|[<>{}(),:]")
_INTEGERS = {
    **{f"u{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
    **{f"s{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
}
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
_BRACKETED = frozenset({"list", "option", "tuple", "result"})
_BRACED = frozenset({"record", "variant", "enum", "flags"})


class WitType(NamedTuple):
    """A type as its WIT text says: its kind (`u32`, `list`, `record`, ...) and its parts: the element of a
    list or option; a tuple's elements; a result's ok and err (None: no value); a record's (name, type) fields;
    a variant's (name, type or None) cases; an enum's or flags' names. No parts for a kind named alone."""

    kind: str
    parts: tuple[Any, ...] = ()
    named_alone: bool = False


class Mismatch(NamedTuple):
    """Where in the expected value (`.words`, `[2]`, `.ok`) it can never match, the type there, and why."""

    path: str
    type_text: str
    detail: str = ""


def parse_wit_type(text: str) -> WitType | None:
    """The type `text` writes, or None if it is not a WIT type's text this module reads."""
    tokens = _TOKENS.findall(text)
    try:
        parsed, end = _parse(tokens, 0)
    except (IndexError, ValueError):
        return None
    return parsed if end == len(tokens) else None


def _parse(tokens: list[str], at: int) -> tuple[WitType, int]:
    word = tokens[at]
    after = tokens[at + 1] if at + 1 < len(tokens) else ""
    if word in _BRACKETED and after == "<":
        return _bracketed(word, tokens, at + 2)
    if word in _BRACED and after == "{":
        return _braced(word, tokens, at + 2)
    if not re.fullmatch(r"[%\w][\w%-]*", word):
        raise ValueError(word)
    if word == "result":  # WIT's text of a result without values
        return WitType(word, (None, None)), at + 1
    return WitType(word, named_alone=word in _BRACED or word in _BRACKETED), at + 1


def _bracketed(kind: str, tokens: list[str], at: int) -> tuple[WitType, int]:
    parts: list[WitType | None] = []
    while True:
        if tokens[at] == "_":
            parts.append(None)
            at += 1
        else:
            part, at = _parse(tokens, at)
            parts.append(part)
        at += 1
        if tokens[at - 1] == ">":
            break
        if tokens[at - 1] != ",":
            raise ValueError(tokens[at - 1])
    if kind == "result":
        parts += [None] * (2 - len(parts))
    return WitType(kind, tuple(parts)), at


def _braced(kind: str, tokens: list[str], at: int) -> tuple[WitType, int]:
    items: list[Any] = []
    while tokens[at] != "}":
        name = tokens[at]
        at += 1
        if kind == "record":
            if tokens[at] != ":":
                raise ValueError(tokens[at])
            field, at = _parse(tokens, at + 1)
            items.append((name, field))
        elif kind == "variant" and tokens[at] == "(":
            payload, at = _parse(tokens, at + 1)
            if tokens[at] != ")":
                raise ValueError(tokens[at])
            items.append((name, payload))
            at += 1
        else:
            items.append((name, None) if kind == "variant" else name)
        if tokens[at] == ",":
            at += 1
    return WitType(kind, tuple(items)), at + 1


def never_equal(ty: WitType, value: object, text: str, path: str = "") -> Mismatch | None:
    """Why `value`, a smoke call's expectation in TOML's values, can never equal a result of type `ty` as the
    harness compares it (`text`: the type's WIT text, for the message), or None when it could."""
    if ty.named_alone:
        return _shape(ty, value, text, path)
    check = _CHECKS.get(ty.kind)
    return None if check is None else check(ty, value, text, path)


def _integer(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    low, high = _INTEGERS[ty.kind]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return Mismatch(path, text)
    return None if low <= value <= high else Mismatch(path, text, f"out of range: {ty.kind} is {low} to {high}")


def _float(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    if isinstance(value, str) and value in _NON_FINITE:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Mismatch(path, text)
    if ty.kind == "f64" or not math.isfinite(value):
        return None
    try:
        exact = struct.unpack("<f", struct.pack("<f", value))[0] == value
    except OverflowError:
        return Mismatch(path, text, "out of range for an f32")
    return None if exact else Mismatch(path, text, "no f32 is exactly this number; write the f32's value")


def _kind_is(expected: type | tuple[type, ...]) -> Callable[[WitType, object, str, str], Mismatch | None]:
    def check(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            return Mismatch(path, text)
        if ty.kind == "char" and isinstance(value, str) and len(value) != 1:
            return Mismatch(path, text, "a char is one character")
        return None

    return check


def _list(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    if not isinstance(value, list):
        return Mismatch(path, text)
    (element,) = ty.parts
    return _first(never_equal(element, item, _text(element), f"{path}[{i}]") for i, item in enumerate(value))


def _tuple(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    if not isinstance(value, list) or len(value) != len(ty.parts):
        return Mismatch(path, text, f"a list of {len(ty.parts)}")
    pairs = enumerate(zip(ty.parts, value, strict=True))
    return _first(never_equal(t, item, _text(t), f"{path}[{i}]") for i, (t, item) in pairs)


def _record(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    if not isinstance(value, Mapping):
        return Mismatch(path, text)
    names = [name for name, _ in ty.parts]
    missing, extra = [n for n in names if n not in value], [k for k in value if k not in names]
    if missing or extra:
        problems = [f"missing {', '.join(missing)}"] * bool(missing) + [f"no field {', '.join(extra)}"] * bool(extra)
        return Mismatch(path, text, "; ".join(problems))
    return _first(never_equal(t, value[name], _text(t), f"{path}.{name}") for name, t in ty.parts)


def _option(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    (inner,) = ty.parts
    if inner.kind != "option" or inner.named_alone:
        return never_equal(inner, value, _text(inner), path)
    if not (isinstance(value, Mapping) and list(value) == ["some"]):
        return Mismatch(path, text, "a value of a nested option comes back as {some = ...}")
    return never_equal(inner, value["some"], _text(inner), f"{path}.some")


def _cases(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    """A result (`ok`, `err`) or a variant: a table of one case's name and its value."""
    cases = dict(zip(("ok", "err"), ty.parts, strict=True)) if ty.kind == "result" else dict(ty.parts)
    if not (isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in cases):
        return Mismatch(path, text, f"a table of one of {', '.join(cases)}, with its value")
    ((name, payload),) = value.items()
    payload_type = cases[name]
    if payload_type is None:
        return Mismatch(path, text, f"{name} has no value")
    return never_equal(payload_type, payload, _text(payload_type), f"{path}.{name}")


def _enum(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    return None if isinstance(value, str) and value in ty.parts else Mismatch(path, text)


def _flags(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    if not isinstance(value, list) or not all(isinstance(f, str) and f in ty.parts for f in value):
        return Mismatch(path, text)
    in_order = [name for name in ty.parts if name in value]
    return (
        None
        if value == in_order
        else Mismatch(path, text, f"they come back in declaration order: {json.dumps(in_order)}")
    )


def _shape(ty: WitType, value: object, text: str, path: str) -> Mismatch | None:
    """A type named by its kind alone: a value of that kind's shape."""
    shapes: dict[str, Callable[[object], bool]] = {
        "record": lambda v: isinstance(v, Mapping),
        "variant": lambda v: isinstance(v, Mapping) and len(v) == 1,
        "enum": lambda v: isinstance(v, str),
        "flags": lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v),
        "list": lambda v: isinstance(v, list),
        "tuple": lambda v: isinstance(v, list),
    }
    fits = shapes.get(ty.kind)
    return None if fits is None or fits(value) else Mismatch(path, text)


def _first(mismatches: Any) -> Mismatch | None:
    return next((m for m in mismatches if m is not None), None)


def _text(ty: WitType) -> str:
    """A part's WIT text, for messages."""
    if ty.named_alone or not ty.parts:
        return ty.kind
    if ty.kind in _BRACKETED:
        inner = ", ".join("_" if p is None else _text(p) for p in ty.parts).removesuffix(", _")
        return ty.kind if inner == "_" else f"{ty.kind}<{inner}>"
    if ty.kind == "record":
        return f"record {{ {', '.join(f'{n}: {_text(t)}' for n, t in ty.parts)} }}"
    if ty.kind == "variant":
        return f"variant {{ {', '.join(n if t is None else f'{n}({_text(t)})' for n, t in ty.parts)} }}"
    return f"{ty.kind} {{ {', '.join(ty.parts)} }}"


_CHECKS: dict[str, Callable[[WitType, object, str, str], Mismatch | None]] = {
    **dict.fromkeys(_INTEGERS, _integer),
    "f32": _float,
    "f64": _float,
    "bool": _kind_is(bool),
    "char": _kind_is(str),
    "string": _kind_is(str),
    "list": _list,
    "tuple": _tuple,
    "record": _record,
    "option": _option,
    "result": _cases,
    "variant": _cases,
    "enum": _enum,
    "flags": _flags,
}


def expect_problem(function: str, result_types: tuple[str, ...], expected: object) -> tuple[str, str] | None:
    """Why a component smoke call's `expect` can never equal what `function` returns (`result_types`: its result's
    WIT text, empty when it returns nothing), as (where in expect, the message), or None."""
    if not result_types:
        return "", f"{function} returns nothing: remove expect"
    ty = parse_wit_type(result_types[0])
    if ty is None:
        return None
    mismatch = never_equal(ty, expected, result_types[0])
    if mismatch is None:
        return None
    detail = f" ({mismatch.detail})" if mismatch.detail else ""
    article = "an" if mismatch.type_text[:1] in "aeio" or re.match(r"[sf]\d", mismatch.type_text) else "a"
    returned = f"{function} returns" if not mismatch.path else f"{function}'s result holds"
    there = "" if not mismatch.path else " there"
    shown = _shown(expected, mismatch.path)
    return mismatch.path, f"{returned} {article} {mismatch.type_text}{there}, never {shown}{detail}"


def _shown(expected: object, path: str) -> str:
    """The part of the expected value at `path`, as JSON."""
    value = expected
    for step in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        name, index = step
        value = value[int(index)] if index else value[name]  # type: ignore[index]
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
