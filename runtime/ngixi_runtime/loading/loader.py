"""The slim loader: verified bundle → artifact for this host (or compile) → granted imports → calls.

It imports the standard library, the engine, the signature verifier, and the modules of only the
capabilities a guest is granted. Component guests bring Wasmtime's component model.
"""

from __future__ import annotations

import gc
import os
import time
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ngixi_runtime.bundles.reader import VerifiedBundle
from ngixi_runtime.capabilities.component import ComponentInfo, imports_wasi, wasi_setup
from ngixi_runtime.capabilities.context import (
    CallData,
    GuestExit,
    GuestOutput,
    HostContext,
    LogSink,
    Sandbox,
    Stdin,
    StdioSink,
)
from ngixi_runtime.capabilities.linking import caller_stdin, component_functions, core_imports, open_context
from ngixi_runtime.engines.base import (
    PORTABLE_TRIPLE,
    Engine,
    EngineId,
    EngineInstance,
    EngineMemory,
    RunLimits,
    caps_growth,
    chosen_engine,
    engine_named,
    meters_fuel,
)
from ngixi_runtime.errors import (
    ArtifactRefused,
    GuestError,
    InvalidInput,
    NgixiError,
    PolicyError,
    VerificationError,
    counted,
)
from ngixi_runtime.guest.check import check_component, check_module
from ngixi_runtime.guest.data import DataKind, DataValue, check_input, encode, kind_word
from ngixi_runtime.guest.limits import compile_cost_problem, limit_problems
from ngixi_runtime.guest.manifest import ExportDecl, Manifest, Number
from ngixi_runtime.kept import Kept
from ngixi_runtime.loading.aot_cache_dir import CacheUnavailable
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.bundle_format import WASM_NAME, ArtifactMeta, BundleIndex, Member, artifact_path
from ngixi_runtime.spec.schema import reported
from ngixi_runtime.spec.targets import host_cpu_features, host_triple
from ngixi_runtime.spec.wasm import ModuleInfo, Signature, argument_problem, read_module_info, value_problem
from ngixi_runtime.trust.signatures import TrustStore

if TYPE_CHECKING:
    from ngixi_runtime.engines import wasmtime_component
    from ngixi_runtime.loading.aot_cache import AotCache, CacheKey

COMPILED = "compiled from guest.wasm"
_UNCACHED = "host AOT cache unavailable"
# How a Zig guest's panic with its allocator's error ends (`@panic(@errorName(err))`, through `ngixi.panic`).
_ZIG_OUT_OF_MEMORY = " aborted: OutOfMemory"
Prepared = TypeVar("Prepared")
# The instance, its host side, which code it runs, and (a core guest's) how to make the instance afresh
Opened = tuple[EngineInstance, HostContext, str, Callable[[], EngineInstance] | None]


class HostProfile(NamedTuple):
    triple: str
    cpu_features: frozenset[str]
    engine: EngineId


def host_profile(engine: Engine) -> HostProfile:
    return HostProfile(host_triple(), host_cpu_features(), engine.current_engine())


def _engine_misfit(meta: ArtifactMeta, ours: EngineId) -> str | None:
    if meta.engine != ours.engine:
        return f"built by {meta.engine}, this host runs {ours.engine}"
    if (meta.engine_version, meta.binding_version) != (ours.engine_version, ours.binding_version):
        return (
            f"built by {meta.engine} {meta.engine_version} (Python binding {meta.binding_version}), "
            f"this host has {ours.engine_version} ({ours.binding_version})"
        )
    return None


def artifact_misfit(meta: ArtifactMeta, host: HostProfile) -> str | None:
    """Why an artifact cannot run on this host's engine, or None when it fits."""
    ours = host.engine
    misfit = _engine_misfit(meta, ours)
    if misfit is not None or meta.triple == PORTABLE_TRIPLE:
        return misfit
    if meta.compiler != ours.compiler:
        return f"built by {meta.engine}/{meta.compiler}, this host runs {ours.engine}/{ours.compiler}"
    if meta.triple != host.triple:
        return f"built for {meta.triple}, this host is {host.triple}"
    missing = sorted(set(meta.cpu_features) - host.cpu_features)
    if missing:
        return f"needs CPU features this host lacks: {', '.join(missing)}"
    return None


def likely_artifacts(engine: str | None = None, trust: TrustStore | None = None) -> tuple[str, ...]:
    """The artifact `open_guest` would pick on this host, for `read_bundle(..., prefetch=...)`.

    None when `trust` trusts no key with native code: no artifact of its bundles will run.
    """
    if trust is not None and not any(key.native_code for key in trust.keys):
        return ()
    try:
        ours = engine_named(engine).current_engine()
    except NgixiError:
        return ()  # open_guest will say what is wrong with the engine
    return (artifact_path(host_triple(), ours.engine),)


def fitting_artifacts(index: BundleIndex, host: HostProfile) -> tuple[list[Member], list[str]]:
    """The artifacts that fit this host, best first, and why each other one does not."""
    fitting: list[Member] = []
    reasons: list[str] = []
    # Native code first: the portable tier is an interpreter.
    for member in sorted(
        index.artifacts, key=lambda m: m.artifact is not None and m.artifact.triple == PORTABLE_TRIPLE
    ):
        assert member.artifact is not None
        misfit = artifact_misfit(member.artifact, host)
        if misfit is None:
            fitting.append(member)
        else:
            reasons.append(f"{member.path}: {misfit}")
    return fitting, reasons


