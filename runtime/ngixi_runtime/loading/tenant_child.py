"""The tenant child process, forked by a fork server (`zygote.py`) or by a one-shot command
(`zygote_server.fork_here`) and driven by its parent over pipes.

The first request opens the bundle its parent verified, from the open file it inherits, never by
path: the file's signed index must have exactly the bytes the parent verified, which the request
carries with the key that signed them (`bundles.reader.reopen_verified`), so the parent's signature,
trust, rollback and policy decisions hold for it; every member is held to that index's digests as it
is read. The child says `{"instantiating": true}` before the guest's own code may
first run, then `ok`. Each later request is a call. Guest output never reaches this process's
stdout: it is captured and sent back. How it is started (a clean room) is in `loading/zygote.py`.

The protocol (frames built and read by `loading/tenant_wire.py`; little-endian; every size in a header):
- control frame, both ways (the start-up request and its answers): `<BxxxI` kind `C`, the size of
  a JSON object, then the object;
- call request: `<BBxxIII` kind `R`, flags (1: there is an input, even an empty one), the sizes of
  the export's name, its arguments (JSON in wit_json's wire form; none: no arguments) and its input;
  then those three raw;
- call reply: `<BBBxIdQq6I` kind `A`, ok, flags (1: exit code, 2: output), memory pages, duration
  in ms, output_bytes, exit code; the sizes of the values, meta, logs, stdout, stderr and output,
  then those six. Values are `N`, their count, a struct code per number (`q` or `d`) and the packed
  numbers, or JSON for others; meta is a JSON object of what differs from a plain success (outcome,
  host_calls, error, exit_code of a call refused before the guest ran); logs are JSON
  `[[level, message], ...]`; stdout, stderr and output are raw bytes;
- stdio frame, child to parent, before a reply (or a start-up answer) when the start-up request asked for
  `stream_stdio`: `<BBxxI` kind `O`, the stream (1 stdout, 2 stderr), the size of the bytes written (never
  0), then them; the parent holds them to the stdout quota with the reply's own, and a reader of its own that
  takes nothing by the call's deadline to that deadline;
- log frame, child to parent, likewise when the start-up request asked for `stream_logs`: a stdio frame's header
  of kind `L` and stream 0, then the line as JSON `[level, message]`; held to the log quota with the reply's own;
- closed-stream notice, parent to child, during or after a call: a call request's header of kind `P` whose
  flags name the stream whose reader is gone, with no sections; the guest's later writes to it fail (EPIPE).
The parent holds each size of a reply to what the guest's limits allow before reading it, and a
child that sends anything else, or dies mid-frame, is stopped as crashed.
"""

from __future__ import annotations

import base64
import functools
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ngixi_runtime.bundles.reader import reopen_verified
from ngixi_runtime.capabilities.context import MAX_PATH_DEPTH, LogLine, Sandbox
from ngixi_runtime.errors import GuestError, NgixiError
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.loading.calls import CallFailed, empty_result, measure, spends_the_instance
from ngixi_runtime.loading.loader import Guest, likely_artifacts, open_guest
from ngixi_runtime.loading.tenant_wire import (
    CHILD_HEAP_HEADROOM_BYTES,
    COMPONENT_VALUE_BYTES,
    STDIO_STREAMS,
    CallRequest,
    Incoming,
    control_frame,
    log_frame,
    read_call,
    read_closed,
    read_control,
    reply_frame,
    stdio_frame,
    write_all,
)
from ngixi_runtime.trust.signatures import trusted_key_from_table

