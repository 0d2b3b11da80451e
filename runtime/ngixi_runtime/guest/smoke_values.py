"""Whether a component smoke call's `expect` could ever equal what its export returns, and whether its `args` are
values its parameters take, from the WIT text of their types (as `ngixi inspect` and the manifest write them).

The smoke harness compares the result as JSON (spec/wit_json.py): bytes as a list of ints, tuples as lists, a
record as a table of its fields, an option as its value, a result as `{ok = v}` or `{err = e}`, a variant as
`{case = v}`, an enum as its name, flags as the list of the set ones in declaration order, a float that JSON
cannot write as "NaN", "Infinity" or "-Infinity". An argument may also be a variant's case without a value by
its name, flags in any order, an f32 any number in its range (the engine rounds it). A value that could never fit
is refused when the manifest is checked, not when the smoke call runs. A type named by its kind alone (`record`)
is checked for its shape only; one this module does not know (a resource) is not checked.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ngixi_runtime.printable import clipped
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import DEPTH
from ngixi_runtime.spec.wasm import nearest_f32

_TOKENS = re.compile(r"[%\w][\w%-]*|[<>{}(),:]")
_WORD = re.compile(r"[%\w][\w%-]*")
_INTEGERS = {
    **{f"u{bits}": (0, 2**bits - 1) for bits in (8, 16, 32, 64)},
    **{f"s{bits}": (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for bits in (8, 16, 32, 64)},
}
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
_BRACKETED = frozenset({"list", "option", "tuple", "result"})
_BRACED = frozenset({"record", "variant", "enum", "flags"})
_SHOWN_CHARACTERS = 80  # of a type or a value quoted in a message


class WitType(NamedTuple):
    """A type as its WIT text says: its kind (`u32`, `list`, `record`, ...) and its parts: the element of a
    list or option; a tuple's elements; a result's ok and err (None: no value); a record's (name, type) fields;
    a variant's (name, type or None) cases; an enum's or flags' names. No parts for a kind named alone. `text`
    is the type's text as the manifest writes it; `order` a record's, variant's, enum's or flags' names with
    their positions in `parts`."""

    kind: str
    parts: tuple[Any, ...] = ()
    named_alone: bool = False
    text: str = ""
    order: Mapping[str, int] = MappingProxyType({})


class Mismatch(NamedTuple):
    """Where in the value (`.words`, `[2]`, `.ok`) it can never fit, the type there, and why."""

    path: str
    type_text: str
    detail: str = ""


class _At(NamedTuple):
    """Where a check is in the value, and whether the value is an argument (the engine's forms, spec/wit_json.py
    and engines/wit_values.py) or an expected result (what the harness compares with)."""

    path: str
    argument: bool

    def inside(self, step: str) -> _At:
        return self._replace(path=self.path + step)

    def misfit(self, ty: WitType, detail: str = "") -> Mismatch:
        return Mismatch(self.path, ty.text, detail)


@functools.lru_cache(maxsize=64)  # every smoke entry of an export reads the same text
def parse_wit_type(text: str) -> WitType | None:
    """The type `text` writes, or None if it is not a WIT type's text this module reads (nor one nested deeper
    than a manifest's values may be)."""
    reader = _Reader(text, list(_TOKENS.finditer(text)))
    try:
        parsed = reader.type(0)
    except (IndexError, ValueError):
        return None
    return parsed if reader.at == len(reader.tokens) else None


