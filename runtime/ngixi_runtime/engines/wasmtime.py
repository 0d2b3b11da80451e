"""The Wasmtime engine: compile, serialize, load verified artifacts, instantiate, call, with limits.

Unlike Wasmer, Wasmtime enforces the manifest's limits in this process: a call is interrupted at
its `limits.timeout_ms` (epoch interruption, also checked when a host function returns, since an
epoch cannot interrupt Python), linear memory cannot grow past `limits.memory_pages`, and a call
may execute at most `limits.fuel` instructions (fuel, only for guests that set it: metering slows
every call). Artifacts must be built with the `Config` used here (fuel included), or Wasmtime
refuses to load them; a refusal becomes `ArtifactRefused`, so that the loader compiles instead.
"""

from __future__ import annotations

import _thread
import ctypes
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any, TypeVar

import wasmtime

from ngixi_runtime.capabilities.base import HostImport
from ngixi_runtime.capabilities.context import HostFunction
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.base import (
    PORTABLE_TRIPLE,
    STACK_EXHAUSTED,
    START_TRAPPED,
    EngineId,
    EngineMemory,
    RunLimits,
    as_results,
    installed_version,
)
from ngixi_runtime.errors import ArtifactRefused, GuestError, NgixiError
from ngixi_runtime.guest.limits import MAX_MEMORIES, MAX_TABLES
from ngixi_runtime.guest.manifest import Number
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import RETURN_RESERVE_SECONDS
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.spec.wasm import Export, ExternKind, Import, MemoryLimits, ModuleInfo, Signature

ENGINE = "wasmtime"
PAGE_BYTES = 65536
Code = TypeVar("Code")
ExportCall = Callable[[wasmtime.Store, Sequence[Number]], Any]
_TICK_SECONDS = 0.01
_INTERRUPT_BURST = 1000  # epochs advanced at once to end the running calls: ten seconds of deadline
_VALUE_TYPES = {
    "i32": wasmtime.ValType.i32,
    "i64": wasmtime.ValType.i64,
    "f32": wasmtime.ValType.f32,
    "f64": wasmtime.ValType.f64,
}


# Our CPU-feature names (targets.py) → Cranelift's x86_64 settings. Only these may reach
# `cranelift_flag_enable`: Wasmtime aborts the whole process on a setting it does not know.
# SSE2 is Cranelift's x86_64 baseline, so it needs no setting.
_CRANELIFT_SETTINGS = {
    "sse2": None,
    "sse3": "has_sse3",
    "ssse3": "has_ssse3",
    "sse4.1": "has_sse41",
    "sse4.2": "has_sse42",
    "popcnt": "has_popcnt",
    "avx": "has_avx",
    "avx2": "has_avx2",
    "bmi": "has_bmi1",
    "bmi2": "has_bmi2",
    "lzcnt": "has_lzcnt",
    "avx512dq": "has_avx512dq",
    "avx512vl": "has_avx512vl",
    "avx512f": "has_avx512f",
}

_WASMER_WORDING = {
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.STACK_OVERFLOW: STACK_EXHAUSTED,
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out of bounds memory access",  # Wasmtime: "memory out of bounds"
}


# A backtrace line of a Wasmtime error: "   3: 0xaac52a - libc.so!stdio_get_write_stream"; a trap's patterns are
# compiled by `re` when first used, not at every start.
_FRAME = r"^\s*\d+:\s+0x([0-9a-f]+) - (.+)$"
_INSTRUCTION_TRAP = r"wasm `(\w+)` instruction executed"
_TRAP_CAUSE = r"^\s*(?:\d+:\s*)?(wasm trap:.*)$"  # the trap among a cause's lines ("1: wasm trap: ...")
_FRAMES_SHOWN = 3
# A trap without a trap code whose cause says more than its first line ("error while executing at wasm backtrace:").
_UNCAUGHT = {
    "thrown Wasm exception": "an uncaught exception (what a C longjmp throws when no running setjmp takes it)",
}


@cache
def current_engine() -> EngineId:
    return compiled_by(None)


