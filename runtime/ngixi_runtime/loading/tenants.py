"""The host API: load verified bundles as tenants, call them, and measure every call.

    with open_tenant(Path("hello-0.1.0.ngx"), trust_file=Path("trust.toml")) as tenant:
        result = tenant.call("add", (2, 3))      # result.values == (5,), result.metrics.duration_ms
        words = tenant.call("words", input="to be or not")  # an export declaring input/output: words.data

A tenant runs isolated by default: its own child process with its own store, under a memory
rlimit, a CPU rlimit and a wall-clock deadline from the manifest's [limits]. A trap, timeout,
crash or out-of-memory becomes a `GuestError` naming the guest and the limit; the next call
starts a fresh child. `isolated=False` runs the guest in this process (fast, for trusted guests).

A tenant runs exactly what was checked. The bundle is opened once, and the signature, trust
scope, rollback state and policy are checked on that open file; every child, the first and each
restarted one, inherits the same open file (never the path, which may since name another file)
and refuses it unless its signed index has the very bytes checked here. Its members are held to
that index's digests as they are read, so a file changed in place is refused, never run.

The child is a clean room: `python -I` (no working directory, user site or PYTHON* variables on
its path), started in `/`, with an environment of only `CHILD_ENVIRONMENT`'s variables that the
host has set (what the interpreter needs to start and to decode file names as the host does),
the host AOT cache this process uses (`NGIXI_AOT_CACHE`, named absolutely), plus what the operator
passes as `child_env`. It opens no path but its sandbox's, made absolute:
the bundle is the inherited file, and the trust file's tables are the ones read here.
Opening it (instantiation, start function included) is held to the guest's limits.timeout_ms.

Each tenant has an id (`tenant=`, default "default"; in a `TenantPool`, the tenant's name): a
guest granted fs or kv keeps its state in `sandboxes/<tenant id>/<guest>/`, so two tenants
running the same guest never see each other's files or kv data.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from ngixi_runtime.bundles.reader import VerifiedBundle, open_bundle_file, read_bundle
from ngixi_runtime.capabilities.context import GuestOutput, LogLine, Sandbox, Stdin
from ngixi_runtime.capabilities.linking import caller_environment, caller_stdin
from ngixi_runtime.engines.base import chosen_engine, meters_fuel
from ngixi_runtime.errors import GuestError, InvalidInput, NgixiError, error_with_exit_code
from ngixi_runtime.guest.data import DataKind, DataValue, check_output, decode
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE, CacheUnavailable, default_cache_dir
from ngixi_runtime.loading.loader import (
    Guest,
    check_call,
    encoded_input,
    likely_artifacts,
    open_guest,
    verified_manifest,
)
from ngixi_runtime.loading.tenant_wire import (
    Incoming,
    Reply,
    ReplyBounds,
    WireError,
    call_frame,
    control_frame,
    read_control,
    read_reply,
    write_all,
)
from ngixi_runtime.loading.zygote import CHILD_BUNDLE, ForkedProcess, spawn_tenant
from ngixi_runtime.spec.wit_json import to_wire
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import read_trust_table, trust_from_table

if TYPE_CHECKING:
    from ngixi_runtime.trust.policy import Policy

log = logging.getLogger(__name__)

# Time allowed on top of the guest's own timeout for the child to answer over the pipe.
_IPC_GRACE_SECONDS = 0.25
# Time for the child to verify and prepare the guest (compiling it, perhaps) before instantiating it.
_PREPARE_TIMEOUT_SECONDS = 30.0
# The host's variables a child keeps, when set: the interpreter's library path and the locale.
CHILD_ENVIRONMENT = ("LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH")
# How an exchange with a child ends early: it died (EOF, a broken pipe), fell silent, or sent a malformed frame.
_LOST = (EOFError, BrokenPipeError, TimeoutError, WireError)
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_TENANT = "default"
FrozenT = TypeVar("FrozenT")


@dataclass(frozen=True)
class CallMetrics:
    duration_ms: float
    memory_pages: int
    host_calls: dict[str, int]
    output_bytes: int
    outcome: str


@dataclass(frozen=True)
class CallResult:
    values: tuple[Any, ...]  # numbers; a component's values of its WIT types (engines/wit_values.py)
    exit_code: int | None
    logs: tuple[LogLine, ...]
    stdout: bytes
    stderr: bytes
    metrics: CallMetrics
    output: bytes | None = None  # what the guest wrote through the call data ABI, checked against its kind
    output_kind: DataKind | None = None  # what the export declares: output = "bytes", "text" or "json"

    @property
    def data(self) -> DataValue:
        """The call's output as its export declares it: bytes, str or a JSON value; None without output."""
        if self.output is None or self.output_kind is None:
            return None
        return decode(self.output_kind, self.output)

    def to_json(self) -> dict[str, Any]:
        return {
            "values": to_wire(list(self.values)),
            "exit_code": self.exit_code,
            "logs": [asdict(line) for line in self.logs],
            "stdout": base64.b64encode(self.stdout).decode(),
            "stderr": base64.b64encode(self.stderr).decode(),
            "metrics": asdict(self.metrics),
            "output": None if self.output is None else base64.b64encode(self.output).decode(),
            "output_kind": self.output_kind,
        }


