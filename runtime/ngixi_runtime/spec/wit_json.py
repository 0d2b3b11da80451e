"""Component values (engines/wit_values.py) as JSON: for people (the CLI) and across a process boundary (tenants).

`to_json` is what `ngixi run` prints: bytes become a list of ints, tuples lists, a float that JSON
cannot write the string "NaN", "Infinity" or "-Infinity" (as protobuf's JSON mapping does); the value
mapping accepts all of these back as arguments. `to_wire`/`from_wire` keep bytes and tuples exact between a tenant
and its child: `{"$bytes": base64}` and `{"$tuple": [...]}` (WIT names never start with `$`), and so what a value
of no WIT form is: a bytearray `{"$bytearray": base64}`, any other iterable (a set, a range)
`{"$iterable": [type name, ...]}` (a `CrossedIterable` in the child, which a list parameter refuses as it does
in-process, and flags take), a mapping with keys that are not strings `{"$mapping": [[key, value], ...]}`: the child
takes or refuses each as this process would, in the same words. A NaN other than Python's own (a payload, a sign)
crosses as `{"$nan": its 16 hex digits}`, where JSON's NaN would make it Python's, and a str holding surrogates
as `{"$surrogates": its UTF-8 with them, base64}`, where JSON's reader would join a pair of them into one character
(which WIT takes) while this process refuses them.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ngixi_runtime.printable import printable_json
from ngixi_runtime.spec.doubles import beyond_double

_BYTES, _BYTEARRAY, _TUPLE, _ITERABLE, _MAPPING = "$bytes", "$bytearray", "$tuple", "$iterable", "$mapping"
_NAN, _SURROGATES = "$nan", "$surrogates"
_DOUBLE = struct.Struct("<d")
_BITS = struct.Struct("<Q")
_PLAIN_NAN = _BITS.unpack(_DOUBLE.pack(math.nan))[0]


class CrossedIterable:
    """An iterable other than a list or tuple (a set, a range) as it crossed to a tenant's child: its items, and
    the name of its type for messages."""

    def __init__(self, type_name: str, items: list[Any]) -> None:
        self.type_name = type_name
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


def _crossed_iterable(named: list[Any]) -> CrossedIterable:
    if not named or not isinstance(named[0], str):
        raise ValueError("an iterable crossed without the name of its type")
    return CrossedIterable(named[0], named[1:])


# What each tagged sequence becomes again in the child.
_REMADE: dict[str, Callable[[list[Any]], Any]] = {_TUPLE: tuple, _ITERABLE: _crossed_iterable, _MAPPING: dict}
_LEAVES = (str, int, float, type(None))  # bool is an int
_PLAIN = frozenset({str, int, float, bool})


def to_json(value: Any) -> Any:
    """A JSON-able copy of a component value."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value


class TooDeepForTheWire(ValueError):
    """Values nested deeper than `to_wire` was told to carry."""


def to_wire(value: Any, levels: int = 1 << 30) -> Any:
    """`value` in the wire form, lists, tuples and records nested at most `levels` deep (deeper: TooDeepForTheWire);
    ValueError, saying what the arguments hold, for an integer beyond a double's range or a value of a type no
    WIT type takes. Without recursion: the levels a caller allows must not depend on how deep its own stack already
    is."""
    if _plain(value):  # most calls' arguments, numbers and strings: as they are
        return value
    root: list[Any] = [None]
    pending: list[tuple[Any, Any, Any, int]] = [(value, root, 0, levels)]  # a value, where it goes, levels left
    while pending:
        item, parent, key, left = pending.pop()
        if isinstance(item, float) and math.isnan(item) and _bits(item) != _PLAIN_NAN:
            parent[key] = {_NAN: f"{_bits(item):016x}"}
            continue
        if isinstance(item, str) and _has_surrogates(item):
            parent[key] = {_SURROGATES: base64.b64encode(item.encode("utf-8", "surrogatepass")).decode()}
            continue
        if isinstance(item, _LEAVES):
            if isinstance(item, int) and beyond_double(item):
                raise ValueError(f"hold an integer of {item.bit_length()} bits, beyond a double's range")
            parent[key] = item
            continue
        if isinstance(item, (bytes, bytearray)):
            parent[key] = {_BYTEARRAY if isinstance(item, bytearray) else _BYTES: base64.b64encode(item).decode()}
            continue
        if left <= 0:
            raise TooDeepForTheWire
        if isinstance(item, Mapping) and all(isinstance(name, str) and not _has_surrogates(name) for name in item):
            parent[key] = fields = dict.fromkeys(item)
            pending.extend((inner, fields, name, left - 1) for name, inner in item.items())
        elif isinstance(item, Iterable):
            items = _wire_items(item)
            out = [None] * len(items)
            parent[key] = out if isinstance(item, list) else {_wire_tag(item): out}
            pending.extend((inner, out, index, left - 1) for index, inner in enumerate(items))
        else:
            raise ValueError(f"hold a {type(item).__name__}, which no WIT type takes")
    return root[0]


