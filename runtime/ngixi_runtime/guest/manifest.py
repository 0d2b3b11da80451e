"""Guest manifests: TOML read with tomli into frozen records, every problem reported at once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import tomli

from ngixi_runtime.capabilities.base import CapabilityOptions
from ngixi_runtime.capabilities.context import DEFAULT_OPEN_FILES
from ngixi_runtime.capabilities.registry import GRANTABLE, capability
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_input_text, toml_problem
from ngixi_runtime.guest.data import DATA_KINDS, DataKind
from ngixi_runtime.guest.kind import (
    GUEST_ABIS,
    GUEST_KINDS,
    GUEST_LANGUAGES,
    GuestAbi,
    GuestKind,
    GuestLanguage,
    GuestType,
)
from ngixi_runtime.guest.typed import as_wit, parse_component_entry, wit_type_names
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import (
    NAME_BYTES,
    Problems,
    closest,
    integer,
    oversized,
    reported,
    string,
    suggestion,
    table,
    too_long,
    type_name,
)

if TYPE_CHECKING:
    from ngixi_runtime.guest.build_command import BuildCommand
    from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions
    from ngixi_runtime.guest.smoke import SmokeCall

VALUE_TYPES = ("i32", "i64", "f32", "f64")
Number = int | float
OptionsT = TypeVar("OptionsT")

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}\Z")
SEMVER_PATTERN = (  # a pattern, compiled by `re` for a version that is not a plain MAJOR.MINOR.PATCH
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\Z"
)
EXPORT_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# A WIT name (`sort-keys`, `get-URL`), and a component's function by its name: `INTERFACE#NAME` for one of an
# exported interface (`acme:calc/api@0.1.0#add`), as prebuilt components of other toolchains export them.
_WIT_LABEL = r"(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*)(?:-(?:[a-z][a-z0-9]*|[A-Z][A-Z0-9]*))*"
COMPONENT_FUNCTION_PATTERN = rf"^(?:{_WIT_LABEL}:{_WIT_LABEL}/{_WIT_LABEL}(?:@[0-9A-Za-z.+-]+)?#)?{_WIT_LABEL}\Z"
MAX_MEMORY_PAGES = 65536


class GuestInfo(NamedTuple):
    name: str
    version: str
    description: str
    type: GuestType


class ExportDecl(NamedTuple):
    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    input: DataKind | None = None  # what the call data ABI hands it (guest/data.py); None: no input
    output: DataKind | None = None
    from_wit: bool = False  # a component's export whose types come from its WIT (guest/typed.py)


class Limits(NamedTuple):
    memory_pages: int
    timeout_ms: int
    log_bytes: int
    stdout_bytes: int
    fuel: int | None = None  # instructions per call (Wasmtime's fuel); None: not metered
    input_bytes: int = 1 << 20  # a call's input through the call data ABI
    output_bytes: int = 1 << 20  # what a call may write as its output
    open_files: int = DEFAULT_OPEN_FILES  # WASI descriptors open at once, stdio and preopens included


class Manifest(NamedTuple):
    source: str
    guest: GuestInfo
    exports: tuple[ExportDecl, ...]
    capabilities: Mapping[str, CapabilityOptions]
    limits: Limits
    smoke: tuple[SmokeCall, ...]
    build: BuildCommand | None = None
    compile: CCompileOptions | ZigCompileOptions | None = None  # a C or Zig guest's [compile] table

    @property
    def grants(self) -> frozenset[str]:
        return frozenset(self.capabilities)

    def options(self, kind: type[OptionsT]) -> OptionsT | None:
        """The options of the granted capability whose options are of this kind, if it is granted."""
        return next((o for o in self.capabilities.values() if isinstance(o, kind)), None)

    def export(self, name: str) -> ExportDecl | None:
        return next((e for e in self.exports if e.name == name), None)


class ManifestError(InvalidInput):
    """All problems of one manifest, one `FILE: field: message` line each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(reported(lines))
        self.lines = lines


