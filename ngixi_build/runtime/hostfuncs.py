"""Host implementations of every import in the capability registry, independent of the engine.

Each entry takes the per-instance `HostContext` and returns a plain Python callable over
integers; the engine layer wraps it with the signature the registry declares.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import GuestError

HostFunction = Callable[..., int | None]

ERRNO_SUCCESS = 0
ERRNO_BADF = 8
ERRNO_INVAL = 28
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


class GuestMemory(Protocol):
    def read(self, pointer: int, length: int) -> bytes: ...

    def write(self, pointer: int, data: bytes) -> None: ...


class GuestExit(Exception):
    """Raised by proc_exit to unwind the guest; carries its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit {code}")
        self.code = code


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str


@dataclass
class GuestOutput:
    logs: list[LogLine] = field(default_factory=list)
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    log_bytes: int = 0
    host_calls: Counter[str] = field(default_factory=Counter)

    def take(self) -> GuestOutput:
        """Everything one call produced, leaving this empty: output quotas apply per call."""
        taken = dataclasses.replace(self)
        self.logs, self.stdout, self.stderr, self.log_bytes, self.host_calls = (
            [],
            bytearray(),
            bytearray(),
            0,
            Counter(),
        )
        return taken

    @property
    def size(self) -> int:
        return self.log_bytes + len(self.stdout) + len(self.stderr)


@dataclass
class HostContext:
    """What host functions of one instance share: its memory, quotas and captured output."""

    guest: str
    log_quota: int
    stdio_quota: int
    memory: GuestMemory | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    output: GuestOutput = field(default_factory=GuestOutput)
    on_log: Callable[[LogLine], None] | None = None

    @property
    def mem(self) -> GuestMemory:
        if self.memory is None:
            raise GuestError(f"{self.guest}: called a host function before its memory was linked")
        return self.memory


def _read_u32(memory: GuestMemory, pointer: int) -> int:
    value: int = struct.unpack("<I", memory.read(pointer, 4))[0]
    return value


def _abort(ctx: HostContext) -> HostFunction:
    def read_string(pointer: int) -> str:
        if pointer == 0:
            return "?"
        size = _read_u32(ctx.mem, pointer - 4)
        return ctx.mem.read(pointer, min(size, 4096)).decode("utf-16-le", errors="replace")

    def abort(message: int, file_name: int, line: int, column: int) -> None:
        where = f"{read_string(file_name)}:{line}:{column}"
        raise GuestError(f"{ctx.guest}: guest aborted: {read_string(message)} (at {where})")

    return abort


def _proc_exit(ctx: HostContext) -> HostFunction:
    def proc_exit(code: int) -> None:
        raise GuestExit(code)

    return proc_exit


def _log(ctx: HostContext) -> HostFunction:
    def log(level: int, pointer: int, length: int) -> None:
        ctx.output.log_bytes += length
        if ctx.output.log_bytes > ctx.log_quota:
            raise GuestError(f"{ctx.guest}: log output exceeded its quota of {ctx.log_quota} bytes", outcome="quota")
        name = LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else f"level{level}"
        line = LogLine(name, ctx.mem.read(pointer, length).decode("utf-8", errors="replace"))
        ctx.output.logs.append(line)
        if ctx.on_log is not None:
            ctx.on_log(line)

    return log


def _fd_write(ctx: HostContext) -> HostFunction:
    def fd_write(fd: int, iovs: int, iovs_len: int, written_pointer: int) -> int:
        sink = {1: ctx.output.stdout, 2: ctx.output.stderr}.get(fd)
        if sink is None:
            return ERRNO_BADF
        chunks = [
            ctx.mem.read(_read_u32(ctx.mem, iovs + 8 * i), _read_u32(ctx.mem, iovs + 8 * i + 4))
            for i in range(iovs_len)
        ]
        data = b"".join(chunks)
        if len(ctx.output.stdout) + len(ctx.output.stderr) + len(data) > ctx.stdio_quota:
            raise GuestError(
                f"{ctx.guest}: stdout/stderr exceeded its quota of {ctx.stdio_quota} bytes", outcome="quota"
            )
        sink += data
        ctx.mem.write(written_pointer, struct.pack("<I", len(data)))
        return ERRNO_SUCCESS

    return fd_write


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
            return ERRNO_INVAL
        ctx.mem.write(out, struct.pack("<Q", clock()))
        return ERRNO_SUCCESS

    return clock_time_get


def _clock_res_get(ctx: HostContext) -> HostFunction:
    def clock_res_get(clock_id: int, out: int) -> int:
        if clock_id not in _CLOCKS:
            return ERRNO_INVAL
        ctx.mem.write(out, struct.pack("<Q", 1000))
        return ERRNO_SUCCESS

    return clock_res_get


def _random_get(ctx: HostContext) -> HostFunction:
    def random_get(pointer: int, length: int) -> int:
        ctx.mem.write(pointer, os.urandom(length))
        return ERRNO_SUCCESS

    return random_get


def _string_table(
    items: Callable[[HostContext], list[bytes]],
) -> tuple[Callable[[HostContext], HostFunction], Callable[[HostContext], HostFunction]]:
    """The WASI `*_sizes_get` / `*_get` pair for a list of NUL-terminated strings."""

    def sizes(ctx: HostContext) -> HostFunction:
        def sizes_get(count_pointer: int, size_pointer: int) -> int:
            values = items(ctx)
            ctx.mem.write(count_pointer, struct.pack("<I", len(values)))
            ctx.mem.write(size_pointer, struct.pack("<I", sum(len(v) for v in values)))
            return ERRNO_SUCCESS

        return sizes_get

    def get(ctx: HostContext) -> HostFunction:
        def table_get(pointers: int, buffer: int) -> int:
            for index, value in enumerate(items(ctx)):
                ctx.mem.write(pointers + 4 * index, struct.pack("<I", buffer))
                ctx.mem.write(buffer, value)
                buffer += len(value)
            return ERRNO_SUCCESS

        return table_get

    return sizes, get


_args_sizes_get, _args_get = _string_table(lambda ctx: [a.encode() + b"\0" for a in (ctx.guest, *ctx.args)])
_environ_sizes_get, _environ_get = _string_table(
    lambda ctx: [f"{k}={v}".encode() + b"\0" for k, v in sorted(ctx.env.items())]
)

HOST_FUNCTIONS: dict[str, Callable[[HostContext], HostFunction]] = {
    "env.abort": _abort,
    "wasi_snapshot_preview1.proc_exit": _proc_exit,
    "ngixi.log": _log,
    "wasi_snapshot_preview1.fd_write": _fd_write,
    "wasi_snapshot_preview1.clock_time_get": _clock_time_get,
    "wasi_snapshot_preview1.clock_res_get": _clock_res_get,
    "wasi_snapshot_preview1.random_get": _random_get,
    "wasi_snapshot_preview1.args_sizes_get": _args_sizes_get,
    "wasi_snapshot_preview1.args_get": _args_get,
    "wasi_snapshot_preview1.environ_sizes_get": _environ_sizes_get,
    "wasi_snapshot_preview1.environ_get": _environ_get,
}
