"""The `clock` capability: WASI clocks (wall, monotonic, process and thread CPU time), and waiting on them.

The monotonic clock counts from the instance's start (its host context's making), as Wasmtime's WASI does (a
component guest's too): the host's own counts from its boot, which a guest has no business knowing. The process and
thread CPU clocks count the CPU time of the instance's own calls (`_CpuClock`), never the host's process or thread.

`poll_oneoff` sleeps until the first clock subscription is due (at most until the call's own deadline);
descriptor subscriptions are answered by the fs capability's descriptor table when it is granted (files
are always ready), else stdin (when granted) is ready to read and stdout and stderr (when stdio is
granted) to write. A subscription that cannot be waited on (a descriptor closed or not open for that way, a
clock or event type WASI does not define) fails the whole call with its errno, as Wasmtime's WASI answers and
its own test programs expect; witx does not say.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from typing import Protocol, cast

from ngixi_runtime.capabilities.base import Capability, wasi_import
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import U64, AbiFault, Errno, write_u32, write_u64

_MONOTONIC = 1
_CPU_CLOCKS = frozenset({2, 3})  # the process's and the thread's CPU time
_CLOCKS: dict[int, Callable[[], int]] = {
    0: time.time_ns,
    _MONOTONIC: time.monotonic_ns,
    2: time.thread_time_ns,
    3: time.thread_time_ns,
}
_HOST_CLOCK_IDS = {
    0: time.CLOCK_REALTIME,
    1: time.CLOCK_MONOTONIC,
    2: time.CLOCK_THREAD_CPUTIME_ID,  # both count the calling thread (`_CpuClock`)
    3: time.CLOCK_THREAD_CPUTIME_ID,
}


@functools.cache
def _resolution_ns(clock_id: int) -> int:
    """The host clock's own resolution in nanoseconds (at least 1), as clock_getres(2) reports it."""
    return max(1, round(time.clock_getres(_HOST_CLOCK_IDS[clock_id]) * 1_000_000_000))


def _now(ctx: HostContext, clock_id: int) -> int:
    """The guest's reading of a clock WASI defines (else `INVAL`)."""
    clock = _CLOCKS.get(clock_id)
    if clock is None:
        raise AbiFault(Errno.INVAL)
    if clock_id == _MONOTONIC:
        return clock() - ctx.clock_origin_ns
    if clock_id in _CPU_CLOCKS:
        return cast(_CpuClock, ctx.states.setdefault("clock", _CpuClock())).read(ctx.call_ends_at)
    return clock()


class _CpuClock:
    """The CPU time of an instance's own calls, as its process and thread CPU clocks read: the host's process CPU time
    told a guest run in-process how much CPU the host and other tenants used meanwhile (and an isolated child's, how
    much its host side used), and the host thread's, what else ran on that thread between its calls. Each call counts
    on from the last reading of the one before, on the thread it runs on, from its own first reading."""

    __slots__ = ("base_ns", "call", "last_ns", "origin_ns")

    def __init__(self) -> None:
        self.call = -1.0  # the call being counted, known by its deadline (`HostContext.call_ends_at`)
        self.base_ns = self.last_ns = self.origin_ns = 0

    def read(self, call: float) -> int:
        now = time.thread_time_ns()
        if call != self.call:
            self.call, self.base_ns, self.origin_ns = call, self.last_ns, now
        self.last_ns = self.base_ns + now - self.origin_ns
        return self.last_ns

    def close(self) -> None:
        """Nothing to release."""


def _clock_time_get(ctx: HostContext) -> HostFunction:
    def clock_time_get(clock_id: int, precision: int, out: int) -> int:
        try:
            now = _now(ctx, clock_id)
        except AbiFault as fault:
            return fault.code
        write_u64(ctx.mem, out, now)
        return Errno.SUCCESS

    return clock_time_get


def _clock_res_get(ctx: HostContext) -> HostFunction:
    def clock_res_get(clock_id: int, out: int) -> int:
        if clock_id not in _CLOCKS:
            return Errno.INVAL
        write_u64(ctx.mem, out, _resolution_ns(clock_id))
        return Errno.SUCCESS

    return clock_res_get


SUBSCRIPTION = struct.Struct("<QB7xI4xQQH6x")  # userdata, tag, then the clock's id, timeout, precision, flags
EVENT = struct.Struct("<QHB5xQH6x")  # userdata, error, type, nbytes, flags
MAX_SUBSCRIPTIONS = 4096
_CLOCK, _FD_READ, _FD_WRITE = 0, 1, 2
_ABSTIME = 1