DEFAULT_LIMITS = {
    "memory_pages": 16,
    "timeout_ms": 5000,
    "log_bytes": 65536,
    "stdout_bytes": 1 << 20,
    "input_bytes": 1 << 20,
    "output_bytes": 1 << 20,
    "open_files": DEFAULT_OPEN_FILES,
}
_LIMIT_RANGES = {
    "memory_pages": (1, MAX_MEMORY_PAGES),
    "timeout_ms": (1, 3_600_000),
    "log_bytes": (0, 1 << 30),
    "stdout_bytes": (0, 1 << 30),
    "input_bytes": (0, 1 << 30),
    "output_bytes": (0, 1 << 30),
    "open_files": (8, 65536),
}
# Optional limits, without a default: unset means that quota is not enforced.
_FUEL_RANGE = (1, (1 << 63) - 1)
LIMIT_KEYS = (*DEFAULT_LIMITS, "fuel")
_TOP_KEYS = ("guest", "exports", "capabilities", "limits", "smoke", "build", "compile")
_GUEST_KEYS = ("name", "version", "kind", "description", "abi", "language")
_EXPORT_KEYS = ("params", "results", "input", "output")


def _value_types(raw: Mapping[str, Any], key: str, field: str, problems: Problems) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.add(field, f"must be an array of value types, not {type_name(value)}")
        return ()
    for index, item in enumerate(value):
        if item not in VALUE_TYPES:
            close = closest(str(item), VALUE_TYPES)
            hint = f'; did you mean "{close}"?' if close else ""
            problems.add(f"{field}[{index}]", f"{item!r} is not one of {', '.join(VALUE_TYPES)}{hint}")
    return tuple(str(item) for item in value)


DATA_SIDES = ("input", "output")


def _data_kind(raw: Mapping[str, Any], side: str, field: str, problems: Problems) -> DataKind | None:
    if side not in raw:
        return None
    kind = string(raw, side, f"{field}.{side}", problems)
    if kind not in DATA_KINDS:
        if kind:  # else `string` said what is wrong
            problems.add(f"{field}.{side}", f'"{kind}" is not a kind of data; {suggestion(kind, DATA_KINDS, "use")}')
        return None
    return kind


def _parse_guest(raw: Mapping[str, Any], stem: str, problems: Problems) -> GuestInfo:
    if "guest" not in raw:
        problems.add("guest", "the [guest] table is required (name, version, kind)")
    guest = table(raw, "guest", "guest", problems)
    problems.unknown_keys(guest, _GUEST_KEYS, "guest")
    name = string(guest, "name", "guest.name", problems) if guest else ""
    if name and not NAME_PATTERN.match(name):
        problems.add(
            "guest.name",
            f'"{name}" must be lowercase letters, digits and "-", starting with a letter',
        )
    elif name and name != stem:
        problems.add("guest.name", f'"{name}" must match the file name "{stem}.toml"; rename one of them')
    version = string(guest, "version", "guest.version", problems) if guest else ""
    if version and not (_plain_release(version) or re.match(SEMVER_PATTERN, version)):
        problems.add("guest.version", f'"{version}" is not a semantic version like "1.2.3"')
    kind = string(guest, "kind", "guest.kind", problems, default="library")
    if kind not in GUEST_KINDS:
        problems.add("guest.kind", f'"{kind}" must be "library" or "command" (a WASI program with _start)')
    description = string(guest, "description", "guest.description", problems, default="")
    abi = string(guest, "abi", "guest.abi", problems, default="core")
    if abi not in GUEST_ABIS:
        problems.add("guest.abi", f'"{abi}" must be "core" (a core module) or "component" (the component model)')
    language = _language(guest, problems)
    return GuestInfo(name, version, description, GuestType(cast(GuestAbi, abi), cast(GuestKind, kind), language))


def _language(guest: Mapping[str, Any], problems: Problems) -> GuestLanguage | None:
    """The declared language; None leaves it to the build to tell from the guest's files."""
    if "language" not in guest:
        return None
    language = string(guest, "language", "guest.language", problems)
    if language and language not in GUEST_LANGUAGES:
        choices = suggestion(language, GUEST_LANGUAGES, "known")
        problems.add("guest.language", f'"{language}" is not a guest language; {choices}')
    return next((known for known in GUEST_LANGUAGES if known == language), None)


