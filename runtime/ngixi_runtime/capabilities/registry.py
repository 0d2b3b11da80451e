"""The capability registry: each capability's options schema and the host imports it grants.

The same table drives manifest validation (`manifest.py`), the build-time import check
(`check.py`), load-time linking (`hostfuncs.py`) and the operator policy's ceilings
(`policy.py`), so what a manifest is allowed and what the loader links cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ngixi_runtime.capabilities.ceilings import (
    CeilingParser,
    no_ceiling,
    parse_fs_ceiling,
    parse_http_ceiling,
    parse_kv_ceiling,
)
from ngixi_runtime.capabilities.options import OptionsParser, no_options, parse_fs, parse_http, parse_kv
from ngixi_runtime.spec.wasm import Signature

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
    parse_options: OptionsParser = no_options
    parse_ceiling: CeilingParser = no_ceiling  # the operator policy's ceilings on those options
    interface: str | None = None  # its interface in the WIT catalog (wit/), for component guests


@dataclass(frozen=True)
class Provision:
    """A host import and the capabilities that grant it (any one of them suffices)."""

    host_import: HostImport
    capabilities: tuple[Capability, ...]

    @property
    def is_baseline(self) -> bool:
        return BASELINE in self.capabilities


def _imp(module: str, name: str, params: str, results: str = "") -> HostImport:
    return HostImport(module, name, Signature(tuple(params.split()), tuple(results.split())))


def _wasi(name: str, params: str) -> HostImport:
    return _imp(WASI, name, params, "i32")


# Granted by both stdio (fds 1 and 2) and fs (files and directories).
FD_WRITE = _wasi("fd_write", "i32 i32 i32 i32")
FD_FDSTAT_GET = _wasi("fd_fdstat_get", "i32 i32")

BASELINE = Capability(
    "baseline",
    "granted to every guest: abort with a message, and exit",
    (_imp("env", "abort", "i32 i32 i32 i32"), _imp(WASI, "proc_exit", "i32")),
)

CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability("log", "structured log lines to the host", (_imp("ngixi", "log", "i32 i32 i32"),), interface="log"),
        Capability("stdio", "WASI stdout/stderr, captured by the host", (FD_WRITE, FD_FDSTAT_GET)),
        Capability(
            "clock",
            "WASI clocks",
            (_wasi("clock_time_get", "i32 i64 i32"), _wasi("clock_res_get", "i32 i32")),
        ),
        Capability("random", "WASI random bytes", (_wasi("random_get", "i32 i32"),)),
        Capability(
            "args",
            "WASI command-line arguments",
            (_wasi("args_sizes_get", "i32 i32"), _wasi("args_get", "i32 i32")),
        ),
        Capability(
            "env",
            "WASI environment variables",
            (_wasi("environ_sizes_get", "i32 i32"), _wasi("environ_get", "i32 i32")),
        ),
        Capability(
            "fs",
            "WASI preview 1 files under the manifest's preopened directories",
            (
                _wasi("fd_prestat_get", "i32 i32"),
                _wasi("fd_prestat_dir_name", "i32 i32 i32"),
                _wasi("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32"),
                _wasi("fd_read", "i32 i32 i32 i32"),
                _wasi("fd_pread", "i32 i32 i32 i64 i32"),
                FD_WRITE,
                _wasi("fd_pwrite", "i32 i32 i32 i64 i32"),
                _wasi("fd_seek", "i32 i64 i32 i32"),
                _wasi("fd_tell", "i32 i32"),
                _wasi("fd_close", "i32"),
                _wasi("fd_sync", "i32"),
                _wasi("fd_datasync", "i32"),
                FD_FDSTAT_GET,
                _wasi("fd_filestat_get", "i32 i32"),
                _wasi("fd_filestat_set_size", "i32 i64"),
                _wasi("fd_readdir", "i32 i32 i32 i64 i32"),
                _wasi("path_filestat_get", "i32 i32 i32 i32 i32"),
                _wasi("path_create_directory", "i32 i32 i32"),
                _wasi("path_remove_directory", "i32 i32 i32"),
                _wasi("path_unlink_file", "i32 i32 i32"),
                _wasi("path_rename", "i32 i32 i32 i32 i32 i32"),
            ),
            parse_fs,
            parse_fs_ceiling,
        ),
        Capability(
            "http",
            "outgoing HTTP requests to the manifest's allowlist",
            (_imp("ngixi", "http_fetch", " ".join(["i32"] * 11), "i32"),),
            parse_http,
            parse_http_ceiling,
            interface="http",
        ),
        Capability(
            "kv",
            "a namespaced key-value store (SQLite, one file per tenant)",
            (
                _imp("ngixi", "kv_get", " ".join(["i32"] * 7), "i32"),
                _imp("ngixi", "kv_set", " ".join(["i32"] * 6), "i32"),
                _imp("ngixi", "kv_delete", " ".join(["i32"] * 4), "i32"),
                _imp("ngixi", "kv_list", " ".join(["i32"] * 7), "i32"),
            ),
            parse_kv,
            parse_kv_ceiling,
            interface="kv",
        ),
    )
}


def _provisions() -> dict[tuple[str, str], Provision]:
    found: dict[tuple[str, str], Provision] = {}
    for capability in (BASELINE, *CAPABILITIES.values()):
        for host_import in capability.imports:
            key = (host_import.module, host_import.name)
            earlier = found[key].capabilities if key in found else ()
            found[key] = Provision(host_import, (*earlier, capability))
    return found


PROVISIONS = _provisions()
HOST_MODULES = frozenset(module for module, _ in PROVISIONS)


def provision_of(module: str, name: str) -> Provision | None:
    """The import and the capabilities (or the baseline) that grant it, if any does."""
    return PROVISIONS.get((module, name))