# Descriptors the host may open in a call beside those it holds when the guest is open: SQLite's journal, HTTP
# sockets and name lookups, a module imported late, Wasmtime's own.
_HOST_CALL_DESCRIPTORS = 64
_DESCRIPTOR_FOLDER = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
# The main thread's stack may grow this far past what the child had used when it started serving: the guest's
# frames and the host functions it calls share it. Twice Wasmtime's own cap on a guest's frames (512 KiB); Wasmer
# has none of its own, so without this a recursing guest ran to the operator's `ulimit -s` (8 MiB: 500,000 frames,
# whose trap Wasmer takes time in proportion to, building its backtrace).
_STACK_HEADROOM_BYTES = 1024 * 1024
# A call's input and output may each be held several times at once (received, checked, decoded, sent);
# checking JSON builds its Python objects, at most about 23 times the document's bytes (measured: a
# document of empty arrays; one of numbers takes 6).
_CALL_DATA_COPIES = 4
# What a call's captured output may take at once, per byte its quota counts: stdout and stderr kept and copied into the
# reply; a log line as a str (up to 4 bytes a character: one astral character widens all) and its reply's JSON twice
# (text, then bytes: `\ufffd` for each byte that is not UTF-8, 6 bytes).
_STDIO_COPIES = 3
_LOG_COPIES = 4 + 2 * 6
_JSON_CALL_DATA_COPIES = 4 + 24
_PAGE_BYTES = 65536
# glibc's mallopt parameters, its default mmap threshold and the largest it takes on a 64-bit machine.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_DEFAULT, _MMAP_THRESHOLD_MAX = 128 << 10, 32 << 20
# The first request carries the signed index the parent verified and the guest's stdin (base64):
# its parent is trusted.
_START_REQUEST_BYTES = 1 << 30


def _virtual_memory_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def call_data_bytes(manifest: Manifest) -> int:
    """The most the host may hold at once for a call's input and output under the manifest's limits."""
    limits = manifest.limits
    json_in, json_out = (any(getattr(e, side) == "json" for e in manifest.exports) for side in ("input", "output"))
    return sum(
        (_JSON_CALL_DATA_COPIES if json else _CALL_DATA_COPIES) * size
        for json, size in ((json_in, limits.input_bytes), (json_out, limits.output_bytes))
    )


def captured_output_bytes(manifest: Manifest) -> int:
    """The most the host may hold at once for a call's stdout, stderr and log lines under the manifest's quotas."""
    return _STDIO_COPIES * manifest.limits.stdout_bytes + _LOG_COPIES * manifest.limits.log_bytes