def check_call(manifest: Manifest, export: str, args: Sequence[Any], data: bytes | None = None) -> None:
    """A call must name a declared export (or `_start` of a command guest) with its arity, and give input
    (`data`, within limits.input_bytes and valid for its kind) exactly when the export declares one.

    A component's exports take their types from its WIT: the engine checks the arguments against them.
    """
    guest = manifest.guest.name
    if isinstance(args, str | bytes | bytearray) or not isinstance(args, Sequence):
        kind = type(args).__name__
        raise InvalidInput(f"{guest}: {export}'s arguments are a tuple or list, like (value,), not {kind}")
    if export == "_start":
        if manifest.guest.type.kind != "command":
            raise InvalidInput(f"{guest} is a library guest; name an export to call")
        if data is not None:
            raise InvalidInput(f"{guest}: a command guest takes no call input; it reads its arguments")
        return
    declared = declared_export(manifest, export)
    if not manifest.guest.type.is_component:
        if len(args) != len(declared.params):
            raise InvalidInput(f"{guest}: {export} takes {counted(len(declared.params), 'argument')}, got {len(args)}")
        for position, (value, kind) in enumerate(zip(args, declared.params, strict=True), start=1):
            if (problem := argument_problem(value, kind)) is not None:
                raise InvalidInput(f"{guest}: {export} argument {position}: {problem}")
    _check_data(manifest, declared, data)


def declared_export(manifest: Manifest, export: str) -> ExportDecl:
    declared = manifest.export(export)
    if declared is None:
        names = ", ".join(e.name for e in manifest.exports) or "none"
        raise InvalidInput(f"{manifest.guest.name}: no export {export!r} in the manifest; exports: {names}")
    return declared


def _check_data(manifest: Manifest, declared: ExportDecl, data: bytes | None) -> None:
    guest, export = manifest.guest.name, declared.name
    if declared.input is None:
        if data is not None:
            raise InvalidInput(f"{guest}: {export} takes no input ({why_no_input(manifest)})")
        return
    if data is None:
        null = ", where JSON's null is b'null'" if declared.input == "json" else ""  # None is no input there
        kind = kind_word(declared.input)
        raise InvalidInput(f"{guest}: {export} takes {kind} input: use --input (input=... in the API{null})")
    check_input(guest, export, declared.input, data, manifest.limits.input_bytes)


def why_no_input(manifest: Manifest) -> str:
    """Why an export declaring no input takes none, and what it takes instead."""
    if manifest.guest.type.is_component:  # no call data ABI: its exports take WIT values
        return "a component's export takes its WIT arguments: ngixi run BUNDLE EXPORT ARG..., each as JSON"
    return "its manifest declares none"


def encoded_input(manifest: Manifest, export: str, value: DataValue | None) -> bytes | None:
    """A caller's input for `export` as the bytes the guest reads (guest/data.py's `encode`); None for none."""
    if value is None:
        return None
    declared = manifest.export(export)
    if declared is None or declared.input is None:
        return b""  # check_call refuses it, naming the export
    return encode(declared.input, value, what=f"{manifest.guest.name}: {export}")


class ExportTable(NamedTuple):
    """What a manifest's declared exports take and give, looked up on each call of a loaded guest or tenant."""

    output_kinds: dict[str, DataKind | None]  # each declared export's output; None for one that declares none
    # The exports whose call with no arguments and no input passes `check_call` without asking (never `_start`, a
    # command guest's entry, which `check_call` tells apart even where the manifest declares it).
    unchecked: frozenset[str]
    outputless: frozenset[str]  # the declared exports whose calls may write no output through the call data ABI


def export_table(manifest: Manifest) -> ExportTable:
    """The tables of `manifest`'s declared exports, made once per load."""
    exports = manifest.exports
    return ExportTable(
        {declared.name: declared.output for declared in exports},
        frozenset(e.name for e in exports if not e.params and e.input is None) - {"_start"},
        frozenset(e.name for e in exports if e.output is None) - {"_start"},
    )


def _no_pages() -> int:
    """The pages of a guest whose instance is being made afresh: none yet."""
    return 0


class LibraryExit(GuestError):
    """A library's export that called proc_exit: a trap whose cause is known, however much memory the guest holds."""


