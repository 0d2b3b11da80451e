"""Target triples we precompile for, their CPU-feature baselines, and what this host offers."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .errors import InvalidInput


@dataclass(frozen=True)
class Target:
    triple: str
    cpu_features: tuple[str, ...]


# Explicit baselines, so an artifact never silently needs the build machine's CPU.
# x86_64 needs SSE2 or Cranelift panics; aarch64 gets no x86 names.
SUPPORTED_TARGETS: dict[str, Target] = {
    t.triple: t
    for t in (
        Target("x86_64-unknown-linux-gnu", ("sse2",)),
        Target("aarch64-unknown-linux-gnu", ()),
        Target("x86_64-apple-darwin", ("sse2",)),
        Target("aarch64-apple-darwin", ()),
    )
}
DEFAULT_TARGETS = tuple(SUPPORTED_TARGETS)

_KNOWN_UNSUPPORTED = {
    "windows": "Wasmer 2.1's Cranelift panics on Windows unwind information",
    "riscv64": "Wasmer 2.1's Cranelift has no riscv64 backend",
}

# /proc/cpuinfo and sysctl spellings → the names Wasmer's CpuFeatures uses.
_FEATURE_ALIASES = {
    "pni": "sse3",
    "sse4_1": "sse4.1",
    "sse4_2": "sse4.2",
    "abm": "lzcnt",
    "sse4.1": "sse4.1",
}


def resolve_target(triple: str, *, source: str) -> Target:
    """The supported target for a configured triple, or a clear error saying why not."""
    if triple in SUPPORTED_TARGETS:
        return SUPPORTED_TARGETS[triple]
    reason = next((why for word, why in _KNOWN_UNSUPPORTED.items() if word in triple), None)
    supported = ", ".join(SUPPORTED_TARGETS)
    if reason:
        raise InvalidInput(f'{source}: target "{triple}" is not supported: {reason}; supported: {supported}')
    raise InvalidInput(f'{source}: unknown target "{triple}"; supported: {supported}')


@cache
def host_triple() -> str:
    from wasmer import (
        target,
    )  # the engine knows the host best; imported late to keep start-up cheap

    return str(target.Triple.host())


def _linux_cpu_features(cpuinfo: str) -> frozenset[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(_FEATURE_ALIASES.get(f, f) for f in value.split())
    return frozenset()


def _macos_cpu_features() -> frozenset[str]:
    keys = ["machdep.cpu.features", "machdep.cpu.leaf7_features"]
    result = subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True, check=False)
    names = result.stdout.lower().replace(".", "_").split()
    return frozenset(_FEATURE_ALIASES.get(n, n) for n in names)


@cache
def host_cpu_features() -> frozenset[str]:
    """CPU features this host has, in Wasmer's spelling (Linux and macOS)."""
    if platform.system() == "Darwin":
        return _macos_cpu_features()
    cpuinfo = Path("/proc/cpuinfo")
    return _linux_cpu_features(cpuinfo.read_text()) if cpuinfo.exists() else frozenset()
