"""A TenantPool serving several tenants: what fails one tenant's call stays that tenant's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from ngixi_runtime.errors import InvalidInput, NgixiError, VerificationError
from ngixi_runtime.loading import tenants
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, CallResult, InProcessTenant, TenantPool, open_tenant
from tests.conftest import KeyFiles, make_bundle
from tests.integration import descriptors_of

pytestmark = pytest.mark.integration

WAT = """(module (memory (export "memory") 1 1)
  (func (export "run") (result i32) (i32.const 1))
  (func $recurse (export "recurse") (result i32) (call $recurse))
  (func (export "spin") (result i32) (loop $again (br $again)) (i32.const 0)))"""
MANIFEST = """[guest]
name = "g"
version = "0.1.0"

[exports.run]
results = ["i32"]

[exports.recurse]
results = ["i32"]

[exports.spin]
results = ["i32"]
"""


def test_one_tenant_that_cannot_restart_fails_its_own_call_alone(tmp_path: Path, keys: KeyFiles) -> None:
    """call_many caught only GuestError: a tenant whose next child could not start (its bundle file rewritten in
    place since it was verified) raised out of call_many, and every other tenant's result of that batch was lost."""
    wasm = bytes(wasmtime.wat2wasm(WAT))
    first = make_bundle(tmp_path / "a", keys.key, wasm=wasm, manifest=MANIFEST, guest="g")
    second = make_bundle(tmp_path / "b", keys.key, wasm=wasm, manifest=MANIFEST, guest="g")
    other = make_bundle(tmp_path / "c", keys.key, wasm=wasm, manifest=MANIFEST, guest="g", sequence=2)
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:
        pool.add("a", first)
        pool.add("b", second)
        with pytest.raises(CallFailed, match="call stack exhausted"):
            pool.call("a", "recurse")  # its child is replaced, on either engine: the next call starts another
        with open(first, "r+b") as rewritten:  # as `cp` writes over a file: in place
            rewritten.write(other.read_bytes())
            rewritten.truncate()
        refused, served = pool.call_many([("a", "run", ()), ("b", "run", ())])
    assert isinstance(refused, VerificationError)
    assert "the bundle changed since it was verified" in str(refused)
    assert isinstance(served, CallResult) and served.values == (1,)


def test_one_name_added_from_two_threads_at_once_opens_one_tenant(tmp_path: Path, keys: KeyFiles) -> None:
    """add looked for the name, then opened the tenant and stored it: two threads adding one name at once both opened
    one, and the first stored was replaced and never closed (its child process ran on until the host ended). An
    unknown name was a KeyError, which call_many let out, losing the batch."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    both = threading.Barrier(2)
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:

        def add(_: int) -> str:
            both.wait(timeout=10)
            try:
                pool.add("a", bundle)
            except InvalidInput as refused:
                return str(refused)
            return "added"

        with ThreadPoolExecutor(2) as threads:
            outcomes = sorted(threads.map(add, range(2)))
        assert outcomes == ["added", "tenant 'a' is already in the pool; close the pool or use another name"]
        unknown, served = pool.call_many([("b", "run", ()), ("a", "run", ())])
    assert isinstance(unknown, NgixiError) and str(unknown).startswith("tenant 'b' is not in the pool")
    assert isinstance(served, CallResult) and served.values == (1,)


def test_a_tenant_whose_pool_closed_while_it_opened_is_closed_too(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() closed the tenants it found, and add() then stored the one it was opening: its child process and
    bundle descriptor lived until the host ended (close() also iterated the names while add() changed them)."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    pool = TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state")
    before = descriptors_of().items()

    def closing_meanwhile(*args: Any, **kwargs: Any) -> IsolatedTenant | InProcessTenant:
        opened = open_tenant(*args, **kwargs)
        assert opened.call("run").values == (1,)  # its child is running
        pool.close()
        return opened

    monkeypatch.setattr(tenants, "open_tenant", closing_meanwhile)
    with pytest.raises(InvalidInput, match=r"^tenant 'a': the pool was closed while it was being added$"):
        pool.add("a", bundle)
    assert descriptors_of().items() - before == set()  # its bundle and its child's pipes (others may have closed)
    with pytest.raises(
        InvalidInput, match=r"^tenant 'b': the pool is closed; add it to a new TenantPool \(pool.add\) to call it$"
    ):
        pool.add("b", bundle)


class Interrupted(Exception):
    """What the test's signal handler raises in the middle of a call, as Ctrl-C raises KeyboardInterrupt."""


