"""The Wasmer engine layer: compile, serialize, load verified artifacts, instantiate, call.

Every call into wasmer-python is wrapped here, so its panics (`BaseException` subclasses)
and traps become `NgixiError`s at one point.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, partial
from typing import Any, TypeVar

import wasmer

from ngixi_runtime.capabilities.base import HostImport
from ngixi_runtime.capabilities.context import GuestExit, HostFunction, no_engine_deadline
from ngixi_runtime.engines.base import START_TRAPPED, EngineId, EngineMemory, RunLimits, as_results
from ngixi_runtime.errors import GuestError, NgixiError
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.wasm import Export, ExternKind, Import, MemoryLimits, ModuleInfo, Signature

ENGINE = "wasmer"
COMPILER = "cranelift"
_CORE_VERSION_OF_BINDING = {"1.1.0": "2.1.1"}
_WASM_TYPES = {
    "i32": wasmer.Type.I32,
    "i64": wasmer.Type.I64,
    "f32": wasmer.Type.F32,
    "f64": wasmer.Type.F64,
}
_TYPE_NAMES = {
    **{code: name for name, code in _WASM_TYPES.items()},
    wasmer.Type.V128: "v128",
    wasmer.Type.FUNC_REF: "funcref",
    wasmer.Type.EXTERN_REF: "externref",
}
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit, NgixiError, GuestExit)

T = TypeVar("T")


@cache
def current_engine() -> EngineId:
    binding = str(wasmer.__version__)  # importlib.metadata would cost a scan of sys.path on every cold start
    return EngineId(ENGINE, _CORE_VERSION_OF_BINDING.get(binding, "unknown"), binding, COMPILER)


def compiler_available() -> bool:
    try:
        import wasmer_compiler_cranelift  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def engine_errors(what: str, error: type[NgixiError] = GuestError) -> Iterator[None]:
    """Turns wasmer traps and panics (which are `BaseException`s) into a clear `NgixiError`."""
    try:
        yield
    except _PASS_THROUGH:
        raise
    except BaseException as failure:  # pyo3 panics derive from BaseException
        raise _engine_failure(what, failure, error) from None


def _engine_failure(what: str, failure: BaseException, error: type[NgixiError]) -> NgixiError:
    return error(f"{what}: {_first_line(failure) or type(failure).__name__}")


def _first_line(failure: BaseException) -> str:
    """A failure's first line, without "RuntimeError: ". Wasmer appends a wasm backtrace ("at <unnamed>
    (<module>[3]:0x238)") of every frame, megabytes after a deep recursion, which is not split into lines."""
    text = str(failure).lstrip()
    end = text.find("\n")
    return (text if end < 0 else text[:end]).removeprefix("RuntimeError: ").strip()


# A frame of Wasmer's wasm backtrace: "at <name> (<module>[<function index>]:0x<module offset>)"; the name is
# "<unnamed>" for a function the module's name section does not name. Patterns a trap or a refusal needs are
# compiled by `re` when first used.
_FRAME = r"at (.*) \(.*\[(\d+)\]:0x([0-9a-fA-F]+)\)$"
_UNNAMED = "<unnamed>"
_FRAMES_KEPT = 1024  # the innermost; a stack exhausted by recursion has hundreds of thousands


def _trap_error(message: str, failure: BaseException) -> GuestError:
    """The GuestError of a trap, with the (function index, offset) and (function name, offset) of its innermost
    frames."""
    frames_found = re.finditer(_FRAME, str(failure), re.MULTILINE)
    found = [match.groups() for match in itertools.islice(frames_found, _FRAMES_KEPT)]
    frames = tuple((int(index), int(offset, 16)) for _, index, offset in found)
    named = tuple(("" if name == _UNNAMED else name, int(offset, 16)) for name, _, offset in found)
    return GuestError(message, frames=frames, named_frames=named)


def _compiler_store(triple: str | None = None, cpu_features: Sequence[str] = ()) -> wasmer.Store:
    from wasmer_compiler_cranelift import Compiler

    if triple is None:
        return wasmer.Store(wasmer.engine.Universal(Compiler))
    features = wasmer.target.CpuFeatures()
    for name in cpu_features:
        features.add(name)
    target = wasmer.target.Target(wasmer.target.Triple(triple), features)
    return wasmer.Store(wasmer.engine.Universal(Compiler, target))


def precompile(wasm: bytes, *, triple: str, cpu_features: Sequence[str], what: str) -> bytes:
    """Cross-compiles a module for a target and returns the serialized artifact."""
    with engine_errors(what, NgixiError), _stderr_without_panic_reports():
        data: bytes = wasmer.Module(_compiler_store(triple, cpu_features), wasm).serialize()
        return data


