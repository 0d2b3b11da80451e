"""Component guests on Wasmtime's component model: read a component's world, precompile, load, call.

Limits hold as for core guests on Wasmtime (`engine_wasmtime`): the same epoch-interrupted
deadline, re-checked when a host function returns, and store limits on linear memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime
import wasmtime.component as wc

from .component_host import ComponentFunction, ComponentInfo
from .engine_wasmtime import (
    PAGE_BYTES,
    TICKER,
    Deadline,
    call_within_deadline,
    compiling_engine,
    deserialize,
    engine_for,
    epoch_ticks,
    first_line,
    trap_message,
)
from .engines import RunLimits
from .errors import GuestError, NgixiError, VerificationError
from .manifest import Number

# A component's preamble: the magic, version 0x0d and layer 1 (a core module has layer 0).
_COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"


def is_component(wasm: bytes) -> bool:
    return wasm.startswith(_COMPONENT_PREAMBLE)


def _type_name(value_type: object) -> str:
    """A WIT type's name as the manifest check compares it: S32 → "s32"."""
    return type(value_type).__name__.lower()


def _func_names(instance_type: object, engine: wasmtime.Engine) -> frozenset[str]:
    if not isinstance(instance_type, wc.ComponentInstanceType):
        return frozenset()
    return frozenset(n for n, item in instance_type.exports(engine).items() if isinstance(item.ty, wc.FuncType))


def component_info(component: wc.Component, engine: wasmtime.Engine) -> ComponentInfo:
    component_type = component.type
    exports = {}
    for name, item in component_type.exports(engine).items():
        function = item.ty
        if isinstance(function, wc.FuncType):
            result = () if function.result is None else (_type_name(function.result),)
            exports[name] = (tuple(_type_name(t) for _, t in function.params), result)
    imports = {name: _func_names(item.ty, engine) for name, item in component_type.imports(engine).items()}
    return ComponentInfo(imports, exports)


def read_component(wasm: bytes, *, source: str) -> ComponentInfo:
    """The world of a component (without instantiating it); a broken one is a VerificationError."""
    engine = engine_for(None)
    try:
        return component_info(wc.Component(engine, wasm), engine)
    except wasmtime.WasmtimeError as error:
        raise VerificationError(f"{source}: not a valid component: {first_line(error)}") from None


def precompile(wasm: bytes, *, triple: str, cpu_features: Sequence[str], metered: bool, what: str) -> bytes:
    """As `engine_wasmtime.precompile`; components are never metered (the manifest refuses limits.fuel)."""
    try:
        return bytes(wc.Component(compiling_engine(triple, cpu_features, False, what), wasm).serialize())
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{what}: {first_line(error)}") from None


def _lowerable(value: Any) -> Any:
    """A host function's result as the engine lowers it: a dataclass becomes a component record."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        record = wc.Record()
        for field in dataclasses.fields(value):
            setattr(record, field.name, getattr(value, field.name))
        return record
    return value


def _host_function(function: ComponentFunction, deadline: Deadline) -> Any:
    def call(_store: Any, *args: Any) -> Any:
        result = _lowerable(function(*args))
        if time.monotonic() > deadline.ends_at:
            raise deadline.error()
        return result

    return call


class SealedMemory:
    """A component's linear memory, which the component model keeps from the host: nothing to read, 0 pages."""

    def read(self, pointer: int, length: int) -> bytes:
        raise GuestError("a component's memory is not readable by the host")

    def write(self, pointer: int, data: bytes) -> None:
        raise GuestError("a component's memory is not writable by the host")

    @property
    def pages(self) -> int:
        return 0


class ComponentInstance:
    """An instantiated component."""

    def __init__(self, instance: wc.Instance, store: wasmtime.Store, deadline: Deadline) -> None:
        self._instance = instance
        self._store = store
        self._deadline = deadline
        self.memory = SealedMemory()

    def call(self, export: str, args: Sequence[Number]) -> tuple[Number, ...]:
        function = self._instance.get_func(self._store, export)
        if function is None:
            raise GuestError(f"{self._deadline.guest}: the component exports no function {export!r}")
        return call_within_deadline(self._store, self._deadline, export, lambda: function(self._store, *args))


@dataclass(frozen=True)
class Prepared:
    """A compiled (or deserialized) component, not yet instantiated, and its world."""

    component: wc.Component
    engine: wasmtime.Engine
    info: ComponentInfo


def prepare(
    *, guest: str, wasm: bytes | None = None, artifact: bytes | None = None, target: str | None = None
) -> Prepared:
    """Compiles the component, or deserializes its verified artifact (`target`: None for this host, or pulley64).

    An artifact Wasmtime refuses raises `ArtifactRefused`, as for core guests (`engine_wasmtime.load`).
    """
    engine = engine_for(target)
    if artifact is not None:
        component = deserialize(wc.Component.deserialize, engine, artifact)
    else:
        assert wasm is not None
        try:
            component = wc.Component(engine, wasm)
        except wasmtime.WasmtimeError as error:
            raise NgixiError(f"{guest}: cannot compile the guest: {first_line(error)}") from None
    return Prepared(component, engine, component_info(component, engine))


def instantiate(
    prepared: Prepared,
    *,
    guest: str,
    functions: Mapping[str, Mapping[str, ComponentFunction]],
    limits: RunLimits,
) -> ComponentInstance:
    """Instantiates a prepared component, linking `functions` by interface, within the manifest's limits."""
    deadline = Deadline(guest, limits.timeout_ms)
    try:
        store = wasmtime.Store(prepared.engine)
        store.set_limits(memory_size=limits.memory_pages * PAGE_BYTES)
        linker = wc.Linker(prepared.engine)
        with linker.root() as root:
            for interface, named in functions.items():
                with root.add_instance(interface) as instance:
                    for name, function in named.items():
                        instance.add_func(name, _host_function(function, deadline))
        store.set_epoch_deadline(epoch_ticks(limits.timeout_ms))
        with TICKER.running():
            return ComponentInstance(linker.instantiate(store, prepared.component), store, deadline)
    except wasmtime.Trap as trap:
        raise GuestError(f"{guest}: cannot load the guest: {trap_message(trap)}") from None
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{guest}: cannot load the guest: {first_line(error)}") from None