class Input(Protocol):
    """The caller's bytes on stdin, as poll_oneoff asks them without fs (stdin's state)."""

    @property
    def left(self) -> int: ...


class Descriptors(Protocol):
    """The instance's descriptor table, as poll_oneoff asks it (fs's state)."""

    def ready(self, fd: int, writing: bool) -> tuple[int, int]: ...


def _poll_oneoff(ctx: HostContext) -> HostFunction:
    def poll_oneoff(subscriptions: int, events: int, count: int, written: int) -> int:
        if not 0 < count <= MAX_SUBSCRIPTIONS:
            return Errno.INVAL
        try:
            raw = ctx.mem.read(subscriptions, SUBSCRIPTION.size * count)
            found = _answer(ctx, [SUBSCRIPTION.unpack_from(raw, i * SUBSCRIPTION.size) for i in range(count)])
        except AbiFault as fault:
            return fault.code
        ctx.mem.write(events, b"".join(found))
        write_u32(ctx.mem, written, len(found))
        return Errno.SUCCESS

    return poll_oneoff


def _answer(ctx: HostContext, subscriptions: list[tuple[int, int, int, int, int, int]]) -> list[bytes]:
    """The events, each subscription looked at in the guest's order: the first that cannot be waited on fails the
    call with its errno, as Wasmtime's WASI answers."""
    found: list[bytes] = []
    due: list[tuple[int, int]] = []  # (nanoseconds from now, userdata) per clock subscription
    for userdata, tag, which, timeout, _, flags in subscriptions:
        if tag != _CLOCK:
            found.append(_descriptor_event(ctx, userdata, tag, which))
            continue
        now = _now(ctx, which)
        due.append((max(0, (timeout & U64) - now) if flags & _ABSTIME else timeout & U64, userdata))
    if found or not due:
        return found
    wait = min(delay for delay, _ in due)
    left = ctx.call_ends_at - time.monotonic()
    if wait / 1e9 > left:  # waking the guest early would make it believe it slept: the call ends as a timeout
        time.sleep(max(0.0, left))
        raise GuestError(f"{ctx.guest}: reached its limits.timeout_ms while sleeping in poll_oneoff", outcome="timeout")
    time.sleep(wait / 1e9)
    return [EVENT.pack(userdata, Errno.SUCCESS, _CLOCK, 0, 0) for delay, userdata in due if delay <= wait]


def _descriptor_event(ctx: HostContext, userdata: int, tag: int, fd: int) -> bytes:
    if tag not in (_FD_READ, _FD_WRITE):
        raise AbiFault(Errno.INVAL)
    table = ctx.states.get("fs")
    if table is not None:
        error, available = cast(Descriptors, table).ready(fd, tag == _FD_WRITE)
        return EVENT.pack(userdata, error, tag, available, 0)
    if tag == _FD_WRITE and fd in (1, 2) and "stdio" in ctx.grants:
        return EVENT.pack(userdata, Errno.SUCCESS, tag, ctx.stdio_room(), 0)
    stdin = ctx.states.get("stdin")
    if tag == _FD_READ and fd == 0 and stdin is not None:
        return EVENT.pack(userdata, Errno.SUCCESS, tag, cast(Input, stdin).left, 0)
    raise AbiFault(Errno.BADF)


_NOW = frozenset({"now", "resolution"})

CAPABILITY = Capability(
    "clock",
    "WASI clocks",
    {
        wasi_import("clock_time_get", "i32 i64 i32"): _clock_time_get,
        wasi_import("clock_res_get", "i32 i32"): _clock_res_get,
        wasi_import("poll_oneoff", "i32 i32 i32 i32"): _poll_oneoff,
    },
    wasi_p2={
        "wasi:clocks/wall-clock": _NOW,
        "wasi:clocks/monotonic-clock": _NOW | {"subscribe-duration", "subscribe-instant"},
        # What the preview 1 adapter's poll_oneoff imports: waiting, on clocks and on stdio streams.
        "wasi:io/poll": frozenset({"poll", "[method]pollable.block", "[method]pollable.ready"}),
        "wasi:io/streams": frozenset({"[method]input-stream.subscribe", "[method]output-stream.subscribe"}),
    },
)
