"""Tenants with real guests built by the pipeline: hostile guests are contained, calls measured."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput, PolicyError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, CallResult, InProcessTenant, Tenant, TenantPool, open_tenant
from ngixi_runtime.spec.abi import Errno, Status
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.policy import load_policy
from tests.integration import copy_project, installed_toolchain, run, set_targets

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=40)]

FIXTURES = Path(__file__).parents[2] / "fixtures"
HOSTILE = [
    ("spin", (), "timeout", "hostile: spin exceeded its 2000 ms timeout (limits.timeout_ms)"),
    ("hog", (), "memory", "hostile: hog ran out of memory at its limit of 32 pages (limits.memory_pages)"),
    # Its allocator's `unreachable`, with the memory pages away from its limit: once "trapped: unreachable".
    ("gulp", (), "memory", "hostile: gulp ran out of memory (an allocation needed more than limits.memory_pages = 32"),
    ("recurse", (100_000_000,), "trap", "hostile: recurse trapped: call stack exhausted"),
    ("trap", (), "trap", "hostile: trap trapped: unreachable"),
    ("flood", (), "quota", "hostile: log output exceeded its quota of 10000 bytes"),
]


class StallingHandler(BaseHTTPRequestHandler):
    """Answers nothing until the test module ends, unless a barrier is set; records each request path."""

    paths: queue.Queue[str] = queue.Queue()
    release = threading.Event()
    barrier: threading.Barrier | None = None

    def do_GET(self) -> None:
        self.paths.put(self.path)
        if self.barrier is None:
            self.release.wait(timeout=60)
            return
        self.barrier.wait(timeout=30)
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def stalling_server() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 that stalls every request; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    StallingHandler.release.set()
    server.shutdown()
    server.server_close()


def add_slow_fetch_guest(root: Path, port: int) -> None:
    """The fetch sample, fetching from the stalling server, with a deadline shorter than its http timeout."""
    source = (root / "guests" / "fetch" / "assembly" / "index.ts").read_text()
    (root / "guests" / "slow-fetch" / "assembly").mkdir(parents=True)
    (root / "guests" / "slow-fetch" / "assembly" / "index.ts").write_text(
        source.replace("http://127.0.0.1:18080/hello", f"http://127.0.0.1:{port}/stall")
    )
    (root / "manifests" / "slow-fetch.toml").write_text(
        SLOW_FETCH_MANIFEST.replace("http://127.0.0.1:18080", f"http://127.0.0.1:{port}")
    )


SLOW_FETCH_MANIFEST = """\
[guest]
name = "slow-fetch"
version = "0.1.0"

[exports.fetch_hello]
results = ["i32"]

[exports.fetch_elsewhere]
results = ["i32"]

[capabilities.http]
allow = ["http://127.0.0.1:18080"]
timeout_ms = 30000

[capabilities.stdio]

[limits]
timeout_ms = 1000
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, stalling_server: int) -> Path:
    root = copy_project(tmp_path_factory.mktemp("host") / "project", toolchain_from=installed_toolchain())
    set_targets(root, [host_triple()], wasmtime_targets=["host"])  # this host's AOT code for either engine
    shutil.copytree(FIXTURES / "guests" / "hostile", root / "guests" / "hostile")
    shutil.copy(FIXTURES / "hostile.toml", root / "manifests" / "hostile.toml")
    add_slow_fetch_guest(root, stalling_server)
    run(root, "doit", *(f"bundle:{guest}" for guest in ("hostile", "hello", "notes", "counter", "slow-fetch")))
    return root


def bundle(project: Path, guest: str) -> Path:
    return project / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"