def _wire_items(iterable: Iterable[Any]) -> list[Any]:
    """What crosses of a list, tuple, mapping (its items) or other iterable (its type's name, then its items)."""
    if isinstance(iterable, (list, tuple)):
        return list(iterable)
    if isinstance(iterable, Mapping):
        return list(iterable.items())
    return [type(iterable).__name__, *iterable]


def _wire_tag(iterable: Iterable[Any]) -> str:
    if isinstance(iterable, tuple):
        return _TUPLE
    return _MAPPING if isinstance(iterable, Mapping) else _ITERABLE


def _plain(value: Any) -> bool:
    """A list of strings, floats but NaNs and integers within a double's range, which the wire takes as they are."""
    return type(value) is list and all(
        type(item) in _PLAIN
        and (type(item) is not int or not beyond_double(item))
        and (type(item) is not float or not math.isnan(item))
        and (type(item) is not str or not _has_surrogates(item))
        for item in value
    )


def _has_surrogates(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _bits(number: float) -> int:
    return int(_BITS.unpack(_DOUBLE.pack(number))[0])


def _nan(hex_bits: Any) -> float:
    """The NaN whose bits `to_wire` wrote; ValueError for anything else."""
    if not isinstance(hex_bits, str) or len(hex_bits) != 16:
        raise ValueError("a NaN crossed without its 16 hex digits")
    number: float = _DOUBLE.unpack(_BITS.pack(int(hex_bits, 16)))[0]
    if not math.isnan(number):
        raise ValueError("a NaN crossed with the bits of a number")
    return number


def from_wire(value: Any, levels: int = 1 << 30) -> Any:
    """The value `to_wire` made, read back without recursion, its lists, tuples and records nested at most `levels`
    deep (deeper: TooDeepForTheWire), whatever depth the JSON reader of this Python let through."""
    if _plain(value):
        return value
    root: list[Any] = [None]
    # a value, where it goes, levels left; None for a tagged sequence's end (a tuple, another iterable, a mapping
    # with other keys), its elements below it on the stack all in
    pending: list[tuple[Any, Any, Any, int | None]] = [(value, root, 0, levels)]
    while pending:
        item, parent, key, left = pending.pop()
        if left is None:
            remake, items = item
            parent[key] = remake(items)
            continue
        if isinstance(item, Mapping) and list(item) == [_NAN]:
            parent[key] = _nan(item[_NAN])
            continue
        if isinstance(item, Mapping) and list(item) == [_SURROGATES]:
            parent[key] = base64.b64decode(item[_SURROGATES], validate=True).decode("utf-8", "surrogatepass")
            continue
        if isinstance(item, Mapping) and list(item) in ([_BYTES], [_BYTEARRAY]):
            crossed = base64.b64decode(next(iter(item.values())))
            parent[key] = bytearray(crossed) if _BYTEARRAY in item else crossed
            continue
        if not isinstance(item, (Mapping, list)):
            parent[key] = item
            continue
        if left <= 0:
            raise TooDeepForTheWire
        tag = next(iter(item), None) if isinstance(item, Mapping) and len(item) == 1 else None
        if tag in _REMADE:
            elements = [None] * len(item[tag])
            pending.append(((_REMADE[tag], elements), parent, key, None))
            pending.extend((inner, elements, index, left - 1) for index, inner in enumerate(item[tag]))
        elif isinstance(item, Mapping):
            parent[key] = fields = dict.fromkeys(item)
            pending.extend((inner, fields, name, left - 1) for name, inner in item.items())
        else:
            parent[key] = out = [None] * len(item)
            pending.extend((inner, out, index, left - 1) for index, inner in enumerate(item))
    return root[0]


def shown(value: Any) -> str:
    """A result value as `ngixi run` prints it: a number as Python writes it, anything else as JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return printable_json(to_json(value))
