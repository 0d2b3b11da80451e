"""What type of guest a manifest describes: its ABI, its kind and its source language, decided in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

GuestAbi = Literal["core", "component"]
GUEST_ABIS: tuple[GuestAbi, ...] = ("core", "component")
GuestKind = Literal["library", "command"]
GUEST_KINDS: tuple[GuestKind, ...] = ("library", "command")
GuestLanguage = Literal["assemblyscript"]
GUEST_LANGUAGES: tuple[GuestLanguage, ...] = ("assemblyscript",)

Choice = TypeVar("Choice", bound=str)


@dataclass(frozen=True)
class GuestType:
    """`abi`: a core module using the ngixi imports, or a component against the WIT catalog.
    `kind`: a library of exports, or a command run through WASI `_start`.
    """

    abi: GuestAbi = "core"
    kind: GuestKind = "library"
    language: GuestLanguage = "assemblyscript"

    @property
    def is_component(self) -> bool:
        return self.abi == "component"


def lenient_guest_type(guest_table: object) -> GuestType:
    """The type a manifest's `[guest]` table names, with the default for each value that is missing or wrong.

    For declaring build steps from a manifest that may be broken: checking the manifest reports
    what is wrong with it, so this never fails.
    """
    table: Mapping[str, object] = guest_table if isinstance(guest_table, dict) else {}
    defaults = GuestType()
    return GuestType(
        abi=_choice(table.get("abi"), GUEST_ABIS, defaults.abi),
        kind=_choice(table.get("kind"), GUEST_KINDS, defaults.kind),
        language=_choice(table.get("language"), GUEST_LANGUAGES, defaults.language),
    )


def _choice(value: object, allowed: tuple[Choice, ...], default: Choice) -> Choice:
    return next((choice for choice in allowed if choice == value), default)
