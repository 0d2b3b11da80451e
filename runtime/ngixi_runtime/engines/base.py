"""The engine interface the loader runs guests through, and the choice between installed engines.

Each engine module (`engine` for Wasmer, `engine_wasmtime` for Wasmtime) provides the functions of
`Engine`; it is imported only when chosen, so a host with one engine installed never loads the other.
Host functions are written once against `GuestMemory` and plain Python callables over numbers.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Collection, Sequence
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from ngixi_runtime.capabilities.base import HostImport
from ngixi_runtime.capabilities.context import HostFunction
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.guest.limits import table_elements
from ngixi_runtime.guest.manifest import Number
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import GuestMemory
from ngixi_runtime.spec.wasm import ModuleInfo

# How a trap that ran out of native stack is worded on either engine: Wasmer's own words, which the Wasmtime engine
# gives its STACK_OVERFLOW trap too (loading.calls.exhausted_stack tells such a trap by them).
STACK_EXHAUSTED = "call stack exhausted"
# How a load whose start function trapped says so, before the cause: on either engine, core module or component.
START_TRAPPED = "its start function trapped"
# Wasmtime's portable interpreter target: its artifacts run on any host with the same Wasmtime.
PORTABLE_TRIPLE = "pulley64"
AUTO = "auto"
ENGINE_VARIABLE = "NGIXI_ENGINE"


class _EngineEntry(NamedTuple):
    module: str  # its module here
    package: str  # the Python package it needs
    meters_fuel: bool  # whether it enforces limits.fuel in-process
    runs_components: bool  # whether it has the component model
    caps_growth: bool  # whether it caps memory and table growth in-process, whatever the module declares
    interrupts: bool  # whether it stops a call (or a start function) in-process at limits.timeout_ms


# The first installed engine is the default (the first that meters fuel, for a guest with limits.fuel).
_ENGINES = {
    "wasmer": _EngineEntry(
        "wasmer", "wasmer", meters_fuel=False, runs_components=False, caps_growth=False, interrupts=False
    ),
    "wasmtime": _EngineEntry(
        "wasmtime", "wasmtime", meters_fuel=True, runs_components=True, caps_growth=True, interrupts=True
    ),
}
ENGINE_NAMES = tuple(_ENGINES)


class EngineId(NamedTuple):
    engine: str
    engine_version: str
    binding_version: str
    compiler: str


class RunLimits(NamedTuple):
    """The manifest's limits an engine may enforce in-process (Wasmer leaves them to the child process)."""

    timeout_ms: int
    memory_pages: int
    fuel: int | None = None

    @property
    def table_elements(self) -> int:
        return table_elements(self.memory_pages)


class EngineMemory(GuestMemory, Protocol):
    def page_count(self) -> int:
        """Its size now, in pages."""
        ...


class EngineInstance(Protocol):
    thread_bound: bool  # whether only the thread that instantiated it may call it (Wasmer's Python objects)
    # Called by a host function that answered TIMEOUT because the call's deadline came: the guest is left
    # RETURN_RESERVE_SECONDS to return, once per call (nothing on an engine that has no deadline of its own). It
    # holds no reference to the instance, whose host functions keep whatever holds it.
    reserve_return_time: Callable[[], None]

    @property
    def memory(self) -> EngineMemory: ...

    def call(self, export: str, args: Sequence[Number]) -> tuple[Number, ...]: ...

    def text_parameters(self, export: str) -> frozenset[int]:
        """Which of a component export's parameters (from 1) are WIT strings; none for a core module's."""
        ...


class PreparedModule(Protocol):
    """A compiled or deserialized module, not yet instantiated; `info` is what that code imports and exports."""

    @property
    def info(self) -> ModuleInfo: ...


class Engine(Protocol):
    """What the loader needs from an engine module.

    `prepare` raises `ArtifactRefused` for an artifact the engine itself finds incompatible (before
    running any of it), so that the loader can try another artifact or compile the .wasm. The loader
    checks the prepared module's imports and exports against the manifest before `instantiate`.
    """

    def current_engine(self) -> EngineId: ...

    def compiler_available(self) -> bool: ...

    def prepare(
        self,
        *,
        guest: str,
        wasm: bytes | None = None,
        artifact: bytes | None = None,
        limits: RunLimits,
        target: str | None = None,
    ) -> PreparedModule: ...

    def serialize(self, prepared: Any) -> bytes: ...

    def instantiate(
        self,
        prepared: Any,
        *,
        imports: Sequence[tuple[HostImport, HostFunction]],
        on_memory: Callable[[EngineMemory], None],
    ) -> EngineInstance: ...


