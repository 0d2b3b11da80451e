"""WIT values of a component's exports as Python values (docs/components.md, "Typed exports").

| WIT | Python (what a call returns) | also accepted as an argument |
| --- | --- | --- |
| bool, integers, floats | bool, int, float | an int for a float; "NaN", "Infinity", "-Infinity" |
| char, string | str (one code point for char) | |
| list<u8> | bytes | bytearray, a list of ints 0-255 |
| list<T>, tuple<…> | list, tuple | a list for a tuple |
| record | dict of its fields (WIT names) | |
| option<T> | None or the value; {"some": v} when T is itself an option | |
| result<T, E> | {"ok": v} or {"err": e} (None without a payload) | |
| enum | the case's name | |
| flags | list of the set flags' names, in declaration order | any iterable of names |
| variant | {"case": payload} (None without a payload) | "case" for a case without payload |

Every form is JSON-able apart from bytes and tuples (`spec/wit_json.py` turns those into lists);
arguments may be given in either form. An argument that does not fit is an `InvalidInput` naming
the export, the parameter (and the path inside it) and the WIT type it expects; integers out of
their type's range are refused, never wrapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import wasmtime.component as wc

from ngixi_runtime.errors import InvalidInput, counted
from ngixi_runtime.printable import printable, printable_json
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.doubles import beyond_double
from ngixi_runtime.spec.wasm import nearest_f32
from ngixi_runtime.spec.wit_json import CrossedIterable

_INTEGERS: dict[type, tuple[str, int, int]] = {
    wc.U8: ("u8", 0, 2**8 - 1),
    wc.U16: ("u16", 0, 2**16 - 1),
    wc.U32: ("u32", 0, 2**32 - 1),
    wc.U64: ("u64", 0, 2**64 - 1),
    wc.S8: ("s8", -(2**7), 2**7 - 1),
    wc.S16: ("s16", -(2**15), 2**15 - 1),
    wc.S32: ("s32", -(2**31), 2**31 - 1),
    wc.S64: ("s64", -(2**63), 2**63 - 1),
}
_SCALARS: dict[type, str] = {wc.Bool: "bool", wc.F32: "f32", wc.F64: "f64", wc.Char: "char", wc.String: "string"}
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})  # how JSON writes them (spec/wit_json.py)
_SHOWN = 60


# --- the WIT text of a type -------------------------------------------------------------------


def render(ty: wc.ValType) -> str:
    """A type as WIT writes it; named types (records, variants, enums, flags) show their structure."""
    simple = _INTEGERS.get(type(ty), (None,))[0] or _SCALARS.get(type(ty))
    if simple is not None:
        return simple
    rendering = _RENDERING.get(type(ty))
    return type(ty).__name__.lower().removesuffix("type") if rendering is None else rendering(ty)


def _render_record(ty: wc.RecordType) -> str:
    return f"record {{ {', '.join(f'{n}: {render(t)}' for n, t in ty.fields)} }}"


def _render_variant(ty: wc.VariantType) -> str:
    cases = (n if t is None else f"{n}({render(t)})" for n, t in ty.cases)
    return f"variant {{ {', '.join(cases)} }}"


def _render_result(ty: wc.ResultType) -> str:
    if ty.ok is None and ty.err is None:
        return "result"
    ok = "_" if ty.ok is None else render(ty.ok)
    return f"result<{ok}>" if ty.err is None else f"result<{ok}, {render(ty.err)}>"


# Resources and streams have none: they are shown by their kind, and never passed.
_RENDERING: dict[type, Callable[[Any], str]] = {
    wc.ListType: lambda ty: f"list<{render(ty.element)}>",
    wc.OptionType: lambda ty: f"option<{render(ty.payload)}>",
    wc.ResultType: _render_result,
    wc.TupleType: lambda ty: f"tuple<{', '.join(render(e) for e in ty.elements)}>",
    wc.RecordType: _render_record,
    wc.VariantType: _render_variant,
    wc.EnumType: lambda ty: f"enum {{ {', '.join(ty.names)} }}",
    wc.FlagsType: lambda ty: f"flags {{ {', '.join(ty.names)} }}",
}


# --- a type read once --------------------------------------------------------------------------


class WitType:
    """A value type read from the engine once (wasmtime-py builds its type objects anew, through FFI, on
    every access); what lowering and lifting need of it, in plain Python."""

    __slots__ = ("cases", "classes", "element", "elements", "fields", "kind", "names", "tagged", "text")

    def __init__(
        self,
        kind: type,  # the engine's class of the type: wc.RecordType, wc.U8, ...
        text: str,  # as WIT writes it
        classes: frozenset[type],  # the Python classes the engine maps its values to (its `add_classes`)
        *,
        element: WitType | None = None,  # list, option
        elements: tuple[WitType, ...] = (),  # tuple
        fields: tuple[tuple[str, WitType], ...] = (),  # record
        names: tuple[str, ...] = (),  # enum, flags
        cases: tuple[tuple[str, WitType | None], ...] = (),  # variant, option (none, some), result (ok, err)
        tagged: bool = False,  # whether the engine takes and gives this variant-like as a `Variant`
    ) -> None:
        self.kind = kind
        self.text = text
        self.classes = classes
        self.element = element
        self.elements = elements
        self.fields = fields
        self.names = names
        self.cases = cases
        self.tagged = tagged


def read_type(ty: wc.ValType) -> WitType:
    """The snapshot of an engine type, its parts included."""
    classes: set[type] = set()
    ty.add_classes(classes)
    parts: dict[str, Any] = {}
    if isinstance(ty, wc.ListType):
        parts["element"] = read_type(ty.element)
    elif isinstance(ty, wc.TupleType):
        parts["elements"] = tuple(read_type(t) for t in ty.elements)
    elif isinstance(ty, wc.RecordType):
        parts["fields"] = tuple((n, read_type(t)) for n, t in ty.fields)
    elif isinstance(ty, (wc.EnumType, wc.FlagsType)):
        parts["names"] = tuple(ty.names)
    elif isinstance(ty, (wc.OptionType, wc.ResultType, wc.VariantType)):
        cases = _cases(ty)
        parts["cases"] = tuple((n, None if t is None else read_type(t)) for n, t in cases)
        parts["tagged"] = _tagged(cases)
        if isinstance(ty, wc.OptionType):
            parts["element"] = parts["cases"][1][1]
    return WitType(type(ty), render(ty), frozenset(classes), **parts)


class TypedFunction(NamedTuple):
    """An export's parameter and result types, read once."""

    params: tuple[tuple[str, WitType], ...]
    result: WitType | None

    @classmethod
    def of(cls, function: wc.FuncType) -> TypedFunction:
        result = function.result
        return cls(tuple((n, read_type(t)) for n, t in function.params), None if result is None else read_type(result))