def compiled_by(target: str | None) -> EngineId:
    """The engine metadata of artifacts compiled for `target` (None or a triple: this host; or `pulley64`)."""
    binding = installed_version("wasmtime", wasmtime)
    return EngineId(ENGINE, binding, binding, "pulley" if target == PORTABLE_TRIPLE else "cranelift")


def compiler_available() -> bool:
    return True


# Wasmtime's switches of the WebAssembly proposals it runs by default and Wasmer 2.1 does not, each with its name in
# messages. GC's switch also covers what the GC proposal allows of constant expressions (`global.get` of a global the
# module defines), which C and Rust toolchains emit with extended constant expressions.
_PROPOSALS = (
    ("wasm_exceptions", "exception handling"),
    ("wasm_tail_call", "tail calls"),
    ("wasm_threads", "threads (atomic instructions or a shared memory)"),
    ("wasm_gc", "GC types or extended constant expressions"),
    ("wasm_function_references", "typed function references"),
    ("wasm_memory64", "a 64-bit memory (memory64)"),
    ("wasm_multi_memory", "multiple memories"),
    ("wasm_relaxed_simd", "relaxed SIMD"),
    ("wasm_wide_arithmetic", "wide arithmetic"),
)


def invalid_because(wasm: bytes, *, target: str | None = None) -> str | None:
    """Why Wasmtime (with the features the engine for this host, or `target`, enables) refuses the module as invalid,
    on one line; None when it accepts it."""
    try:
        wasmtime.Module.validate(engine_for(target), wasm)
    except wasmtime.WasmtimeError as error:
        return _with_advice(_with_causes(error))
    return None


# LLVM before 21 (clang, Emscripten, wasi-sdk's -fwasm-exceptions) emits the first, withdrawn form of exception
# handling (`try`, `catch`, `rethrow`), which neither engine runs.
_LEGACY_EXCEPTIONS = "legacy_exceptions feature required"
_STANDARD_EXCEPTIONS = (
    "the module uses the withdrawn form of exception handling (try/catch/rethrow), which neither engine runs:"
    " rebuild it with the standard one (clang -fwasm-exceptions -mllvm -wasm-use-legacy-eh=false,"
    " Emscripten -sWASM_LEGACY_EXCEPTIONS=0)"
)


def _with_advice(reason: str) -> str:
    """Wasmtime's reason for refusing a module, with what to do when the reason is one a toolchain can avoid."""
    return f"{reason}; {_STANDARD_EXCEPTIONS}" if _LEGACY_EXCEPTIONS in reason else reason


def is_valid(wasm: bytes, *, target: str | None = None) -> bool:
    """Whether Wasmtime (with the features the engine for this host, or `target`, enables) accepts the module."""
    return invalid_because(wasm, target=target) is None


def proposals_used(wasm: bytes) -> tuple[str, ...]:
    """The names of the proposals of `_PROPOSALS` a module valid for Wasmtime uses: those without which it is not."""
    used = []
    for switch, name in _PROPOSALS:
        try:
            wasmtime.Module.validate(_engine_without(switch), wasm)
        except wasmtime.WasmtimeError:
            used.append(name)
    return tuple(used)


@cache
def _engine_without(switch: str) -> wasmtime.Engine:
    config = wasmtime.Config()
    setattr(config, switch, False)
    return wasmtime.Engine(config)


# Settings of every engine here besides fuel, which an artifact records (Wasmtime loads one only into an engine set
# alike). Relaxed SIMD's operators may answer differently by machine (its NaN and out-of-range lanes): deterministic,
# they answer the same in a host artifact, a pulley64 one and a compilation on any machine.
SETTINGS = {"relaxed_simd_deterministic": True}


