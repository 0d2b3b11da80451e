"""`NamedTuple` for the run side's records: `typing.NamedTuple`'s class syntax and result, made without checking
each field's annotation.

`typing.NamedTuple` passes every annotation through its type check, which, for the string annotations that
`from __future__ import annotations` makes, compiles each one into a `ForwardRef`: a large part of the cost
of creating a record, paid for each record at every start. Nothing reads a record's annotations at run time, so
this one keeps them as written (in `__annotations__`) and otherwise does what `typing.NamedTuple` does on
Python 3.10: `collections.namedtuple` of the annotated fields with their defaults, then the class body's
docstring, methods and attributes. Type checkers see `typing.NamedTuple` itself.
"""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING, Any

__all__ = ["NamedTuple"]

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    # As typing's: what a class body may not define, and what it defines that the record does not take.
    _PROHIBITED = frozenset(
        {"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults", "_make", "_replace"}
        | {"_asdict", "_source"}
    )
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    def _defaulted(fields: dict[str, str], namespace: dict[str, Any]) -> list[str]:
        """The fields the class body gives a default, which must be the last ones (typing's message if not)."""
        defaulted: list[str] = []
        for name in fields:
            if name in namespace:
                defaulted.append(name)
            elif defaulted:
                plural = "s" if len(defaulted) > 1 else ""
                raise TypeError(
                    f"Non-default namedtuple field {name} cannot follow default field{plural} {', '.join(defaulted)}"
                )
        return defaulted

    class _RecordMeta(type):
        def __new__(cls, typename: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
            if "__annotate__" in namespace and "__annotations__" not in namespace:
                raise TypeError(
                    f"{namespace['__module__']}.{typename}: a record's module needs `from __future__ import "
                    "annotations` (without it, Python 3.14 keeps no annotations in the class body)"
                )
            fields = namespace.get("__annotations__", {})
            defaults = [namespace[name] for name in _defaulted(fields, namespace)]
            record = namedtuple(typename, fields, defaults=defaults, module=namespace["__module__"])
            record.__annotations__ = dict(fields)
            for key, value in namespace.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"Cannot overwrite NamedTuple attribute {key}")
                if key not in _SPECIAL and key not in fields:
                    setattr(record, key, value)
            return record

    _Record = type.__new__(_RecordMeta, "NamedTuple", (), {})

    def NamedTuple(*_: object, **__: object) -> Any:  # noqa: N802 (typing's name)
        raise TypeError("ngixi_runtime.records.NamedTuple takes the class syntax only")

    NamedTuple.__mro_entries__ = lambda bases: (_Record,)