def _limit_memory(guest: Guest) -> None:
    """Caps address space at what is mapped now plus the guest's allowance (its memory, and the copies of its call
    data and captured output that the host holds) and some heap.

    Wasmer reserves its linear-memory address range (several GiB) at instantiation, so the cap
    is set after it: from here on only the guest's permitted growth and Python's heap fit.
    """
    if not Path("/proc/self/statm").exists():
        return
    allowance = guest.manifest.limits.memory_pages * _PAGE_BYTES + call_data_bytes(guest.manifest)
    allowance += captured_output_bytes(guest.manifest) + CHILD_HEAP_HEADROOM_BYTES
    allowance += COMPONENT_VALUE_BYTES if guest.manifest.guest.type.is_component else 0
    limit = _virtual_memory_bytes() + allowance
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _stack_bytes() -> int | None:
    """The size of the main thread's stack mapping (it never shrinks), or None where /proc does not say."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if line.endswith(" [stack]\n"):
                    start, _, end = line.partition(" ")[0].partition("-")
                    return int(end, 16) - int(start, 16)
    except OSError:
        return None
    return None


def _limit_descriptors(guest: Guest) -> None:
    """Caps descriptor numbers (RLIMIT_NOFILE) at those this process holds once the guest is open, the host's room for
    a call's own (the directories of the two paths a rename resolves among them) and the guest's limits.open_files: a
    guest keeping files open through Wasmtime's WASI (a component's, which nothing else counts) is answered EMFILE here
    rather than taking descriptors of the whole system."""
    held = max(int(name) for name in os.listdir(_DESCRIPTOR_FOLDER)) + 1
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = held + _HOST_CALL_DESCRIPTORS + 2 * MAX_PATH_DEPTH + guest.manifest.limits.open_files
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _limit_stack() -> None:
    """Lets the stack grow at most `_STACK_HEADROOM_BYTES` more, so that a guest recursing without end traps
    promptly on either engine; never raises a limit the operator set lower."""
    stack = _stack_bytes()
    if stack is not None:
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        wanted = min(limit for limit in (soft, hard, stack + _STACK_HEADROOM_BYTES) if limit != resource.RLIM_INFINITY)
        resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))


@functools.cache
def c_mallopt() -> Callable[[int, int], int] | None:
    """The C library's mallopt (None without one), looked up once per process: a fork server looks it up before
    it forks (`zygote_server._warm_up`), so that its tenants find it rather than each making a `CDLL` of its own."""
    import ctypes  # here: the child of a one-shot `ngixi run` answers its call without it (a fork server has it)

    return getattr(ctypes.CDLL(None), "mallopt", None)


def _keep_call_buffers(manifest: Manifest) -> None:
    """Lets malloc keep the memory of a call's largest buffers for the next call.

    By default glibc maps a buffer the size of a call's input or output on its own and unmaps it when it is
    freed, or gives a freed heap top back at once: every call then faults the same pages in again, which costs
    more than copying them. Buffers up to the call data's size (never less than glibc's default) come from the
    heap instead, and up to twice that stays mapped between calls. A C library without mallopt keeps its defaults.
    """
    mallopt = c_mallopt()
    if mallopt is None:
        return
    call_data = manifest.limits.input_bytes + manifest.limits.output_bytes
    threshold = min(max(call_data, _MMAP_THRESHOLD_DEFAULT), _MMAP_THRESHOLD_MAX)
    mallopt(_M_MMAP_THRESHOLD, threshold)
    mallopt(_M_TRIM_THRESHOLD, 2 * threshold)


class _CpuBudget:
    """Caps each call's CPU time at its timeout on top of what was used before it (RLIMIT_CPU, whole seconds).

    The limit is set again only when it changes, and the CPU time (a system call to read) is read only when it may
    have grown enough to change it: it grows no faster than the wall clock (read without one) times the machine's
    processors, so after a read the limit stays right for at least its spare seconds over that many.
    """

    def __init__(self, timeout_ms: int, processors: int | None = None) -> None:
        self._seconds = timeout_ms / 1000
        self._hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        self._processors = processors or os.cpu_count() or 1
        self._soft: int | None = None
        self._read_at = -math.inf  # the time.monotonic() from which the CPU time must be read again

    def renew(self) -> None:
        if time.monotonic() >= self._read_at:
            self._read()

    def _read(self) -> None:
        now = time.monotonic()  # before the CPU time is read, so that the spare time below errs on the short side
        used = time.process_time()  # the CPU time RLIMIT_CPU counts
        soft = math.ceil(used + self._seconds) + 1
        capped = self._hard != resource.RLIM_INFINITY and soft >= self._hard
        if capped:
            soft = self._hard
        if soft != self._soft:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, self._hard))
            self._soft = soft
        # The limit is right while the CPU time used stays at most `soft - 1 - seconds`; at the hard limit, always.
        spare = soft - 1 - self._seconds - used
        self._read_at = math.inf if capped else now + spare / self._processors


def _send(replies: int, message: dict[str, Any]) -> None:
    write_all(replies, [control_frame(message)])


def _send_log(replies: int, line: LogLine, _deadline: float) -> None:
    write_all(replies, log_frame(line))  # the parent holds the call's deadline


class _StdioToParent:
    """A guest's stdout and stderr sent to the parent as they are written (`stdio_frame`s before the call's reply),
    for a parent that passes them on; a stream whose reader the parent says is gone (`closed_frame`, read when one
    is waiting) fails the guest's writes from then on, as a closed pipe does."""

    def __init__(self, incoming: Incoming, replies: int) -> None:
        self._incoming = incoming
        self._replies = replies
        self.closed: set[int] = set()

    def __call__(self, stream: int, data: bytes, deadline: float) -> bool:  # the deadline is the parent's to keep
        try:
            while self._incoming.ready():
                self.closed.add(read_closed(self._incoming))
        except EOFError:  # the parent is gone
            self.closed.update(STDIO_STREAMS)
        if stream in self.closed:
            return False
        write_all(self._replies, stdio_frame(stream, data))
        return True