def _interrupt(signal_number: int, frame: object) -> None:
    raise Interrupted


def test_a_call_interrupted_in_the_host_leaves_no_reply_to_answer_the_next(tmp_path: Path, keys: KeyFiles) -> None:
    """A KeyboardInterrupt (or any exception a signal handler raised) while the host waited for an isolated call's
    reply left the child running that call: a service that caught it and called again was given the interrupted
    call's late reply ('g: spin exceeded its 5000 ms timeout' as the answer to `run`), and every reply after it
    answered the call before. The interrupted call's child is stopped now; the next call starts another."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    try:
        with open_tenant(bundle, trust_file=keys.trust) as tenant:
            assert isinstance(tenant, IsolatedTenant)
            first = tenant.pid
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            with pytest.raises(Interrupted):
                tenant.call("spin")
            assert tenant.pid is None  # stopped, not left spinning
            assert tenant.call("run").values == (1,)
            assert tenant.pid not in (None, first)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_start_interrupted_in_the_host_leaves_no_child_or_descriptor(tmp_path: Path, keys: KeyFiles) -> None:
    """An exception a signal handler raised while an isolated tenant started (its start function running) left its
    child running to its deadline and the host holding that child's pipe and pidfd for good."""
    spinning_start = "(func $starting (loop $again (br $again))) (start $starting)"
    starting = WAT.replace('(memory (export "memory") 1 1)', f'(memory (export "memory") 1 1) {spinning_start}')
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(starting)), manifest=MANIFEST, guest="g")
    plain = make_bundle(tmp_path / "plain", keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    try:
        with open_tenant(plain, trust_file=keys.trust) as warm:  # the fork server and its spare are made now
            assert warm.call("run").values == (1,)
        before = descriptors_of().items()
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        with pytest.raises(Interrupted):
            open_tenant(bundle, trust_file=keys.trust)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert descriptors_of().items() - before == set()


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_a_closed_tenant_refuses_a_call_in_one_line(tmp_path: Path, keys: KeyFiles, isolated: bool) -> None:
    """A call after close raised ZygoteDied ('the tenant fork server did not answer: [Errno 9] Bad file descriptor'),
    an OSError outside NgixiError, isolated, and ran the closed guest in-process; a pool's call after close said the
    tenant was not in the pool, 'add it'."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    tenant = open_tenant(bundle, trust_file=keys.trust, isolated=isolated)
    tenant.close()
    with pytest.raises(InvalidInput, match=r"^g: the tenant is closed; open the bundle again \(open_tenant\) to call"):
        tenant.call("run")
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:
        pool.add("a", bundle, isolated=isolated)
    with pytest.raises(
        InvalidInput, match=r"^tenant 'a': the pool is closed; add it to a new TenantPool \(pool.add\) to call it$"
    ):
        pool.call("a", "run")


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_a_pools_tenant_closed_as_a_call_reaches_it_says_what_to_do_with_a_pool(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, isolated: bool
) -> None:
    """A call that found its tenant as another thread closed the pool was refused as a tenant `open_tenant` opened
    is: 'open the bundle again (open_tenant)', which a pool's user never called."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    found = TenantPool._tenant

    def closed_meanwhile(pool: TenantPool, name: str) -> IsolatedTenant | InProcessTenant:
        tenant = found(pool, name)
        pool.close()
        return tenant

    pool = TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state")
    pool.add("a", bundle, isolated=isolated)
    monkeypatch.setattr(TenantPool, "_tenant", closed_meanwhile)
    closed = r"^tenant 'a': the pool is closed; add it to a new TenantPool \(pool.add\) to call it$"
    with pytest.raises(InvalidInput, match=closed):
        pool.call("a", "run")
    monkeypatch.setattr(TenantPool, "_tenant", found)
    with pytest.raises(InvalidInput, match=closed):
        pool.call("a", "run")


def test_sandboxes_that_name_a_file_are_refused_in_one_line(tmp_path: Path, keys: KeyFiles) -> None:
    """`TenantPool(sandboxes=FILE)` (`open_tenant` likewise) raised NotADirectoryError from deep in the sandbox checks,
    an OSError outside NgixiError, where `ngixi run --sandbox FILE` says what to do."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    (tmp_path / "afile").write_text("")
    pool = TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state", sandboxes=tmp_path / "afile")
    with pool, pytest.raises(InvalidInput, match=r"^sandboxes .*/afile: it is not a directory; name a directory"):
        pool.add("a", bundle)


def test_a_sandbox_that_cannot_be_made_says_what_to_do(tmp_path: Path, keys: KeyFiles) -> None:
    """An operator running a kv guest from a read-only project directory (its default sandbox) was told only
    'cannot use …/.ngixi/sandbox/release/default/g as its sandbox: Read-only file system'."""
    manifest = f'{MANIFEST}\n[capabilities.kv]\nnamespaces = ["n"]\n'
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=manifest, guest="g")
    unwritable = Path("/proc/ngixi-sandboxes")  # no directory can be made there, by root either
    with pytest.raises(InvalidInput, match=r"as its sandbox: .*; choose a directory this user can write \(--sandbox"):
        open_tenant(bundle, trust_file=keys.trust, sandboxes=unwritable)


def _in_a_fork(work: Callable[[], str]) -> str:
    """What `work` returns (or the error it raises) in a process forked from this one, which then ends."""
    readable, writable = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # this process has threads: the fork copies only this one
        pid = os.fork()
    if pid == 0:
        try:
            answer = work()
        except BaseException as error:
            answer = f"{type(error).__name__}: {error}"
        os.write(writable, answer.encode())
        os._exit(0)
    os.close(writable)
    with open(readable, "rb") as answer_pipe:
        answer = answer_pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_tenants_refuse_calls_in_a_forked_process_and_keep_serving_their_own(tmp_path: Path, keys: KeyFiles) -> None:
    """A service that made its TenantPool before forking workers (gunicorn --preload, multiprocessing) had every
    worker's calls answered on the pipes they all shared with the one child: workers were given each other's
    results (190 to 200 wrong of 200 calls each, three workers). An in-process tenant called in a fork had no
    Wasmtime deadline thread, and a guest spinning there ran for ever. Both refuse now, in one line, and a fork that
    closes a tenant leaves the child of the process that opened it serving (it was killed)."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    pool = TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state")
    isolated = open_tenant(bundle, trust_file=keys.trust)
    in_process = open_tenant(bundle, trust_file=keys.trust, isolated=False)
    with pool, isolated, in_process:
        pool.add("a", bundle)
        assert isinstance(isolated, IsolatedTenant) and isolated.call("run").values == (1,)
        serving = isolated.pid

        def in_the_fork() -> str:
            refusals = []
            calls: list[Callable[[], CallResult]] = [partial(pool.call, "a", "run"), partial(isolated.call, "run")]
            calls.append(partial(in_process.call, "run"))
            for call in calls:
                try:
                    call()
                except InvalidInput as refused:
                    refusals.append(str(refused).split(", and this process was forked")[0])
            isolated.close()
            return "\n".join(refusals)

        assert _in_a_fork(in_the_fork).splitlines() == [
            f"this TenantPool was made in process {os.getpid()}",
            f"g: this tenant was opened in process {os.getpid()}",
            f"g: this tenant was opened in process {os.getpid()}",
        ]
        assert isolated.call("run").values == (1,) and isolated.pid == serving


