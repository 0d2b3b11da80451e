"""Component guests on Wasmtime's component model: read a component's world, precompile, load, call.

Limits hold as for core guests on Wasmtime (`engine_wasmtime`): the same epoch-interrupted
deadline, re-checked when a host function returns, and store limits on linear memory. A component
that imports WASI gets Wasmtime's WASI preview 2, configured only from its `WasiSetup`.
"""

from __future__ import annotations

import atexit
import gc
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

import wasmtime
import wasmtime.component as wc

from ngixi_runtime.capabilities.base import ComponentFunction
from ngixi_runtime.capabilities.component import ComponentInfo, WasiSetup, WitTypes, run_export, text_positions
from ngixi_runtime.capabilities.context import GuestExit
from ngixi_runtime.engines.base import START_TRAPPED, RunLimits
from ngixi_runtime.engines.wasmtime import (
    INTERRUPTED,
    TICKER,
    Deadline,
    call_within_deadline,
    compiling_engine,
    deserialize,
    engine_for,
    epoch_ticks,
    first_line,
    limit_store,
    named_frames,
    trap_cause,
    trap_error,
    trap_message,
)
from ngixi_runtime.engines.wasmtime_fastpath.components import component_export, define_component_import
from ngixi_runtime.engines.wit_values import TypedFunction, lift_result, lower_arguments, render
from ngixi_runtime.errors import GuestError, NgixiError
from ngixi_runtime.files import private_creation
from ngixi_runtime.guest.component_memory import memory_floor_problem
from ngixi_runtime.records import NamedTuple

# How long closing waits for Wasmtime to release a store's WASI writers: before looking for reference
# cycles that may hold the store, and in all.
_PROMPT_SECONDS, _RELEASE_SECONDS = 0.05, 5.0
# Instances with WASI writers not yet closed: closed at exit, while the interpreter can still run callbacks.
_OPEN: weakref.WeakSet[ComponentInstance] = weakref.WeakSet()

# A component is several core instances (the guest's, WASI's adapter, shims) with memories of their own; each
# memory and table is capped as a core guest's, so its memories together hold at most four times the limit.
# componentize-py's stubbed WASI alone is three dozen small instances (none with a memory).
COMPONENT_INSTANCES = 64
COMPONENT_MEMORIES = 4

# An export called with its arguments as the engine's values, giving its result as the engine's value.
_EngineCall = Callable[[Sequence[Any]], Any]


@atexit.register
def _close_open_instances() -> None:
    for instance in list(_OPEN):
        instance.close()


_MEMORY_TOO_LARGE = r"memory minimum size of (\d+) pages exceeds memory limits"  # compiled by `re` on a refusal

# A component's preamble: the magic, version 0x0d and layer 1 (a core module has layer 0).
_COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"


def is_component(wasm: bytes) -> bool:
    return wasm.startswith(_COMPONENT_PREAMBLE)


