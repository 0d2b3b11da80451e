"""Host implementations of every import in the capability registry, independent of the engine.

Each entry takes the per-instance `HostContext` and returns a plain Python callable over
integers; the engine layer wraps it with the signature the registry declares.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ngixi_runtime.capabilities.fs import FILETYPE_CHARACTER_DEVICE, RIGHT_FD_WRITE, WasiFilesystem, fdstat, wasi_errno
from ngixi_runtime.capabilities.http import Address, HttpClient
from ngixi_runtime.capabilities.kv import KvStore
from ngixi_runtime.capabilities.options import FsOptions, HttpOptions, KvOptions
from ngixi_runtime.capabilities.registry import CAPABILITIES, FD_FDSTAT_GET, FD_WRITE
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.abi import AbiFault, Errno, GuestMemory, Status, gather, read_u32, write_u32, write_u64

HostFunction = Callable[..., int | None]
S = TypeVar("S")

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
HOST_LOG_LEVEL = "host"  # log lines the host adds for the operator
STDIO_FDS = (1, 2)


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

    def host_says(self, message: str) -> None:
        """A line from the host for the operator (a refused request, a storage failure), among the logs."""
        self.logs.append(LogLine(HOST_LOG_LEVEL, message))


@dataclass(frozen=True)
class Sandbox:
    """Where one tenant's guest may touch the host: the root its fs preopens live under, its kv database.

    `http_routes` are the operator's overrides of where a (host, port) connects, like curl's
    --connect-to; the allowlist is still checked against the URL the guest asked for.
    """

    files: Path
    kv_database: Path
    http_routes: Mapping[Address, Address] = field(default_factory=dict)

    @classmethod
    def under(cls, directory: Path) -> Sandbox:
        """The layout of a sandbox directory: `files/` and `kv.sqlite3`."""
        return cls(directory / "files", directory / "kv.sqlite3")

    def to_json(self) -> dict[str, Any]:
        routes = [[*source, *target] for source, target in self.http_routes.items()]
        return {"files": str(self.files), "kv_database": str(self.kv_database), "http_routes": routes}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sandbox:
        routes = {(host, port): (address, target) for host, port, address, target in raw["http_routes"]}
        return cls(Path(raw["files"]), Path(raw["kv_database"]), routes)


@dataclass
class HostContext:
    """What host functions of one instance share: its memory, quotas, captured output and capabilities."""

    guest: str
    log_quota: int
    stdio_quota: int
    memory: GuestMemory | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    output: GuestOutput = field(default_factory=GuestOutput)
    on_log: Callable[[LogLine], None] | None = None
    stdio: bool = True
    files: WasiFilesystem | None = None
    http: HttpClient | None = None
    kv: KvStore | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)  # run first by close()

    @property
    def mem(self) -> GuestMemory:
        if self.memory is None:
            raise GuestError(f"{self.guest}: called a host function before its memory was linked")
        return self.memory

    def close(self) -> None:
        """Releases the instance (what registered in `closers`), its open files and its database connection."""
        for closer in self.closers:
            closer()
        if self.files is not None:
            self.files.close()
        if self.kv is not None:
            self.kv.close()


def open_context(
    manifest: Manifest,
    *,
    sandbox: Sandbox | None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    on_log: Callable[[LogLine], None] | None = None,
) -> HostContext:
    """The host side of one instance, with the state of each capability the manifest grants."""
    guest = manifest.guest.name
    context = HostContext(
        guest=guest,
        log_quota=manifest.limits.log_bytes,
        stdio_quota=manifest.limits.stdout_bytes,
        args=tuple(args),
        env=dict(env or {}),
        on_log=on_log,
        stdio="stdio" in manifest.grants,
    )
    fs, http, kv = manifest.options(FsOptions), manifest.options(HttpOptions), manifest.options(KvOptions)
    if (fs or kv) and sandbox is None:
        raise InvalidInput(f"{guest}: its fs and kv capabilities need a sandbox directory (ngixi run --sandbox DIR)")
    if http is not None:
        routes = sandbox.http_routes if sandbox else {}
        context.http = HttpClient(http, guest=guest, routes=routes, report=context.output.host_says)
    if sandbox is not None and kv is not None:
        context.kv = KvStore(kv, sandbox.kv_database, guest=guest, report=context.output.host_says)
    if sandbox is not None and fs is not None:
        context.files = WasiFilesystem.open(fs, sandbox.files, guest=guest)
    return context


def _abort(ctx: HostContext) -> HostFunction:
    def read_string(pointer: int) -> str:
        if pointer == 0:
            return "?"
        size = read_u32(ctx.mem, pointer - 4)
        return ctx.mem.read(pointer, min(size, 4096)).decode("utf-16-le", errors="replace")

    def abort(message: int, file_name: int, line: int, column: int) -> None:
        where = f"{read_string(file_name)}:{line}:{column}"
        raise GuestError(f"{ctx.guest}: guest aborted: {read_string(message)} (at {where})")

    return abort


def _proc_exit(ctx: HostContext) -> HostFunction:
    def proc_exit(code: int) -> None:
        raise GuestExit(code)

    return proc_exit


def write_log(ctx: HostContext, level: int, length: int, message: Callable[[], str]) -> None:
    """Records one log line of `length` bytes, within the guest's log quota (core and component guests)."""
    ctx.output.log_bytes += length
    if ctx.output.log_bytes > ctx.log_quota:
        raise GuestError(f"{ctx.guest}: log output exceeded its quota of {ctx.log_quota} bytes", outcome="quota")
    name = LOG_LEVELS[level] if 0 <= level < len(LOG_LEVELS) else f"level{level}"
    line = LogLine(name, message())
    ctx.output.logs.append(line)
    if ctx.on_log is not None:
        ctx.on_log(line)


