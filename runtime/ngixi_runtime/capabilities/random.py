"""The `random` capability: WASI random bytes, from the operating system's generator."""

from __future__ import annotations

import os

from ngixi_runtime.capabilities.base import Capability, wasi_import
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.spec.abi import Errno

_CHUNK = 65536


def _random_get(ctx: HostContext) -> HostFunction:
    def random_get(pointer: int, length: int) -> int:
        if length < 0:
            return Errno.INVAL
        ctx.mem.write(pointer + length, b"")  # the end must lie in guest memory before anything is drawn
        for offset in range(0, length, _CHUNK):
            ctx.mem.write(pointer + offset, os.urandom(min(_CHUNK, length - offset)))
        return Errno.SUCCESS

    return random_get


CAPABILITY = Capability(
    "random",
    "WASI random bytes",
    {wasi_import("random_get", "i32 i32"): _random_get},
    wasi_p2={"wasi:random/random": frozenset({"get-random-bytes"})},
)