class Guest:
    """A loaded guest: call its exports, or run it as a command."""

    def __init__(
        self,
        manifest: Manifest,
        instance: EngineInstance,
        context: HostContext,
        origin: str,
        *,
        compiled: bool,
        wasm: Callable[[], bytes] | None = None,
        renew: Callable[[], EngineInstance] | None = None,
    ):
        self.manifest = manifest
        self.origin = origin
        self.compiled = compiled
        self._instance: EngineInstance | None = instance  # None after a renewal that failed
        self._renew = renew
        self._spent = False  # a call failed with the guest's code on the stack: the next one runs in a fresh instance
        self._context = context
        self.page_count = instance.memory.page_count  # pages now
        self.initial_pages = self.page_count()  # a memory that starts at its limit never runs out by growing
        self.call_data = context.data = CallData(manifest.limits.input_bytes, manifest.limits.output_bytes)
        self.output: GuestOutput = context.output  # taken from, never replaced
        self._wasm = wasm  # the verified .wasm, read only to say where a trap happened
        self._timeout_seconds = manifest.limits.timeout_ms / 1000
        self._output_kinds, self._unchecked, self.outputless = export_table(manifest)

    @property
    def thread_bound(self) -> bool:
        """Whether only the thread that loaded it may call it."""
        assert self._instance is not None  # asked when its tenant opens, before any call
        return self._instance.thread_bound

    def text_parameters(self, export: str) -> frozenset[int]:
        """Which of a component export's parameters (from 1) its WIT types as strings."""
        assert self._instance is not None  # a component's: never renewed here
        return self._instance.text_parameters(export)

    def close(self) -> None:
        """Closes the guest's open files and database; the guest must not be called after this."""
        self._context.close()

    def __enter__(self) -> Guest:
        return self

    def output_kind(self, export: str) -> DataKind | None:
        """What a declared export's output is; None for one that declares none."""
        return self._output_kinds.get(export)

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, export: str, args: Sequence[Any], data: bytes | None = None) -> tuple[Any, ...]:
        """Calls an export with its input `data` (for one that declares input); its output is `take_output()`.

        `args`: numbers for a core guest's exports; for a component's, Python values of its WIT types (wit_values).
        A trap says the guest's abort message, if it aborted, and where in its own code it was.
        """
        if args or data is not None or export not in self._unchecked:
            check_call(self.manifest, export, args, data)
        self.call_data.begin(export, data or b"")
        # Not a context manager, nor a helper: on a call that does nothing, each costs a good part of the call.
        context = self._context
        context.call_ends_at = time.monotonic() + self._timeout_seconds  # so that host functions' waits end in time
        context.aborted = None
        context.out_of_memory = False
        instance = self._renewed() if self._spent or self._instance is None else self._instance
        try:
            values = instance.call(export, args)
        except GuestError as error:
            self._spent = self._renew is not None
            del instance  # nor the engine's frames: a caller keeping the error keeps no instance (renewed, its store)
            error.__traceback__ = error.__context__ = None
            raise self._explained(error, export) from None
        except GuestExit as exit_:
            if export == "_start":
                raise
            self._spent = self._renew is not None
            del instance
            exit_.__traceback__ = exit_.__context__ = None
            raise self._exited(export, exit_.code) from None
        if context.aborted is not None:  # an abort the guest returned from: still the call's end
            self._spent = self._renew is not None
            raise GuestError(context.aborted)
        return values

    def _renewed(self) -> EngineInstance:
        """Makes a core guest's instance afresh after a failed call, as Wasmtime does a component's. A trap, a
        timeout, a limit or an abort leaves the guest's own runtime as it was mid-call: the stack pointer of its
        shadow stack lowered by every frame it left (LLVM's `__stack_pointer`, AssemblyScript's), its allocator or
        collector halfway through a change; an AssemblyScript guest that refused a hundred bad inputs by throwing then
        aborted on every call. An isolated child makes its instance afresh so too. The old one is let go first
        (its store and memory: an isolated child's address-space cap counts them); one that cannot be made fails this
        call, and the next tries again."""
        assert self._renew is not None
        old = None if self._instance is None else weakref.ref(self._instance)
        self._instance = None
        self.page_count = _no_pages  # its memory's, which holds the old store
        if old is not None and old() is not None:  # held in a reference cycle (a trap's traceback)
            gc.collect()
        try:
            instance = self._renew()
        except GuestError:
            raise
        except NgixiError as error:  # e.g. no memory left for a new one: this call's failure, not the tenant's
            raise GuestError(f"{error} (making the guest afresh after a failed call)", outcome="memory") from None
        self._instance = instance
        self.page_count = instance.memory.page_count
        self._spent = False
        return instance

    def take_output(self) -> bytes:
        """What the last call wrote through the call data ABI."""
        return self.call_data.take_output()

    def run_command(self) -> int:
        """Runs a command guest's `_start`; returns its exit code."""
        try:
            self.call("_start", ())
        except GuestExit as exit_:
            return exit_.code
        return 0

    def _exited(self, export: str, code: int) -> LibraryExit:
        """An export of a library that called proc_exit (C's `exit()`): the call fails, with nothing to return."""
        return LibraryExit(
            f"{self.manifest.guest.name}: {export} called proc_exit({code}), which ends a command guest;"
            " an export returns instead"
        )

    def _explained(self, error: GuestError, export: str) -> GuestError:
        aborted = self._context.aborted if error.outcome == "trap" else None
        message = aborted or str(error)
        if not (error.frames or error.named_frames) or self._wasm is None:
            return GuestError(message, outcome=error.outcome, frames=error.frames)
        from ngixi_runtime.spec.sourcemap import ABORT_FUNCTION, is_panic, is_python_argument_without_memory

        innermost = function_of(error.named_frames[0][0]) if error.named_frames else None
        outcome = error.outcome
        if not aborted and outcome == "trap" and innermost == ABORT_FUNCTION:  # C's abort(), on purpose
            message = f"{self.manifest.guest.name}: {export} aborted"
        elif not aborted and outcome == "trap" and is_python_argument_without_memory(n for n, _ in error.named_frames):
            message, outcome = self._no_memory_for_arguments(export), "memory"
        elif outcome == "trap" and self._context.out_of_memory:  # a component's runtime said so
            message, outcome = self._out_of_memory(export), "memory"
        elif not aborted and outcome == "trap" and is_panic(name for name, _ in error.named_frames):
            message = f"{self.manifest.guest.name}: {export} panicked"
        elif outcome == "trap" and _allocation_failed(innermost, message, aborted) and not self._at_limit():
            message, outcome = self._out_of_memory(export), "memory"  # at its limit, `calls` says that instead
        try:
            wasm = self._wasm()
        except NgixiError:  # the bundle is closed (an in-process load from an artifact): the engine's names
            wasm = b""
        where = trap_place(self.manifest, error, wasm)
        return GuestError(f"{message} {where}" if where else message, outcome=outcome, frames=error.frames)

    def _at_limit(self) -> bool:
        return self.page_count() >= self.manifest.limits.memory_pages

    def _no_memory_for_arguments(self, export: str) -> str:
        """A component's arguments its runtime found no memory for: the host cannot read a component's pages."""
        limit = self.manifest.limits.memory_pages
        guest = self.manifest.guest.name
        return f"{guest}: {export} ran out of memory for its arguments (limits.memory_pages = {limit})"

    def _out_of_memory(self, export: str) -> str:
        """An allocation the memory could not grow for: its limit may be pages away yet (a large one failed). A
        component's pages are its own: the host cannot say how many are in use."""
        limit = self.manifest.limits.memory_pages
        in_use = "" if self.manifest.guest.type.is_component else f"; {counted(self.page_count(), 'page')} in use"
        return (
            f"{self.manifest.guest.name}: {export} ran out of memory (an allocation needed more than"
            f" limits.memory_pages = {limit} allows{in_use})"
        )


