"""The `random` capability: WASI random bytes, from the operating system's generator."""

from __future__ import annotations

import os
import time

from ngixi_runtime.capabilities.base import Capability, wasi_import
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import Errno

# Drawn and copied a chunk at a time, the call's deadline looked at before each: a guest in a host function is past
# the engine's deadline, and one drawing its whole memory of a GiB held an in-process call many times its timeout_ms.
_CHUNK = 65536


def _random_get(ctx: HostContext) -> HostFunction:
    def random_get(pointer: int, length: int) -> int:
        if pointer + length > ctx.mem.size_bytes:
            ctx.mem.read(pointer, length)  # raises before anything is drawn: the guest traps, as under Wasmtime
        for offset in range(0, length, _CHUNK):
            if time.monotonic() >= ctx.call_ends_at:
                raise GuestError(
                    f"{ctx.guest}: reached its limits.timeout_ms while drawing random bytes in random_get",
                    outcome="timeout",
                )
            ctx.mem.write(pointer + offset, os.urandom(min(_CHUNK, length - offset)))
        return Errno.SUCCESS

    return random_get


CAPABILITY = Capability(
    "random",
    "WASI random bytes",
    {wasi_import("random_get", "i32 i32"): _random_get},
    wasi_p2={"wasi:random/random": frozenset({"get-random-bytes", "get-random-u64"})},
)
