"""What a call returns (`CallResult`, its `CallMetrics`, the `CallFailed` of one that did not complete), and
`measure`, which makes and measures a call in this process: for an in-process tenant, a tenant's child, and
the build's smoke calls."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from time import perf_counter_ns
from typing import Any

from ngixi_runtime.capabilities.context import GuestOutput, LogLine
from ngixi_runtime.engines.base import STACK_EXHAUSTED
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.data import DataKind, DataValue, check_output, decode
from ngixi_runtime.loading.loader import Guest, LibraryExit
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.wit_json import to_wire

# A record made as `kind(*fields)` makes it, without the Python frame of its generated `__new__`:
# `_made(kind, (field, ...))`, the fields in their declared order. Inline, not a helper: on a call that does nothing,
# its call would cost too.
_made = tuple.__new__


class CallMetrics(NamedTuple):
    duration_ms: float
    memory_pages: int
    host_calls: dict[str, int]
    output_bytes: int
    outcome: str


class CallResult(NamedTuple):
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
            "logs": [line._asdict() for line in self.logs],
            "stdout": base64.b64encode(self.stdout).decode(),
            "stderr": base64.b64encode(self.stderr).decode(),
            "metrics": self.metrics._asdict(),
            "output": None if self.output is None else base64.b64encode(self.output).decode(),
            "output_kind": self.output_kind,
        }


class TenantClosed(InvalidInput):
    """A call to a tenant after its `close` (a TenantPool's tenant: after the pool's)."""


def closed_tenant(guest: str) -> TenantClosed:
    """The refusal of a call to a tenant after its `close`."""
    return TenantClosed(f"{guest}: the tenant is closed; open the bundle again (open_tenant) to call it")


class _Process:
    """This process's id, kept up to date by a fork hook: `os.getpid()` is a system call, which every call of a
    tenant would make to learn whether it runs in a fork of the process that opened it."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id = os.getpid()

    def forked(self) -> None:
        self.id = os.getpid()


THIS_PROCESS = _Process()
os.register_at_fork(after_in_child=THIS_PROCESS.forked)


def forked_tenant(guest: str, opened_in: int) -> InvalidInput:
    """The refusal of a call in a process forked from the one that opened the tenant (`opened_in`): an isolated
    tenant's child answers on pipes every fork shares, and an in-process one's deadline thread is not forked."""
    return InvalidInput(
        f"{guest}: this tenant was opened in process {opened_in}, and this process was forked from it; a tenant "
        "serves the process that opened it alone: open tenants (a TenantPool) after forking, in each worker"
    )


def empty_result(outcome: str) -> CallResult:
    """The result of a call that produced nothing, e.g. one whose process was killed."""
    return CallResult((), None, (), b"", b"", CallMetrics(0.0, 0, {}, 0, outcome))


# How a trap that ran out of native stack ends its message, on either engine. On Wasmer the trap unwinds through
# whatever ran on that stack, host functions' Python frames among them, and leaves the interpreter of the process
# that ran it damaged (its recursion count, a host function's state left half-done).
_STACK_EXHAUSTED = f"trapped: {STACK_EXHAUSTED}"


def exhausted_stack(outcome: str, error: str | None) -> bool:
    """Whether a call's failure was its guest running out of stack: an isolated child that served it is replaced."""
    return outcome == "trap" and error is not None and _STACK_EXHAUSTED in error


def spends_the_instance(component: bool, outcome: str, error: str | None) -> bool:
    """Whether a failed call leaves nothing worth serving on in the process that ran it, so that an isolated child
    that served it is replaced: a component's instance after any failure (Wasmtime never enters it again, as the
    component model says), and any guest's process after it ran out of stack (`exhausted_stack`). A core guest's
    instance after another failure is made afresh in the same process (`loader.Guest._renewed`)."""
    return component or exhausted_stack(outcome, error)


class CallFailed(GuestError):
    """A call that did not complete; carries the call's metrics and what it printed."""

    def __init__(self, message: str, *, outcome: str, result: CallResult) -> None:
        super().__init__(message, outcome=outcome)
        self.result = result


def measure(guest: Guest, export: str, args: Sequence[Any], data: bytes | None = None) -> CallResult:
    """Calls an export (or `_start` for "_start") in this process with its input, and records its metrics."""
    start = perf_counter_ns()
    if export not in guest.outputless:  # `_start`, an export that declares output, or none the manifest declares
        return _measured(guest, export, args, data, start)
    try:
        values = guest.call(export, args, data)
    except GuestError as error:
        return _finished(guest, export, start, failure=_out_of_memory(guest, export, error))
    call_data = guest.call_data
    if call_data.output or not guest.output.empty:
        return _finished(guest, export, start, values=values)
    # Most calls: nothing written, printed, logged or called, so nothing to take, copy, check or count.
    call_data.input = b""  # let go, as take_output does
    pages = guest.page_count()
    metrics = _made(CallMetrics, (_milliseconds(perf_counter_ns() - start), pages, {}, 0, "ok"))
    return _made(CallResult, (values, None, (), b"", b"", metrics, None, None))


def _measured(guest: Guest, export: str, args: Sequence[Any], data: bytes | None, start: int) -> CallResult:
    values: tuple[Any, ...] = ()
    exit_code = None
    try:
        if export == "_start":
            exit_code = guest.run_command()
        else:
            values = guest.call(export, args, data)
    except GuestError as error:
        return _finished(guest, export, start, failure=_out_of_memory(guest, export, error))
    return _finished(guest, export, start, values=values, exit_code=exit_code)


def _finished(
    guest: Guest,
    export: str,
    start: int,
    *,
    values: tuple[Any, ...] = (),
    exit_code: int | None = None,
    failure: GuestError | None = None,
) -> CallResult:
    """The result of a call begun at `start` (`perf_counter_ns`), its output checked against its declared kind;
    raises `CallFailed` with that result for a call that failed."""
    output_kind = None
    written = guest.take_output()
    declared = guest.output_kind(export)
    if failure is None and export != "_start" and (written or declared is not None):
        output_kind, failure = _checked_output(guest.manifest.guest.name, export, declared, written)
    result = _result(
        values=values,
        exit_code=exit_code,
        output=guest.output,
        nanoseconds=perf_counter_ns() - start,
        pages=guest.page_count(),
        failure=failure,
        written=None if output_kind is None else written,
        output_kind=output_kind,
    )
    if failure is not None:
        raise CallFailed(str(failure), outcome=failure.outcome, result=result)
    return result


def _milliseconds(nanoseconds: int) -> float:
    """A duration in milliseconds, rounded to the microsecond."""
    return (nanoseconds + 500) // 1000 / 1000


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
    """A trap with memory grown to its limit is the guest running out of memory: say so, unless the trap names a cause
    of its own (a guest's memory never shrinks, so every later trap of a guest once at its limit would be said so, and
    an isolated child that ran out of stack would serve on, `spends_the_instance`)."""
    limit = guest.manifest.limits.memory_pages
    if error.outcome != "trap" or isinstance(error, LibraryExit) or exhausted_stack(error.outcome, str(error)):
        return error
    if guest.page_count() < limit or guest.initial_pages >= limit:
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
    nanoseconds: int,
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
    outcome = "ok" if failure is None else failure.outcome
    output_bytes = size + (len(written) if written else 0)  # logs, stdout, stderr and the call's output
    metrics = _made(CallMetrics, (_milliseconds(nanoseconds), pages, host_calls, output_bytes, outcome))
    return _made(CallResult, (values, exit_code, logs, stdout, stderr, metrics, written, output_kind))
