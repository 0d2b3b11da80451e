"""The `log` capability: structured log lines to the host, within the guest's log quota.

Core guests call `ngixi.log(level, pointer, length)`; component guests the `log` interface of the
WIT catalog, whose functions the engine hands a Python `str`. A JavaScript component's exports, wrapped by the build,
log `out of memory (in EXPORT)` at level error when SpiderMonkey finds no memory for an allocation, then trap: the
host cannot see a component's memory, so that line is how the loader tells the trap is the memory running out.
"""

from __future__ import annotations

from collections.abc import Callable

from ngixi_runtime.capabilities.base import Capability, ComponentFunction, host_import
from ngixi_runtime.capabilities.component import utf8_length
from ngixi_runtime.capabilities.context import LOG_LEVELS, LOG_LINES_PER_CALL, HostContext, HostFunction, LogLine
from ngixi_runtime.errors import GuestError

INFO = LOG_LEVELS.index("info")
_LEVELS_SHOWN = ", ".join(f"{number} {name}" for number, name in enumerate(LOG_LEVELS))


def write_log(ctx: HostContext, level: int, length: int, message: Callable[[], str]) -> None:
    """Records one log line of `length` bytes, within the guest's log quota (core and component guests).

    An empty line counts as one byte, and a call logs at most `LOG_LINES_PER_CALL` lines, so that what the lines cost
    the host beside their bytes is bounded whatever the quota. A line over either is not counted: the call's output
    bytes are what it kept, within what an isolated child's reply may say."""
    counted = ctx.output.log_bytes + max(length, 1)
    if counted > ctx.log_quota:
        raise GuestError(
            f"{ctx.guest}: log output exceeded its quota of {ctx.log_quota} bytes (limits.log_bytes)", outcome="quota"
        )
    if ctx.output.log_lines >= LOG_LINES_PER_CALL:
        raise GuestError(f"{ctx.guest}: log output exceeded {LOG_LINES_PER_CALL} lines in one call", outcome="quota")
    ctx.output.log_bytes = counted
    ctx.output.log_lines += 1
    ctx.output.log(LogLine(LOG_LEVELS[level], message()))


def _log(ctx: HostContext) -> HostFunction:
    def log(level: int, pointer: int, length: int) -> None:
        if level >= len(LOG_LEVELS):  # the catalog's log.level is an enum, which a component cannot pass either
            given = level - (1 << 32) if level >> 31 else level  # the i32 the guest passed
            raise GuestError(f"{ctx.guest}: it logged at level {given}, which is none of {_LEVELS_SHOWN}")
        write_log(ctx, level, length, lambda: ctx.mem.read(pointer, length).decode("utf-8", errors="replace"))

    return log


def _write(ctx: HostContext) -> ComponentFunction:
    return lambda message: write_log(ctx, INFO, utf8_length(message), lambda: message)


def _write_at(ctx: HostContext) -> ComponentFunction:
    def write_at(level: str, message: str) -> None:
        write_log(ctx, LOG_LEVELS.index(level), utf8_length(message), lambda: message)
        if level == "error" and message == f"out of memory (in {ctx.data.export})":
            ctx.out_of_memory = True

    return write_at


CAPABILITY = Capability(
    "log",
    "structured log lines to the host",
    {host_import("ngixi", "log", "i32 i32 i32"): _log},
    interface="log",
    component_host={"write": _write, "write-at": _write_at},
    component_types={
        "write": (("string",), ()),
        "write-at": ((f"enum {{ {', '.join(LOG_LEVELS)} }}", "string"), ()),
    },
)
