"""A tenant serving an operator's host for weeks: what its failures say after its memory has grown, and what its
host holds after hundreds of restarts and calls from many threads."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from pathlib import Path

import pytest
import wasmtime

from ngixi_runtime.capabilities.context import GuestExit
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import TenantPool, open_tenant
from ngixi_runtime.loading.zygote import IDLE_ZYGOTES, zygote_pids
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.integration import descriptors_of, wait_until

pytestmark = pytest.mark.integration

WAT = """(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1 4)
  (func (export "run") (result i32) (i32.const 1))
  (func $recurse (export "recurse") (call $recurse))
  (func (export "quit") (call $exit (i32.const 3)))
  (func (export "fill") (loop $again (br_if $again (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))))"""
# "run" returns 1; the others return nothing, when they return.
MANIFEST = (
    '[guest]\nname = "g"\nversion = "0.1.0"\n\n[exports.run]\nresults = ["i32"]\n\n'
    + "".join(f"[exports.{name}]\n\n" for name in ("recurse", "quit", "fill"))
    + "[limits]\nmemory_pages = 4\n"
)


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
            # type(), not isinstance(): a weak proxy among the objects whose referent is gone raises ReferenceError
            kept = [
                o for o in gc.get_objects() if issubclass(type(o), (wasmtime.Trap, wasmtime.WasmtimeError, GuestExit))
            ]
        finally:
            gc.enable()
    assert kept == []


def _descendants() -> dict[int, str]:
    """This process's descendants (fork servers, their spares and tenants): pid → state (Z: a zombie)."""
    parents: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if stat:
            state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
            states[int(entry)] = state
            parents.setdefault(int(parent), []).append(int(entry))
    found, todo = {}, [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = states[child]
            todo.append(child)
    return found


def _call_until_closed(pool: TenantPool) -> None:
    """Calls tenant "a" of `pool` until the pool, closed, refuses the call in one line."""
    with contextlib.suppress(InvalidInput):
        while True:
            assert pool.call("a", "run").values == (1,)


def _held() -> tuple[int, int]:
    return len(descriptors_of()), len(os.listdir("/proc/self/task"))


def test_restarts_and_pools_closed_under_callers_leave_no_descriptor_thread_or_process(
    bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    """What a long-running host holds after children restarted many times (a stack exhausted replaces one) and pools
    added to and closed while other threads call them: what it held before, and no zombie."""
    path, trust = bundle
    with open_tenant(path, trust_file=trust, engine="wasmtime") as tenant:
        with pytest.raises(GuestError):  # the fork server and its spare started, as by a host's first restart
            tenant.call("recurse")
        tenant.call("run")
        gc.collect()
        fds, threads = _held()
        processes = len(_descendants())
        for _ in range(25):
            with pytest.raises(GuestError, match="call stack exhausted"):
                tenant.call("recurse")
            assert tenant.call("run").values == (1,)
        for round_ in range(4):
            pool = TenantPool(trust_file=trust, state_dir=tmp_path / "state", workers=4)
            pool.add("a", path, engine="wasmtime")
            callers = [threading.Thread(target=_call_until_closed, args=(pool,)) for _ in range(4)]
            for caller in callers:
                caller.start()
            pool.add(f"b{round_}", path, engine="wasmtime")
            pool.close()
            for caller in callers:
                caller.join(10)
            assert not any(caller.is_alive() for caller in callers)
        gc.collect()
        wait_until(lambda: "Z" not in _descendants().values(), what="the fork server reaping its stopped tenants")
        fds_now, threads_now = _held()
        assert fds_now <= fds
        assert threads_now <= threads
        assert len(_descendants()) <= processes


def test_fork_servers_of_environments_no_tenant_uses_are_closed_beyond_a_few(bundle: tuple[Path, Path]) -> None:
    """A fork server (and its spare) started for each child environment stayed until the host exited: a host
    opening tenants with ever new `child_env`s grew by two processes and a descriptor for each. Now only the
    IDLE_ZYGOTES most recently used of those no open tenant uses are kept; one with a tenant open serves on."""
    path, trust = bundle
    with open_tenant(path, trust_file=trust, engine="wasmtime", child_env={"TAG": "kept"}) as kept:
        gc.collect()
        fds = len(descriptors_of())
        for tag in ("a", "b", "c"):
            with open_tenant(path, trust_file=trust, engine="wasmtime", child_env={"TAG": tag}) as tenant:
                assert tenant.call("run").values == (1,)
        assert len(zygote_pids()) <= IDLE_ZYGOTES + 1  # the idle ones, and the one of `kept`
        assert len(descriptors_of()) <= fds + IDLE_ZYGOTES  # each kept one's control socket
        with pytest.raises(GuestError):
            kept.call("recurse")
        assert kept.call("run").values == (1,)  # a new child, from its own fork server
