"""Component values (engines/wit_values.py) as JSON: for people (the CLI) and across a process boundary (tenants).

`to_json` is what `ngixi run` prints: bytes become a list of ints, tuples lists, a float that JSON
cannot write the string "NaN", "Infinity" or "-Infinity" (as protobuf's JSON mapping does); the value
mapping accepts all of these back as arguments. `to_wire`/`from_wire` keep bytes and tuples exact between a tenant
and its child: `{"$bytes": base64}` and `{"$tuple": [...]}` (WIT names never start with `$`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.printable import printable_json

_BYTES, _TUPLE = "$bytes", "$tuple"


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


def to_wire(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple):
        return {_TUPLE: [to_wire(item) for item in value]}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_wire(item) for key, item in value.items()}
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    if isinstance(value, Mapping):
        if list(value) == [_BYTES]:
            return base64.b64decode(value[_BYTES])
        if list(value) == [_TUPLE]:
            return tuple(from_wire(item) for item in value[_TUPLE])
        return {key: from_wire(item) for key, item in value.items()}
    return value


def json_arguments(raw: Sequence[str]) -> tuple[Any, ...]:
    """Command-line arguments of a typed (component) export: each one JSON, else taken as a string.

    So `analyze "two words"` passes the text as it is, `add 2 3` numbers, `tag '{"name": "x"}'` a record;
    a JSON string (`'"3"'`) passes text that would otherwise read as JSON.
    """
    values = []
    for position, text in enumerate(raw, start=1):
        try:
            values.append(json.loads(text))
        except ValueError:
            values.append(text)
        except RecursionError:
            raise InvalidInput(f"argument {position} is JSON nested too deeply to read") from None
    return tuple(values)


def shown(value: Any) -> str:
    """A result value as `ngixi run` prints it: a number as Python writes it, anything else as JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return printable_json(to_json(value))
