"""The Wasmtime engine: compile, serialize, load verified artifacts, instantiate, call, with limits.

Unlike Wasmer, Wasmtime enforces the manifest's limits in this process: a call is interrupted at
its `limits.timeout_ms` (epoch interruption, also checked when a host function returns, since an
epoch cannot interrupt Python) and linear memory cannot grow past `limits.memory_pages`.
Artifacts must be built with exactly the `Config` used here, or Wasmtime refuses to load them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib.metadata import version
from typing import Any

import wasmtime

from .capabilities import HostImport
from .engines import PORTABLE_TRIPLE, EngineId, EngineMemory, RunLimits, as_results
from .errors import GuestError, NgixiError
from .hostfuncs import HostFunction
from .manifest import Number

ENGINE = "wasmtime"
PAGE_BYTES = 65536
_TICK_SECONDS = 0.01
_VALUE_TYPES = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


_WASMER_WORDING = {
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.STACK_OVERFLOW: "call stack exhausted",
}


@cache
def current_engine() -> EngineId:
    return compiled_by(None)


def compiled_by(target: str | None) -> EngineId:
    """The engine metadata of artifacts compiled for `target` (None: this host)."""
    binding = version("wasmtime")
    return EngineId(ENGINE, binding, binding, "pulley" if target == PORTABLE_TRIPLE else "cranelift")


def compiler_available() -> bool:
    return True


@cache
def engine_for(target: str | None) -> wasmtime.Engine:
    """The engine for the host (None) or for `pulley64`; never another target: the wheel aborts on those."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    if target is not None:
        config.target = target
    engine = wasmtime.Engine(config)
    TICKER.engines.append(engine)
    return engine


class _EpochTicker:
    """Advances every engine's epoch each tick while any call runs; deadlines count ticks."""

    def __init__(self) -> None:
        self.engines: list[wasmtime.Engine] = []
        self._active = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._wake:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, name="wasmtime-epoch", daemon=True)
                self._thread.start()
            self._wake.notify()
        try:
            yield
        finally:
            with self._wake:
                self._active -= 1

    def _tick(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._active > 0)
            time.sleep(_TICK_SECONDS)
            for engine in self.engines:
                engine.increment_epoch()


TICKER = _EpochTicker()


def precompile(wasm: bytes, *, target: str | None, what: str) -> bytes:
    """Compiles a module for this host (None) or `pulley64` and returns the serialized artifact."""
    try:
        return bytes(wasmtime.Module(engine_for(target), wasm).serialize())
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{what}: {first_line(error)}") from None


def first_line(error: Exception) -> str:
    return str(error).strip().split("\n")[0]


def trap_message(trap: wasmtime.Trap) -> str:
    """The trap's cause, worded as Wasmer words it where the two differ, so messages do not depend on the engine."""
    if trap.trap_code in _WASMER_WORDING:
        return _WASMER_WORDING[trap.trap_code]
    for line in str(trap).splitlines():
        if line.strip().startswith("wasm trap:"):
            return line.strip().removeprefix("wasm trap:").strip()
    code = trap.trap_code
    return code.name.lower().replace("_", " ") if code is not None else first_line(trap)


class WasmtimeMemory:
    """Bounds-checked access to an instance's linear memory."""

    def __init__(self, memory: wasmtime.Memory, store: wasmtime.Store, guest: str) -> None:
        self._memory = memory
        self._store = store
        self._guest = guest

    def _check(self, pointer: int, length: int) -> None:
        if pointer < 0 or length < 0 or pointer + length > self._memory.data_len(self._store):
            raise GuestError(f"{self._guest}: pointer {pointer}+{length} is outside the guest's memory")

    def read(self, pointer: int, length: int) -> bytes:
        self._check(pointer, length)
        return bytes(self._memory.read(self._store, pointer, pointer + length))

    def write(self, pointer: int, data: bytes) -> None:
        self._check(pointer, len(data))
        self._memory.write(self._store, data, pointer)

    @property
    def pages(self) -> int:
        return self._memory.size(self._store)


