"""Component guests: the host side of the WIT catalog (wit/host.wit), and the check of a component.

The functions here are thin adapters: the engine lifts strings, byte lists and enums into Python
values, and each adapter calls the same capability implementation a core guest's import does
(`write_log`, `KvStore`, `HttpClient`), turning an `AbiFault` status into the WIT `error` case.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ngixi_runtime.capabilities.component_wasi import wasi_import_problems
from ngixi_runtime.capabilities.core_host import LOG_LEVELS, HostContext, write_log
from ngixi_runtime.capabilities.http import HttpClient, parse_headers
from ngixi_runtime.capabilities.kv import KvStore
from ngixi_runtime.capabilities.registry import CAPABILITIES
from ngixi_runtime.errors import GuestError
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.abi import AbiFault, Status

HOST_PACKAGE = "ngixi:host"
HOST_VERSION = "0.1.0"
# Interfaces that only define types; any component may import them.
TYPE_INTERFACES = frozenset({"types"})
# The manifest's core value types as the WIT types of a component's exports.
WIT_VALUE_TYPES = {"i32": "s32", "i64": "s64", "f32": "f32", "f64": "f64"}
INFO = LOG_LEVELS.index("info")
# What a command component exports, its `_start` adapted: a function in an exported instance.
RUN_EXPORT = re.compile(r"^wasi:cli/run@0\.2\.\d+#run$")

ComponentFunction = Callable[..., Any]
Binder = Callable[[HostContext], ComponentFunction]


@dataclass(frozen=True)
class ComponentInfo:
    """What a component imports (interface → its functions) and exports (name → WIT param and result types).

    A function of an exported instance is named `instance#function`, like `wasi:cli/run@0.2.12#run`.
    """

    imports: Mapping[str, frozenset[str]]
    exports: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "imports": {name: sorted(functions) for name, functions in sorted(self.imports.items())},
            "exports": {name: {"params": list(p), "results": list(r)} for name, (p, r) in sorted(self.exports.items())},
        }

    def lines(self) -> list[str]:
        """The world for people: one line per imported interface and per exported function."""
        imports = [f"import {name}: {', '.join(sorted(f)) or '(types)'}" for name, f in sorted(self.imports.items())]
        return [*imports, *(f"export {name}: {_signature(types)}" for name, types in sorted(self.exports.items()))]


@dataclass(frozen=True)
class HttpResponse:
    """The WIT `http.response` record; the engine lowers its fields by name."""

    status: int
    body: bytes


def interface_import(interface: str) -> str:
    """The name a component imports an interface by: `ngixi:host/kv@0.1.0`."""
    return f"{HOST_PACKAGE}/{interface}@{HOST_VERSION}"


def error_case(status: int) -> str:
    """The WIT `error` case of an Ngixi status: TOO_LARGE → "too-large"."""
    return Status(status).name.lower().replace("_", "-")


def _outcome(call: Callable[[], Any]) -> Any:
    """The `result<T, error>` of a capability call: its value, or the error case of the status it raised."""
    try:
        return call()
    except AbiFault as fault:
        return error_case(fault.code)


def _state(ctx: HostContext, state: KvStore | HttpClient | None, capability: str) -> Any:
    if state is None:
        raise GuestError(f"{ctx.guest}: called {capability} without [capabilities.{capability}]")
    return state


def _log_write(ctx: HostContext) -> ComponentFunction:
    return lambda message: write_log(ctx, INFO, len(message.encode()), lambda: message)


def _log_write_at(ctx: HostContext) -> ComponentFunction:
    return lambda level, message: write_log(ctx, LOG_LEVELS.index(level), len(message.encode()), lambda: message)


def _kv(method: Callable[[KvStore, str, bytes, tuple[bytes, ...]], Any]) -> Binder:
    """A kv function: namespace and key checked as for core guests, then the store's method."""

    def bind(ctx: HostContext) -> ComponentFunction:
        def call(namespace: str, key: bytes, *rest: bytes) -> Any:
            store: KvStore = _state(ctx, ctx.kv, "kv")
            return _outcome(lambda: method(store, store.granted(namespace), key, rest))

        return call

    return bind


