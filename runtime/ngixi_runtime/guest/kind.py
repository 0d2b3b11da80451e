"""What type of guest a manifest describes: its ABI, its kind and its source language, decided in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatch
from typing import Literal, TypeVar

from ngixi_runtime.records import NamedTuple

GuestAbi = Literal["core", "component"]
GUEST_ABIS: tuple[GuestAbi, ...] = ("core", "component")
GuestKind = Literal["library", "command"]
GUEST_KINDS: tuple[GuestKind, ...] = ("library", "command")
# "wasm": any other toolchain's module, committed or made by the manifest's [build] command.
GuestLanguage = Literal["assemblyscript", "c", "zig", "javascript", "python", "wasm"]
GUEST_LANGUAGES: tuple[GuestLanguage, ...] = ("assemblyscript", "c", "zig", "javascript", "python", "wasm")
# How the build tells an undeclared language: the first language one of whose patterns matches a
# file of guests/<name>/ (a path relative to it, "/"-separated). A manifest with [build] is "wasm".
SOURCE_PATTERNS: tuple[tuple[GuestLanguage, tuple[str, ...]], ...] = (
    ("assemblyscript", ("assembly/index.ts",)),
    ("zig", ("*.zig",)),
    ("c", ("*.c",)),
    ("javascript", ("*.js", "*.mjs")),
    ("python", ("*.py",)),
    ("wasm", ("*.wasm",)),
)

Choice = TypeVar("Choice", bound=str)


class GuestType(NamedTuple):
    """`abi`: a core module using the ngixi imports, or a component against the WIT catalog.
    `kind`: a library of exports, or a command run through WASI `_start`.
    `language`: what the guest is written in; None when the manifest does not say and (on the
    build side) its files do not tell either.
    """

    abi: GuestAbi = "core"
    kind: GuestKind = "library"
    language: GuestLanguage | None = None

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
        language=next((language for language in GUEST_LANGUAGES if language == table.get("language")), None),
    )


def infer_language(files: Iterable[str]) -> GuestLanguage | None:
    """The language `SOURCE_PATTERNS` gives a guest made of `files` (paths relative to its directory)."""
    names = sorted(files)
    for language, patterns in SOURCE_PATTERNS:
        if any(fnmatch(name, pattern) for name in names for pattern in patterns):
            return language
    return None


def _choice(value: object, allowed: tuple[Choice, ...], default: Choice) -> Choice:
    return next((choice for choice in allowed if choice == value), default)
