"""Target triples we precompile for, their CPU-feature baselines, and what this host offers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import suggestion


class Target(NamedTuple):
    triple: str
    cpu_features: tuple[str, ...]


class Architecture(NamedTuple):
    """The CPU-feature names Wasmer 2.1 accepts for an architecture, and those it cannot do without."""

    features: tuple[str, ...]
    required: tuple[str, ...]


# Wasmer 2.1's CpuFeature names are all x86 ones; it knows no aarch64 feature. x86_64 needs
# SSE2 or Cranelift panics.
_X86_64_FEATURES = (
    "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "bmi", "bmi2", "avx2", "avx512dq", "avx512vl",
    "avx512f", "lzcnt",
)  # fmt: skip
ARCHITECTURES = {
    "x86_64": Architecture(features=_X86_64_FEATURES, required=("sse2",)),
    "aarch64": Architecture(features=(), required=()),
}

# Explicit default baselines, so an artifact never silently needs the build machine's CPU.
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
    "bmi1": "bmi",
    "avx1_0": "avx",
}


def architecture_of(triple: str) -> str:
    return triple.partition("-")[0]


def resolve_target(triple: str, *, source: str, cpu_features: Sequence[str] | None = None) -> Target:
    """The supported target for a configured triple and baseline, or a clear error saying why not.

    Without `cpu_features` the triple's default baseline applies; a given baseline is checked
    against the names Wasmer accepts for the triple's architecture and sorted.
    """
    if triple not in SUPPORTED_TARGETS:
        reason = next((why for word, why in _KNOWN_UNSUPPORTED.items() if word in triple), None)
        supported = ", ".join(SUPPORTED_TARGETS)
        named = printable(triple)  # a line break in the file's string stays in this one line
        if reason:
            raise InvalidInput(f'{source}: target "{named}" is not supported: {reason}; supported: {supported}')
        raise InvalidInput(f'{source}: unknown target "{named}"; supported: {supported}')
    if cpu_features is None:
        return SUPPORTED_TARGETS[triple]
    return Target(triple, _checked_baseline(triple, cpu_features, f"{source}.cpu_features"))


def _checked_baseline(triple: str, cpu_features: Sequence[str], field: str) -> tuple[str, ...]:
    name = architecture_of(triple)
    architecture = ARCHITECTURES[name]
    for position, feature in enumerate(cpu_features):
        if feature not in architecture.features:
            raise InvalidInput(f"{field}[{position}]: {_unknown_feature(feature, name, architecture)}")
    missing = [f for f in architecture.required if f not in cpu_features]
    if missing:
        raise InvalidInput(f"{field}: {triple} needs {', '.join(missing)} (Cranelift cannot do without it); add it")
    return tuple(sorted(set(cpu_features)))


def _unknown_feature(feature: str, name: str, architecture: Architecture) -> str:
    foreign = next((other for other, a in ARCHITECTURES.items() if feature in a.features), None)
    if not architecture.features:
        what = f"an {foreign} feature" if foreign else "not a CPU feature Wasmer knows"
        return f'"{printable(feature)}" is {what}; Wasmer 2.1 knows no {name} CPU features, so leave cpu_features empty'
    if foreign is not None:
        return f'"{printable(feature)}" is an {foreign} feature, not one of {name}; remove it'
    hint = suggestion(feature, architecture.features, "known")
    return f'"{printable(feature)}" is not one of the {name} CPU features Wasmer knows; {hint}'


_MACHINE_ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}


@cache
def host_triple() -> str:
    """This host's target triple in Wasmer's spelling (Linux and macOS), derived without importing an engine."""
    host = os.uname()
    machine = host.machine.lower()
    architecture = _MACHINE_ARCHITECTURES.get(machine, machine)
    if host.sysname == "Darwin":
        return f"{architecture}-apple-darwin"
    return f"{architecture}-unknown-{host.sysname.lower()}-gnu"


def _linux_cpu_features(cpuinfo: str) -> frozenset[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(_FEATURE_ALIASES.get(f, f) for f in value.split())
    return frozenset()


def _macos_cpu_features() -> frozenset[str]:
    import subprocess

    keys = ["machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.extfeatures"]
    result = subprocess.run(["sysctl", "-n", *keys], capture_output=True, text=True, check=False)
    names = result.stdout.lower().replace(".", "_").split()
    return frozenset(_FEATURE_ALIASES.get(n, n) for n in names)


@cache
def host_cpu_features() -> frozenset[str]:
    """CPU features this host has, in Wasmer's spelling (Linux and macOS)."""
    if os.uname().sysname == "Darwin":
        return _macos_cpu_features()
    cpuinfo = Path("/proc/cpuinfo")
    return _linux_cpu_features(cpuinfo.read_text()) if cpuinfo.exists() else frozenset()
