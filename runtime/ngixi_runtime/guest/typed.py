"""What a component guest's manifest says about typed exports: WIT type names, and JSON-able smoke values.

A component's `[exports.NAME]` may leave out `params` and `results`: the types then come from the
component's WIT (the build and the loader check that it exports the function). When given, each is
a WIT type as `ngixi inspect` shows it (`string`, `list<u8>`, `option<u32>`), or the kind of a named
type (`record`, `variant`, `enum`, `flags`), or a core value type (`i32` is `s32`); the component's
export must match. Smoke calls of components take any TOML values as `args` and `expect` (the
result, compared as JSON: bytes as a list of ints, records as tables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ngixi_runtime.capabilities.component import WIT_VALUE_TYPES
from ngixi_runtime.printable import clipped
from ngixi_runtime.spec.schema import DEPTH, Problems, closest, type_name

_TYPE_WORDS = (
    *("bool", "char", "string", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"),
    *WIT_VALUE_TYPES,
    *("list", "option", "result", "tuple", "record", "variant", "enum", "flags", "own", "borrow", "_"),
)

if TYPE_CHECKING:
    from ngixi_runtime.guest.smoke import SmokeCall


def wit_type_names(value: object, field: str, problems: Problems) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        problems.add(field, f'must be an array of WIT types like "string" or "list<u8>", not {type_name(value)}')
        return ()
    for index, text in enumerate(value):
        if (problem := _type_text_problem(text)) is not None:
            problems.add(
                f"{field}[{index}]",
                f"{problem} (ngixi inspect shows a bundle's types; or leave out params and results to take them "
                "from the component)",
            )
    return tuple(value)


def _type_text_problem(text: str) -> str | None:
    """Why a declared type is not WIT's text of a type (its words checked where no record's field names can be)."""
    depth = deepest = 0
    for bracket in re.findall(r"[<>{}]", text):
        depth += 1 if bracket in "<{" else -1
        deepest = max(depth, deepest)
        if depth < 0:
            break
    if depth != 0:
        return f"{clipped(text, 80)!r} is not a WIT type: its brackets do not pair up"
    if deepest > DEPTH:
        return f"{clipped(text, 80)!r} nests types {deepest} deep, over the limit of {DEPTH}"
    words = re.findall(r"[A-Za-z_][\w-]*", text)
    checked = words[:1] if "{" in text else words
    unknown = [word for word in checked if word not in _TYPE_WORDS]
    if not unknown:
        return None
    close = closest(unknown[0], _TYPE_WORDS)
    where = "" if unknown[0] == text.strip() else f"{text!r}: "
    return f"{where}{unknown[0]!r} is not a WIT type" + (f"; did you mean {close!r}?" if close else "")


def as_wit(declared: tuple[str, ...]) -> tuple[str, ...]:
    """A manifest's types as WIT names them (a core `i32` is `s32`)."""
    return tuple(WIT_VALUE_TYPES.get(t, t) for t in declared)


def wit_type_matches(declared: str, found: str) -> bool:
    """Whether a manifest's type names the component's: the same WIT text, or the kind of a named type."""
    wanted = "".join(as_wit((declared,))[0].split())
    return wanted in ("".join(found.split()), found.split(" ", maxsplit=1)[0])


def json_arguments(value: object, field: str, problems: Problems) -> tuple[Any, ...]:
    """A component smoke call's `args`: an array of JSON-able values (a manifest holding a date, NaN or an infinity
    was refused before its entries are read: `schema.oversized`)."""
    if not isinstance(value, list):
        problems.add(field, f"must be an array of the export's arguments, not {type_name(value)}")
        return ()
    return tuple(value)


def parse_component_entry(entry: Mapping[str, Any], field: str, problems: Problems) -> SmokeCall:
    """A component's `[[smoke]]` entry: as any other, but a library export's `args` and `expect` are JSON-able
    values (a command's `args` are its argv, as for a core guest)."""
    from ngixi_runtime.guest.smoke import START, parse_entry  # here: only a manifest with [[smoke]] entries

    if entry.get("call") == START:
        return parse_entry(entry, field, problems)
    call = parse_entry({k: v for k, v in entry.items() if k not in ("args", "expect")}, field, problems)
    args = json_arguments(entry.get("args", []), f"{field}.args", problems)
    expect = (entry["expect"],) if "expect" in entry else None
    return call._replace(args=args, expect=expect, keys=frozenset(entry))