def test_a_pool_of_relative_paths_serves_on_after_its_host_changes_directory(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TenantPool(trust_file=Path("trust.toml"), ...) read the trust file again at each restart of a tenant's child
    by that relative name: once the service had changed its working directory, the restart after a trap was refused
    ('trust.toml: cannot read the trust file: No such file or directory') and so was each later call."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    (tmp_path / "trust.toml").write_bytes(keys.trust.read_bytes())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    with TenantPool(trust_file=Path("trust.toml"), state_dir=Path("state"), sandboxes=Path("sandboxes")) as pool:
        pool.add("a", Path(bundle.name))  # made in tmp_path
        monkeypatch.chdir(tmp_path / "elsewhere")
        with pytest.raises(CallFailed, match="call stack exhausted"):
            pool.call("a", "recurse")  # its child is replaced: the next call starts another
        assert pool.call("a", "run").values == (1,)
        pool.add("b", bundle)
        assert pool.call("b", "run").values == (1,)


HOST_OPENING = """
import sys
from pathlib import Path
from ngixi_runtime.loading.tenants import open_tenant

print("opening", flush=True)
bundle, trust, engine, mark = sys.argv[1:]
open_tenant(Path(bundle), trust_file=Path(trust), engine=engine, child_env={"NGIXI_TEST_MARK": mark})
"""


def _marked(mark: str) -> list[int]:
    """The processes whose environment holds `mark` (a host's tenant child and fork server)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and mark.encode() in Path(f"/proc/{entry}/environ").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_a_start_function_spinning_when_its_host_is_killed_ends_by_its_cpu_time(tmp_path: Path, keys: KeyFiles) -> None:
    """A host killed while an isolated tenant's start function ran (a service stopped with SIGKILL, an OOM kill) left
    its child spinning for ever on Wasmer, which cannot interrupt a guest (the host's deadline was gone with the host;
    the child's CPU time was capped only from its first call): four such children ran for 40 minutes here. The start
    function's CPU time is capped now, as a call's is; Wasmtime's own deadline ended it already."""
    pytest.importorskip("wasmer")
    spinning_start = "(func $starting (loop $again (br $again))) (start $starting)"
    starting = WAT.replace('(memory (export "memory") 1 1)', f'(memory (export "memory") 1 1) {spinning_start}')
    manifest = f"{MANIFEST}\n[limits]\ntimeout_ms = 1000\n"
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(starting)), manifest=manifest, guest="g")
    mark = f"ngixi-test-{os.getpid()}"
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_OPENING, str(bundle), str(keys.trust), "wasmer", mark], stdout=subprocess.PIPE
    )
    assert host.stdout is not None and host.stdout.readline() == b"opening\n"
    time.sleep(0.3)  # its tenant's start function spins
    host.kill()
    host.wait()
    ended_by = time.monotonic() + 10  # 1 s of CPU time and its second of rounding, on a busy machine
    try:
        while _marked(mark) and time.monotonic() < ended_by:
            time.sleep(0.1)
        assert _marked(mark) == []
    finally:
        for left in _marked(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(left, signal.SIGKILL)


def test_a_pool_refuses_workers_below_one_and_a_name_that_is_no_tenant_id_in_one_line(
    tmp_path: Path, keys: KeyFiles
) -> None:
    """TenantPool(workers=0) raised ThreadPoolExecutor's bare ValueError, and pool.add("Alice") said "tenant:", a
    keyword the call did not use."""
    for workers in (0, -1, True, 2.5):
        with pytest.raises(InvalidInput) as refused:
            TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state", workers=workers)  # type: ignore[arg-type]
        assert str(refused.value) == (
            f"TenantPool workers={workers!r}: the calls it runs at once must be a whole number, at least 1"
        )
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state", workers=1) as pool:
        with pytest.raises(InvalidInput) as refused:
            pool.add("Alice", bundle)
        assert str(refused.value) == (
            "name (the tenant id unless tenant= gives one): 'Alice' is not a tenant id; use 1 to 64 lowercase "
            'letters, digits, "-" and "_", starting with a letter or digit'
        )
        with pytest.raises(InvalidInput, match=r"^tenant: 'Bob' is not a tenant id; "):
            pool.add("alice", bundle, tenant="Bob")
        pool.add("Alice", bundle, tenant="alice")  # a name is any string when tenant= gives the id
        assert pool.call("Alice", "run").values == (1,)
