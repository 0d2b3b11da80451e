"""The `args` capability: WASI command-line arguments, the guest's name first, then the caller's."""

from __future__ import annotations

from ngixi_runtime.capabilities.base import Capability, string_table

CAPABILITY = Capability(
    "args",
    "WASI command-line arguments",
    string_table("args", lambda ctx: [a.encode() + b"\0" for a in (ctx.guest, *ctx.args)]),
    wasi_p2={"wasi:cli/environment": frozenset({"get-arguments"})},
)