def _parse_exports(raw: Mapping[str, Any], problems: Problems, component: bool) -> tuple[ExportDecl, ...]:
    exports = []
    for name, decl in table(raw, "exports", "exports", problems).items():
        field = f"exports.{name}"
        if why := too_long(name, NAME_BYTES):
            problems.add(field, f"the export name {why}")
            continue
        if not component and not EXPORT_NAME_PATTERN.match(name):  # a component's are checked by _check_component
            problems.add(field, "an export name must be letters, digits and underscores")
        if not isinstance(decl, dict):
            problems.add(field, f"must be a table with params and results, not {type_name(decl)}")
            continue
        problems.unknown_keys(decl, _EXPORT_KEYS, field)
        data_in, data_out = (_data_kind(decl, side, field, problems) for side in DATA_SIDES)
        if component:
            params, results = (wit_type_names(decl.get(k, []), f"{field}.{k}", problems) for k in ("params", "results"))
            from_wit = not {"params", "results"} & set(decl)
            exports.append(ExportDecl(name, params, results, data_in, data_out, from_wit=from_wit))
            continue
        params = _value_types(decl, "params", f"{field}.params", problems)
        results = _value_types(decl, "results", f"{field}.results", problems)
        exports.append(ExportDecl(name, params, results, data_in, data_out))
    return tuple(exports)


def _parse_capabilities(raw: Mapping[str, Any], problems: Problems) -> dict[str, CapabilityOptions]:
    """The options of each granted capability; only those capabilities' modules are imported."""
    granted = {}
    for name, options in table(raw, "capabilities", "capabilities", problems).items():
        field = f"capabilities.{name}"
        if name not in GRANTABLE:
            problems.add(field, f"unknown capability; {suggestion(name, sorted(GRANTABLE), 'known')}")
            continue
        if not isinstance(options, dict):
            problems.add(field, f"must be a table, not {type_name(options)}")
            continue
        granted[name] = capability(name).parse_options(options, field, problems)
    return granted


def _parse_limits(raw: Mapping[str, Any], problems: Problems) -> Limits:
    limits = table(raw, "limits", "limits", problems)
    problems.unknown_keys(limits, LIMIT_KEYS, "limits")
    values = {
        key: integer(limits, key, f"limits.{key}", problems, default=default, low=low, high=high)
        for key, default in DEFAULT_LIMITS.items()
        for low, high in [_LIMIT_RANGES[key]]
    }
    fuel = None
    if "fuel" in limits:
        low, high = _FUEL_RANGE
        fuel = integer(limits, "fuel", "limits.fuel", problems, default=low, low=low, high=high)
    return Limits(**values, fuel=fuel)


def _parse_smoke(raw: Mapping[str, Any], problems: Problems, component: bool) -> tuple[SmokeCall, ...]:
    entries = raw.get("smoke", [])
    if not isinstance(entries, list):
        problems.add("smoke", "must be an array of tables: write [[smoke]]")
        return ()
    if not entries:
        return ()
    from ngixi_runtime.guest.smoke import parse_entry  # here and below: only a manifest with [[smoke]] entries

    calls = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.add(f"smoke[{index}]", "must be a table")
            continue
        parse = parse_component_entry if component else parse_entry
        calls.append(parse(entry, f"smoke[{index}]", problems))
    return tuple(calls)


def _parse_build(raw: Mapping[str, Any], problems: Problems) -> BuildCommand | None:
    if "build" not in raw:
        return None
    from ngixi_runtime.guest.build_command import parse_build  # here: a run's manifest seldom has a [build]

    return parse_build(raw, problems)


def _parse_compile(
    raw: Mapping[str, Any], problems: Problems, language: str | None
) -> CCompileOptions | ZigCompileOptions | None:
    if "compile" not in raw:
        return None
    from ngixi_runtime.guest.compile_options import parse_compile  # here: a run's manifest seldom has one

    return parse_compile(raw, problems, language)


def _check_compile(manifest: Manifest, problems: Problems) -> None:
    """A [compile] table belongs to a C or Zig guest built from source, not to one with a [build] command."""
    if manifest.compile is None:
        return
    from ngixi_runtime.guest.compile_options import compile_language, misplaced_compile

    language = manifest.guest.type.language
    if manifest.build is not None:
        problems.add("compile", "is for C and Zig guests built from source, not one with a [build] command; remove it")
    elif language is not None and language != compile_language(manifest.compile):
        problems.add("compile", misplaced_compile(manifest.compile, language))


