"""Core WASI guests on both engines, isolated and in-process: duplicate imports, and what the manifest grants."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import DROP, Func, Imp, call_import, module

WASI = "wasi_snapshot_preview1"
FD_WRITE = Imp(WASI, "fd_write", ["i32"] * 4, ["i32"])
PROC_EXIT = Imp(WASI, "proc_exit", ["i32"])
COMMAND = '[guest]\nname = "hello"\nversion = "0.1.0"\nkind = "command"\n'
HELLO_AT = 200  # "hello", and an iovec for it at 100


def hello_data() -> list[tuple[int, bytes]]:
    return [(100, struct.pack("<II", HELLO_AT, 5)), (HELLO_AT, b"hello")]


@pytest.fixture(params=[True, False], ids=["isolated", "in-process"])
def isolated(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_a_function_imported_twice_is_linked_once(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    """AssemblyScript's WASI shim imports fd_write twice; each import calls the one host function."""
    start = call_import(0, 1, 100, 1, 300) + DROP + call_import(2, 2, 100, 1, 300) + DROP + call_import(1, 3)
    wasm = module(imports=[FD_WRITE, PROC_EXIT, FD_WRITE], functions=[Func("_start", body=start)], data=hello_data())
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=COMMAND + "[capabilities.stdio]\n")
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name) as tenant:
        result = tenant.run()
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"hello", b"hello")
    assert result.metrics.host_calls == {"stdio": 2, "baseline": 1}