def empty_result(outcome: str) -> CallResult:
    """The result of a call that produced nothing, e.g. one whose process was killed."""
    return CallResult((), None, (), b"", b"", CallMetrics(0.0, 0, {}, 0, outcome))


class CallFailed(GuestError):
    """A call that did not complete; carries the call's metrics and what it printed."""

    def __init__(self, message: str, *, outcome: str, result: CallResult) -> None:
        super().__init__(message, outcome=outcome)
        self.result = result


class Tenant(Protocol):
    manifest: Manifest
    origin: str  # which artifact was loaded, or why the guest was compiled
    compiled: bool

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult: ...

    def run(self) -> CallResult: ...

    def close(self) -> None: ...


def measure(guest: Guest, export: str, args: Sequence[Any], data: bytes | None = None) -> CallResult:
    """Calls an export (or `_start` for "_start") in this process with its input, and records its metrics."""
    start = time.perf_counter()
    values: tuple[Any, ...] = ()
    exit_code = None
    failure: GuestError | None = None
    output_kind = None
    try:
        if export == "_start":
            exit_code = guest.run_command()
        else:
            values = guest.call(export, args, data)
    except GuestError as error:
        failure = _out_of_memory(guest, export, error)
    written = guest.take_output()
    declared = guest.output_kind(export)
    if failure is None and export != "_start" and (written or declared is not None):
        output_kind, failure = _checked_output(guest.manifest.guest.name, export, declared, written)
    result = _result(
        values=values,
        exit_code=exit_code,
        output=guest.output,
        seconds=time.perf_counter() - start,
        pages=guest.memory_pages,
        failure=failure,
        written=None if output_kind is None else written,
        output_kind=output_kind,
    )
    if failure is not None:
        raise CallFailed(str(failure), outcome=failure.outcome, result=result)
    return result


def _checked_output(
    guest: str, export: str, kind: DataKind | None, written: bytes
) -> tuple[DataKind | None, GuestError | None]:
    """The kind of the export's output (`kind`, as declared), or the error of output it wrote that is not that."""
    if kind is None:
        if not written:
            return None, None
        return None, GuestError(f"{guest}: {export} wrote output, but its manifest declares none", outcome="output")
    try:
        check_output(guest, export, kind, written)
    except GuestError as error:
        return None, error
    return kind, None


def _out_of_memory(guest: Guest, export: str, error: GuestError) -> GuestError:
    """A trap with memory grown to its limit is the guest running out of memory: say so."""
    limit = guest.manifest.limits.memory_pages
    if error.outcome != "trap" or guest.memory_pages < limit or guest.initial_pages >= limit:
        return error
    # Said once: the trap that followed (an allocator's abort, `unreachable`) adds nothing to it.
    return GuestError(
        f"{guest.manifest.guest.name}: {export} ran out of memory at its limit of {limit} pages (limits.memory_pages)",
        outcome="memory",
    )


def _result(
    *,
    values: tuple[Any, ...],
    exit_code: int | None,
    output: GuestOutput,
    seconds: float,
    pages: int,
    failure: GuestError | None,
    written: bytes | None,
    output_kind: DataKind | None,
) -> CallResult:
    """The call's result, with what it printed, logged and called taken from `output`."""
    logs: tuple[LogLine, ...] = ()
    if output.empty:  # most calls: nothing to take, copy or count
        stdout, stderr, host_calls, size = b"", b"", {}, 0
    else:
        taken = output.take()
        logs, stdout, stderr = tuple(taken.logs), bytes(taken.stdout), bytes(taken.stderr)
        host_calls, size = dict(taken.host_calls), taken.size
    metrics = _frozen(
        CallMetrics,
        {
            "duration_ms": round(seconds * 1000, 3),
            "memory_pages": pages,
            "host_calls": host_calls,
            "output_bytes": size + (len(written) if written else 0),  # logs, stdout, stderr and the call's output
            "outcome": "ok" if failure is None else failure.outcome,
        },
    )
    return _frozen(
        CallResult,
        {
            "values": values,
            "exit_code": exit_code,
            "logs": logs,
            "stdout": stdout,
            "stderr": stderr,
            "metrics": metrics,
            "output": written,
            "output_kind": output_kind,
        },
    )


