"""The `stdin` capability: WASI standard input (fd 0), the caller's bytes, at most `max_bytes` of them.

[capabilities.stdin]
max_bytes = 1048576     # the most input a caller may give the guest (default 1 MiB, at most 64 MiB)

The caller gives the bytes when it loads the guest (`ngixi run` passes its own stdin, the API takes
bytes or a reader), read whole before the guest starts: input that has not ended within limits.timeout_ms is
refused, as is more than max_bytes. Each instance reads them from the start, and reads past their end find
end-of-file.
Without this grant, fd 0 is not open (fs answers BADF for it). A component guest reads them through
Wasmtime's WASI (`wasi:cli/stdin`); without the grant its stdin is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ngixi_runtime.capabilities.base import (
    FD_CLOSE,
    FD_FDSTAT_GET,
    FD_SEEK,
    OUTPUT_WASI_P2,
    Bounds,
    Capability,
    at_most,
    bounded,
    ceiling_bound,
    descriptor_methods,
    stream_close,
    stream_fdstat_get,
    stream_seek,
    wasi_import,
)
from ngixi_runtime.capabilities.context import HostContext, HostFunction, Sandbox, Stdin, StdinState, read_whole
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import (
    RIGHT_FD_READ,
    AbiFault,
    Errno,
    capacity,
    scatter,
    write_u32,
)
from ngixi_runtime.spec.schema import Problems

STDIN_FD = 0
MAX_BYTES = Bounds(1 << 20, 0, 64 << 20)
FD_READ = wasi_import("fd_read", "i32 i32 i32 i32")
# What the adapter imports behind fd_read and fd_fdstat_get: its descriptor table (stdio's streams and the
# preopens, which only fs's mounts fill; writes to stdout still need stdio) and reading a stream.
_READ_WASI_P2 = {
    **{name: functions for name, functions in OUTPUT_WASI_P2.items() if name != "wasi:io/streams"},
    "wasi:io/streams": frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"}),
    "wasi:filesystem/types": OUTPUT_WASI_P2["wasi:filesystem/types"] | descriptor_methods("read-via-stream"),
}


class StdinOptions(NamedTuple):
    max_bytes: int


def parse_stdin(raw: Mapping[str, Any], field: str, problems: Problems) -> StdinOptions:
    problems.unknown_keys(raw, ("max_bytes",), field)
    return StdinOptions(bounded(raw, "max_bytes", field, problems, MAX_BYTES))


class StdinCeiling(NamedTuple):
    max_bytes: int | None

    def exceeded(self, options: StdinOptions, field: str) -> list[str]:
        return at_most(f"{field}.max_bytes", options.max_bytes, self.max_bytes, default=MAX_BYTES.default)


def parse_stdin_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> StdinCeiling:
    problems.unknown_keys(raw, ("max_bytes",), field)
    return StdinCeiling(ceiling_bound(raw, "max_bytes", field, problems, MAX_BYTES))


def caller_input(guest: str, options: StdinOptions | None, given: Stdin | None, *, timeout_ms: int) -> bytes:
    """The input a guest granted `options` (None: not granted) gets from what its caller gives.

    Bytes for a guest without the grant, or more than its max_bytes, are refused; a reader is asked
    only when the guest is granted stdin, and its input refused unless it ends within `timeout_ms`.
    """
    if given is None or (options is None and callable(given)):
        return b""
    if options is None:
        if not given:
            return b""
        raise InvalidInput(f"{guest}: it is not granted [capabilities.stdin], so it takes no standard input")
    subject = f"{guest}: its standard input"
    data = read_whole(given, options.max_bytes, timeout_ms, subject=subject) if callable(given) else given
    if len(data) > options.max_bytes:
        raise InvalidInput(
            f"{guest}: its standard input is over capabilities.stdin.max_bytes = {options.max_bytes} bytes; "
            "give less, or raise max_bytes in the manifest"
        )
    return bytes(data)


def _open_state(options: StdinOptions, context: HostContext, sandbox: Sandbox | None) -> StdinState:
    return StdinState(context.stdin)


def _state(ctx: HostContext) -> StdinState:
    state = ctx.states["stdin"]
    assert isinstance(state, StdinState)
    return state


def _fd_read(ctx: HostContext) -> HostFunction:
    def fd_read(fd: int, iovs: int, count: int, done: int) -> int:
        if fd != STDIN_FD:
            return Errno.BADF
        try:
            data = _state(ctx).read(capacity(ctx.mem, iovs, count))
            write_u32(ctx.mem, done, scatter(ctx.mem, iovs, count, data))
        except AbiFault as fault:
            return fault.code
        return Errno.SUCCESS

    return fd_read


CAPABILITY = Capability(
    "stdin",
    "WASI standard input: the caller's bytes",
    {
        FD_READ: _fd_read,
        FD_FDSTAT_GET: stream_fdstat_get((STDIN_FD,), RIGHT_FD_READ),
        FD_SEEK: stream_seek((STDIN_FD,)),
        FD_CLOSE: stream_close((STDIN_FD,)),
    },
    parse_options=parse_stdin,
    parse_ceiling=parse_stdin_ceiling,
    open_state=_open_state,
    wasi_p2=_READ_WASI_P2,
)
