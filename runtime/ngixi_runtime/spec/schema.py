"""Typed reading of TOML tables: each getter records a `FILE: dotted.field: message` problem and goes on."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ngixi_runtime.printable import clipped, printable

T = TypeVar("T")
# A field and a message quote what the file's author wrote (keys, values): each is cut there, with a note.
_FIELD_LIMIT = 200
_MESSAGE_LIMIT = 1000
_REPORTED_LINES = 20
# A reported line may quote names a module's author chose (its imports, its functions): each is cut there too.
_LINE_LIMIT = 2000
# The longest name (an export, an environment variable) and path (a guest's or a file's) a manifest or policy may
# hold, in UTF-8 bytes: far above any real one and within what engines and the WASI and component ABIs take;
# without them a 100,000-character name was carried into every signed index, load and error message.
NAME_BYTES = 1024
PATH_BYTES = 4096  # PATH_MAX on Linux
# What any other string (a description, a fixed variable's value, a smoke call's input), array or table of a
# manifest may hold, and how deep its tables and arrays may nest: what a signer wrote is carried into every signed
# index, load and message, and no real manifest comes near.
TEXT_BYTES = 64 << 10
ITEMS = 10_000
DEPTH = 32
ItemCheck = Callable[[object, str, "Problems"], T | None]


class Problems:
    """Every problem found in one file, collected so that all of them are reported together."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, field: str, message: str) -> None:
        self.lines.append(
            printable(f"{self.source}: {clipped(field, _FIELD_LIMIT)}: {clipped(message, _MESSAGE_LIMIT)}")
        )

    def unknown_keys(self, table: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
        for key in table:
            if key in allowed:
                continue
            field = f"{prefix}.{key}" if prefix else key
            self.add(field, f"unknown key; {suggestion(key, allowed, 'allowed')}")


def reported(lines: Sequence[str]) -> str:
    """The problems of one file as a message: the first `_REPORTED_LINES`, each cut to `_LINE_LIMIT` characters,
    then how many more there are (a file of 20,000 unknown keys printed 20,000 lines, a module importing a
    100,000-character name a line of that length)."""
    shown = "\n".join(clipped(line, _LINE_LIMIT) for line in lines[:_REPORTED_LINES])
    more = len(lines) - _REPORTED_LINES
    return shown if more <= 0 else f"{shown}\n… and {more} more problems in the same file: fix those above first"


def suggestion(word: str, choices: Sequence[str], listing: str) -> str:
    """`did you mean "x"?` for a likely typo, else the list of choices."""
    close = closest(word, choices)
    return f'did you mean "{close}"?' if close else f"{listing}: {', '.join(choices)}"


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` is likely a typo of, if any (difflib is imported only for a problem to report)."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None


def type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def table(raw: Mapping[str, Any], key: str, field: str, problems: Problems) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        problems.add(field, f"must be a table, not {type_name(value)}")
        return {}
    return value


def string(raw: Mapping[str, Any], key: str, field: str, problems: Problems, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        problems.add(field, "is required")
        return ""
    if not isinstance(value, str):
        problems.add(field, f"must be a string, not {type_name(value)}")
        return ""
    return value


def integer(
    raw: Mapping[str, Any], key: str, field: str, problems: Problems, *, default: int, low: int, high: int
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(field, f"must be an integer, not {type_name(value)}")
        return default
    if not low <= value <= high:
        problems.add(field, f"must be between {low} and {high}, not {value}")
    return value


def array(
    raw: Mapping[str, Any],
    key: str,
    field: str,
    problems: Problems,
    *,
    item: ItemCheck[T],
    required: str | None = None,
    default: Sequence[T] = (),
    identity: Callable[[T], object] | None = None,
) -> tuple[T, ...]:
    """An array whose items `item(value, field, problems)` checks (None when it recorded a problem).

    `required`, when given, is what to say if the key is missing or the array is empty;
    `identity`, when given, makes a repeated item an error.
    """
    if key not in raw:
        if required:
            problems.add(field, f"is required: {required}")
        return tuple(default)
    value = raw[key]
    if not isinstance(value, list):
        problems.add(field, f"must be an array, not {type_name(value)}")
        return ()
    if not value and required:
        problems.add(field, f"must not be empty: {required}")
    items: list[T] = []
    seen: set[object] = set()
    for index, entry in enumerate(value):
        checked = item(entry, f"{field}[{index}]", problems)
        if checked is None:
            continue
        if identity is not None and identity(checked) in seen:
            problems.add(f"{field}[{index}]", f'"{identity(checked)}" is listed twice')
            continue
        seen.add(identity(checked) if identity else index)
        items.append(checked)
    return tuple(items)


def oversized(raw: Mapping[str, Any], problems: Problems) -> None:
    """Every key or string longer than `TEXT_BYTES`, array or table of more than `ITEMS` entries, nesting
    deeper than `DEPTH` and value JSON has no form of (a date, nan, inf: a manifest is carried in its bundle's JSON
    index) in `raw`, whatever its fields; the fields' own checks bound names and paths further."""
    if _within_bounds(raw):  # the walk naming each field only where something is out of bounds
        return
    pending: deque[tuple[str, object, int]] = deque([("", raw, 0)])
    while pending:
        field, value, depth = pending.popleft()
        if isinstance(value, (dict, list)) and depth >= DEPTH:
            problems.add(field, f"nests tables and arrays over {DEPTH} deep; no manifest field is")
        elif isinstance(value, (dict, list)) and len(value) > ITEMS:
            problems.add(field, f"has {len(value)} entries, over the limit of {ITEMS}")
        elif isinstance(value, dict):
            for key, inner in value.items():
                at = f"{field}.{key}" if field else key
                if why := too_long(key, TEXT_BYTES):
                    problems.add(at, f"the key {why}")
                else:
                    pending.append((at, inner, depth + 1))
        elif isinstance(value, list):
            pending.extend((f"{field}[{index}]", inner, depth + 1) for index, inner in enumerate(value))
        elif isinstance(value, str) and (why := too_long(value, TEXT_BYTES)):
            problems.add(field, why)
        elif not _has_json_form(value):
            problems.add(field, _without_json_form(value, field))


def _has_json_form(value: object) -> bool:
    """Whether a TOML value (not a table or array) has a JSON form: all but dates, times, nan and the infinities."""
    return isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value))


def _without_json_form(value: object, field: str) -> str:
    if not isinstance(value, float):  # a date or time
        return (
            f"a {type_name(value)}: a manifest goes into its bundle's JSON index, which has none; write it as a string"
        )
    instead = ' (a float\'s is written "NaN", "Infinity" or "-Infinity")' if field.startswith("smoke[") else ""
    return f"{value!r}: a manifest goes into its bundle's JSON index, which has no form of it; remove it{instead}"


def _within_bounds(raw: Mapping[str, Any]) -> bool:
    """Whether `oversized` would find nothing in `raw`: the same bounds, no field named."""
    pending: list[tuple[object, int]] = [(raw, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            if depth >= DEPTH or len(value) > ITEMS or any(map(_may_be_too_long, value)):
                return False
            pending.extend((inner, depth + 1) for inner in value.values())
        elif isinstance(value, list):
            if depth >= DEPTH or len(value) > ITEMS:
                return False
            pending.extend((inner, depth + 1) for inner in value)
        elif not _has_json_form(value) or (isinstance(value, str) and _may_be_too_long(value)):
            return False
    return True


def _may_be_too_long(text: str) -> bool:
    """Whether `text` may be over `TEXT_BYTES` in UTF-8: a character takes at most 4 bytes."""
    return len(text) > TEXT_BYTES // 4 and too_long(text, TEXT_BYTES) is not None


def too_long(value: str, limit: int) -> str | None:
    """Why `value` is over `limit` UTF-8 bytes, or None when it is not."""
    size = len(value.encode("utf-8", "surrogatepass"))
    return f"is {size} bytes long, over the limit of {limit} bytes" if size > limit else None


def string_item(pattern: re.Pattern[str], rule: str, *, limit: int = NAME_BYTES) -> ItemCheck[str]:
    """An `array` item check for strings of at most `limit` bytes that must match `pattern`; `rule` says what
    they must be."""

    def check(value: object, field: str, problems: Problems) -> str | None:
        if not isinstance(value, str):
            problems.add(field, f"must be a string, not {type_name(value)}")
            return None
        if why := too_long(value, limit):
            problems.add(field, why)
            return None
        if not pattern.match(value):
            problems.add(field, f'"{value}" {rule}')
            return None
        return value

    return check


def optional_table(
    raw: Mapping[str, Any], key: str, allowed: Sequence[str], problems: Problems
) -> Mapping[str, Any] | None:
    """The top-level table `key` if present and a table (its unknown keys reported); None otherwise."""
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, dict):
        problems.add(key, f"must be a table, not {type_name(value)}")
        return None
    problems.unknown_keys(value, allowed, key)
    return value