def _allocation_failed(innermost: str | None, message: str, aborted: str | None) -> bool:
    """Whether a trap is an allocator finding no memory: AssemblyScript's, or a Zig guest's panic with the allocator's
    error, as the template's `inputAlloc(...) catch |err| @panic(@errorName(err))` says it."""
    from ngixi_runtime.spec.sourcemap import is_allocator_failure

    if aborted is not None:
        return aborted.endswith(_ZIG_OUT_OF_MEMORY)
    return is_allocator_failure(innermost, message)


def trap_place(manifest: Manifest, error: GuestError, wasm: bytes) -> str | None:
    """Where in the guest's own code `error` trapped (`spec/sourcemap.py`), from its `wasm` (b"": not at hand, the
    engine's names of the frames then), if that can be said."""
    source = f"{manifest.guest.name}: guest.wasm"
    try:
        return _trap_place(manifest, error, wasm, source)
    except InvalidInput:  # a module the engine ran but this reader refuses (more sections than it reads)
        return None


def _trap_place(manifest: Manifest, error: GuestError, wasm: bytes, source: str) -> str | None:
    from ngixi_runtime.spec.sourcemap import component_trap_location, is_own, named_location, trap_location

    if manifest.guest.type.is_component:  # its frames named `module!function` (`wasmtime.named_frames`)
        functions = tuple((function_of(name), offset) for name, offset in error.named_frames)
        mapped = component_trap_location(wasm, functions, source=source) if wasm else None
        own = next((name for name, _ in error.named_frames if is_own(name)), None)
        return mapped or (None if own is None else named_location([function_of(own)]))
    if wasm:
        return trap_location(wasm, error.frames, source=source)
    return named_location(name for name, _ in error.named_frames)


def function_of(frame_name: str) -> str:
    """A frame's function name without the module a component's backtrace names it by (`module!function`)."""
    return frame_name.rpartition("!")[2]


def verified_manifest(bundle: VerifiedBundle) -> Manifest:
    """The guest's manifest, from its copy in the signed index (a full read holds manifest.toml to it)."""
    return bundle.manifest


def declared_module(bundle: VerifiedBundle) -> ModuleInfo:
    """What the verified .wasm itself declares: every memory and table, exported or not.

    Kept per digest the signed index gives the .wasm, as what a module declares depends on its bytes alone: a
    host that loads the guest again from an artifact neither reads nor parses its .wasm again.
    """
    member = bundle.index.member("wasm")
    identity = (member.blake3, member.size)
    known = _DECLARED_MODULES.get(identity)
    if known is None:
        info = read_module_info(bundle.data(member), source=f"{bundle.source}!guest.wasm")
        known = _DECLARED_MODULES.keep(identity, info)
    return known


_DECLARED_MODULES: Kept[tuple[str, int], ModuleInfo] = Kept(256)


def _artifact_code(bundle: VerifiedBundle, member: Member) -> dict[str, Any]:
    assert member.artifact is not None
    target = member.artifact.triple if member.artifact.triple == PORTABLE_TRIPLE else None
    return {"artifact": bundle.data(member), "target": target}


class CodeMaker(Generic[Prepared]):
    """How one engine makes a guest's code: `prepare` takes an `artifact` and its `target`, or the `wasm`.

    A plain class: a NamedTuple cannot be generic on Python 3.10.
    """

    __slots__ = ("compiling", "kind", "prepare", "serialize", "settings")

    def __init__(
        self,
        prepare: Callable[..., Prepared],
        serialize: Callable[[Prepared], bytes],
        kind: str,  # "module" or "component"
        settings: str,  # the engine settings its code is compiled for, part of its host AOT cache key
        compiling: Compiling | None = None,
    ) -> None:
        self.prepare = prepare
        self.serialize = serialize
        self.kind = kind
        self.settings = settings
        self.compiling = compiling or _unwatched


# What holds a compile of a guest's .wasm, given its size in bytes: `ngixi run --in-process`'s watchdog
# (`tenants.py`), which ends the process when the compile outlives `compile_seconds`.
Compiling = Callable[[int], AbstractContextManager[None]]


def _unwatched(_: int) -> AbstractContextManager[None]:
    return nullcontext()


# A compile's allowance: a base, then each byte at a slow compiler's pace on a loaded machine (what real modules take:
# docs/performance.md, thirty-eighth pass); a function crafted for the compilers (values live across many blocks)
# takes them time in the square of its size, which nothing but this allowance bounds.
_COMPILE_BASE_SECONDS = 30.0
_COMPILED_BYTES_PER_SECOND = 100_000


def compile_seconds(wasm_bytes: int) -> float:
    """How long compiling a .wasm of `wasm_bytes` may take: an isolated tenant's child is stopped after as long (with
    its verification), and so is `ngixi run --in-process`."""
    return _COMPILE_BASE_SECONDS + wasm_bytes / _COMPILED_BYTES_PER_SECOND


def prepare_best_fitting(
    bundle: VerifiedBundle,
    engine: Engine,
    maker: CodeMaker[Prepared],
    allow_compile: bool,
    problems_of: Callable[[Prepared], list[str]],
) -> tuple[Prepared, str]:
    """Prepares the best fitting artifact the engine accepts, else the .wasm compiled here; and says which.

    A bundle's artifacts are machine code: they run only if its signer's trust entry has native_code.
    Otherwise, or when none fits, the verified .wasm is compiled on this host, through the host AOT cache.
    `prepare` raises `ArtifactRefused` for an artifact the engine refuses, and the next one is tried.
    The prepared code is refused with every line `problems_of` finds in it (its imports and exports
    against the manifest).
    """
    prepared, origin = _first_accepted(bundle, engine, maker, allow_compile)
    problems = problems_of(prepared)
    if problems:
        raise VerificationError(reported([printable(line) for line in problems]))
    return prepared, origin