def _open(request: dict[str, Any], replies: int, stdio: _StdioToParent) -> Guest:
    checked = request["bundle"]
    source = checked["source"]
    bundle = reopen_verified(
        checked["descriptor"],
        source,
        base64.b64decode(checked["index"]),
        trusted_key_from_table(checked["signer"], source=source),
        prefetch=likely_artifacts(request.get("engine")),
    )
    sandbox = Sandbox.from_json(request["sandbox"]) if request.get("sandbox") else None
    # The start function's CPU time is capped as a call's is: on an engine that cannot interrupt it (Wasmer), a start
    # function spinning after its host was killed would run for ever, the host's deadline gone with it.
    budget = _CpuBudget(bundle.manifest.limits.timeout_ms)

    def instantiating() -> None:
        budget.renew()
        _send(replies, {"instantiating": True})

    return open_guest(
        bundle,
        args=request.get("args", ()),
        env=request.get("env", {}),
        stdin=base64.b64decode(request.get("stdin", "")),
        on_stdio=stdio if request.get("stream_stdio") else None,
        on_log=functools.partial(_send_log, replies) if request.get("stream_logs") else None,
        sandbox=sandbox,
        engine=request.get("engine"),
        cpu_capped=True,  # serve() caps every call's CPU time
        on_instantiate=instantiating,
    )


def _texts(guest: Guest) -> dict[str, list[int]]:
    """Which parameters of each declared export are WIT strings (`Tenant.text_parameters`), where any are."""
    exports = (declared.name for declared in guest.manifest.exports)
    return {name: sorted(texts) for name in exports if (texts := guest.text_parameters(name))}


def serve(requests: int, replies: int) -> None:
    """Opens the guest the first request names, then answers calls until `requests` ends (descriptors)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of the guest's memory or the host's secrets
    _limit_stack()
    incoming = Incoming(requests)
    stdio = _StdioToParent(incoming, replies)
    try:
        guest = _open(read_control(incoming, limit=_START_REQUEST_BYTES), replies, stdio)
    except NgixiError as error:
        _send(replies, {"ok": False, "error": str(error), "exit_code": error.exit_code})
        return
    _send(replies, {"ok": True, "origin": guest.origin, "compiled": guest.compiled, "text_params": _texts(guest)})
    _limit_memory(guest)
    _limit_descriptors(guest)
    budget = _CpuBudget(guest.manifest.limits.timeout_ms)
    answered = False
    while (request := read_call(incoming, stdio.closed.add)) is not None:
        budget.renew()
        if _answered_and_damaged(guest, request, replies):  # the parent, seeing the same reply, replaces this process
            return
        if not answered:  # after the first answer, which a one-shot run waits for and then stops the child
            _keep_call_buffers(guest.manifest)
            answered = True


def _answered_and_damaged(guest: Guest, request: CallRequest, replies: int) -> bool:
    """Answers a call; whether it may have left this process damaged. The reply's buffers are let go on return,
    before the next call reads its input, so that the next call can reuse their memory."""
    reply, damaged = _answer(guest, request)
    write_all(replies, reply)
    return damaged


def _answer(guest: Guest, request: CallRequest) -> tuple[list[bytes], bool]:
    """The reply to a call, and whether the call may have left this process damaged (it then serves no more)."""
    try:
        result = measure(guest, request.export, request.args, request.input)
    except CallFailed as failure:
        component = guest.manifest.guest.type.is_component
        return reply_frame(failure.result, error=str(failure)), spends_the_instance(
            component, failure.outcome, str(failure)
        )
    except NgixiError as error:
        outcome = error.outcome if isinstance(error, GuestError) else "refused"
        return reply_frame(empty_result(outcome), error=str(error), error_exit_code=error.exit_code), False
    return reply_frame(result), False


def main() -> int:
    """Serves the parent on descriptors 0 and 1 (where a fork moved its pipes); the exit status.

    The descriptors, never sys.stdin or sys.stdout, which may hold what the process it was forked from read
    ahead or left unwritten.
    """
    serve(0, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