def trust(project: Path) -> Path:
    return project / ".ngixi" / "trust.toml"


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize(("export", "args", "outcome", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_guest_is_contained_and_the_tenant_serves_the_next_call(
    project: Path, export: str, args: tuple[int, ...], outcome: str, message: str
) -> None:
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        with pytest.raises(CallFailed) as caught:
            tenant.call(export, args)
        assert caught.value.outcome == outcome
        assert str(caught.value).startswith(message)
        assert caught.value.result.metrics.outcome == outcome
        assert tenant.call("add", (2, 3)).values == (5,)


def soft_stack_limit(pid: int) -> int:
    """The soft RLIMIT_STACK of process `pid`, in bytes."""
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if line.startswith("Max stack"))
    return int(line.split()[3])


@pytest.mark.usefixtures("engine_name")
def test_a_guest_recursing_without_end_traps_on_a_bounded_stack(project: Path) -> None:
    """Wasmer has no cap of its own on a guest's frames: recurse ran to the operator's `ulimit -s` (8 MiB, about
    500,000 frames), whose trap Wasmer takes time in proportion to (its backtrace), so at a high load the trap came
    after limits.timeout_ms. A tenant child's stack now grows at most 1 MiB past what it used when it started.

    Running out of stack on Wasmer unwinds through a host function's Python frames if one is running and damages the
    child's interpreter, so the child that served such a trap is replaced: the next call starts a fresh one."""
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        first = tenant.pid
        assert soft_stack_limit(first) <= 2 << 20
        with pytest.raises(CallFailed) as caught:
            tenant.call("recurse", (100_000_000,))
        assert caught.value.outcome == "trap"
        assert tenant.pid is None
        assert tenant.call("recurse", (1000,)).values == (1000,)
        assert tenant.pid not in (None, first)


def test_a_tenant_child_writes_no_core_file(project: Path) -> None:
    """A crashing child's core file would hold its guest's memory and what the host gave it (trust text, stdin)."""
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        limits = Path(f"/proc/{tenant.pid}/limits").read_text().splitlines()
    assert next(line for line in limits if line.startswith("Max core file size")).split()[4:6] == ["0", "0"]


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize("export", ["recurse", "trap", "flood", "gulp"])
def test_in_process_tenant_contains_traps_and_quotas(project: Path, export: str) -> None:
    args = (100_000_000,) if export == "recurse" else ()
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project), isolated=False) as tenant:
        with pytest.raises(CallFailed) as caught:
            tenant.call(export, args)
        assert export != "gulp" or caught.value.outcome == "memory"
        assert tenant.call("add", (2, 3)).values == (5,)


@pytest.mark.usefixtures("engine_name")
def test_an_in_process_tenant_places_a_trap_as_an_isolated_one_does(project: Path) -> None:
    """An in-process load from an artifact may no longer have the module's bytes when a call traps, and then
    said only "trapped: unreachable" (found by svg-flatten-wasi's abort on Wasmtime); it names the function
    from the engine's backtrace, as the isolated child does."""
    messages = []
    for isolated in (True, False):
        with open_tenant(bundle(project, "hostile"), trust_file=trust(project), isolated=isolated) as tenant:
            with pytest.raises(CallFailed) as caught:
                tenant.call("trap", ())
            messages.append(str(caught.value))
    assert messages[0] == messages[1] == "hostile: trap trapped: unreachable in guests/hostile/assembly/index/trap"


def test_a_crashed_tenant_process_is_reported_and_replaced(project: Path) -> None:
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        pid = tenant.pid
        threading.Timer(0.2, os.kill, (pid, signal.SIGABRT)).start()
        with pytest.raises(CallFailed, match="the tenant process died \\(signal SIGABRT\\)") as caught:
            tenant.call("spin", ())
        assert caught.value.outcome == "crash"
        assert tenant.call("add", (1, 2)).values == (3,)
        assert tenant.pid != pid


@pytest.mark.usefixtures("engine_name")
def test_every_call_is_measured(project: Path) -> None:
    with open_tenant(bundle(project, "hello"), trust_file=trust(project)) as tenant:
        result = tenant.call("greet", ())
    metrics = result.metrics
    assert metrics.outcome == "ok" and metrics.host_calls == {"log": 1}
    assert metrics.output_bytes == len("hello from the hello guest")
    assert metrics.memory_pages >= 1 and metrics.duration_ms > 0