def _first_accepted(
    bundle: VerifiedBundle, engine: Engine, maker: CodeMaker[Prepared], allow_compile: bool
) -> tuple[Prepared, str]:
    fitting, reasons = fitting_artifacts(bundle.index, host_profile(engine)) if bundle.signer.native_code else ([], [])
    for member in fitting:
        try:
            return maker.prepare(**_artifact_code(bundle, member)), f"artifact {member.path}"
        except ArtifactRefused as refusal:  # only the engine itself can tell, e.g. another Wasmtime build
            reasons.append(f"{member.path}: {refusal}")
    return _host_compiled(bundle, engine, maker, allow_compile, reasons)


def _why_compiled(bundle: VerifiedBundle, reasons: list[str]) -> str:
    signer = bundle.signer
    if not signer.native_code:
        return f"key {signer.key_id} is not trusted with native code, so the bundle's artifacts are not run"
    return f"no artifact fits: {'; '.join(reasons) or 'the bundle has no artifacts'}"


def code_identity(manifest: Manifest) -> tuple[str, str]:
    """The kind of the guest's code and the engine settings it is compiled for: part of its host AOT cache key."""
    if manifest.guest.type.is_component:
        return "component", "component model"
    return "module", f"fuel metering {manifest.limits.fuel is not None}"


def _cache_key(bundle: VerifiedBundle, engine: Engine, kind: str, settings: str) -> CacheKey:
    from ngixi_runtime.loading.aot_cache import CacheKey  # here and below: only for code compiled on this host

    wasm_blake3 = bundle.index.member("wasm").blake3
    signer = bundle.signer.public_key.to_base64().decode("ascii")
    features = tuple(sorted(host_cpu_features()))
    return CacheKey(wasm_blake3, signer, kind, engine.current_engine(), settings, host_triple(), features)


class _Lookup(NamedTuple):
    cache: AotCache | None  # None: unavailable, for `problem`
    code: bytes | None
    problem: str = ""  # why the cache is unavailable, or why its entry is refused


def _looked_up(key: CacheKey) -> _Lookup:
    from ngixi_runtime.loading.aot_cache import AotCache, EntryRefused

    try:
        cache = AotCache.opened()
        return _Lookup(cache, cache.load(key))
    except CacheUnavailable as problem:
        return _Lookup(None, None, f"{_UNCACHED}: {problem}")
    except EntryRefused as refusal:
        return _Lookup(cache, None, f"its host AOT cache entry was refused ({refusal})")


def code_plan(bundle: VerifiedBundle, engine: Engine) -> str:
    """Which code a load on `engine` would run, and why (for `ngixi inspect`)."""
    signer = bundle.signer
    fitting, reasons = fitting_artifacts(bundle.index, host_profile(engine)) if signer.native_code else ([], [])
    if fitting:
        return f"artifact {fitting[0].path} (key {signer.key_id} is trusted with native code, so its artifacts run)"
    why = _why_compiled(bundle, reasons)
    too_costly = compile_cost_problem(bundle.data(bundle.index.member("wasm")), source=f"{bundle.source}!{WASM_NAME}")
    if too_costly is not None:  # as a load refuses it, before any compile or cache lookup
        return f"none: a load refuses to compile guest.wasm ({why}): {too_costly}"
    key = _cache_key(bundle, engine, *code_identity(verified_manifest(bundle)))
    found = _looked_up(key)
    if found.cache is None or found.problem:
        return f"{COMPILED} ({why}); {found.problem}"
    if found.code is None:
        return f"{COMPILED} ({why}); not in the host AOT cache {found.cache.directory} yet: kept there when loaded"
    return f"host AOT cache {found.cache.entry_path(key)} ({why})"


def _host_compiled(
    bundle: VerifiedBundle, engine: Engine, maker: CodeMaker[Prepared], allow_compile: bool, reasons: list[str]
) -> tuple[Prepared, str]:
    """The .wasm compiled on this host: from the host AOT cache, else compiled now and kept there."""
    from ngixi_runtime.loading.aot_cache import EntryNotKept

    why = _why_compiled(bundle, reasons)
    key = _cache_key(bundle, engine, maker.kind, maker.settings)
    found = _looked_up(key)
    refused = found.problem and f"{found.problem} and replaced"
    if found.cache is not None and found.code is not None:
        try:
            prepared = maker.prepare(artifact=found.code, target=None)
            return prepared, f"host AOT cache {found.cache.entry_path(key)} ({why})"
        except ArtifactRefused as refusal:
            refused = f"its host AOT cache entry was refused ({refusal}) and replaced"
    prepared = _compiled(bundle, engine, maker, allow_compile, reasons)
    if found.cache is None:
        return prepared, f"{COMPILED} ({why}); {found.problem}"
    try:
        found.cache.store(key, maker.serialize(prepared))
    except CacheUnavailable as problem:
        return prepared, f"{COMPILED} ({why}); {_UNCACHED}: {problem}"
    except EntryNotKept as too_large:
        return prepared, f"{COMPILED} ({why}); not kept in the host AOT cache: {too_large}"
    kept = f"kept in the host AOT cache {found.cache.directory}"
    return prepared, f"{COMPILED} ({why}); {'; '.join(filter(None, (refused, kept)))}"


def _compiled(
    bundle: VerifiedBundle, engine: Engine, maker: CodeMaker[Prepared], allow_compile: bool, reasons: list[str]
) -> Prepared:
    if not (allow_compile and engine.compiler_available()):
        listing = "\n  ".join(map(printable, reasons)) or "(none)"
        cannot = (
            "compiling at load is turned off"
            if not allow_compile
            else "no compiler is installed (install wasmer-compiler-cranelift)"
        )
        if not bundle.signer.native_code:
            raise NgixiError(f"{bundle.source}: {_why_compiled(bundle, reasons)}, and {cannot}")
        raise NgixiError(f"{bundle.source}: no artifact fits this host and {cannot}; artifacts:\n  {listing}")
    wasm = bundle.data(bundle.index.member("wasm"))
    with maker.compiling(len(wasm)):  # what the count reads is held to the compile's allowance too
        too_costly = compile_cost_problem(wasm, source=f"{bundle.source}!{WASM_NAME}")
        if too_costly is not None:
            raise PolicyError(f"{bundle.manifest.guest.name}: {too_costly}")
        return maker.prepare(wasm=wasm)


