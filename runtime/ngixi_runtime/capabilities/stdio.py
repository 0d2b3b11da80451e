"""The `stdio` capability: WASI stdout and stderr (fds 1 and 2), captured by the host within a quota.

Its imports are also granted by fs, for files: each capability answers for its own descriptors. `fd_seek` (SPIPE)
and `fd_close` on these two streams are there for C's buffered stdio, whose `printf` imports them.
"""

from __future__ import annotations

from ngixi_runtime.capabilities.base import (
    FD_CLOSE,
    FD_FDSTAT_GET,
    FD_SEEK,
    FD_WRITE,
    OUTPUT_WASI_P2,
    Capability,
    stream_close,
    stream_fdstat_get,
    stream_seek,
)
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.spec.abi import (
    RIGHT_FD_WRITE,
    AbiFault,
    Errno,
    gather,
    write_u32,
)

STDIO_FDS = (1, 2)
# What a JavaScript component's console (componentize-js with stdio) imports beside the writes: polling its
# streams and reading stdin, which Wasmtime's WASI leaves empty for a component not granted stdin; with no
# clock import there is no pollable to time anything by.
_CONSOLE_WASI_P2 = {
    "wasi:io/poll": frozenset({"poll", "[method]pollable.block"}),
    "wasi:io/streams": OUTPUT_WASI_P2["wasi:io/streams"]
    | frozenset(
        {
            "[method]input-stream.blocking-read",
            "[method]input-stream.read",
            "[method]input-stream.subscribe",
            "[method]output-stream.subscribe",
        }
    ),
}


def _fd_write(ctx: HostContext) -> HostFunction:
    def fd_write(fd: int, iovs: int, count: int, written: int) -> int:
        if fd not in STDIO_FDS:
            return Errno.BADF
        try:  # one byte over the quota is enough for capture_stdio to refuse it
            data = gather(ctx.mem, iovs, count, ctx.stdio_room() + 1)
        except AbiFault as fault:
            return fault.code
        if not ctx.capture_stdio(fd, data):
            return Errno.PIPE
        write_u32(ctx.mem, written, len(data))
        return Errno.SUCCESS

    return fd_write


CAPABILITY = Capability(
    "stdio",
    "WASI stdout/stderr, captured by the host",
    {
        FD_WRITE: _fd_write,
        FD_FDSTAT_GET: stream_fdstat_get(STDIO_FDS, RIGHT_FD_WRITE),
        FD_SEEK: stream_seek(STDIO_FDS),
        FD_CLOSE: stream_close(STDIO_FDS),
    },
    wasi_p2={**OUTPUT_WASI_P2, **_CONSOLE_WASI_P2},
)
