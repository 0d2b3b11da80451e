"""The `env` capability: WASI environment variables, only those the caller passes (never the host's)."""

from __future__ import annotations

from ngixi_runtime.capabilities.base import Capability, string_table

CAPABILITY = Capability(
    "env",
    "WASI environment variables",
    string_table("environ", lambda ctx: [f"{k}={v}".encode() + b"\0" for k, v in sorted(ctx.env.items())]),
    wasi_p2={"wasi:cli/environment": frozenset({"get-environment"})},
)