def guest_engine(manifest: Manifest, engine: str | None, shipped: Collection[str] = ()) -> str:
    """The engine a guest runs on: `chosen_engine` of `engine` with what its manifest asks for (fuel metering,
    the component model); `shipped`, the engines its bundle has artifacts for."""
    return chosen_engine(
        engine,
        wants_fuel=manifest.limits.fuel is not None,
        component=manifest.guest.type.is_component,
        shipped=shipped,
    )


def check_fuel_metering(manifest: Manifest, engine: str, *, cpu_capped: bool) -> None:
    """A guest with limits.fuel runs only where it is enforced: an engine that meters fuel, or a CPU-capped child."""
    fuel = manifest.limits.fuel
    if fuel is None or meters_fuel(engine) or cpu_capped:
        return
    raise PolicyError(
        f"{manifest.guest.name}: limits.fuel = {fuel}, but {engine} cannot meter fuel: run it on wasmtime "
        f"(--engine wasmtime), or isolated, where only limits.timeout_ms then caps its CPU time"
    )


def check_memory_limit(manifest: Manifest, info: ModuleInfo, *, engine_caps_growth: bool = True) -> None:
    """The guest's memories and tables must be bounded before any of its code runs (guest/limits.py).

    On an engine that does not cap growth itself (`engine_caps_growth` false), `info` must be the module's own
    (every memory and table it defines, not only those it exports).
    """
    problems = limit_problems(manifest, info, engine_caps_growth=engine_caps_growth)
    if problems:
        raise PolicyError(f"{manifest.guest.name}: " + "; ".join(problems))


def guarding_own_state(
    sandbox: Sandbox,
    manifest: Manifest,
    trust_file: Path | None = None,
    rollback: Path | None = None,
    policy: Path | None = None,
) -> Sandbox:
    """`sandbox` with its `state_paths` set: ngixi's own state (`_own_state_paths`) for a guest granted directories
    of the host, looked up only then; none for any other."""
    state = _own_state_paths(trust_file, rollback, policy) if has_preopens(manifest) else ()
    return sandbox._replace(state_paths=state)


def has_preopens(manifest: Manifest) -> bool:
    """Whether the guest is granted directories of the host."""
    return bool(getattr(manifest.capabilities.get("fs"), "preopens", ()))  # no import of the fs module


def _own_state_paths(
    trust_file: Path | None = None, rollback: Path | None = None, policy: Path | None = None
) -> tuple[str, ...]:
    """Where ngixi keeps what decides what this host trusts and runs, which no guest's preopen may hold
    (`Sandbox.state_paths`): the trust file, rollback state and policy file in use (this user's default rollback
    state when none is given), this user's keys and dev-keys record, the host AOT cache, and the state directory of
    the project at the working directory (its dev trust file and key)."""
    from ngixi_runtime.loading.aot_cache_dir import default_cache_dir
    from ngixi_runtime.spec.project import find_project_root, project_state_dir
    from ngixi_runtime.trust.choice import state_override
    from ngixi_runtime.trust.project_trust import dev_keys_file
    from ngixi_runtime.trust.rollback import default_state_dir

    def project_state() -> Path | None:
        root = find_project_root(Path.cwd())
        return None if root is None else project_state_dir(root, state_override())

    found = [trust_file, rollback, policy]
    defaults: list[Callable[[], Path | None]] = [lambda: dev_keys_file().parent, default_cache_dir, project_state]
    for where in defaults if rollback is not None else [default_state_dir, *defaults]:
        with suppress(CacheUnavailable, InvalidInput, OSError, RuntimeError):  # none to be found: none to hold
            found.append(where())
    return tuple(dict.fromkeys(os.path.abspath(path) for path in found if path is not None))


def open_guest(
    bundle: VerifiedBundle,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: Stdin | None = None,
    on_log: LogSink | None = None,
    on_stdio: StdioSink | None = None,
    allow_compile: bool = True,
    sandbox: Sandbox | None = None,
    engine: str | None = None,
    cpu_capped: bool = False,
    on_instantiate: Callable[[], None] = lambda: None,
    compiling: Compiling = _unwatched,
) -> Guest:
    """Instantiates a verified bundle with exactly the imports its manifest grants.

    `sandbox` says where the guest's fs preopens and kv database live; a guest granted fs or kv needs one.
    `env` and `stdin` are the caller's environment variables and standard input, refused unless the manifest
    takes them (`[capabilities.env]`, `[capabilities.stdin]`). With `on_stdio`, what the guest writes to stdout
    and stderr goes there as it is written, not into its calls' results; with `on_log`, its log lines (the host's
    own for the operator too) as they are logged.
    `engine` names the engine to run it on ("wasmer", "wasmtime", "auto"; see `chosen_engine`).
    `cpu_capped` says this process's CPU time is capped (the tenant child), which stands in for
    limits.fuel on an engine that cannot meter it; otherwise such a guest is refused there.
    `on_instantiate` is called once the code is prepared and checked, just before the guest's own
    code may first run (its start function, at instantiation).
    `compiling` holds the compile of the .wasm, when there is one (given its size in bytes): no artifact or host AOT
    cache entry is loaded instead.
    """
    manifest = verified_manifest(bundle)
    if sandbox is not None and sandbox.state_paths is None:
        sandbox = guarding_own_state(sandbox, manifest)
    host_side = partial(
        open_context,
        manifest.guest.name,
        manifest.capabilities,
        log_quota=manifest.limits.log_bytes,
        stdio_quota=manifest.limits.stdout_bytes,
        open_files=manifest.limits.open_files,
        sandbox=sandbox,
        args=args,
        env=env,
        stdin=caller_stdin(manifest.guest.name, manifest.capabilities, stdin, timeout_ms=manifest.limits.timeout_ms),
        on_log=on_log,
        on_stdio=on_stdio,
    )
    ready = partial(_instantiating, host_side, on_instantiate)
    chosen = guest_engine(manifest, engine, bundle.index.artifact_engines)
    if manifest.guest.type.is_component:
        opened = _open_component(
            bundle, manifest, ready, allow_compile=allow_compile, engine=chosen, compiling=compiling
        )
    else:
        opened = _open_core(
            bundle,
            manifest,
            ready,
            allow_compile=allow_compile,
            engine=chosen,
            cpu_capped=cpu_capped,
            compiling=compiling,
        )
    instance, context, origin, renew = opened
    kind = manifest.guest.type
    mapped = not kind.is_component or kind.language not in ("javascript", "python")  # whose runtime is embedded
    wasm = _wasm_reader(bundle, eager=mapped)
    compiled = origin.startswith(COMPILED)
    return Guest(manifest, instance, context, origin, compiled=compiled, wasm=wasm, renew=renew)