class _Reader:
    """Reads a type from its tokens, each step one nesting level down (no deeper than `DEPTH`)."""

    def __init__(self, text: str, tokens: list[re.Match[str]]) -> None:
        self.text, self.tokens, self.at = text, tokens, 0

    def peek(self) -> str:
        return self.tokens[self.at].group() if self.at < len(self.tokens) else ""

    def take(self, *expected: str) -> str:
        token = self.tokens[self.at].group()
        if expected and token not in expected:
            raise ValueError(token)
        self.at += 1
        return token

    def word(self) -> str:
        token = self.take()
        if not _WORD.fullmatch(token):
            raise ValueError(token)
        return token

    def type(self, depth: int) -> WitType:
        if depth > DEPTH:
            raise ValueError("nested too deep")
        start = self.at
        kind = self.word()
        if kind == "_":  # no value: only a result's part
            raise ValueError(kind)
        parts: tuple[Any, ...]
        if kind in _BRACKETED and self.peek() == "<":
            self.take()
            parts, order = self.bracketed(kind, depth), {}
        elif kind in _BRACED and self.peek() == "{":
            self.take()
            parts = self.braced(kind, depth)
            order = {(part if isinstance(part, str) else part[0]): index for index, part in enumerate(parts)}
            if len(order) != len(parts):
                raise ValueError("a name given twice")
        elif kind == "result":  # WIT's text of a result without values
            return WitType(kind, (None, None), text=kind)
        else:
            return WitType(kind, named_alone=kind in _BRACED or kind in _BRACKETED, text=kind)
        text = self.text[self.tokens[start].start() : self.tokens[self.at - 1].end()]
        return WitType(kind, parts, text=text, order=MappingProxyType(order))

    def bracketed(self, kind: str, depth: int) -> tuple[WitType | None, ...]:
        parts: list[WitType | None] = []
        while not parts or self.take(",", ">") == ",":
            parts.append(None if kind == "result" and self.peek() == "_" and self.take() else self.type(depth + 1))
        if kind == "result":
            parts += [None] * (2 - len(parts))
        if len(parts) != {"list": 1, "option": 1, "result": 2}.get(kind, len(parts)):
            raise ValueError(f"{kind} of {len(parts)}")
        return tuple(parts)

    def braced(self, kind: str, depth: int) -> tuple[Any, ...]:
        items: list[Any] = []
        while self.peek() != "}" or not self.take():
            name = self.word()
            if kind == "record":
                self.take(":")
                items.append((name, self.type(depth + 1)))
            elif kind == "variant" and self.peek() == "(":
                self.take()
                items.append((name, self.type(depth + 1)))
                self.take(")")
            else:
                items.append((name, None) if kind == "variant" else name)
            if self.take(",", "}") == "}":
                break
        return tuple(items)


def misfit(ty: WitType, value: object, *, argument: bool) -> Mismatch | None:
    """Why `value` (TOML's) can never be an argument of type `ty`, or equal a result of it as the harness compares
    it; None when it could."""
    return _check(ty, value, _At("", argument))