def _log(ctx: HostContext) -> HostFunction:
    def log(level: int, pointer: int, length: int) -> None:
        write_log(ctx, level, length, lambda: ctx.mem.read(pointer, length).decode("utf-8", errors="replace"))

    return log


def capture_stdio(ctx: HostContext, fd: int, data: bytes) -> None:
    """Keeps what the guest wrote to stdout (1) or stderr (2), within its quota (core and component guests)."""
    if len(ctx.output.stdout) + len(ctx.output.stderr) + len(data) > ctx.stdio_quota:
        raise GuestError(f"{ctx.guest}: stdout/stderr exceeded its quota of {ctx.stdio_quota} bytes", outcome="quota")
    (ctx.output.stdout if fd == 1 else ctx.output.stderr).extend(data)


def _capture(ctx: HostContext, fd: int, iovs: int, count: int, written: int) -> int:
    data = gather(ctx.mem, iovs, count)
    capture_stdio(ctx, fd, data)
    write_u32(ctx.mem, written, len(data))
    return Errno.SUCCESS


def _fd_write(ctx: HostContext) -> HostFunction:
    """stdout and stderr (the stdio capability) are captured; other descriptors are files (fs)."""
    files = _method(lambda c: c.files, WasiFilesystem.fd_write, _wasi_errno)(ctx)

    def fd_write(fd: int, iovs: int, count: int, written: int) -> int | None:
        if fd in STDIO_FDS and ctx.stdio:
            return _capture(ctx, fd, iovs, count, written)
        if ctx.files is not None and ctx.files.owns(fd):
            return files(fd, iovs, count, written)
        return Errno.BADF

    return fd_write


def _fd_fdstat_get(ctx: HostContext) -> HostFunction:
    files = _method(lambda c: c.files, WasiFilesystem.fd_fdstat_get, _wasi_errno)(ctx)

    def fd_fdstat_get(fd: int, out: int) -> int | None:
        if fd in STDIO_FDS and ctx.stdio:
            ctx.mem.write(out, fdstat(FILETYPE_CHARACTER_DEVICE, 0, RIGHT_FD_WRITE, 0))
            return Errno.SUCCESS
        if ctx.files is not None and ctx.files.owns(fd):
            return files(fd, out)
        return Errno.BADF

    return fd_fdstat_get