# Rust's panic hook's report of a caught panic: its first line, then the note on backtraces or the backtrace (compiled
# by `re` when a compile first holds stderr).
_STDERR_HOLDER = threading.Lock()
_PANIC_REPORT = rb"thread '[^'\n]*' panicked at .*\n(?:(?:note: .*|stack backtrace:|\s+.*)\n)*"


@contextmanager
def _stderr_without_panic_reports() -> Iterator[None]:
    """Holds what is written to descriptor 2 meanwhile and writes it there afterwards, less Rust's reports of caught
    panics ("thread '<unnamed>' panicked at 'Cannot emit inst ...'", for a SIMD instruction beyond the target's CPU
    baseline), whose message the panic's one-line error gives anyway; anything else written there still shows. One
    compile at a time holds it (doit's threads): another's restore would leave descriptor 2 on a file nobody reads."""
    with _STDERR_HOLDER, _stderr_held():
        yield


@contextmanager
def _stderr_held() -> Iterator[None]:
    import tempfile  # with random: only a compile needs it, not a load of a verified artifact

    sys.stderr.flush()
    kept = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(kept, 2)
            os.close(kept)
            held.seek(0)
            rest = re.sub(_PANIC_REPORT, b"", held.read())
            if rest:
                os.write(2, rest)


class WasmerMemory:
    """Bounds-checked access to an instance's linear memory."""

    def __init__(self, memory: Any, guest: str) -> None:
        self._memory = memory
        self._guest = guest
        self.page_count: Callable[[], int] = partial(getattr, memory, "size")

    def _view(self, pointer: int, length: int) -> memoryview:
        view = memoryview(self._memory.buffer)
        if pointer + length > len(view) or min(pointer, length) < 0:  # host functions take u32s: never negative
            raise GuestError(f"{self._guest}: pointer {pointer}+{length} is outside the guest's memory")
        return view[pointer : pointer + length]

    def read(self, pointer: int, length: int) -> bytes:
        if length == 0:  # no bytes named: an empty slice's pointer may dangle (Zig's is 0xffffffff)
            return b""
        return bytes(self._view(pointer, length))

    def write(self, pointer: int, data: bytes) -> None:
        if data:
            self._view(pointer, len(data))[:] = data

    @property
    def size_bytes(self) -> int:
        size: int = self._memory.data_size
        return size


class WasmerInstance:
    thread_bound = True  # wasmer-python's objects are "unsendable": another thread's use panics
    reserve_return_time = staticmethod(no_engine_deadline)  # Wasmer cannot stop a call itself

    def __init__(self, instance: Any, guest: str) -> None:
        self._instance = instance
        self._functions: dict[str, Any] = {}  # each lookup in `exports` builds new wrappers
        self.guest = guest
        self.memory = WasmerMemory(instance.exports.memory, guest)

    def text_parameters(self, export: str) -> frozenset[int]:
        return frozenset()  # a core function's parameters are numbers

    def call(self, export: str, args: Sequence[int | float]) -> tuple[int | float, ...]:
        function = self._functions.get(export)
        if function is None:
            function = self._functions[export] = getattr(self._instance.exports, export)
        try:  # not `engine_errors`: a context manager costs as much as the call itself
            result = function(*args)
        except _PASS_THROUGH:
            raise
        except BaseException as failure:  # pyo3 panics derive from BaseException
            error = _engine_failure(f"{self.guest}: {export} trapped", failure, GuestError)
            raise _trap_error(str(error), failure) from None
        return () if result is None else as_results(result)


class WasmerModule(NamedTuple):
    guest: str
    store: wasmer.Store
    module: wasmer.Module
    info: ModuleInfo


def prepare(
    *,
    guest: str,
    wasm: bytes | None = None,
    artifact: bytes | None = None,
    limits: RunLimits,
    target: str | None = None,
) -> WasmerModule:
    """Deserializes a verified artifact (headless) or compiles the .wasm.

    The caller must have verified the artifact's digest, signature and target first: Wasmer
    does not check them, and a foreign or damaged artifact crashes the process. Wasmer cannot
    interrupt a call or cap memory growth itself: `limits` is enforced by the tenant child process.
    Its artifacts are only ever chosen for this host, so `target` needs no engine of its own.
    """
    try:
        with engine_errors(f"{guest}: cannot load the guest", NgixiError):
            if artifact is not None:
                store = wasmer.Store(wasmer.engine.Universal())
                module = wasmer.Module.deserialize(store, artifact)
            else:
                store = _compiler_store()
                module = wasmer.Module(store, wasm)
            return WasmerModule(guest, store, module, _module_info(module))
    except NgixiError as error:
        lacking = None if artifact is not None or wasm is None else what_wasmer_lacks(error, wasm)
        if lacking is None:
            raise
        raise NgixiError(f"{error}; {lacking}: run it with --engine wasmtime") from None