def _check(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if ty.named_alone:
        return _shape(ty, value, at)
    check = _CHECKS.get(ty.kind)
    return None if check is None else check(ty, value, at)


def _integer(ty: WitType, value: object, at: _At) -> Mismatch | None:
    low, high = _INTEGERS[ty.kind]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return at.misfit(ty)
    return None if low <= value <= high else at.misfit(ty, f"out of range: {ty.kind} is {low} to {high}")


def _float(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if isinstance(value, str) and value in _NON_FINITE:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return at.misfit(ty)
    if ty.kind == "f64" or not math.isfinite(value):
        return None
    nearest = nearest_f32(value)
    if nearest is None:
        return at.misfit(ty, "out of range for an f32")
    return (
        None if nearest == value or at.argument else at.misfit(ty, f"no f32 is exactly this number; expect {nearest!r}")
    )


def _kind_is(expected: type) -> Callable[[WitType, object, _At], Mismatch | None]:
    def check(ty: WitType, value: object, at: _At) -> Mismatch | None:
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            return at.misfit(ty)
        if ty.kind == "char" and isinstance(value, str) and len(value) != 1:
            return at.misfit(ty, "a char is one character")
        return None

    return check


def _list(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if not isinstance(value, list):
        return at.misfit(ty)
    (element,) = ty.parts
    return _first(_check(element, item, at.inside(f"[{i}]")) for i, item in enumerate(value))


def _tuple(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if not isinstance(value, list) or len(value) != len(ty.parts):
        return at.misfit(ty, f"a list of {len(ty.parts)}")
    pairs = enumerate(zip(ty.parts, value, strict=True))
    return _first(_check(t, item, at.inside(f"[{i}]")) for i, (t, item) in pairs)


def _record(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if not isinstance(value, Mapping):
        return at.misfit(ty)
    extra = [key for key in value if key not in ty.order]
    if extra or len(value) != len(ty.parts):
        missing = (name for name, _ in ty.parts if name not in value)
        missing_count = len(ty.parts) - len(value) + len(extra)
        problems = [f"missing {_listed(missing, missing_count)}"] * bool(missing_count)
        problems += [f"no field {_listed(iter(extra), len(extra))}"] * bool(extra)
        return at.misfit(ty, "; ".join(problems))
    return _first(_check(t, value[name], at.inside(f".{name}")) for name, t in ty.parts)


def _option(ty: WitType, value: object, at: _At) -> Mismatch | None:
    (inner,) = ty.parts
    if inner.kind != "option" or inner.named_alone:
        return _check(inner, value, at)
    if not (isinstance(value, Mapping) and list(value) == ["some"]):
        return at.misfit(ty, "a value of a nested option is written {some = ...}")
    return _check(inner, value["some"], at.inside(".some"))


def _cases(ty: WitType, value: object, at: _At) -> Mismatch | None:
    """A result (`ok`, `err`) or a variant: a table of one case's name and its value (an argument: a variant's
    case without a value by its name)."""
    order = {"ok": 0, "err": 1} if ty.kind == "result" else ty.order
    payloads = ty.parts if ty.kind == "result" else [payload for _, payload in ty.parts]
    if at.argument and ty.kind == "variant" and isinstance(value, str) and value in order:
        return None if payloads[order[value]] is None else at.misfit(ty, f"{value} has a value: {{{value} = ...}}")
    if not (isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in order):
        return at.misfit(ty, f"a table of one of {_listed(iter(order), len(order))}, with its value")
    ((name, payload),) = value.items()
    payload_type = payloads[order[name]]
    if payload_type is None:
        return at.misfit(ty, f"{name} has no value")
    return _check(payload_type, payload, at.inside(f".{name}"))


def _enum(ty: WitType, value: object, at: _At) -> Mismatch | None:
    return None if isinstance(value, str) and value in ty.order else at.misfit(ty)


def _flags(ty: WitType, value: object, at: _At) -> Mismatch | None:
    if not isinstance(value, list) or not all(isinstance(f, str) and f in ty.order for f in value):
        return at.misfit(ty)
    positions = [ty.order[name] for name in value]
    if at.argument or all(a < b for a, b in itertools.pairwise(positions)):
        return None
    in_order = sorted(set(value), key=ty.order.__getitem__)
    return at.misfit(ty, f"they come back in declaration order: {clipped(json.dumps(in_order), _SHOWN_CHARACTERS)}")


def _shape(ty: WitType, value: object, at: _At) -> Mismatch | None:
    """A type named by its kind alone: a value of that kind's shape."""
    shapes: dict[str, Callable[[object], bool]] = {
        "record": lambda v: isinstance(v, Mapping),
        "variant": lambda v: (isinstance(v, Mapping) and len(v) == 1) or (at.argument and isinstance(v, str)),
        "enum": lambda v: isinstance(v, str),
        "flags": lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v),
        "list": lambda v: isinstance(v, list),
        "tuple": lambda v: isinstance(v, list),
    }
    fits = shapes.get(ty.kind)
    return None if fits is None or fits(value) else at.misfit(ty)


def _first(mismatches: Iterable[Mismatch | None]) -> Mismatch | None:
    return next((m for m in mismatches if m is not None), None)


def _listed(names: Iterator[str], count: int) -> str:
    """`count` names for a message: the first few of a long list, and how many more."""
    more = f" and {count - 5} more" if count > 5 else ""
    return ", ".join(itertools.islice(names, 5)) + more


_CHECKS: dict[str, Callable[[WitType, object, _At], Mismatch | None]] = {
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
    mismatch = None if ty is None else misfit(ty, expected, argument=False)
    if mismatch is None:
        return None
    returned = f"{function} returns" if not mismatch.path else f"{function}'s result holds"
    return mismatch.path, _message(returned, mismatch, expected)


def argument_problems(function: str, param_types: tuple[str, ...], args: tuple[Any, ...]) -> list[tuple[str, str]]:
    """Why each of a component smoke call's `args` can never be the argument its parameter takes, as (where in
    args, the message); arguments beyond the parameters are the count's problem."""
    found = []
    for index, (text, value) in enumerate(zip(param_types, args, strict=False)):
        ty = parse_wit_type(text)
        mismatch = None if ty is None else misfit(ty, value, argument=True)
        if mismatch is not None:
            taken = f"{function}'s parameter {index + 1} {'takes' if not mismatch.path else 'holds'}"
            found.append((f"[{index}]{mismatch.path}", _message(taken, mismatch, value)))
    return found


def _message(what: str, mismatch: Mismatch, value: object) -> str:
    detail = f" ({mismatch.detail})" if mismatch.detail else ""
    article = "an" if mismatch.type_text[:1] in "aeio" or re.match(r"[sf]\d", mismatch.type_text) else "a"
    there = " there" if mismatch.path else ""
    shown_type = clipped(mismatch.type_text, _SHOWN_CHARACTERS)
    return f"{what} {article} {shown_type}{there}, never {_shown(value, mismatch.path)}{detail}"


def _shown(value: object, path: str) -> str:
    """The part of `value` at `path`, as JSON."""
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        value = value[int(index)] if index else value[name]  # type: ignore[index]
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