def _check_smoke_targets(manifest: Manifest, problems: Problems) -> None:
    if not manifest.smoke:
        return
    from ngixi_runtime.guest.smoke import SmokeLimits, SmokeTarget, check_entry

    limits = manifest.limits
    sizes = SmokeLimits(limits.input_bytes, limits.output_bytes, limits.stdout_bytes)
    is_component = manifest.guest.type.is_component
    for index, call in enumerate(manifest.smoke):
        declared = manifest.export(call.call)
        target = SmokeTarget(
            manifest.guest.type,
            manifest.grants,
            None if declared is None else len(call.args) if declared.from_wit else len(declared.params),
            None if declared is None else declared.input,
            None if declared is None else declared.output,
            tuple(getattr(manifest.capabilities.get("env"), "allow", ())),  # no import of the env module
            results=None if declared is None or declared.from_wit or is_component else len(declared.results),
            limits=sizes,
            core_types=None if declared is None or is_component else (declared.params, declared.results),
            wit_types=_declared_wit(declared) if declared and is_component and not declared.from_wit else None,
        )
        check_entry(call, f"smoke[{index}]", target, problems)


def _declared_wit(declared: ExportDecl) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return as_wit(declared.params), as_wit(declared.results)


def _plain_release(version: str) -> bool:
    """MAJOR.MINOR.PATCH in ASCII digits without leading zeros: a version SEMVER_PATTERN takes, told without it."""
    parts = version.split(".")
    return len(parts) == 3 and all(p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") for p in parts)


def _check_component(manifest: Manifest, problems: Problems) -> None:
    """What a component guest may declare: WIT-compatible export names, no fuel."""
    for export in manifest.exports:
        if not re.match(COMPONENT_FUNCTION_PATTERN, export.name):
            plain = re.sub(r"[^a-z0-9]+", "-", export.name.lower()).lstrip("-0123456789").rstrip("-") or "run"
            problems.add(
                f"exports.{export.name}",
                "a component guest's export name must be a WIT name (lowercase words joined by -), or "
                f'INTERFACE#NAME for a function of an exported interface, e.g. "{plain}"',
            )
        if len(export.results) > 1:
            problems.add(f"exports.{export.name}.results", "a component export returns at most one value")
        for side in DATA_SIDES:
            if getattr(export, side) is not None:
                problems.add(
                    f"exports.{export.name}.{side}",
                    "the call data ABI is for core guests; a component takes and returns WIT types",
                )
    if manifest.limits.fuel is not None:
        problems.add("limits.fuel", "component guests are not metered yet; remove it, or build a core module")


def parse_manifest(text: str, *, source: str, stem: str) -> Manifest:
    """Parses manifest text; `stem` is the file name the guest name must match."""
    try:
        raw = tomli.loads(text)
    except (tomli.TOMLDecodeError, RecursionError) as error:
        raise ManifestError([toml_problem(source, error, text)]) from None
    return manifest_from_table(raw, source=source, stem=stem)


def manifest_from_table(raw: Mapping[str, Any], *, source: str, stem: str) -> Manifest:
    """Checks a manifest's parsed TOML table (or its copy in a bundle's signed index, as JSON)."""
    problems = Problems(source)
    oversized(raw, problems)
    if problems.lines:  # the fields' own checks would quote what is too large, and walk what is too deep
        raise ManifestError(problems.lines)
    problems.unknown_keys(raw, _TOP_KEYS, "")
    guest = _parse_guest(raw, stem, problems)
    component = guest.type.is_component
    manifest = Manifest(
        source=source,
        guest=guest,
        exports=_parse_exports(raw, problems, component),
        capabilities=_parse_capabilities(raw, problems),
        limits=_parse_limits(raw, problems),
        smoke=_parse_smoke(raw, problems, component),
        build=_parse_build(raw, problems),
        compile=_parse_compile(raw, problems, guest.type.language),
    )
    _check_compile(manifest, problems)
    if manifest.build is not None and manifest.guest.type.language not in (None, "wasm"):
        problems.add("build", f'a [build] command makes a "wasm" guest, not a "{manifest.guest.type.language}" one')
    _check_smoke_targets(manifest, problems)
    if manifest.guest.type.is_component:
        _check_component(manifest, problems)
    if problems.lines:
        raise ManifestError(problems.lines)
    return manifest


def load_manifest(path: Path) -> Manifest:
    """Reads and parses `manifests/<name>.toml`."""
    if not os.path.lexists(path):  # a link that loops or names nothing is the reader's to say
        raise InvalidInput(f"{path}: missing; create it: each guest needs manifests/<name>.toml")
    return parse_manifest(read_input_text(path, what="the manifest"), source=str(path), stem=path.stem)