def _config(*, metered: bool) -> wasmtime.Config:
    """The settings every engine here shares; an artifact loads only into an engine with the same."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = metered
    config.wasm_relaxed_simd_deterministic = SETTINGS["relaxed_simd_deterministic"]
    return config


@cache
def engine_for(target: str | None, metered: bool = False) -> wasmtime.Engine:
    """The engine that runs code for this host (None, with all its CPU features) or for `pulley64`."""
    config = _config(metered=metered)
    if target is not None:
        config.target = target
    engine = wasmtime.Engine(config)
    TICKER.engines.append(engine)
    return engine


def compiling_engine(triple: str, cpu_features: Sequence[str], metered: bool, what: str) -> wasmtime.Engine:
    """An engine that compiles for exactly `triple` (this host's or `pulley64`) and the `cpu_features` baseline.

    Naming the host's triple keeps Wasmtime from using every feature of the build machine's CPU.
    """
    # The wheel compiles for nothing else, and aborts the process on an unknown triple or setting.
    if triple not in (host_triple(), PORTABLE_TRIPLE):
        raise NgixiError(f"{what}: Wasmtime compiles only for this machine ({host_triple()}) and {PORTABLE_TRIPLE}")
    unknown = sorted(set(cpu_features) - set(_CRANELIFT_SETTINGS))
    if unknown or (cpu_features and triple == PORTABLE_TRIPLE):
        raise NgixiError(f"{what}: Wasmtime cannot take the CPU features {', '.join(unknown or cpu_features)}")
    config = _config(metered=metered)
    config.target = triple
    for feature in cpu_features:
        setting = _CRANELIFT_SETTINGS[feature]
        if setting is not None:
            config.cranelift_flag_enable(setting)
    return wasmtime.Engine(config)


class _EpochTicker:
    """Advances every engine's epoch each tick while calls run; deadlines count ticks.

    `with TICKER.running():` around a call. Entering and leaving take one lock, held only to count the
    calls running: the thread is woken when it sleeps, and goes back to sleep after a tick with no call
    running, so calls in quick succession neither wake it each time nor wait for it.

    The thread is started with `_thread`, not `threading.Thread`, whose `start()` waits until the new thread has
    run (milliseconds on a loaded machine, in every spawn's first entry). Not waiting leaves the deadline as it
    was: the thread exists before the guest is entered, and a guest's code runs without the GIL, which is all
    the thread needs to begin, as it needs it to tick anyway.
    """

    def __init__(self) -> None:
        self.engines: list[wasmtime.Engine] = []
        self._active = 0
        self._lock = threading.Lock()
        self._asleep = True  # changed only under the lock
        self._awake = threading.Event()
        self._started = False

    def running(self) -> _EpochTicker:
        return self

    def __enter__(self) -> None:
        with self._lock:
            if self._asleep:
                self._wake()
            self._active += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._active -= 1

    def _wake(self) -> None:
        if not self._started:  # first, so that a thread that could not start is started by a later call
            _thread.start_new_thread(self._tick, ())
            self._started = True
        self._asleep = False
        self._awake.set()

    def interrupt(self) -> None:
        """Ends the calls running now at their next epoch check, as their deadlines would (Ctrl-C): advances every
        engine's epoch in bursts until no call runs, whatever deadline each was given."""
        while self._active:
            for engine in self.engines:
                for _ in range(_INTERRUPT_BURST):
                    engine.increment_epoch()
            time.sleep(_TICK_SECONDS)

    def _tick(self) -> None:
        while True:
            self._awake.wait()
            time.sleep(_TICK_SECONDS)
            for engine in self.engines:
                engine.increment_epoch()
            with self._lock:
                if self._active == 0:
                    self._asleep = True
                    self._awake.clear()


TICKER = _EpochTicker()


def precompile(wasm: bytes, *, triple: str, cpu_features: Sequence[str], metered: bool, what: str) -> bytes:
    """Compiles a module for this host's triple with a CPU baseline, or for `pulley64`; returns the artifact.

    `metered` compiles in fuel metering, for a guest whose manifest sets limits.fuel.
    """
    engine = compiling_engine(triple, cpu_features, metered, what)
    try:
        return bytes(wasmtime.Module(engine, wasm).serialize())
    except wasmtime.WasmtimeError as error:
        reason = _with_advice(_with_causes(error))  # its first line alone: "failed to compile: wasm[0]::function[0]"
    if triple == PORTABLE_TRIPLE and is_valid(wasm):
        raise NgixiError(
            f"{what}: {reason}; Wasmtime runs the module on this machine, but its portable {PORTABLE_TRIPLE} does not"
            f" run every feature it uses: leave {PORTABLE_TRIPLE} out of [tool.ngixi] wasmtime_targets"
        )
    raise NgixiError(f"{what}: {reason}")


# Wasmtime's hostcall fuel: it lifts at most 128 MiB of a component's values out of the guest in one crossing, each
# a 48-byte `Val` (measured on wasmtime-py 50.0.1: a list<u8> of 2,796,202 bytes is lifted, one byte more is not).
_TOO_MUCH_LIFTED = "too much data is being copied between the host and the guest"
_NOT_UTF8 = "invalid utf-8 sequence"
_STRING_ADVICE = ": a WIT string holds Unicode text, never a lone surrogate (a UTF-16 string's half of a pair)"
_LIFT_ADVICE = (
    ": Wasmtime takes at most 2,796,202 values (a list<u8> of as many bytes) from a guest at once, as a result or a"
    " host call's arguments; return large data in parts, or use a core guest's call data (input/output = \"bytes\")"
)


def first_line(error: Exception) -> str:
    return str(error).strip().split("\n")[0]


def _with_causes(error: Exception) -> str:
    """The error and its "Caused by:" lines on one line."""
    lines = [line.strip() for line in str(error).splitlines()]
    return ": ".join(line for line in lines if line and line != "Caused by:")


def failure_summary(error: Exception) -> str:
    """A failed call's Wasmtime error on one line: its cause (a trap's, worded like `trap_message`) and the
    innermost named functions of its backtrace that can be the guest's own, e.g. `unreachable (in greet)`."""
    backtrace, _, cause = str(error).partition("Caused by:")
    reason = _worded_cause(cause) or first_line(error)
    if reason.startswith(_TOO_MUCH_LIFTED):
        return _TOO_MUCH_LIFTED + _LIFT_ADVICE
    if reason.startswith(_NOT_UTF8):  # Rust's words for the string Wasmtime lifted
        return f"a string it gave is not valid UTF-8 ({reason}){_STRING_ADVICE}"
    from ngixi_runtime.spec.sourcemap import is_own, shown_name  # on a failure only: not on every run's path

    # Past AssemblyScript's ~lib/, C's abort, a language runtime's libraries: none of them is the guest's place.
    frames = re.findall(_FRAME, backtrace, re.MULTILINE)
    own = [shown_name(shown) for _, frame in frames if (shown := _frame_name(frame)) and is_own(shown)]
    return f"{reason} (in {' < '.join(own[:_FRAMES_SHOWN])})" if own else reason


# A Wasmtime error's cause (`trap_cause`) when the epoch deadline ended the guest: a component's call or start-up.
INTERRUPTED = "interrupt"


def trap_cause(error: Exception) -> str | None:
    """The cause, worded like `trap_message`, of a Wasmtime error that a trap caused (a component's start function
    or call); None for another error."""
    trap = re.search(_TRAP_CAUSE, str(error).partition("Caused by:")[2], re.MULTILINE)
    return None if trap is None else _worded_cause(trap[1])


def _worded_cause(cause: str) -> str:
    reason = " ".join(line.strip() for line in cause.splitlines() if line.strip())
    return re.sub(_INSTRUCTION_TRAP, r"\1", reason.removeprefix("wasm trap:").strip())


def named_frames(error: Exception) -> tuple[tuple[str, int], ...]:
    """A Wasmtime error's backtrace as (function name as shown, `module!function` where the module is known, or ""
    for an unnamed one; offset) pairs, innermost first."""
    frames = re.findall(_FRAME, str(error).partition("Caused by:")[0], re.MULTILINE)
    return tuple((_frame_name(frame) or "", int(offset, 16)) for offset, frame in frames)


def _frame_name(frame: str) -> str | None:
    """A backtrace frame's "module!function" as shown: without an unknown module, None for an unnamed function
    (`<wasm function 12>`)."""
    module, _, function = frame.rpartition("!")
    if function.startswith("<wasm function"):
        return None
    return function if module in ("", "<unknown>") else frame


def trap_message(trap: wasmtime.Trap) -> str:
    """The trap's cause, worded as Wasmer words it where the two differ, so messages do not depend on the engine."""
    if trap.trap_code in _WASMER_WORDING:
        return _WASMER_WORDING[trap.trap_code]
    for line in str(trap).splitlines():
        if line.strip().startswith("wasm trap:"):
            return line.strip().removeprefix("wasm trap:").strip()
    code = trap.trap_code
    if code is not None:
        return code.name.lower().replace("_", " ")
    cause = _worded_cause(str(trap).partition("Caused by:")[2])
    return _UNCAUGHT.get(cause, cause) or first_line(trap)


class WasmtimeMemory:
    """Bounds-checked access to an instance's linear memory.

    It copies straight from and to the memory's current address: `wasmtime.Memory.read` and `write`
    build a new ctypes array type and an intermediate bytearray on every access, which made each
    host call several times slower than on Wasmer.
    """

    def __init__(self, memory: wasmtime.Memory, store: wasmtime.Store, guest: str) -> None:
        self._memory = memory
        self._store = store
        self._guest = guest
        fast = wasmtime_fastpath.memory_bounds(memory, store)
        self._bounds, self._length = fast or (self._public_bounds, partial(memory.data_len, store))
        self.page_count: Callable[[], int] = partial(memory.size, store)

    def _public_bounds(self) -> tuple[int, int]:
        return ctypes.addressof(self._memory.data_ptr(self._store).contents), self._length()

    def _address(self, pointer: int, length: int) -> int:
        """Where `pointer` is now (a memory that grows may move); checked to hold `length` bytes."""
        start, size = self._bounds()
        if pointer + length > size or min(pointer, length) < 0:  # host functions take u32s: never negative
            raise GuestError(f"{self._guest}: pointer {pointer}+{length} is outside the guest's memory")
        return start + pointer

    def read(self, pointer: int, length: int) -> bytes:
        if length == 0:  # no bytes named: an empty slice's pointer may dangle (Zig's is 0xffffffff)
            return b""
        return ctypes.string_at(self._address(pointer, length), length)

    def write(self, pointer: int, data: bytes) -> None:
        if data:
            ctypes.memmove(self._address(pointer, len(data)), data, len(data))

    @property
    def size_bytes(self) -> int:
        return self._length()


class Deadline:
    """The wall-clock end of the current call, which host functions check when they return; and its fuel."""

    def __init__(self, guest: str, timeout_ms: int, fuel: int | None = None) -> None:
        self.guest = guest
        self.timeout_ms = timeout_ms
        self.fuel = fuel
        self.export = ""
        self.ends_at = math.inf
        self._ticks = epoch_ticks(timeout_ms)
        # The running call's store, until the call is given its reserve; never kept past the call, since the store's
        # host functions keep this deadline.
        self.store: wasmtime.Store | None = None

    def arm(self, store: wasmtime.Store) -> None:
        """Gives the next call (or instantiation) its epoch deadline and its full fuel."""
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        store.set_epoch_deadline(self._ticks)

    def reserve_return_time(self) -> None:
        """Once per call, after a host call answered TIMEOUT because this deadline was near: the guest may run
        RETURN_RESERVE_SECONDS from now to take it and return."""
        store, self.store = self.store, None
        if store is None:
            return
        self.ends_at = max(self.ends_at, time.monotonic() + RETURN_RESERVE_SECONDS)
        store.set_epoch_deadline(epoch_ticks(math.ceil(RETURN_RESERVE_SECONDS * 1000)))

    def out_of_fuel(self, what: str) -> GuestError:
        return GuestError(
            f"{self.guest}: {what} ran out of fuel: at most {self.fuel} per call (limits.fuel)", outcome="fuel"
        )

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


def export_call(function: wasmtime.Func, store: wasmtime.Store) -> ExportCall:
    """How to call `function`: `wasmtime_fastpath`'s call where it applies, else wasmtime-py's `Func.__call__`."""
    return wasmtime_fastpath.numeric_export(function, store) or (lambda store, args: function(store, *args))


class WasmtimeInstance:
    thread_bound = False

    def __init__(self, instance: wasmtime.Instance, store: wasmtime.Store, deadline: Deadline) -> None:
        self._exports = instance.exports(store)
        self._store = store
        self._deadline = deadline
        self._functions: dict[str, ExportCall] = {}
        self.guest = deadline.guest
        self.reserve_return_time = deadline.reserve_return_time
        memory = self._exports["memory"]
        if not isinstance(memory, wasmtime.Memory):
            raise GuestError(f"{self.guest}: its export `memory` is not a memory")
        self.memory = WasmtimeMemory(memory, store, self.guest)

    def text_parameters(self, export: str) -> frozenset[int]:
        return frozenset()  # a core function's parameters are numbers

    def call(self, export: str, args: Sequence[Number]) -> tuple[Number, ...]:
        function = self._functions.get(export) or self._function(export)
        return call_within_deadline(self._store, self._deadline, export, lambda: function(self._store, args))

    def _function(self, export: str) -> ExportCall:
        function = self._exports[export]
        if not isinstance(function, wasmtime.Func):
            raise GuestError(f"{self.guest}: its export {export!r} is not a function")
        self._functions[export] = export_call(function, self._store)
        return self._functions[export]


def call_within_deadline(
    store: wasmtime.Store, deadline: Deadline, export: str, invoke: Callable[[], Any]
) -> tuple[Number, ...]:
    """Calls an export with the deadline armed: a trap or the timeout becomes a GuestError."""
    deadline.export = export
    deadline.ends_at = time.monotonic() + deadline.timeout_ms / 1000
    deadline.arm(store)
    deadline.store = store
    try:
        with TICKER.running():
            result = invoke()
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            raise deadline.error() from None
        if trap.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            raise deadline.out_of_fuel(export) from None
        raise trap_error(f"{deadline.guest}: {export} trapped: {trap_message(trap)}", trap) from None
    except wasmtime.WasmtimeError as error:  # a component's call: its trap reads as a core guest's (where: loader)
        cause = trap_cause(error)
        if cause == INTERRUPTED:  # its deadline, as a core guest's `TrapCode.INTERRUPT`
            raise deadline.error() from None
        if cause is not None:
            raise GuestError(f"{deadline.guest}: {export} trapped: {cause}", named_frames=named_frames(error)) from None
        raise GuestError(f"{deadline.guest}: {export} failed: {failure_summary(error)}") from None
    finally:
        deadline.ends_at = math.inf
        deadline.store = None
    return as_results(result)


def trap_error(message: str, trap: wasmtime.Trap) -> GuestError:
    """The GuestError of a trap, with its frames by (function index, offset) and by (function name, offset)."""
    frames = tuple((frame.func_index, frame.module_offset) for frame in trap.frames)
    named = tuple((frame.func_name or "", frame.module_offset) for frame in trap.frames)
    return GuestError(message, frames=frames, named_frames=named)


def epoch_ticks(timeout_ms: int) -> int:
    """The epoch deadline of a timeout: the ticker advances the epoch every tick."""
    return max(1, math.ceil(timeout_ms / 1000 / _TICK_SECONDS))


class WasmtimeModule(NamedTuple):
    guest: str
    engine: wasmtime.Engine
    module: wasmtime.Module
    limits: RunLimits
    info: ModuleInfo


def prepare(
    *,
    guest: str,
    wasm: bytes | None = None,
    artifact: bytes | None = None,
    limits: RunLimits,
    target: str | None = None,
) -> WasmtimeModule:
    """Deserializes a verified artifact or compiles the .wasm, for an engine metering fuel if `limits` has it.

    `target` is the artifact's: None for this host, or `pulley64`. An artifact Wasmtime refuses
    (another Wasmtime, other settings, CPU features this host lacks) raises `ArtifactRefused`.
    """
    engine = engine_for(target, limits.fuel is not None)
    module = _module(engine, guest, wasm, artifact)
    return WasmtimeModule(guest, engine, module, limits, _module_info(module))


def serialize(prepared: WasmtimeModule) -> bytes:
    """The prepared module's machine code, for `prepare(artifact=...)` with the same limits later."""
    return bytes(prepared.module.serialize())


def define_host_function(linker: wasmtime.Linker, host_import: HostImport, function: HostFunction) -> None:
    params, results = host_import.signature.params, host_import.signature.results
    signature = wasmtime.FuncType([_VALUE_TYPES[t]() for t in params], [_VALUE_TYPES[t]() for t in results])
    if not wasmtime_fastpath.define_numeric_import(linker, host_import.module, host_import.name, signature, function):
        linker.define_func(host_import.module, host_import.name, signature, function)


def _define_imports(
    linker: wasmtime.Linker, imports: Sequence[tuple[HostImport, HostFunction]], deadline: Deadline
) -> None:
    """Links the host functions; Wasmtime's refusal of one (defined twice, say) names the guest and the import."""
    for host_import, function in imports:
        try:
            define_host_function(linker, host_import, deadline.guard(function))
        except wasmtime.WasmtimeError as error:
            raise NgixiError(
                f"{deadline.guest}: cannot link its import {host_import.qualified}: {first_line(error)}"
            ) from None


def instantiate(
    prepared: WasmtimeModule,
    *,
    imports: Sequence[tuple[HostImport, HostFunction]],
    on_memory: Callable[[EngineMemory], None],
) -> WasmtimeInstance:
    guest, limits = prepared.guest, prepared.limits
    deadline = Deadline(guest, limits.timeout_ms, limits.fuel)
    try:
        store = wasmtime.Store(prepared.engine)
        limit_store(store, limits, memories=MAX_MEMORIES, instances=1)
        linker = wasmtime.Linker(prepared.engine)
        _define_imports(linker, imports, deadline)
        deadline.arm(store)
        with TICKER.running():
            instance = WasmtimeInstance(linker.instantiate(store, prepared.module), store, deadline)
    except wasmtime.Trap as trap:
        if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
            deadline.export = "start"
            raise deadline.error() from None
        if trap.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            raise deadline.out_of_fuel("its start") from None
        raise trap_error(f"{guest}: {START_TRAPPED}: {trap_message(trap)}", trap) from None
    except wasmtime.WasmtimeError as error:
        raise NgixiError(f"{guest}: cannot load the guest: {first_line(error)}") from None
    on_memory(instance.memory)
    return instance


def limit_store(store: wasmtime.Store, limits: RunLimits, *, memories: int, instances: int) -> None:
    """Caps, before anything is instantiated in it, what the store may hold: each memory at limits.memory_pages,
    each table at `limits.table_elements`, and how many memories, instances and tables there may be: MAX_TABLES in
    all, a component's instances together as a core guest (real components define one or two)."""
    store.set_limits(
        memory_size=limits.memory_pages * PAGE_BYTES,
        table_elements=limits.table_elements,
        instances=instances,
        tables=MAX_TABLES,
        memories=memories,
    )


def _module_info(module: wasmtime.Module) -> ModuleInfo:
    """What the code Wasmtime is about to run imports and exports, and its memories' limits."""
    wasm_imports, wasm_exports = module.imports, module.exports  # each a new list of new objects
    memories = [i.type for i in wasm_imports] + [e.type for e in wasm_exports]
    return ModuleInfo(
        tuple(Import(i.module, i.name or "", *_described(i.type)) for i in wasm_imports),
        tuple(Export(e.name, *_described(e.type)) for e in wasm_exports),
        tuple(MemoryLimits(m.limits.min, m.limits.max) for m in memories if isinstance(m, wasmtime.MemoryType)),
    )


def _described(extern: Any) -> tuple[ExternKind, Signature | None]:
    if isinstance(extern, wasmtime.FuncType):
        return "func", Signature(tuple(map(str, extern.params)), tuple(map(str, extern.results)))
    if isinstance(extern, wasmtime.MemoryType):
        return "memory", None
    if isinstance(extern, wasmtime.TableType):
        return "table", None
    return "global", None


def _module(engine: wasmtime.Engine, guest: str, wasm: bytes | None, artifact: bytes | None) -> wasmtime.Module:
    if artifact is None:
        assert wasm is not None
        try:
            return wasmtime.Module(engine, wasm)
        except wasmtime.WasmtimeError as error:
            raise NgixiError(f"{guest}: cannot compile the guest: {first_line(error)}") from None
    return deserialize(wasmtime.Module.deserialize, engine, artifact)


def deserialize(kind: Callable[[wasmtime.Engine, bytes], Code], engine: wasmtime.Engine, artifact: bytes) -> Code:
    """`kind` (a module's or a component's `deserialize`) of a verified artifact; a refusal is `ArtifactRefused`."""
    try:
        return kind(engine, artifact)
    except wasmtime.WasmtimeError as error:
        raise ArtifactRefused(f"Wasmtime refused it: {_with_causes(error)}") from None
