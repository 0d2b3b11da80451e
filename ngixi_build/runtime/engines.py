"""The engine interface the loader runs guests through, and the choice between installed engines.

Each engine module (`engine` for Wasmer, `engine_wasmtime` for Wasmtime) provides the functions of
`Engine`; it is imported only when chosen, so a host with one engine installed never loads the other.
Host functions are written once against `GuestMemory` and plain Python callables over numbers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from typing import Protocol, cast

from .abi import GuestMemory
from .capabilities import HostImport
from .errors import NgixiError
from .hostfuncs import HostFunction
from .manifest import Number

# Wasmtime's portable interpreter target: its artifacts run on any host with the same Wasmtime.
PORTABLE_TRIPLE = "pulley64"
# Engine name → (its module here, the Python package it needs); the first installed one is the default.
_ENGINES = {"wasmer": ("engine", "wasmer"), "wasmtime": ("engine_wasmtime", "wasmtime")}


@dataclass(frozen=True)
class EngineId:
    engine: str
    engine_version: str
    binding_version: str
    compiler: str


@dataclass(frozen=True)
class RunLimits:
    """The manifest's limits an engine may enforce in-process (Wasmer leaves them to the child process)."""

    timeout_ms: int
    memory_pages: int


class EngineMemory(GuestMemory, Protocol):
    @property
    def pages(self) -> int: ...


class EngineInstance(Protocol):
    @property
    def memory(self) -> EngineMemory: ...

    def call(self, export: str, args: Sequence[Number]) -> tuple[Number, ...]: ...


class Engine(Protocol):
    """What the loader needs from an engine module."""

    def current_engine(self) -> EngineId: ...

    def compiler_available(self) -> bool: ...

    def load(
        self,
        *,
        guest: str,
        wasm: bytes | None = None,
        artifact: bytes | None = None,
        imports: Sequence[tuple[HostImport, HostFunction]],
        on_memory: Callable[[EngineMemory], None],
        limits: RunLimits,
        target: str | None = None,
    ) -> EngineInstance: ...


@cache
def _installed(package: str) -> bool:
    """Whether a package can be imported; asked once per process, as find_spec scans sys.path."""
    return find_spec(package) is not None


def installed_engines() -> list[str]:
    return [name for name, (_, package) in _ENGINES.items() if _installed(package)]


def engine_named(name: str | None = None) -> Engine:
    """The engine module for `name`, else `$NGIXI_ENGINE`, else the first installed engine."""
    name = name or os.environ.get("NGIXI_ENGINE") or None
    installed = installed_engines()
    if name is None and not installed:
        raise NgixiError(f"no WebAssembly engine is installed; pip install one of: {', '.join(_ENGINES)}")
    chosen = name or installed[0]
    if chosen not in _ENGINES:
        known = ", ".join(_ENGINES)
        raise NgixiError(f"unknown engine {name!r}; known engines: {known}")
    if chosen not in installed:
        raise NgixiError(f"engine {chosen} is not installed (pip install {_ENGINES[chosen][1]})")
    return cast(Engine, importlib.import_module(f".{_ENGINES[chosen][0]}", __package__))


def as_results(result: object) -> tuple[Number, ...]:
    """An engine's return value (None, one value, or a list or tuple of them) as a tuple."""
    if result is None:
        return ()
    if isinstance(result, list | tuple):
        return tuple(result)
    return (cast(Number, result),)
