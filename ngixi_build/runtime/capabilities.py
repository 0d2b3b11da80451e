"""The capability registry: which host imports each capability grants.

The same table drives build-time validation (`check.py`) and load-time linking (`hostfuncs.py`),
so what a manifest is allowed and what the loader links cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .wasm import Signature

WASI = "wasi_snapshot_preview1"


@dataclass(frozen=True)
class HostImport:
    module: str
    name: str
    signature: Signature

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Capability:
    name: str
    summary: str
    imports: tuple[HostImport, ...]


def _imp(module: str, name: str, params: str, results: str = "") -> HostImport:
    return HostImport(module, name, Signature(tuple(params.split()), tuple(results.split())))


BASELINE = Capability(
    "baseline",
    "granted to every guest: abort with a message, and exit",
    (_imp("env", "abort", "i32 i32 i32 i32"), _imp(WASI, "proc_exit", "i32")),
)

CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability("log", "structured log lines to the host", (_imp("ngixi", "log", "i32 i32 i32"),)),
        Capability(
            "stdio",
            "WASI stdout/stderr, captured by the host",
            (_imp(WASI, "fd_write", "i32 i32 i32 i32", "i32"),),
        ),
        Capability(
            "clock",
            "WASI clocks",
            (
                _imp(WASI, "clock_time_get", "i32 i64 i32", "i32"),
                _imp(WASI, "clock_res_get", "i32 i32", "i32"),
            ),
        ),
        Capability("random", "WASI random bytes", (_imp(WASI, "random_get", "i32 i32", "i32"),)),
        Capability(
            "args",
            "WASI command-line arguments",
            (
                _imp(WASI, "args_sizes_get", "i32 i32", "i32"),
                _imp(WASI, "args_get", "i32 i32", "i32"),
            ),
        ),
        Capability(
            "env",
            "WASI environment variables",
            (
                _imp(WASI, "environ_sizes_get", "i32 i32", "i32"),
                _imp(WASI, "environ_get", "i32 i32", "i32"),
            ),
        ),
    )
}

HOST_MODULES = frozenset(i.module for c in (BASELINE, *CAPABILITIES.values()) for i in c.imports)


def provider_of(module: str, name: str) -> tuple[Capability, HostImport] | None:
    """The capability (or the baseline) that grants an import, if any does."""
    for capability in (BASELINE, *CAPABILITIES.values()):
        for host_import in capability.imports:
            if (host_import.module, host_import.name) == (module, name):
                return capability, host_import
    return None


def granted_imports(grants: frozenset[str]) -> tuple[HostImport, ...]:
    """Every import a guest with these grants may link, the baseline included."""
    chosen = [BASELINE] + [CAPABILITIES[name] for name in sorted(grants)]
    return tuple(i for c in chosen for i in c.imports)