def _wasm_reader(bundle: VerifiedBundle, *, eager: bool) -> Callable[[], bytes]:
    """The verified .wasm, for saying where a trap happened: a dev bundle's now, while its file is open, if it
    may carry a source map (not a component that embeds a language's whole runtime: that one when asked)."""
    member = bundle.index.member("wasm")
    if eager and bundle.index.profile == "dev":
        wasm = bundle.data(member)
        return lambda: wasm
    return partial(bundle.data, member)


def _instantiating(host_side: Callable[[], HostContext], on_instantiate: Callable[[], None]) -> HostContext:
    """The instance's host side, opened once its code is checked, right before instantiation."""
    on_instantiate()
    return host_side()


REACTOR_INITIALIZER = "_initialize"
_NO_VALUES = Signature((), ())


def _is_reactor(manifest: Manifest, info: ModuleInfo) -> bool:
    """Whether the module is a WASI reactor (a library that exports `_initialize: () -> ()`: wasi-libc's runs the
    C/C++ constructors, Go's starts its runtime), whose `_initialize` must run before any other export."""
    initializer = info.export(REACTOR_INITIALIZER)
    return manifest.guest.type.kind == "library" and initializer is not None and initializer.signature == _NO_VALUES


def _open_core(
    bundle: VerifiedBundle,
    manifest: Manifest,
    host_side: Callable[[], HostContext],
    *,
    allow_compile: bool,
    engine: str,
    cpu_capped: bool,
    compiling: Compiling,
) -> Opened:
    check_fuel_metering(manifest, engine, cpu_capped=cpu_capped)
    runner = engine_named(engine)
    limits = RunLimits(manifest.limits.timeout_ms, manifest.limits.memory_pages, manifest.limits.fuel)
    prepare = partial(runner.prepare, guest=manifest.guest.name, limits=limits)
    maker = CodeMaker(prepare, runner.serialize, *code_identity(manifest), compiling)
    # The code about to run is checked, not the .wasm: an artifact load never reads the .wasm.
    prepared, origin = prepare_best_fitting(
        bundle, runner, maker, allow_compile, lambda code: check_module(manifest, code.info)
    )
    # What the engine shows of an artifact leaves out the memories and tables a module does not export: the
    # verified .wasm says them all, and is read where the engine cannot cap them, or was compiled anyway.
    capped = caps_growth(engine)
    declared = prepared.info if capped and not origin.startswith(COMPILED) else declared_module(bundle)
    check_memory_limit(manifest, declared, engine_caps_growth=capped)
    context = host_side()

    def link_memory(memory: EngineMemory) -> None:
        # The engine keeps the host functions, and so the context, alive: a strong reference back to the
        # instance's memory would make a cycle through native code that no garbage collector can free.
        context.memory = weakref.proxy(memory)

    running = "its start function"
    make = partial(_core_instance, runner, prepared, context, link_memory)
    try:
        instance = make()
        if _is_reactor(manifest, prepared.info):
            running = REACTOR_INITIALIZER
            _initialize(manifest, instance, context)
    except GuestExit as exit_:
        context.close()
        raise GuestError(
            f"{manifest.guest.name}: {running} called proc_exit({exit_.code}) as the guest loaded;"
            " only a command's _start may exit"
        ) from None
    except GuestError as error:  # its start function or _initialize trapped: after an abort, say the abort
        context.close()
        if context.aborted is not None:
            raise GuestError(context.aborted) from None
        where = trap_place(manifest, error, bundle.data(bundle.index.member("wasm"))) if error.frames else None
        raise GuestError(f"{error} {where}" if where else str(error), frames=error.frames) from None
    except NgixiError:
        context.close()
        raise
    except Exception as error:  # a binding's own failure to link: one line, never a traceback or a dead child
        context.close()
        raise NgixiError(f"{manifest.guest.name}: cannot link the guest: {type(error).__name__}: {error}") from None
    except BaseException:
        context.close()
        raise
    if context.aborted is not None:  # a start function that returned from its abort
        context.close()
        raise GuestError(context.aborted)
    renew = partial(_fresh_core, manifest, make, context, reactor=_is_reactor(manifest, prepared.info))
    return instance, context, origin, renew


def _core_instance(
    runner: Engine, prepared: Any, context: HostContext, link_memory: Callable[[EngineMemory], None]
) -> EngineInstance:
    """A core guest's instance, its imports linked to `context`."""
    imports = core_imports(context, [(imp.module, imp.name) for imp in prepared.info.imports])
    instance = runner.instantiate(prepared, imports=imports, on_memory=link_memory)
    context.engine_reserve = instance.reserve_return_time
    return instance


def _initialize(manifest: Manifest, instance: EngineInstance, context: HostContext) -> None:
    """WASI: a reactor's _initialize, run once per instance before any of its exports."""
    context.call_ends_at = time.monotonic() + manifest.limits.timeout_ms / 1000
    instance.call(REACTOR_INITIALIZER, ())