# --- Python → the engine ----------------------------------------------------------------------


class _Where:
    """Where in an argument a value sits, for messages: "analyze's text.items[2].name"."""

    def __init__(self, text: str) -> None:
        self.text = text

    def child(self, suffix: str) -> _Where:
        return _Where(self.text + suffix)

    def refuse(self, ty: WitType, value: object, detail: str = "") -> InvalidInput:
        expected = ty.text
        article = "an" if expected[0] in "aeio" or (expected[0] in "sf" and expected[1:2].isdigit()) else "a"
        return InvalidInput(f"{self.text} expects {article} {expected}, got {_shown(value)}{detail}")


def _shown(value: object) -> str:
    """A value in a refusal, as JSON, what no terminal shows (a surrogate, a control) written as an escape: the text
    crosses from a tenant's child as JSON, whose reader would join a pair of surrogates into one character."""
    try:
        text = printable_json(value)
    except (TypeError, ValueError, RecursionError):  # a set, as in-process so in a tenant's child
        text = value.type_name if isinstance(value, CrossedIterable) else type(value).__name__
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _named(key: object) -> str:
    """A record's key that names no field: a string as it is, any other key as `_shown` shows it (a set's order and
    a value's repr differ between this process and a tenant's child, where a set arrives as a CrossedIterable)."""
    return printable(key) if isinstance(key, str) else _shown(key)


def lower_arguments(export: str, function: TypedFunction, args: Sequence[object]) -> list[Any]:
    """The engine's values of an export's arguments (Python or JSON forms), checked against its WIT types."""
    params = function.params
    if len(args) != len(params):
        listed = ", ".join(f"{n}: {t.text}" for n, t in params)
        raise InvalidInput(f"{export} takes {counted(len(params), 'argument')} ({listed}), got {len(args)}")
    return [lower(ty, value, _Where(f"{export}'s {name}")) for (name, ty), value in zip(params, args, strict=True)]


