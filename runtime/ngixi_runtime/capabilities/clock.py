"""The `clock` capability: WASI clocks (wall, monotonic, process and thread CPU time)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ngixi_runtime.capabilities.base import Capability, wasi_import
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.spec.abi import Errno, write_u64

_CLOCKS: dict[int, Callable[[], int]] = {
    0: time.time_ns,
    1: time.monotonic_ns,
    2: time.process_time_ns,
    3: time.thread_time_ns,
}


def _clock_time_get(ctx: HostContext) -> HostFunction:
    def clock_time_get(clock_id: int, precision: int, out: int) -> int:
        clock = _CLOCKS.get(clock_id)
        if clock is None:
            return Errno.INVAL
        write_u64(ctx.mem, out, clock())
        return Errno.SUCCESS

    return clock_time_get


def _clock_res_get(ctx: HostContext) -> HostFunction:
    def clock_res_get(clock_id: int, out: int) -> int:
        if clock_id not in _CLOCKS:
            return Errno.INVAL
        write_u64(ctx.mem, out, 1000)
        return Errno.SUCCESS

    return clock_res_get


_NOW = frozenset({"now", "resolution"})

CAPABILITY = Capability(
    "clock",
    "WASI clocks",
    {
        wasi_import("clock_time_get", "i32 i64 i32"): _clock_time_get,
        wasi_import("clock_res_get", "i32 i32"): _clock_res_get,
    },
    wasi_p2={"wasi:clocks/wall-clock": _NOW, "wasi:clocks/monotonic-clock": _NOW},
)
