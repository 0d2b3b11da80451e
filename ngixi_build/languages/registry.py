"""Every guest language by name, one line each; a language's module is imported the first time a guest needs it."""

from __future__ import annotations

import importlib
from types import MappingProxyType

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import Language
from ngixi_build.project import Project
from ngixi_build.toolchains import npm_deps
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.compile_options import compile_language, misplaced_compile
from ngixi_runtime.guest.kind import SOURCE_PATTERNS, GuestLanguage

_MODULES: MappingProxyType[GuestLanguage, str] = MappingProxyType(
    {
        "assemblyscript": "ngixi_build.languages.assemblyscript",
        "c": "ngixi_build.languages.c",
        "zig": "ngixi_build.languages.zig",
        "wasm": "ngixi_build.languages.wasm",
        "javascript": "ngixi_build.languages.javascript",
        "python": "ngixi_build.languages.python",
    }
)


def supported() -> tuple[GuestLanguage, ...]:
    """The languages this build can compile."""
    return tuple(_MODULES)


def language(name: GuestLanguage) -> Language:
    found: Language = importlib.import_module(_MODULES[name]).LANGUAGE
    return found


def language_of(project: Project, guest: GuestBuild) -> Language:
    """The guest's language, or a one-line error saying how to name it."""
    manifest = project.manifest_path(guest.name).relative_to(project.root)
    name = guest.type.language
    if name is None:
        patterns = ", ".join(p for _, group in SOURCE_PATTERNS for p in group)
        raise InvalidInput(
            f"guests/{guest.name}: cannot tell the guest's language from its files (none matches {patterns}); "
            f'declare it in {manifest}: [guest] language = "..." ({", ".join(supported())})'
        )
    if name not in _MODULES:
        raise InvalidInput(f'{manifest}: guest.language: "{name}" guests cannot be built by this version')
    found = language(name)
    if guest.compile is not None and compile_language(guest.compile) != name:
        raise InvalidInput(f"{manifest}: compile: {misplaced_compile(guest.compile, name)}")
    if guest.type.abi not in found.abis:
        raise InvalidInput(
            f'{manifest}: guest.abi: a {name} guest is built as {" or ".join(found.abis)}, not "{guest.type.abi}"'
        )
    return found


def used_languages(project: Project, guests: list[GuestBuild]) -> list[Language]:
    """The languages of `guests` this build knows, each once."""
    names = dict.fromkeys(g.type.language for g in guests if g.type.language in _MODULES)
    return [language(name) for name in names if name is not None]


def toolchain_languages(project: Project, guests: list[GuestBuild]) -> list[Language]:
    """The languages whose toolchains building `guests` needs, each once: their own languages, those their
    toolchains run on, and AssemblyScript for a guest of any language with npm dependencies (its npm installs them).
    Guests of C, Zig and other toolchains (`wasm`) need no Node.js."""
    used = used_languages(project, guests)
    npm = any(npm_deps.has_dependencies(project.guests_dir / guest.name) for guest in guests)
    names: list[GuestLanguage] = ["assemblyscript"] if npm else []
    names += [name for found in used for name in found.runs_on]
    names += [found.name for found in used]
    return [language(name) for name in dict.fromkeys(names)]


def needs_node(languages: list[Language]) -> bool:
    """Whether these languages' toolchains include the AssemblyScript one (Node.js, npm, asc, the WASI adapters)."""
    return any(found.name == "assemblyscript" for found in languages)


def needs_zig(languages: list[Language]) -> bool:
    """Whether these languages are compiled by the pinned ziglang (Zig, and C through `zig cc`)."""
    return any(found.name in ("c", "zig") for found in languages)
