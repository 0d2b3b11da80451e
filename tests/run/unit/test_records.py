"""`ngixi_runtime.records.NamedTuple` makes what `typing.NamedTuple` makes, without compiling the annotations."""

from __future__ import annotations

import pickle
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime import records


def _point(base: Any) -> Any:
    class Point(base):  # type: ignore[misc]
        """A point."""

        x: int
        label: str | None = None
        tags: tuple[str, ...] = ()

        @property
        def twice(self) -> int:
            return self.x * 2

        def moved(self, by: int) -> Any:
            return self._replace(x=self.x + by)

    return Point


def test_same_record_as_typing() -> None:
    ours, theirs = _point(records.NamedTuple), _point(typing.NamedTuple)
    a, b = ours(1, "a"), theirs(1, "a")
    assert a == b == (1, "a", ())
    assert repr(a) == repr(b)
    assert (ours._fields, ours._field_defaults) == (theirs._fields, theirs._field_defaults)
    for name in ("__doc__", "__module__", "__qualname__"):
        assert getattr(ours, name) == getattr(theirs, name)
    assert a.twice == 2 and a.moved(2) == (3, "a", ())
    assert a._asdict() == b._asdict() and isinstance(a, tuple)
    assert hash(a) == hash(b)


def test_annotations_kept_as_written() -> None:
    assert _point(records.NamedTuple).__annotations__ == {
        "x": "int",
        "label": "str | None",
        "tags": "tuple[str, ...]",
    }


def test_pickles_as_its_class() -> None:
    assert pickle.loads(pickle.dumps(Module(1))) == Module(1)
    assert type(pickle.loads(pickle.dumps(Module(1)))) is Module


class Module(records.NamedTuple):
    value: int


def test_refuses_what_typing_refuses() -> None:
    for base in (records.NamedTuple, typing.NamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field b cannot follow default field a"):

            class Defaults(base):  # type: ignore[misc,valid-type]
                a: int = 0
                b: int

        with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _replace"):

            class Replaced(base):  # type: ignore[misc,valid-type]
                a: int

                def _replace(self) -> None: ...


def test_a_class_body_without_stringized_annotations_is_refused() -> None:
    """Python 3.14 keeps a module's annotations in the class body only under `from __future__ import annotations`;
    without it the body holds an `__annotate__` function, and a record made from the body would have no fields."""

    def lazily_annotated(namespace: dict[str, Any]) -> None:
        namespace.update(__module__=__name__, __annotate__=lambda _format: {"value": int})

    with pytest.raises(TypeError, match=r"Lazy: a record's module needs `from __future__ import annotations`"):
        types.new_class("Lazy", (records.NamedTuple,), exec_body=lazily_annotated)


def test_run_side_records_use_it() -> None:
    """A record made with `typing.NamedTuple` would compile its annotations again at every start."""
    package = Path(records.__file__).parent
    typing_ones = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "records.py"
        and re.search(r"^from typing import [^\n]*\bNamedTuple\b|\btyping\.NamedTuple\b", path.read_text(), re.M)
    ]
    assert typing_ones == []