def _key(key: bytes) -> bytes:
    return KvStore.checked_key(len(key), lambda: key)


def _http_fetch(ctx: HostContext) -> ComponentFunction:
    def fetch(method: str, url: str, headers: str, body: bytes) -> Any:
        client: HttpClient = _state(ctx, ctx.http, "http")

        def request() -> HttpResponse:
            response = client.fetch(method, url, parse_headers(headers), body)
            return HttpResponse(response.status, response.body)

        return _outcome(request)

    return fetch


COMPONENT_FUNCTIONS: dict[str, dict[str, Binder]] = {
    "log": {"write": _log_write, "write-at": _log_write_at},
    "http": {"fetch": _http_fetch},
    "kv": {
        "get": _kv(lambda store, ns, key, _: store.get(ns, _key(key))),
        "set": _kv(lambda store, ns, key, rest: store.set(ns, _key(key), rest[0])),
        "delete": _kv(lambda store, ns, key, _: store.delete(ns, _key(key))),
        "keys": _kv(lambda store, ns, prefix, _: store.keys(ns, prefix)),
    },
}


def _interface_of(name: str) -> str | None:
    """`ngixi:host/kv@0.1.0` → "kv"; None for anything else."""
    prefix, suffix = f"{HOST_PACKAGE}/", f"@{HOST_VERSION}"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    return name[len(prefix) : -len(suffix)]


def _import_problems(manifest: Manifest, name: str, functions: frozenset[str]) -> list[str]:
    if name.startswith("wasi:"):
        return wasi_import_problems(manifest, name, functions)
    interface = _interface_of(name)
    if interface in TYPE_INTERFACES:
        return []
    if interface is None or interface not in COMPONENT_FUNCTIONS:
        return [f"capabilities: the component imports {name}, which no Ngixi capability provides"]
    capability = next(c.name for c in CAPABILITIES.values() if c.interface == interface)
    if capability not in manifest.grants:
        return [
            f"capabilities.{capability}: the component imports {name}, which needs [capabilities.{capability}]; "
            "grant it in the manifest or remove the import"
        ]
    unknown = sorted(functions - set(COMPONENT_FUNCTIONS[interface]))
    return [f"capabilities.{capability}: {name} has no function {f!r} on this host" for f in unknown]


def run_export(info: ComponentInfo) -> str | None:
    """A command component's `wasi:cli/run` function, as `wasi:cli/run@0.2.12#run`."""
    return next((name for name in info.exports if RUN_EXPORT.match(name)), None)


def _export_problems(manifest: Manifest, info: ComponentInfo) -> list[str]:
    problems = []
    if manifest.guest.kind == "command" and run_export(info) is None:
        problems.append(
            "guest.kind: a command component must export wasi:cli/run: build it with the WASI shim, "
            "whose _start the command adapter turns into run"
        )
    for decl in manifest.exports:
        declared = (tuple(WIT_VALUE_TYPES[t] for t in decl.params), tuple(WIT_VALUE_TYPES[t] for t in decl.results))
        found = info.exports.get(decl.name)
        if found is None:
            names = ", ".join(sorted(info.exports)) or "nothing"
            problems.append(f"exports.{decl.name}: the component has no function {decl.name!r}; it exports: {names}")
        elif found != declared:
            problems.append(
                f"exports.{decl.name}: declared as {_signature(declared)}, the component exports {_signature(found)}"
            )
    return problems


def _signature(types: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    return f"({', '.join(types[0])}) -> ({', '.join(types[1])})"


def check_component(manifest: Manifest, info: ComponentInfo) -> list[str]:
    """Every mismatch between the manifest and the component, as `FILE: field: message` lines."""
    imports = sorted(info.imports.items())
    problems = [p for name, functions in imports for p in _import_problems(manifest, name, functions)]
    problems += _export_problems(manifest, info)
    return [f"{manifest.source}: {p}" for p in problems]