def lower(ty: WitType, value: object, where: _Where) -> Any:
    lowering = _LOWERING.get(ty.kind)
    if lowering is None:
        raise InvalidInput(f"{where.text}: a {ty.text} cannot be passed from the host")
    return lowering(ty, value, where)


def _integer(ty: WitType, value: object, where: _Where) -> int:
    name, low, high = _INTEGERS[ty.kind]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.refuse(ty, value)
    if not low <= value <= high:
        raise where.refuse(ty, value, f" (out of range: {name} is {low} to {high})")
    return value


def _float(ty: WitType, value: object, where: _Where) -> float:
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.refuse(ty, value)
    if isinstance(value, int) and beyond_double(value):
        raise where.refuse(ty, value, " (beyond a double's range)")
    number = float(value)
    if ty.kind is wc.F32 and math.isfinite(number) and nearest_f32(number) is None:  # rounded, it would be inf
        raise where.refuse(ty, value, " (out of range for an f32)")
    return number


def _bool(ty: WitType, value: object, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.refuse(ty, value)
    return value


def _string(ty: WitType, value: object, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.refuse(ty, value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise where.refuse(ty, value, " (not valid Unicode: a lone surrogate)") from None
    if ty.kind is wc.Char and len(value) != 1:
        raise where.refuse(ty, value, " (a char is one character)")
    return value


def _list(ty: WitType, value: object, where: _Where) -> Any:
    element = ty.element
    assert element is not None
    if element.kind is wc.U8 and isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, (list, tuple)):
        raise where.refuse(ty, value)
    items = [lower(element, item, where.child(f"[{i}]")) for i, item in enumerate(value)]
    return bytes(items) if element.kind is wc.U8 else items


def _tuple(ty: WitType, value: object, where: _Where) -> tuple[Any, ...]:
    elements = ty.elements
    if not isinstance(value, (list, tuple)) or len(value) != len(elements):
        raise where.refuse(ty, value)
    return tuple(lower(t, item, where.child(f"[{i}]")) for i, (t, item) in enumerate(zip(elements, value, strict=True)))


def _record(ty: WitType, value: object, where: _Where) -> wc.Record:
    fields = ty.fields
    if not isinstance(value, Mapping):
        raise where.refuse(ty, value)
    names = [n for n, _ in fields]
    missing, extra = [n for n in names if n not in value], [k for k in value if k not in names]
    if missing or extra:
        problems = [f"missing {', '.join(missing)}"] * bool(missing) + [
            f"no field {', '.join(_named(key) for key in extra)}"
        ] * bool(extra)
        raise where.refuse(ty, value, f" ({'; '.join(problems)})")
    record = wc.Record()
    for name, field_type in fields:
        setattr(record, name, lower(field_type, value[name], where.child(f".{name}")))
    return record


def _enum(ty: WitType, value: object, where: _Where) -> str:
    if not isinstance(value, str) or value not in ty.names:
        raise where.refuse(ty, value)
    return value


def _flags(ty: WitType, value: object, where: _Where) -> set[str]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise where.refuse(ty, value)
    chosen = list(value)
    unknown = [f for f in chosen if not isinstance(f, str) or f not in ty.names]
    if unknown:
        raise where.refuse(ty, value, f" (no flag {_shown(unknown[0])})")
    return set(chosen)


# --- variants, options and results: one case and its payload ----------------------------------

Cases = list[tuple[str, "wc.ValType | None"]]


def _cases(ty: wc.ValType) -> Cases:
    if isinstance(ty, wc.OptionType):
        return [("none", None), ("some", ty.payload)]
    if isinstance(ty, wc.ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    assert isinstance(ty, wc.VariantType)
    return list(ty.cases)


def _classes(payload: wc.ValType | None) -> set[type]:
    classes: set[type] = set()
    if payload is None:
        classes.add(object)
    else:
        payload.add_classes(classes)
    return classes


def _tagged(cases: Cases) -> bool:
    """Whether wasmtime-py wants `Variant(tag, payload)` here, or the bare payload: tagged when two cases'
    payloads could be Python values of the same class (the engine's own rule, from the public `add_classes`)."""
    seen: set[type] = set()
    for _, payload in cases:
        classes = _classes(payload)
        if classes & seen:
            return True
        seen |= classes
    return False


def _nested_option(ty: WitType) -> bool:
    return ty.element is not None and ty.element.kind is wc.OptionType


def _chosen_case(ty: WitType, value: object, where: _Where) -> tuple[str, object]:
    """The case an argument names, and its payload."""
    if ty.kind is wc.OptionType:
        if value is None:
            return "none", None
        if not _nested_option(ty):
            return "some", value
        if isinstance(value, Mapping) and list(value) == ["some"]:
            return "some", value["some"]
        raise where.refuse(ty, value, ' (write {"some": ...} for a value of a nested option)')
    names = [n for n, _ in ty.cases]
    if ty.kind is wc.VariantType and isinstance(value, str) and value in names:
        return value, None
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in names:
        ((name, payload),) = value.items()
        return name, payload
    raise where.refuse(ty, value, f" (one of {', '.join(names)})" if ty.kind is wc.VariantType else "")


def _variant(ty: WitType, value: object, where: _Where) -> Any:
    name, payload = _chosen_case(ty, value, where)
    payload_type = dict(ty.cases)[name]
    if payload_type is None:
        if payload is not None:
            raise where.refuse(ty, value, f" ({name} takes no value)")
        lowered = None
    else:
        lowered = lower(payload_type, payload, where.child(f".{name}" if ty.kind is not wc.OptionType else ""))
    if ty.tagged:
        return wc.Variant(name, lowered)
    engine_case = _engine_case(ty, lowered)
    if engine_case != name:
        raise InvalidInput(
            f"{where.text}: case {name} of {ty.text} cannot be passed from the host: Wasmtime's Python API would "
            f"pass this value as case {engine_case or '(none)'}; give the cases payloads of other types"
        )
    return lowered


def _engine_case(ty: WitType, lowered: object) -> str | None:
    """The case wasmtime-py lowers an untagged value as: the first whose payload's Python classes it is an
    instance of (so `True` is the case of an s32 before one of a bool), or the first without payload for None."""
    for name, payload in ty.cases:
        if (lowered is None) if payload is None else isinstance(lowered, tuple(payload.classes)):
            return name
    return None


_LOWERING: dict[type, Callable[[WitType, object, _Where], Any]] = {
    **{t: _integer for t in _INTEGERS},
    wc.Bool: _bool,
    wc.F32: _float,
    wc.F64: _float,
    wc.Char: _string,
    wc.String: _string,
    wc.ListType: _list,
    wc.TupleType: _tuple,
    wc.RecordType: _record,
    wc.EnumType: _enum,
    wc.FlagsType: _flags,
    wc.OptionType: _variant,
    wc.ResultType: _variant,
    wc.VariantType: _variant,
}


# --- the engine → Python ----------------------------------------------------------------------


def lift_result(function: TypedFunction, raw: Any) -> tuple[Any, ...]:
    """An export's result as Python values: () or a one-value tuple."""
    return () if function.result is None else (lift(function.result, raw),)


def lift(ty: WitType, raw: Any) -> Any:
    if ty.kind is wc.ListType:
        assert ty.element is not None
        return raw if isinstance(raw, bytes) else [lift(ty.element, item) for item in raw]
    if ty.kind is wc.TupleType:
        return tuple(lift(t, item) for t, item in zip(ty.elements, raw, strict=True))
    if ty.kind is wc.RecordType:
        return {name: lift(t, getattr(raw, name)) for name, t in ty.fields}
    if ty.kind is wc.FlagsType:
        return [name for name in ty.names if name in raw]
    if ty.cases:
        return _lift_variant(ty, raw)
    return raw


def _lift_variant(ty: WitType, raw: Any) -> Any:
    if ty.tagged:
        assert isinstance(raw, wc.Variant)
        name, payload = raw.tag, raw.payload
    else:
        name, payload = _untagged_case(ty, raw), raw
    payload_type = dict(ty.cases)[name]
    value = None if payload_type is None else lift(payload_type, payload)
    if ty.kind is wc.OptionType:
        return value if name == "some" and not _nested_option(ty) else ({"some": value} if name == "some" else None)
    return {name: value}


def _untagged_case(ty: WitType, raw: Any) -> str:
    """The case of an untagged payload: the one without payload for None, else the one of the payload's class."""
    if raw is None:  # a case without payload, or one whose payload (an option) lifts to None
        return next(name for name, payload in ty.cases if payload is None or object in payload.classes)
    with_payload = [(name, payload) for name, payload in ty.cases if payload is not None]
    exact = next((name for name, payload in with_payload if type(raw) in payload.classes), None)
    return exact or next(name for name, payload in with_payload if isinstance(raw, tuple(payload.classes)))