@cache
def installed_version(distribution: str, package: ModuleType) -> str:
    """The installed version of `distribution`, which provides `package`: read from the name of its `.dist-info`
    beside the package, since importing importlib.metadata and scanning every path entry costs more than the rest of
    an engine's start; importlib.metadata only when that directory is not there (e.g. an egg or zip install)."""
    site = Path(str(package.__file__)).parent.parent
    found = list(site.glob(f"{distribution}-*.dist-info"))
    if len(found) == 1:
        return found[0].name.removeprefix(f"{distribution}-").removesuffix(".dist-info")
    from importlib.metadata import version

    return version(distribution)


@cache
def _installed(package: str) -> bool:
    """Whether a package can be imported; asked once per process, as find_spec scans sys.path."""
    return find_spec(package) is not None


def installed_engines() -> list[str]:
    return [name for name, entry in _ENGINES.items() if _installed(entry.package)]


def chosen_engine(
    name: str | None = None, *, wants_fuel: bool = False, component: bool = False, shipped: Collection[str] = ()
) -> str:
    """The engine `name` names, else `$NGIXI_ENGINE`; "auto" (the default) picks the first installed.

    For a guest that `wants_fuel` (a manifest with limits.fuel), "auto" prefers an engine that meters it; then
    one the bundle `shipped` artifacts for (a bundle built only for Wasmtime may use what Wasmer lacks).
    A `component` guest runs on an engine with the component model, whatever `$NGIXI_ENGINE` says.
    Nothing is imported: choosing is cheap, and a host with one engine never loads the other.
    """
    if component:
        return _component_engine(name)
    where = "" if name else f"${ENGINE_VARIABLE}: "
    name = name or os.environ.get(ENGINE_VARIABLE) or AUTO
    installed = installed_engines()
    if name == AUTO:
        if not installed:
            raise NgixiError(f"no WebAssembly engine is installed; pip install one of: {', '.join(_ENGINES)}")
        metering = [n for n in installed if _ENGINES[n].meters_fuel]
        pool = metering if wants_fuel and metering else installed
        return next((n for n in pool if n in shipped), pool[0])
    if name not in _ENGINES:
        raise InvalidInput(f"{where}unknown engine {name!r}; known engines: {', '.join(_ENGINES)} (or {AUTO})")
    if name not in installed:
        raise NgixiError(f"engine {name} is not installed here; {_how_to_get(name)}")
    return name


def _component_engine(name: str | None) -> str:
    able = [n for n, entry in _ENGINES.items() if entry.runs_components]
    if name not in (None, AUTO, *able):
        raise InvalidInput(
            f"a component guest runs only on {' or '.join(able)}, not on the engine asked for ({name}): "
            f"ask for {' or '.join(able)}, or auto"
        )
    return chosen_engine(able[0])


def _how_to_get(name: str) -> str:
    if name == "wasmer" and sys.version_info >= (3, 11):
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        return f"wasmer has wheels only for CPython 3.7-3.10 (this is {python}): use --engine wasmtime"
    return f"pip install {_ENGINES[name].package}"


def meters_fuel(name: str) -> bool:
    return _ENGINES[name].meters_fuel


def interrupts(name: str) -> bool:
    """Whether the engine ends a guest's call or start function in-process when limits.timeout_ms is up."""
    return _ENGINES[name].interrupts


def caps_growth(name: str) -> bool:
    """Whether the engine caps memory and table growth itself; for the others the loader checks the module's
    declared maxima before instantiating it."""
    return _ENGINES[name].caps_growth


def engine_named(name: str | None = None) -> Engine:
    """The engine module for `name` as `chosen_engine` resolves it."""
    chosen = chosen_engine(name)
    try:
        return _engine_module(chosen)
    except ImportError as error:  # e.g. wasmer's stub wheel on CPython 3.11+
        raise NgixiError(f"engine {chosen} is installed but does not load: {error}; {_how_to_get(chosen)}") from None


@cache
def _engine_module(name: str) -> Engine:
    """Imported once: `import_module` takes the import lock on every call, even for a loaded module."""
    return cast(Engine, importlib.import_module(f".{_ENGINES[name].module}", __package__))


def as_results(result: object) -> tuple[Number, ...]:
    """An engine's return value (None, one value, or a list or tuple of them) as a tuple."""
    if result is None:
        return ()
    if isinstance(result, list | tuple):
        return tuple(result)
    return (cast(Number, result),)