def test_policy_refuses_an_over_asking_bundle_with_the_list(project: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[limits]\nmemory_pages = 8\ntimeout_ms = 100\n[capabilities]\nallow = ["stdio"]\n')
    with pytest.raises(PolicyError) as caught:
        open_tenant(bundle(project, "hostile"), trust_file=trust(project), policy=load_policy(policy))
    assert str(caught.value).splitlines()[1:] == [
        "  limits.memory_pages: asks for 32, the policy allows at most 8",
        "  limits.timeout_ms: asks for 2000, the policy allows at most 100",
        "  capabilities.log: not allowed by the policy (it allows: stdio)",
    ]


def test_pool_runs_tenants_concurrently_and_isolates_failures(project: Path) -> None:
    with TenantPool(trust_file=trust(project)) as pool:
        for name in ("a", "b", "c"):
            pool.add(name, bundle(project, "hello"))
        pool.add("bad", bundle(project, "hostile"))
        results = pool.call_many([("bad", "spin", ()), ("a", "add", (1, 1)), ("b", "add", (2, 2)), ("c", "greet", ())])
        assert isinstance(results[0], CallFailed) and results[0].outcome == "timeout"
        assert [r.values for r in results[1:]] == [(2,), (4,), ()]  # type: ignore[union-attr]
        assert pool.call("bad", "add", (3, 4)).values == (7,)


def test_pool_calls_are_in_flight_at_the_same_time(project: Path) -> None:
    """The server answers only once both fetches wait on it; one after the other, the first would time out."""
    StallingHandler.barrier = threading.Barrier(2)
    try:
        with TenantPool(trust_file=trust(project)) as pool:
            pool.add("first", bundle(project, "slow-fetch"))
            pool.add("second", bundle(project, "slow-fetch"))
            results = pool.call_many([("first", "fetch_hello", ()), ("second", "fetch_hello", ())])
    finally:
        StallingHandler.barrier = None
    assert [r.values for r in results] == [(200,), (200,)]  # type: ignore[union-attr]
    assert [r.stdout for r in results] == [b"hello", b"hello"]  # type: ignore[union-attr]
    assert [StallingHandler.paths.get_nowait() for _ in results] == ["/stall", "/stall"]


def test_cli_runs_isolated_by_default_and_reports_json(project: Path) -> None:
    result = run(project, "ngixi", "run", "--json", str(bundle(project, "hostile")), "trap", check=False)
    assert result.returncode == 5
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["metrics"]["outcome"] == "trap"
    assert "hostile: trap trapped: unreachable" in result.stderr and "Traceback" not in result.stderr
    timeout = run(project, "ngixi", "run", str(bundle(project, "hostile")), "spin", check=False)
    assert timeout.returncode == 5 and "exceeded its 2000 ms timeout" in timeout.stderr


@pytest.mark.usefixtures("engine_name")
def test_a_fetch_stalled_past_the_guests_deadline_ends_with_timeout_inside_the_call(project: Path) -> None:
    """The http timeout (30 s) is longer than the guest's (1 s): the fetch ends at the guest's deadline with TIMEOUT,
    and the guest, left its reserve to return, answers instead of being stopped. The timed call is on a running
    child (fetch_elsewhere starts it)."""
    with open_tenant(bundle(project, "slow-fetch"), trust_file=trust(project)) as tenant:
        result, elapsed = _timed_stalled_fetch(tenant)
        assert elapsed < 1.5
        assert result.values == (-Status.TIMEOUT,)
        (said,) = [line.message for line in result.logs if line.level == "host"]  # the operator is told which limit
        assert said.endswith("/stall timed out: no whole response within the call's limits.timeout_ms")
        assert tenant.call("fetch_elsewhere", ()).values == (-1,)


def _timed_stalled_fetch(tenant: Tenant) -> tuple[CallResult, float]:
    """fetch_hello's result and seconds, on a running child: fetch_elsewhere, refused at once, starts it (again
    after a timeout stopped it)."""
    assert tenant.call("fetch_elsewhere", ()).values == (-1,)
    started = time.monotonic()
    try:
        return tenant.call("fetch_hello", ()), time.monotonic() - started
    finally:
        assert StallingHandler.paths.get(timeout=5) == "/stall"  # the guest was inside http_fetch


def tenant_of(
    project: Path, guest: str, tenant: str, sandboxes: Path, *, isolated: bool
) -> InProcessTenant | IsolatedTenant:
    return open_tenant(
        bundle(project, guest), trust_file=trust(project), isolated=isolated, sandboxes=sandboxes, tenant=tenant
    )


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_tenants_of_one_guest_see_neither_files_nor_kv_data_of_each_other(
    project: Path, tmp_path: Path, isolated: bool
) -> None:
    with (
        tenant_of(project, "notes", "alice", tmp_path, isolated=isolated) as alice,
        tenant_of(project, "notes", "bob", tmp_path, isolated=isolated) as bob,
    ):
        assert alice.call("write_note", ()).values == (0,)
        assert alice.call("read_note", ()).stdout == b"remember the milk\n"
        assert bob.call("read_note", ()).values == (-Errno.NOENT,)
    assert (tmp_path / "alice" / "notes" / "files" / "data" / "note.txt").exists()
    with (
        tenant_of(project, "counter", "alice", tmp_path, isolated=isolated) as alice,
        tenant_of(project, "counter", "bob", tmp_path, isolated=isolated) as bob,
    ):
        assert [alice.call("increment", ()).values for _ in range(2)] == [(1,), (2,)]
        assert bob.call("increment", ()).values == (1,)
        assert alice.call("increment", ()).values == (3,)


def test_pool_tenants_are_their_own_sandbox_ids_by_default(project: Path, tmp_path: Path) -> None:
    with TenantPool(trust_file=trust(project), sandboxes=tmp_path) as pool:
        pool.add("alice", bundle(project, "counter"))
        pool.add("bob", bundle(project, "counter"))
        pool.add("alice-again", bundle(project, "counter"), tenant="alice")
        results = pool.call_many([("alice", "increment", ()), ("bob", "increment", ())])
        assert [r.values for r in results] == [(1,), (1,)]  # type: ignore[union-attr]
        assert pool.call("alice-again", "increment", ()).values == (2,)
        with pytest.raises(InvalidInput, match=r"^name \(the tenant id unless tenant= gives one\): 'Alice B' is not a"):
            pool.add("Alice B", bundle(project, "counter"))


def test_cli_runs_each_tenant_in_its_own_sandbox(project: Path) -> None:
    counter = str(bundle(project, "counter"))
    assert [run(project, "ngixi", "run", counter, "increment").stdout for _ in range(2)] == ["1\n", "2\n"]
    assert run(project, "ngixi", "run", "--tenant", "acme", counter, "increment").stdout == "1\n"
    assert (project / ".ngixi" / "sandbox" / "dev" / "acme" / "counter" / "kv.sqlite3").exists()
    bad = run(project, "ngixi", "run", "--tenant", "../acme", counter, "increment", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "ngixi: error: --tenant: '../acme' is not a tenant id" in bad.stderr


def test_cli_refuses_a_bundle_over_the_policy_ceilings(project: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[capabilities]\nallow = ["fs", "stdio", "kv"]\n'
        '[capabilities.fs]\nhost_roots = ["data"]\nwritable = false\n'
        '[capabilities.kv]\nnamespaces = ["counters"]\nmax_keys = 5\n'
    )
    notes = run(
        project, "ngixi", "run", "--policy", str(policy), str(bundle(project, "notes")), "read_note", check=False
    )
    assert notes.returncode == 6 and "Traceback" not in notes.stderr
    assert notes.stderr.splitlines()[1:] == [
        '  capabilities.fs.preopens[0].mode: "rw" is not allowed: the policy allows only read-only mounts',
        '  capabilities.fs.preopens[1].host: "config" is outside the policy\'s host_roots (data)',
    ]
    counter = run(
        project, "ngixi", "run", "--policy", str(policy), str(bundle(project, "counter")), "increment", check=False
    )
    assert counter.returncode == 6
    assert counter.stderr.splitlines()[1:] == ["  capabilities.kv.max_keys: asks for 10, the policy allows at most 5"]
    policy.write_text(policy.read_text().replace("max_keys = 5", "max_keys = 10"))
    assert (
        run(project, "ngixi", "run", "--policy", str(policy), str(bundle(project, "counter")), "increment").returncode
        == 0
    )
    policy.write_text("[capabilities.kv]\nmax_keys = 0\n")
    bad = run(
        project, "ngixi", "run", "--policy", str(policy), str(bundle(project, "counter")), "increment", check=False
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith(f"{policy}: capabilities.kv.max_keys: must be between 1 and 1000000, not 0")