def _frozen(kind: type[FrozenT], fields: dict[str, Any]) -> FrozenT:
    """The same as `kind(**fields)` for a frozen dataclass `kind` and every one of its fields, but made without
    its `__init__`, which sets each field through a call of `object.__setattr__` (most of a call's bookkeeping)."""
    made = object.__new__(kind)
    object.__setattr__(made, "__dict__", fields)
    return made


class InProcessTenant:
    """A guest in this process: no isolation; for trusted guests. Only Wasmtime enforces a deadline here.

    Calls from several threads take turns: an engine's store (and the call's data) serves one call at a time.
    """

    def __init__(self, guest: Guest) -> None:
        self._guest = guest
        self._lock = threading.Lock()
        self._owner = threading.get_ident() if guest.thread_bound else None
        self.manifest = guest.manifest
        self.origin = guest.origin
        self.compiled = guest.compiled

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult:
        """Calls `export`; `input` (bytes, str or a JSON value) for an export that declares one."""
        data = encoded_input(self.manifest, export, input)
        self._check_thread()
        with self._lock:
            return measure(self._guest, export, args, data)

    def run(self) -> CallResult:
        self._check_thread()
        with self._lock:
            return measure(self._guest, "_start", ())

    def _check_thread(self) -> None:
        if self._owner is not None and threading.get_ident() != self._owner:
            raise InvalidInput(
                f"{self.manifest.guest.name}: an in-process tenant on Wasmer can be called only from the thread "
                "that opened it; open it isolated, or on Wasmtime, to call it from other threads"
            )

    def close(self) -> None:
        with self._lock:
            self._guest.close()

    def __enter__(self) -> InProcessTenant:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class _Child:
    process: ForkedProcess
    errors: IO[bytes]
    requests: int = field(init=False)  # the descriptors of its pipes (tenant_wire.py's frames)
    replies: Incoming = field(init=False)

    def __post_init__(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = self.process.stdin.fileno()
        os.set_blocking(self.requests, False)  # so that a write, too, waits at most until its deadline
        self.replies = Incoming(self.process.stdout.fileno())


@dataclass(frozen=True)
class CheckedBundle:
    """A verified bundle's open file, what every child of its tenant reads instead of the path."""

    descriptor: int
    source: str  # the path it was opened at, to name it in messages
    index_sha256: str  # of the signed index that was checked

    @classmethod
    def of(cls, verified: VerifiedBundle, descriptor: int) -> CheckedBundle:
        return cls(descriptor, verified.source, verified.index_sha256)

    def to_json(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "source": self.source, "index_sha256": self.index_sha256}


def _child_environment(
    extra: Mapping[str, str] | None = None, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """A tenant child's whole environment: the host's `CHILD_ENVIRONMENT` variables, its AOT cache, then `extra`."""
    kept = {name: environ[name] for name in CHILD_ENVIRONMENT if name in environ}
    return {**kept, **_aot_cache_variable(environ), **(extra or {})}


def _aot_cache_variable(environ: Mapping[str, str]) -> dict[str, str]:
    """The host AOT cache this process uses, named absolutely: the child has no HOME or XDG_* to find it by."""
    try:
        return {CACHE_VARIABLE: str(default_cache_dir(environ))}
    except CacheUnavailable:
        return {}


class IsolatedTenant:
    """A guest in its own child process, restarted after any failure that killed it.

    It owns `bundle`'s descriptor, and closes it with the tenant. `trust` is the trust file that
    was read to check it (its source and tables), which the child checks the signature with again.
    """

    def __init__(
        self,
        bundle: CheckedBundle,
        trust: Mapping[str, Any],
        manifest: Manifest,
        options: Mapping[str, Any],
        environment: Mapping[str, str],
    ) -> None:
        self.manifest = manifest
        self._bundle = bundle
        self._request = {"bundle": {**bundle.to_json(), "descriptor": CHILD_BUNDLE}, "trust": dict(trust), **options}
        self._environment = dict(environment)
        self._child: _Child | None = None
        self._bounds = ReplyBounds.of(manifest.limits)
        self._output_kinds = {declared.name: declared.output for declared in manifest.exports}
        self._unchecked = frozenset(e.name for e in manifest.exports if not e.params and e.input is None)
        self._lock = threading.Lock()
        self.origin = ""
        self.compiled = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._child is None else self._child.process.pid

    def start(self) -> None:
        """Starts the child now rather than on the first call."""
        with self._lock:
            if self._child is None:
                self._child = self._spawn()

    def _spawn(self) -> _Child:
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child; closed in _stop
        try:
            process = spawn_tenant(self._environment, self._bundle.descriptor, errors.fileno())
        except BaseException:
            errors.close()
            raise
        child = _Child(process, errors)
        prepared_by = time.monotonic() + _PREPARE_TIMEOUT_SECONDS
        reply = self._exchange(child, self._request, deadline=prepared_by, what="prepare")
        if reply.get("instantiating"):  # from here on, the guest's own code may run: its start function
            reply = self._reply(child, deadline=self._call_deadline(), what="start")
        if not reply.get("ok"):
            self._stop(child)
            message = str(reply.get("error", "the tenant process could not start"))
            raise error_with_exit_code(message, int(reply.get("exit_code", NgixiError.exit_code)))
        self.origin = str(reply["origin"])
        self.compiled = bool(reply["compiled"])
        return child

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult:
        """Calls `export`; `input` (bytes, str or a JSON value) for an export that declares one."""
        data = encoded_input(self.manifest, export, input)
        if args or data is not None or export not in self._unchecked:  # else check_call would pass it
            check_call(self.manifest, export, args, data)  # here, so that a refused input never reaches the child
        request = call_frame(export, args, data)
        with self._lock:
            if self._child is None:
                self._child = self._spawn()
            try:
                reply = self._call(self._child, request, export)
            except CallFailed:
                self._child = None
                raise
        if not reply.ok and reply.error_exit_code == InvalidInput.exit_code:
            raise InvalidInput(str(reply.error))  # e.g. an argument a component's export cannot take
        result = self._result(export, reply)
        if not reply.ok:
            raise CallFailed(str(reply.error), outcome=reply.outcome, result=result)
        return result

    def run(self) -> CallResult:
        return self.call("_start", ())

    def _call_deadline(self) -> float:
        return time.monotonic() + self.manifest.limits.timeout_ms / 1000 + _IPC_GRACE_SECONDS

    def _call(self, child: _Child, request: Sequence[bytes], what: str) -> Reply:
        """Sends a call frame and reads its reply, by the call's deadline."""
        deadline = self._call_deadline()
        try:
            write_all(child.requests, request, deadline)
            child.replies.deadline = deadline
            reply = read_reply(child.replies, self._bounds)
        except _LOST as error:
            raise self._lost(child, what, error) from None
        if reply.output is not None and self._output_kind(what) is None:
            self._stop(child)
            raise self._malformed(what, "output where its export declares none")
        return reply

    def _output_kind(self, export: str) -> DataKind | None:
        return self._output_kinds.get(export)

    def _result(self, export: str, reply: Reply) -> CallResult:
        metrics = CallMetrics(
            reply.duration_ms, reply.memory_pages, reply.host_calls, reply.output_bytes, reply.outcome
        )
        kind = None if reply.output is None else self._output_kind(export)
        return CallResult(
            reply.values, reply.exit_code, reply.logs, reply.stdout, reply.stderr, metrics, reply.output, kind
        )

    def _exchange(self, child: _Child, message: Mapping[str, Any], *, deadline: float, what: str) -> dict[str, Any]:
        """Sends one control frame (the start-up request) and reads the control frame that answers it."""
        try:
            write_all(child.requests, [control_frame(message)], deadline)
        except _LOST as error:
            raise self._lost(child, what, error) from None
        return self._reply(child, deadline=deadline, what=what)

    def _reply(self, child: _Child, *, deadline: float, what: str) -> dict[str, Any]:
        """Reads the next control frame from the child (how its start-up went)."""
        child.replies.deadline = deadline
        try:
            return read_control(child.replies)
        except _LOST as error:
            raise self._lost(child, what, error) from None

    def _lost(self, child: _Child, what: str, error: Exception) -> CallFailed:
        """The failure of an exchange with the child that `error` ended (the child is stopped): its death,
        silence past the deadline, or a malformed frame."""
        if isinstance(error, WireError):
            self._stop(child)
            return self._malformed(what, str(error))
        if not isinstance(error, TimeoutError):
            return self._died(child, what)  # EOFError, BrokenPipeError
        self._stop(child)
        if what == "prepare":
            detail = f"verifying and preparing the guest took over {_PREPARE_TIMEOUT_SECONDS:.0f} s"
        else:
            detail = f"{what} exceeded its {self.manifest.limits.timeout_ms} ms timeout (limits.timeout_ms)"
        return self._failure(f"{detail}; the tenant was stopped", "timeout")

    def _malformed(self, what: str, detail: str) -> CallFailed:
        return self._failure(f"{what}: the tenant process sent a malformed reply ({detail}); it was stopped", "crash")

    def _failure(self, detail: str, outcome: str) -> CallFailed:
        return CallFailed(f"{self.manifest.guest.name}: {detail}", outcome=outcome, result=empty_result(outcome))

    def _died(self, child: _Child, what: str) -> CallFailed:
        code = child.process.wait()
        child.errors.seek(0)
        tail = child.errors.read()[-500:].decode(errors="replace").strip()
        self._stop(child)
        if code == -signal.SIGXCPU:
            return self._failure(
                f"{what} used up its CPU time (limits.timeout_ms = {self.manifest.limits.timeout_ms})", "cpu"
            )
        if "MemoryError" in tail:
            pages = self.manifest.limits.memory_pages
            return self._failure(f"{what} ran out of memory (limits.memory_pages = {pages})", "memory")
        reason = (
            ("unknown: its fork server ended first" if not child.process.status_known else f"exit status {code}")
            if code >= 0
            else f"signal {signal.Signals(-code).name}"
        )
        return self._failure(f"{what}: the tenant process died ({reason}){': ' + tail if tail else ''}", "crash")

    @staticmethod
    def _stop(child: _Child) -> None:
        child.process.kill(signal.SIGKILL)
        child.process.wait()
        child.errors.close()
        child.process.close()

    def close(self) -> None:
        with self._lock:
            if self._child is not None:
                self._stop(self._child)
                self._child = None
            if self._bundle.descriptor >= 0:
                os.close(self._bundle.descriptor)
                self._bundle = replace(self._bundle, descriptor=-1)

    def __enter__(self) -> IsolatedTenant:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def check_tenant_id(tenant: str) -> None:
    """A tenant id names its sandbox directory, so it must be one safe path component."""
    if not _TENANT_ID.fullmatch(tenant):
        raise InvalidInput(
            f'tenant: {tenant!r} is not a tenant id; use 1 to 64 lowercase letters, digits, "-" and "_", '
            "starting with a letter or digit"
        )


def open_tenant(
    bundle: Path,
    *,
    trust_file: Path,
    policy: Policy | None = None,
    isolated: bool = True,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: Stdin | None = None,
    rollback: RollbackGuard | None = None,
    sandboxes: Path | None = None,
    tenant: str = DEFAULT_TENANT,
    engine: str | None = None,
    child_env: Mapping[str, str] | None = None,
    sandbox_per_channel: bool = False,
) -> InProcessTenant | IsolatedTenant:
    """Verifies a bundle, checks it against the operator's policy, and loads it as a tenant.

    With `rollback`, a lower sequence than already accepted is refused.
    A guest granted fs or kv keeps its state under `sandboxes/<tenant>/<guest>`: tenants with
    different ids never share files or kv data, even when they run the same guest. With
    `sandbox_per_channel`, under `sandboxes/<channel>/<tenant>/<guest>`: dev and release bundles apart.
    `engine` picks the engine ("wasmer", "wasmtime", "auto"; see `chosen_engine`); with Wasmtime
    the timeout, memory and fuel limits also hold in-process. An engine that cannot meter fuel runs
    a guest with limits.fuel only isolated, where its CPU time is capped by limits.timeout_ms instead.
    `env` is what the caller sets of the variables the guest's env capability allows; `stdin`, its standard
    input (bytes, or a reader asked only when the guest is granted stdin): each instance, a restarted child's
    too, reads it from the start. A name or input the manifest does not take is refused. `child_env`: variables
    an isolated tenant's child process gets beside `CHILD_ENVIRONMENT`'s (the guest never sees them).
    """
    check_tenant_id(tenant)
    trust_table = read_trust_table(trust_file)
    descriptor = open_bundle_file(bundle)
    owned_by_tenant = False
    try:
        verified = read_bundle(
            bundle,
            trust_from_table(trust_table, source=str(trust_file)),
            rollback=rollback,
            defer_members=True,
            prefetch=() if isolated else likely_artifacts(engine),
            descriptor=descriptor,
        )
        manifest = verified_manifest(verified)
        if policy is not None:
            policy.check(manifest)
        if sandboxes is not None and sandbox_per_channel:
            sandboxes = sandboxes / verified.index.channel
        sandbox = Sandbox.under(sandboxes.absolute() / tenant / manifest.guest.name) if sandboxes else None
        caller_environment(manifest.guest.name, manifest.capabilities, env or {})  # refused before any child starts
        data = caller_stdin(manifest.guest.name, manifest.capabilities, stdin)
        if not isolated:  # open_guest reads all it needs of the bundle now
            return InProcessTenant(open_guest(verified, args=args, env=env, stdin=data, sandbox=sandbox, engine=engine))
        options = {
            "args": list(args),
            "env": dict(env or {}),
            "stdin": base64.b64encode(data).decode(),
            "sandbox": sandbox.to_json() if sandbox else None,
        }
        loaded = IsolatedTenant(
            CheckedBundle.of(verified, descriptor),
            {"source": str(trust_file), "table": trust_table},
            manifest,
            {**options, "engine": _isolated_engine(manifest, engine)},
            _child_environment(child_env),
        )
        owned_by_tenant = True
    finally:
        if not owned_by_tenant:
            os.close(descriptor)
    try:
        loaded.start()
    except BaseException:
        loaded.close()
        raise
    return loaded


def _isolated_engine(manifest: Manifest, engine: str | None) -> str:
    """The engine a child runs the guest on, chosen here (the child sees none of the host's variables)."""
    chosen = chosen_engine(
        engine, wants_fuel=manifest.limits.fuel is not None, component=manifest.guest.type.is_component
    )
    if manifest.limits.fuel is not None and not meters_fuel(chosen):
        log.warning(
            "note: %s: %s cannot meter fuel, so limits.fuel is not enforced; limits.timeout_ms caps its CPU time",
            manifest.guest.name,
            chosen,
        )
    return chosen


class TenantPool:
    """Several tenants at once, each in its own process; calls to different tenants run concurrently.

    Its tenants are held to the same rollback state as `ngixi run` with that trust file: under `state_dir`,
    by default `default_state_dir()` ($NGIXI_STATE_DIR, ...); `allow_downgrade` accepts lower sequences.
    """

    def __init__(
        self,
        *,
        trust_file: Path,
        policy: Policy | None = None,
        workers: int = 16,
        sandboxes: Path | None = None,
        state_dir: Path | None = None,
        allow_downgrade: bool = False,
    ) -> None:
        self._trust_file = trust_file
        self._policy = policy
        self._sandboxes = sandboxes
        self._rollback = RollbackGuard.for_trust_file(trust_file, state_dir=state_dir, allow_downgrade=allow_downgrade)
        self._tenants: dict[str, IsolatedTenant | InProcessTenant] = {}
        from concurrent.futures import ThreadPoolExecutor  # here: a one-shot run makes no pool

        self._executor = ThreadPoolExecutor(max_workers=workers)

    def add(self, name: str, bundle: Path, *, isolated: bool = True, tenant: str | None = None) -> None:
        """Loads a bundle as tenant `name`; its sandbox id is `tenant`, by default `name` itself."""
        if name in self._tenants:
            raise InvalidInput(f"tenant {name!r} is already in the pool; close the pool or use another name")
        self._tenants[name] = open_tenant(
            bundle,
            trust_file=self._trust_file,
            policy=self._policy,
            isolated=isolated,
            rollback=self._rollback,
            sandboxes=self._sandboxes,
            tenant=name if tenant is None else tenant,
        )

    def call(self, name: str, export: str, args: Sequence[Any] = (), input: DataValue | None = None) -> CallResult:
        return self._tenants[name].call(export, args, input=input)

    def call_many(self, calls: Sequence[tuple[str, str, Sequence[Any]]]) -> list[CallResult | GuestError]:
        """Dispatches calls concurrently; each entry is its result or the GuestError it raised."""

        def one(call: tuple[str, str, Sequence[Any]]) -> CallResult | GuestError:
            try:
                return self.call(*call)
            except GuestError as error:
                return error

        return list(self._executor.map(one, calls))

    def close(self) -> None:
        for tenant in self._tenants.values():
            tenant.close()
        self._executor.shutdown()

    def __enter__(self) -> TenantPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