def _method(
    state: Callable[[HostContext], S | None],
    method: Callable[..., None],
    os_error: Callable[[HostContext, OSError], int],
) -> Callable[[HostContext], HostFunction]:
    """A host function calling `method(state, memory, *args)`: 0 on success, else the fault's code."""

    def bind(ctx: HostContext) -> HostFunction:
        def call(*args: int) -> int:
            target = state(ctx)
            if target is None:
                raise GuestError(f"{ctx.guest}: called a host function of a capability it was not granted")
            try:
                method(target, ctx.mem, *args)
            except AbiFault as fault:
                return fault.code
            except OSError as error:
                return os_error(ctx, error)
            return 0

        return call

    return bind


def _host_failure(ctx: HostContext, error: OSError) -> int:
    ctx.output.host_says(f"{ctx.guest}: host failure: {error}")
    return Status.HOST_FAILURE


def _wasi_errno(ctx: HostContext, error: OSError) -> int:
    return wasi_errno(error)


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


def _random_get(ctx: HostContext) -> HostFunction:
    def random_get(pointer: int, length: int) -> int:
        ctx.mem.write(pointer, os.urandom(length))
        return Errno.SUCCESS

    return random_get


def _string_table(
    items: Callable[[HostContext], list[bytes]],
) -> tuple[Callable[[HostContext], HostFunction], Callable[[HostContext], HostFunction]]:
    """The WASI `*_sizes_get` / `*_get` pair for a list of NUL-terminated strings."""

    def sizes(ctx: HostContext) -> HostFunction:
        def sizes_get(count_pointer: int, size_pointer: int) -> int:
            values = items(ctx)
            write_u32(ctx.mem, count_pointer, len(values))
            write_u32(ctx.mem, size_pointer, sum(len(v) for v in values))
            return Errno.SUCCESS

        return sizes_get

    def get(ctx: HostContext) -> HostFunction:
        def table_get(pointers: int, buffer: int) -> int:
            for index, value in enumerate(items(ctx)):
                write_u32(ctx.mem, pointers + 4 * index, buffer)
                ctx.mem.write(buffer, value)
                buffer += len(value)
            return Errno.SUCCESS

        return table_get

    return sizes, get


_args_sizes_get, _args_get = _string_table(lambda ctx: [a.encode() + b"\0" for a in (ctx.guest, *ctx.args)])
_environ_sizes_get, _environ_get = _string_table(
    lambda ctx: [f"{k}={v}".encode() + b"\0" for k, v in sorted(ctx.env.items())]
)


def _capability_methods(
    capability: str, state: Callable[[HostContext], Any], kind: type, os_error: Callable[[HostContext, OSError], int]
) -> dict[str, Callable[[HostContext], HostFunction]]:
    """Every import of a capability implemented by the method of the same name on its state class."""
    shared = (FD_WRITE, FD_FDSTAT_GET)
    return {
        i.qualified: _method(state, getattr(kind, i.name), os_error)
        for i in CAPABILITIES[capability].imports
        if i not in shared
    }


HOST_FUNCTIONS: dict[str, Callable[[HostContext], HostFunction]] = {
    "env.abort": _abort,
    "wasi_snapshot_preview1.proc_exit": _proc_exit,
    "ngixi.log": _log,
    "wasi_snapshot_preview1.fd_write": _fd_write,
    "wasi_snapshot_preview1.fd_fdstat_get": _fd_fdstat_get,
    "wasi_snapshot_preview1.clock_time_get": _clock_time_get,
    "wasi_snapshot_preview1.clock_res_get": _clock_res_get,
    "wasi_snapshot_preview1.random_get": _random_get,
    "wasi_snapshot_preview1.args_sizes_get": _args_sizes_get,
    "wasi_snapshot_preview1.args_get": _args_get,
    "wasi_snapshot_preview1.environ_sizes_get": _environ_sizes_get,
    "wasi_snapshot_preview1.environ_get": _environ_get,
    **_capability_methods("fs", lambda c: c.files, WasiFilesystem, _wasi_errno),
    **_capability_methods("http", lambda c: c.http, HttpClient, _host_failure),
    **_capability_methods("kv", lambda c: c.kv, KvStore, _host_failure),
}
