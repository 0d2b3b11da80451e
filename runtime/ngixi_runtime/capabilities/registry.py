"""The capability registry: one line per capability, naming the module that holds everything about it.

A capability's module is imported the first time it is asked for, so a host loads only the
capabilities its guests are granted (and the baseline). The same records drive manifest
validation (guest/manifest.py), the import checks (guest/check.py), linking (linking.py) and the
operator policy's ceilings (trust/policy.py), so what a manifest may ask for and what the loader
links cannot disagree. Only an error that names which capability would grant an import (and tests)
asks for every capability.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from functools import cache
from typing import cast

from ngixi_runtime.capabilities.base import Capability, HostImport
from ngixi_runtime.records import NamedTuple

BASELINE = "baseline"  # granted to every guest: abort and exit
DATA = "data"  # granted to every guest too: the call's input and output
ALWAYS_GRANTED = frozenset({BASELINE, DATA})

REGISTRY: Mapping[str, str] = {
    BASELINE: "ngixi_runtime.capabilities.baseline",
    "log": "ngixi_runtime.capabilities.log",
    "stdio": "ngixi_runtime.capabilities.stdio",
    "stdin": "ngixi_runtime.capabilities.stdin",
    "clock": "ngixi_runtime.capabilities.clock",
    "random": "ngixi_runtime.capabilities.random",
    "args": "ngixi_runtime.capabilities.args",
    "env": "ngixi_runtime.capabilities.env",
    "fs": "ngixi_runtime.capabilities.fs",
    "http": "ngixi_runtime.capabilities.http",
    "kv": "ngixi_runtime.capabilities.kv",
    DATA: "ngixi_runtime.capabilities.data",
}
GRANTABLE = tuple(name for name in REGISTRY if name not in ALWAYS_GRANTED)  # what a manifest's [capabilities] may name


@cache
def capability(name: str) -> Capability:
    """The capability `name` (a key of `REGISTRY`); its module is imported on first use."""
    return cast(Capability, importlib.import_module(REGISTRY[name]).CAPABILITY)


def every_capability() -> tuple[Capability, ...]:
    """Every capability, the baseline first: this imports each capability's module."""
    return tuple(capability(name) for name in REGISTRY)


class Provision(NamedTuple):
    """A host import and the capabilities that grant it (any one of them suffices), in registry order."""

    host_import: HostImport
    capabilities: tuple[Capability, ...]

    @property
    def is_baseline(self) -> bool:
        return any(c.name in ALWAYS_GRANTED for c in self.capabilities)


def provisions(names: Iterable[str] = REGISTRY) -> Mapping[tuple[str, str], Provision]:
    """The imports that the capabilities `names` and those granted to every guest grant, by (module, name)."""
    return _provisions(frozenset({*ALWAYS_GRANTED, *names}))


@cache
def _provisions(names: frozenset[str]) -> Mapping[tuple[str, str], Provision]:
    found: dict[tuple[str, str], Provision] = {}
    for name in REGISTRY:
        if name not in names:
            continue
        for host_import in capability(name).imports:
            key = (host_import.module, host_import.name)
            earlier = found[key].capabilities if key in found else ()
            found[key] = Provision(host_import, (*earlier, capability(name)))
    return found


def wasi_p2_grants(names: Iterable[str] = REGISTRY) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
    """WASI preview 2 interface → function → the capabilities among `names` and the baseline that grant it."""
    return _wasi_p2_grants(frozenset({BASELINE, *names}))


@cache
def _wasi_p2_grants(names: frozenset[str]) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in REGISTRY:
        if name not in names:
            continue
        for interface, functions in capability(name).wasi_p2.items():
            granted = found.setdefault(interface, {})
            for function in functions:
                granted[function] = (*granted.get(function, ()), name)
    return found
