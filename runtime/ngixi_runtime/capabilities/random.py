"""The `random` capability: WASI random bytes, from the operating system's generator."""

from __future__ import annotations

import os

from ngixi_runtime.capabilities.base import Capability, wasi_import
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.spec.abi import Errno


def _random_get(ctx: HostContext) -> HostFunction:
    def random_get(pointer: int, length: int) -> int:
        ctx.mem.write(pointer, os.urandom(length))
        return Errno.SUCCESS

    return random_get


CAPABILITY = Capability(
    "random",
    "WASI random bytes",
    {wasi_import("random_get", "i32 i32"): _random_get},
    wasi_p2={"wasi:random/random": frozenset({"get-random-bytes"})},
)