class Deadline:
    """The wall-clock end of the current call, which host functions check when they return."""

    def __init__(self, guest: str, timeout_ms: int) -> None:
        self.guest = guest
        self.timeout_ms = timeout_ms
        self.export = ""
        self.ends_at = math.inf

    def error(self) -> GuestError:
        return GuestError(
            f"{self.guest}: {self.export} exceeded its {self.timeout_ms} ms timeout (limits.timeout_ms)",
            outcome="timeout",
        )

    def guard(self, function: HostFunction) -> HostFunction:
        def guarded(*args: int) -> int | None:
            result = function(*args)
            if time.monotonic() > self.ends_at:
                raise self.error()
            return result

        return guarded


class WasmtimeInstance:
    def __init__(self, instance: wasmtime.Instance, store: wasmtime.Store, deadline: Deadline) -> None:
        self._exports = instance.exports(store)
        self._store = store
        self._deadline = deadline
        self.guest = deadline.guest
        memory = self._exports["memory"]
        if not isinstance(memory, wasmtime.Memory):
            raise GuestError(f"{self.guest}: its export `memory` is not a memory")
        self.memory = WasmtimeMemory(memory, store, self.guest)

    def call(self, export: str, args: Sequence[Number]) -> tuple[Number, ...]:
        function = self._exports[export]
        if not isinstance(function, wasmtime.Func):
            raise GuestError(f"{self.guest}: its export {export!r} is not a function")
        return call_within_deadline(self._store, self._deadline, export, lambda: function(self._store, *args))


def call_within_deadline(
    store: wasmtime.Store, deadline: Deadline, export: str, invoke: Callable[[], Any]
) -> tuple[Number, ...]:
    """Calls an export with the deadline armed: a trap or the timeout becomes a GuestError."""
    deadline.export = export
    deadline.ends_at = time.monotonic() + deadline.timeout_ms / 1000
    store.set_epoch_deadline(epoch_ticks(deadline.timeout_ms))
    try:
        with TICKER.running():
            result = invoke()
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            raise deadline.error() from None
        raise GuestError(f"{deadline.guest}: {export} trapped: {trap_message(trap)}") from None
    except wasmtime.WasmtimeError as error:
        raise GuestError(f"{deadline.guest}: {export} failed: {first_line(error)}") from None
    finally:
        deadline.ends_at = math.inf
    return as_results(result)


def epoch_ticks(timeout_ms: int) -> int:
    """The epoch deadline of a timeout: the ticker advances the epoch every tick."""
    return max(1, math.ceil(timeout_ms / 1000 / _TICK_SECONDS))


def load(
    *,
    guest: str,
    wasm: bytes | None = None,
    artifact: bytes | None = None,
    imports: Sequence[tuple[HostImport, HostFunction]],
    on_memory: Callable[[EngineMemory], None],
    limits: RunLimits,
    target: str | None = None,
) -> WasmtimeInstance:
    """Instantiates a guest from a verified artifact or by compiling its .wasm.

    `target` is the artifact's: None for this host, or `pulley64`.
    """
    engine = engine_for(target)
    deadline = Deadline(guest, limits.timeout_ms)
    try:
        if artifact is not None:
            module = wasmtime.Module.deserialize(engine, artifact)
        else:
            assert wasm is not None
            module = wasmtime.Module(engine, wasm)
        store = wasmtime.Store(engine)
        store.set_limits(memory_size=limits.memory_pages * PAGE_BYTES)
        linker = wasmtime.Linker(engine)
        for host_import, function in imports:
            signature = wasmtime.FuncType(
                [_VALUE_TYPES[t]() for t in host_import.signature.params],
                [_VALUE_TYPES[t]() for t in host_import.signature.results],
            )
            linker.define_func(host_import.module, host_import.name, signature, deadline.guard(function))
        store.set_epoch_deadline(epoch_ticks(limits.timeout_ms))
        with TICKER.running():
            instance = WasmtimeInstance(linker.instantiate(store, module), store, deadline)
    except wasmtime.Trap as trap:
        raise GuestError(f"{guest}: cannot load the guest: {trap_message(trap)}") from None
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{guest}: cannot load the guest: {first_line(error)}") from None
    on_memory(instance.memory)
    return instance