def _fresh_core(
    manifest: Manifest, make: Callable[[], EngineInstance], context: HostContext, *, reactor: bool
) -> EngineInstance:
    """A core guest's instance made afresh (`Guest._renewed`): its start function, and a reactor's _initialize, run
    again; a failure there fails the call that needed it."""
    instance = make()
    if reactor:
        try:
            _initialize(manifest, instance, context)
        except GuestExit as exit_:
            raise GuestError(
                f"{manifest.guest.name}: {REACTOR_INITIALIZER} called proc_exit({exit_.code}) as the guest loaded"
                " afresh after a failed call; only a command's _start may exit"
            ) from None
    if context.aborted is not None:  # a start function that returned from its abort
        raise GuestError(context.aborted)
    return instance


def _open_component(
    bundle: VerifiedBundle,
    manifest: Manifest,
    host_side: Callable[[], HostContext],
    *,
    allow_compile: bool,
    engine: str,
    compiling: Compiling,
) -> Opened:
    """As `_open_core`, on Wasmtime's component model: the component's world is checked against the manifest,
    its granted interfaces linked to the same capability implementations, and WASI set up from the context."""
    from ngixi_runtime.engines import wasmtime_component  # Wasmtime's component model, only for component guests

    guest = manifest.guest.name
    runner = engine_named(engine)
    maker = _component_maker(manifest, compiling)
    prepared, origin = prepare_best_fitting(
        bundle, runner, maker, allow_compile, lambda code: check_component(manifest, code.info)
    )
    context = host_side()
    limits = RunLimits(timeout_ms=manifest.limits.timeout_ms, memory_pages=manifest.limits.memory_pages)
    try:
        functions = component_functions(context, prepared.info.imports)
        wasi = wasi_setup(context) if imports_wasi(prepared.info.imports) else None
        instance = wasmtime_component.instantiate(prepared, guest=guest, functions=functions, limits=limits, wasi=wasi)
        context.engine_reserve = instance.reserve_return_time
        context.closers.append(_weak_closer(instance.close))
    except GuestError as error:  # a start function trapped: where, as a core guest's says
        context.close()
        wasm = bundle.data(bundle.index.member("wasm"))
        where = trap_place(manifest, error, wasm) if error.outcome == "trap" else None
        raise GuestError(f"{error} {where}" if where else str(error), outcome=error.outcome) from None
    except BaseException:
        context.close()
        raise
    return instance, context, origin, None


def _component_maker(manifest: Manifest, compiling: Compiling | None = None) -> CodeMaker[wasmtime_component.Prepared]:
    """How a component guest's code is made: its verified artifact deserialized, or the signed component compiled."""
    from ngixi_runtime.engines import wasmtime_component

    prepare = partial(wasmtime_component.prepare, guest=manifest.guest.name)
    return CodeMaker(prepare, wasmtime_component.serialize, *code_identity(manifest), compiling)


def _weak_closer(close: Callable[[], None]) -> Callable[[], None]:
    """Closes the instance while it lives; the context must not keep it alive, as its store keeps the context."""
    method = weakref.WeakMethod(close)

    def weak_close() -> None:
        bound = method()
        if bound is not None:
            bound()

    return weak_close


def check_guest_code(bundle: VerifiedBundle) -> None:
    """Holds a core guest's signed .wasm to its manifest as a load holds the code it runs (`ngixi verify`).

    A component is read by Wasmtime's component model, so only a load (or `bundle_world`) checks its world; what
    compiling it would cost is checked for both.
    """
    manifest = bundle.manifest
    wasm = bundle.data(bundle.index.member("wasm"))
    too_costly = compile_cost_problem(wasm, source=f"{bundle.source}!{WASM_NAME}")
    if too_costly is not None:
        raise PolicyError(f"{manifest.guest.name}: {too_costly}")
    if manifest.guest.type.is_component:
        return
    info = read_module_info(wasm, source=f"{bundle.source}!{WASM_NAME}")
    problems = check_module(manifest, info)
    if problems:
        raise VerificationError(reported([printable(line) for line in problems]))
    check_memory_limit(manifest, info)


def bundle_world(bundle: VerifiedBundle) -> ComponentInfo | None:
    """The world of a verified component guest's component; None for a core guest. Its code is had as a load has
    it (an artifact its signer may run, else this host's AOT cache, else compiled and kept there): compiling a
    JavaScript or Python guest's component only to read its types took about 20 s of CPU."""
    manifest = verified_manifest(bundle)
    if not manifest.guest.type.is_component:
        return None
    prepared, _ = _first_accepted(bundle, engine_named("wasmtime"), _component_maker(manifest), allow_compile=True)
    return prepared.info


def parse_arguments(decl: ExportDecl, raw: Sequence[str], *, guest: str) -> tuple[Number, ...]:
    """Converts command-line strings to the export's declared parameter types."""
    if len(raw) != len(decl.params):
        raise InvalidInput(
            f"{guest}: {decl.name} takes {counted(len(decl.params), 'argument')} ({', '.join(decl.params)}),"
            f" got {len(raw)}"
        )
    values: list[Number] = []
    for position, (text, kind) in enumerate(zip(raw, decl.params, strict=True), start=1):
        try:
            values.append(int(text, 0) if kind in ("i32", "i64") else float(text))
        except ValueError:
            hint = (
                ""
                if decl.input
                else '; to pass text, declare input = "text" on the export (docs/host-abi.md, "Call data")'
            )
            raise InvalidInput(f"{guest}: {decl.name} argument {position}: {text!r} is not an {kind}{hint}") from None
        check_integer(values[-1], kind, what=f"{guest}: {decl.name} argument {position}")
    return tuple(values)


def check_integer(value: Number, kind: str, *, what: str) -> None:
    """An i32/i64 argument must be in its signed range: an engine would wrap one beyond it."""
    problem = value_problem(value, kind)
    if problem is not None:
        raise InvalidInput(f"{what}: {problem}")