_PROPOSED_SIMD = r"proposed simd operator (\w+)"


def what_wasmer_lacks(error: NgixiError, wasm: bytes) -> str | None:
    """What Wasmer 2.1 lacks, in words, of a module it refused as invalid or could not translate (a SIMD operator
    standardised after it: its "proposed simd operator") that Wasmtime accepts; None for another failure."""
    text = str(error)
    if "Validation error" not in text and "Unsupported feature" not in text:
        return None
    try:
        from ngixi_runtime.engines import wasmtime as other
    except ImportError:
        return None
    if not other.is_valid(wasm):
        return None
    operator = re.search(_PROPOSED_SIMD, text)
    used = [f"the SIMD operator {operator.group(1)}"] if operator else list(other.proposals_used(wasm))
    return f"the module uses {', '.join(used) or 'a WebAssembly feature'}, which Wasmtime runs and Wasmer 2.1 does not"


def missing_cpu_features(error: NgixiError) -> tuple[str, ...]:
    """The CPU features, in Wasmer's names, that Cranelift said it needs for an instruction of the module and
    the target's baseline lacks ("failed to match ISA requirements: [SSE41]"), or () for another failure."""
    found = re.search(_ISA_REQUIREMENTS, str(error))
    if found is None:
        return ()
    names = (re.sub(_CRANELIFT_FEATURE, r"sse4.\1", name.strip().lower()) for name in found.group(1).split(","))
    return tuple(name for name in names if name)


_ISA_REQUIREMENTS = r"failed to match ISA requirements: \[([A-Za-z0-9_, ]*)\]"
_CRANELIFT_FEATURE = r"^sse4(\d)$"


def serialize(prepared: WasmerModule) -> bytes:
    """The prepared module's machine code, for `prepare(artifact=...)` on this host later."""
    with engine_errors(f"{prepared.guest}: cannot serialize the compiled guest", NgixiError):
        data: bytes = prepared.module.serialize()
        return data


def instantiate(
    prepared: WasmerModule,
    *,
    imports: Sequence[tuple[HostImport, HostFunction]],
    on_memory: Callable[[EngineMemory], None],
) -> WasmerInstance:
    with engine_errors(f"{prepared.guest}: cannot load the guest", NgixiError):
        import_object = wasmer.ImportObject()
        for namespace, functions in _group(prepared.store, imports).items():
            import_object.register(namespace, functions)
    try:
        instance = WasmerInstance(wasmer.Instance(prepared.module, import_object), prepared.guest)
    except _PASS_THROUGH:
        raise
    except BaseException as failure:  # a start function's trap has wasm frames; a link error has none
        if re.search(_FRAME, str(failure), re.MULTILINE):
            trapped = f"{prepared.guest}: {START_TRAPPED}: {_first_line(failure)}"
            raise _trap_error(trapped, failure) from None
        raise _engine_failure(f"{prepared.guest}: cannot load the guest", failure, NgixiError) from None
    on_memory(instance.memory)
    return instance


def _module_info(module: wasmer.Module) -> ModuleInfo:
    """What the code Wasmer is about to run imports and exports, and its memories' limits."""
    wasm_imports, wasm_exports = module.imports, module.exports  # each a new list of new objects
    memories = [i.type for i in wasm_imports] + [e.type for e in wasm_exports]
    return ModuleInfo(
        tuple(Import(i.module, i.name, *_described(i.type)) for i in wasm_imports),
        tuple(Export(e.name, *_described(e.type)) for e in wasm_exports),
        tuple(MemoryLimits(m.minimum, m.maximum) for m in memories if isinstance(m, wasmer.MemoryType)),
    )


def _described(extern: Any) -> tuple[ExternKind, Signature | None]:
    if isinstance(extern, wasmer.FunctionType):
        return "func", Signature(_type_names(extern.params), _type_names(extern.results))
    if isinstance(extern, wasmer.MemoryType):
        return "memory", None
    if isinstance(extern, wasmer.TableType):
        return "table", None
    return "global", None


def _type_names(types: Sequence[Any]) -> tuple[str, ...]:
    return tuple(_TYPE_NAMES[t] for t in types)


def _group(store: wasmer.Store, imports: Sequence[tuple[HostImport, HostFunction]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for host_import, function in imports:
        signature = wasmer.FunctionType(
            [_WASM_TYPES[t] for t in host_import.signature.params],
            [_WASM_TYPES[t] for t in host_import.signature.results],
        )
        grouped.setdefault(host_import.module, {})[host_import.name] = wasmer.Function(store, function, signature)
    return grouped
