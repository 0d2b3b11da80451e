"""A tenant serving an operator's host for weeks: what its failures say after its memory has grown, and what its
host holds after hundreds of restarts and calls from many threads."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import wasmtime

from ngixi_runtime.capabilities.context import GuestExit
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import KeyFiles, make_bundle, make_key

pytestmark = pytest.mark.integration

WAT = """(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1 4)
  (func (export "run") (result i32) (i32.const 1))
  (func $recurse (export "recurse") (call $recurse))
  (func (export "quit") (call $exit (i32.const 3)))
  (func (export "fill") (loop $again (br_if $again (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))))"""
MANIFEST = """[guest]
name = "g"
version = "0.1.0"

[exports.run]
results = ["i32"]

[exports.recurse]

[exports.quit]

[exports.fill]

[limits]
memory_pages = 4
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("long-running")
    keys: KeyFiles = make_key(directory / "keys")
    wasm = bytes(wasmtime.wat2wasm(WAT))
    return make_bundle(directory, keys.key, wasm=wasm, manifest=MANIFEST, guest="g"), keys.trust


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_a_trap_that_names_its_cause_is_not_said_to_be_out_of_memory_once_memory_is_full(
    bundle: tuple[Path, Path], engine_name: str, isolated: bool
) -> None:
    """A guest's memory never shrinks: once a call had grown it to limits.memory_pages, every later trap was "ran out
    of memory", a stack exhausted or a library's proc_exit too, and an isolated child that ran out of stack so was
    kept serving rather than replaced."""
    path, trust = bundle
    with open_tenant(path, trust_file=trust, isolated=isolated, engine=engine_name) as tenant:
        tenant.call("fill")  # grows its memory to the limit, and returns
        with pytest.raises(GuestError, match=r"^g: recurse trapped: call stack exhausted") as exhausted:
            tenant.call("recurse")
        assert exhausted.value.outcome == "trap"
        if isinstance(tenant, IsolatedTenant):
            assert tenant.pid is None  # replaced at the next call, as after any stack exhausted
        with pytest.raises(GuestError, match=r"^g: quit called proc_exit\(3\)") as exited:
            tenant.call("quit")
        assert exited.value.outcome == "trap"
        assert tenant.call("run").values == (1,)


def test_a_failed_call_in_process_on_wasmtime_leaves_nothing_for_the_collector(bundle: tuple[Path, Path]) -> None:
    """The fast call path's raise held the trap (or a host function's exception, proc_exit's) in its own traceback:
    a cycle that only the collector frees, with Wasmtime's trap and its backtrace: a host serving a guest whose stack
    runs out held megabytes more until a full collection, and a tenant child came that much nearer its memory limit."""
    path, trust = bundle
    with open_tenant(path, trust_file=trust, isolated=False, engine="wasmtime") as tenant:
        gc.collect()
        gc.disable()
        try:
            for export in ("recurse", "quit", "recurse"):
                with pytest.raises(GuestError):
                    tenant.call(export)
            kept = [o for o in gc.get_objects() if isinstance(o, (wasmtime.Trap, wasmtime.WasmtimeError, GuestExit))]
        finally:
            gc.enable()
    assert kept == []
