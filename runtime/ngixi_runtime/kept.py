"""Results kept per exact input within a process, for the pure functions that a host loading the same bundles
again and again would otherwise compute again on every load. A kept result must be immutable (or be copied by
whoever hands it out): every load that asks for it shares it."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class Kept(Generic[Key, Value]):
    """A bounded table of results by their exact inputs, emptied whole when full: a host loads a few bundles again
    and again, so a least-recently-used order would cost more on each load than it saves."""

    def __init__(self, limit: int) -> None:
        self._values: dict[Key, Value] = {}
        self._limit = limit

    def get(self, key: Key) -> Value | None:
        return self._values.get(key)

    def keep(self, key: Key, value: Value) -> Value:
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[key] = value
        return value