def _func_types(function: wc.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An export's parameter and result types as WIT writes them (`string`, `record { words: u32 }`)."""
    result = () if function.result is None else (render(function.result),)
    return tuple(render(t) for _, t in function.params), result


def _functions(instance_type: object, engine: wasmtime.Engine) -> dict[str, WitTypes]:
    """The param and result types of each function an imported instance has."""
    if not isinstance(instance_type, wc.ComponentInstanceType):
        return {}
    items = instance_type.exports(engine).items()
    return {name: _func_types(item.ty) for name, item in items if isinstance(item.ty, wc.FuncType)}


def component_info(component: wc.Component, engine: wasmtime.Engine) -> ComponentInfo:
    component_type = component.type
    exports = {}
    for name, item in component_type.exports(engine).items():
        if isinstance(item.ty, wc.FuncType):
            exports[name] = _func_types(item.ty)
        elif isinstance(item.ty, wc.ComponentInstanceType):
            for inner, function in item.ty.exports(engine).items():
                if isinstance(function.ty, wc.FuncType):
                    exports[f"{name}#{inner}"] = _func_types(function.ty)
    import_types = {name: _functions(item.ty, engine) for name, item in component_type.imports(engine).items()}
    imports = {name: frozenset(functions) for name, functions in import_types.items()}
    return ComponentInfo(imports, exports, import_types)


def precompile(wasm: bytes, *, triple: str, cpu_features: Sequence[str], metered: bool, what: str) -> bytes:
    """As `engine_wasmtime.precompile`; components are never metered (the manifest refuses limits.fuel)."""
    try:
        return bytes(wc.Component(compiling_engine(triple, cpu_features, False, what), wasm).serialize())
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{what}: {first_line(error)}") from None


def _lowerable(value: Any) -> Any:
    """A host function's result as the engine lowers it: a NamedTuple becomes a component record (a plain tuple
    stays a WIT tuple)."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        record = wc.Record()
        for name in value._fields:
            setattr(record, name, getattr(value, name))
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

    def page_count(self) -> int:
        return 0

    @property
    def size_bytes(self) -> int:
        return 0


class _StdioWriters:
    """Tells when Wasmtime has let go of a store's WASI stdout and stderr writers.

    Wasmtime calls the writers, and drops them, on its own (tokio) threads. A Python callback from
    such a thread while the interpreter finalizes makes Python end that thread (pthread_exit), which
    aborts the process; so a store with writers must be dropped, and the writers' release awaited,
    before the interpreter finalizes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alive = 0
        self._released = threading.Event()

    def track(self, writer: Callable[[bytes], int]) -> Callable[[bytes], int]:
        with self._lock:
            self._alive += 1
        weakref.finalize(writer, self._release_one)
        return writer

    def _release_one(self) -> None:
        with self._lock:
            self._alive -= 1
            if self._alive == 0:
                self._released.set()

    def wait(self, seconds: float) -> bool:
        """Whether the writers were released within `seconds`."""
        return self._released.wait(seconds)


class ComponentInstance:
    """An instantiated component.

    A call that failed (a trap, its timeout, a quota a host function refused) leaves the instance one that Wasmtime
    never enters again, as the component model says: the next call instantiates the component afresh in a new store
    (its start functions run again, its memory starts anew), as a tenant's next call after a failure starts afresh.
    """

    thread_bound = False

    def __init__(self, maker: _Maker, info: ComponentInfo) -> None:
        self._maker = maker
        self._deadline = maker.deadline
        self.reserve_return_time = maker.deadline.reserve_return_time
        self._run = run_export(info)  # a command's `wasi:cli/run@…#run`, which `_start` calls
        self._exports = info.exports
        self._typed: dict[str, tuple[_EngineCall, TypedFunction]] = {}
        self.memory = SealedMemory()
        self._instance: wc.Instance | None = None
        self._spent = False  # the last call failed: Wasmtime refuses to enter the instance again
        self._enter(*maker.instantiated())

    def _enter(self, instance: wc.Instance, store: wasmtime.Store, writers: _StdioWriters | None) -> None:
        self._instance, self._store, self._writers = instance, store, writers
        if writers is not None:
            _OPEN.add(self)

    def close(self) -> None:
        """Drops the store; with WASI, returns once Wasmtime has let go of the stdio writers (`_StdioWriters`)."""
        if self._instance is None:
            return
        self._instance = None
        self._typed.clear()  # its functions are the store's
        del self._store
        writers = self._writers
        if writers is not None:
            _OPEN.discard(self)
            if not writers.wait(_PROMPT_SECONDS):
                gc.collect()  # a traceback's frame in a reference cycle may still hold the store
                writers.wait(_RELEASE_SECONDS)

    def call(self, export: str, args: Sequence[Any]) -> tuple[Any, ...]:
        """Calls an export with Python (or JSON) values of its WIT types (`wit_values`); returns its result's."""
        if self._instance is None:
            raise GuestError(f"{self._deadline.guest}: called after the guest was closed")
        if self._spent:
            self._renew()
        if export == "_start":
            function = self._function(self._instance, export)
            return self._within_deadline(export, lambda: _run_command(function, self._store))
        engine_call, typed = self._typed_function(self._instance, export)
        lowered = lower_arguments(f"{self._deadline.guest}: {export}", typed, args)
        return self._within_deadline(export, lambda: self._in_time(lift_result(typed, engine_call(lowered))))

    def _renew(self) -> None:
        """Instantiates the component afresh after a failed call, the old store dropped first (an isolated child's
        address-space cap holds one). A new instance that fails to start fails this call, and the next tries again."""
        old_store = weakref.ref(self._store)
        self.close()
        if old_store() is not None:  # Wasmtime's error, in a reference cycle with its traceback, holds it still
            gc.collect()
        self._enter(*self._maker.instantiated())
        self._spent = False

    def _in_time(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The call's values, unless lifting them (the engine's copy, then ours) took it past its deadline: a result
        of millions of values takes seconds, in the host where no epoch deadline reaches."""
        if time.monotonic() > self._deadline.ends_at:
            raise self._deadline.error()
        return values

    def text_parameters(self, export: str) -> frozenset[int]:
        params, _ = self._exports.get(export, ((), ()))
        return text_positions(params)

    def _typed_function(self, instance: wc.Instance, export: str) -> tuple[_EngineCall, TypedFunction]:
        """An export, as a call of its engine values, and its types, read on its first call."""
        found = self._typed.get(export)
        if found is None:
            function = self._function(instance, export)
            bulk = component_export(function, self._store)
            call = partial(bulk, self._store) if bulk is not None else lambda args: function(self._store, *args)
            found = self._typed[export] = (call, TypedFunction.of(function.type(self._store)))
        return found

    def _within_deadline(self, export: str, invoke: Callable[[], Any]) -> tuple[Any, ...]:
        try:
            with _private_files(self._maker.wasi):
                return call_within_deadline(self._store, self._deadline, export, invoke)
        except GuestError as failure:
            self._spent = True
            # Raised again without the frames (and Wasmtime's error) that hold the store: a caller keeping the
            # error would keep the store, and `close` would wait for the stdio writers in vain.
            failure.__context__ = None
            raise failure.with_traceback(None) from None
        except GuestExit:
            self._spent = True
            raise
        finally:
            self._raise_stdio_refusal()  # also the cause when the guest failed after a refused write

    def _function(self, instance: wc.Instance, export: str) -> wc.Func:
        """An exported function, `INTERFACE#NAME` one of an exported interface; `_start` is a command's run
        function."""
        qualified = self._run if export == "_start" and self._run is not None else export
        outer, _, name = qualified.rpartition("#")
        inner = instance.get_export_index(self._store, outer) if outer else None
        index = None if outer and inner is None else instance.get_export_index(self._store, name, inner)
        function = None if index is None else instance.get_func(self._store, index)
        if function is None:
            raise GuestError(f"{self._deadline.guest}: the component exports no function {export!r}")
        return function

    def _raise_stdio_refusal(self) -> None:
        if self._maker.wasi is not None:
            self._maker.wasi.stdio.raise_refusal()


def _private_files(wasi: WasiSetup | None) -> AbstractContextManager[None]:
    """What a component makes under a rw preopen is its user's alone: Wasmtime's WASI makes files 0666 and folders
    0777 less the umask, so the process's umask is narrowed while it may (`files.private_creation`)."""
    writes = wasi is not None and any(mount.mode == "rw" for mount in wasi.mounts)
    return private_creation() if writes else nullcontext()


def _run_command(run: wc.Func, store: wasmtime.Store) -> None:
    """Runs a command component; its exit (WASI preview 2 knows only success, 0, and failure, 1) is `GuestExit`."""
    try:
        outcome = run(store)
    except wasmtime.ExitTrap as exit_:
        raise GuestExit(exit_.code) from None
    if isinstance(outcome, wc.Variant) and outcome.tag == "err":
        raise GuestExit(1)


class Prepared(NamedTuple):
    """A compiled (or deserialized) component, not yet instantiated, and its world."""

    component: wc.Component
    engine: wasmtime.Engine
    info: ComponentInfo


class _Maker(NamedTuple):
    """What instantiates a linked component in a store of its own: at load, and again after a failed call."""

    prepared: Prepared
    linker: wc.Linker
    limits: RunLimits
    wasi: WasiSetup | None
    deadline: Deadline

    def instantiated(self) -> tuple[wc.Instance, wasmtime.Store, _StdioWriters | None]:
        """A new store and the component's instance in it, its start functions run under the deadline."""
        guest = self.deadline.guest
        try:
            store = wasmtime.Store(self.prepared.engine)
            limit_store(store, self.limits, memories=COMPONENT_MEMORIES, instances=COMPONENT_INSTANCES)
            writers = None
            if self.wasi is not None:
                writers = _StdioWriters()
                store.set_wasi(_wasi_config(self.wasi, writers))
            store.set_epoch_deadline(epoch_ticks(self.limits.timeout_ms))
            with TICKER.running(), _private_files(self.wasi):
                instance = self.linker.instantiate(store, self.prepared.component)
        except wasmtime.Trap as trap:
            raise trap_error(f"{guest}: {START_TRAPPED}: {trap_message(trap)}", trap) from None
        except wasmtime.WasmtimeError as error:
            cause = trap_cause(error)  # a core module's start function, or a language runtime's start-up, trapped
            if cause == INTERRUPTED:  # a language runtime's start-up under the deadline
                self.deadline.export = "instantiating the component"
                raise self.deadline.error() from None
            if cause is not None:
                raise GuestError(f"{guest}: {START_TRAPPED}: {cause}", named_frames=named_frames(error)) from None
            raise NgixiError(
                f"{guest}: cannot load the guest: {_memory_hint(first_line(error), self.limits)}"
            ) from None
        return instance, store, writers


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


def serialize(prepared: Prepared) -> bytes:
    """The prepared component's machine code, for `prepare(artifact=...)` later."""
    return bytes(prepared.component.serialize())


def _wasi_config(setup: WasiSetup, writers: _StdioWriters) -> wasmtime.WasiConfig:
    """Only what the setup names: nothing is inherited, stdin holds only the caller's bytes, no socket is allowed."""
    config = wasmtime.WasiConfig()
    config.argv = list(setup.args)
    config.env = [list(pair) for pair in setup.env]
    if setup.stdin:
        _give_stdin(config, setup.stdin)
    config.stdout_custom = writers.track(setup.stdio.writer(1))
    config.stderr_custom = writers.track(setup.stdio.writer(2))
    for mount in setup.mounts:
        # Read-only is Wasmtime's own: a ro preopen has neither the directory's nor its files' write permissions.
        config.preopen_dir(str(mount.host_path), mount.guest_path, fs_mutable=mount.mode == "rw")
    return config


def _give_stdin(config: wasmtime.WasiConfig, data: bytes) -> None:
    """Makes `data` the guest's stdin. wasmtime-py takes stdin only as a file's path, which Wasmtime opens
    at once: a temporary file only this user can read, removed as soon as Wasmtime has it open."""
    import tempfile  # only for a guest given input (shutil, random and more come with it)

    with tempfile.NamedTemporaryFile(prefix="ngixi-stdin-") as file:
        file.write(data)
        file.flush()
        config.stdin_file = file.name


def _memory_hint(message: str, limits: RunLimits) -> str:
    """Wasmtime's refusal of a memory that starts above the store's limit, said in the manifest's terms."""
    found = re.search(_MEMORY_TOO_LARGE, message)
    return memory_floor_problem(int(found.group(1)), limits.memory_pages) if found else message


def instantiate(
    prepared: Prepared,
    *,
    guest: str,
    functions: Mapping[str, Mapping[str, ComponentFunction]],
    limits: RunLimits,
    wasi: WasiSetup | None = None,
) -> ComponentInstance:
    """Instantiates a prepared component, linking `functions` by interface, within the manifest's limits.

    `wasi`: what WASI gives the component, if it imports WASI (its imports were checked against the grants).
    """
    deadline = Deadline(guest, limits.timeout_ms)
    try:
        linker = wc.Linker(prepared.engine)
        if wasi is not None:
            linker.add_wasip2()
        with linker.root() as root:
            for interface, named in functions.items():
                with root.add_instance(interface) as linked:
                    for name, function in named.items():
                        host_function = _host_function(function, deadline)
                        if not define_component_import(linked, name, host_function):
                            linked.add_func(name, host_function)
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{guest}: cannot load the guest: {first_line(error)}") from None
    return ComponentInstance(_Maker(prepared, linker, limits, wasi, deadline), prepared.info)
