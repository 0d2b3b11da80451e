"""Tenants forked by the fork server (loading/zygote.py): a fresh child's properties, nothing shared, no deadlock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE
from ngixi_runtime.loading.isolated import CHILD_ENVIRONMENT, IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from ngixi_runtime.loading.zygote import CHILD_BUNDLE, zygote_pids
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle
from tests.integration import descriptors_of
from tests.run.integration.test_rollback import wait_until_dead
from tests.run.integration.test_tenant_checked import child_environ
from tests.wasmgen import ADD_BODY, Func, Imp, module

LOG = Imp("ngixi", "log", ["i32"] * 3)
# The i32 at address 0 plus one, stored back and returned: state a tenant keeps between calls.
NEXT_BODY = bytes.fromhex("4100 4100 280200 4101 6a 360200 4100 280200")
SPIN_BODY = b"\x03\x40\x0c\x00\x0b"  # loop, br 0, end
MANIFEST = f'{HELLO_MANIFEST}[exports.next]\nresults = ["i32"]\n\n[exports.spin]\n\n[limits]\ntimeout_ms = 300\n'
# What a tenant process holds open: requests, replies, its stderr file, the verified bundle.
DOCUMENTED_DESCRIPTORS = {0, 1, 2, CHILD_BUNDLE}


@pytest.fixture
def bundle(keys: KeyFiles, tmp_path: Path) -> Path:
    functions = [Func("add", ["i32", "i32"], ["i32"], ADD_BODY), Func("next", [], ["i32"], NEXT_BODY)]
    wasm = module(imports=[LOG], functions=[*functions, Func("spin", body=SPIN_BODY)])
    return make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=MANIFEST)


def isolated(bundle: Path, keys: KeyFiles, **options: object) -> IsolatedTenant:
    tenant = open_tenant(bundle, trust_file=keys.trust, **options)  # type: ignore[arg-type]
    assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
    return tenant


def pid_of(tenant: IsolatedTenant) -> int:
    assert tenant.pid is not None
    return tenant.pid


def limits(pid: int) -> dict[str, str]:
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): row[26:].split()[0] for row in rows}


def session(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[3])


@pytest.mark.usefixtures("engine_name")
def test_a_forked_tenant_is_a_clean_room_of_its_own(
    bundle: Path, keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_HOST_SECRET", "hunter2")
    sandboxes = tmp_path / "sandboxes"
    with isolated(bundle, keys, child_env={"SSL_CERT_FILE": "/etc/ca.pem"}, sandboxes=sandboxes) as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)
        pid = pid_of(tenant)
        held = descriptors_of(pid)
        assert session(pid) == pid and os.getsid(pid) != os.getsid(0)
        assert Path(f"/proc/{pid}/cwd").readlink() == Path("/")
        assert set(child_environ(pid)) <= {*CHILD_ENVIRONMENT, CACHE_VARIABLE, "XDG_STATE_HOME", "SSL_CERT_FILE"}
        assert child_environ(pid)["SSL_CERT_FILE"] == "/etc/ca.pem" and "hunter2" not in str(child_environ(pid))
        capped = limits(pid)
        assert capped["Max address space"] != "unlimited"  # set once the guest was instantiated
        assert capped["Max cpu time"] != "unlimited"  # set before each call
    assert set(held) == DOCUMENTED_DESCRIPTORS, held
    assert held[CHILD_BUNDLE] == str(bundle)  # the verified file itself, never the path opened anew
    assert held[0].startswith("pipe:") and held[1].startswith("pipe:") and held[0] != held[1]


@pytest.mark.usefixtures("engine_name")
def test_a_forked_tenant_trusts_the_certificates_its_host_does(
    bundle: Path, keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose TLS trust comes from SSL_CERT_FILE or SSL_CERT_DIR (a company's CA) verified an in-process http
    guest's fetches against it, but its isolated tenants' children dropped both, so OpenSSL's defaults verified
    theirs; `ngixi run`, isolated by default, had no way to pass them (nor had TenantPool)."""
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/company/ca.pem")
    monkeypatch.setenv("SSL_CERT_DIR", "/etc/company/certs")
    with isolated(bundle, keys, sandboxes=tmp_path / "sandboxes") as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)
        environ = child_environ(pid_of(tenant))
    assert (environ["SSL_CERT_FILE"], environ["SSL_CERT_DIR"]) == ("/etc/company/ca.pem", "/etc/company/certs")


def test_the_fork_server_is_single_threaded_and_in_a_clean_room(bundle: Path, keys: KeyFiles) -> None:
    with isolated(bundle, keys):
        for server in zygote_pids():
            assert len(os.listdir(f"/proc/{server}/task")) == 1
            assert Path(f"/proc/{server}/cwd").readlink() == Path("/")
            assert Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")[1:2] == [b"-I"]


def test_tenants_forked_from_one_server_share_no_state(bundle: Path, keys: KeyFiles, tmp_path: Path) -> None:
    with isolated(bundle, keys, tenant="first") as first, isolated(bundle, keys, tenant="second") as second:
        assert [first.call("next").values for _ in range(3)] == [(1,), (2,), (3,)]
        assert second.call("next").values == (1,)  # its own memory, not the first one's
        assert pid_of(first) != pid_of(second) and session(pid_of(first)) != session(pid_of(second))


def kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until_dead(pid)


def test_a_killed_tenant_or_fork_server_leaves_the_host_and_the_others_serving(bundle: Path, keys: KeyFiles) -> None:
    with ExitStack() as stack:
        tenants = [stack.enter_context(isolated(bundle, keys)) for _ in range(3)]
        kill_and_wait(pid_of(tenants[0]))
        with pytest.raises(CallFailed, match=r"the tenant process died \(signal SIGKILL\)"):
            tenants[0].call("add", (2, 3))
        assert [tenant.call("add", (2, 3)).values for tenant in tenants] == [(5,)] * 3  # the first one restarted
        servers = zygote_pids()
        for server in servers:
            kill_and_wait(server)
        assert [tenant.call("add", (2, 3)).values for tenant in tenants] == [(5,)] * 3
        kill_and_wait(pid_of(tenants[1]))
        with pytest.raises(CallFailed, match="the tenant process died"):
            tenants[1].call("add", (2, 3))
        assert tenants[1].call("add", (2, 3)).values == (5,)  # from a new fork server
        late = stack.enter_context(isolated(bundle, keys))
        assert late.call("add", (2, 3)).values == (5,)
        assert not set(zygote_pids()) & set(servers)


def test_a_timed_out_tenant_is_stopped_and_the_next_call_forks_a_new_one(bundle: Path, keys: KeyFiles) -> None:
    pytest.importorskip("wasmer")  # Wasmtime interrupts the guest itself and keeps its child
    with isolated(bundle, keys, engine="wasmer") as tenant:
        before = pid_of(tenant)
        with pytest.raises(CallFailed) as timed_out:
            tenant.call("spin")
        assert timed_out.value.outcome == "timeout" and tenant.pid is None
        wait_until_dead(before)
        assert tenant.call("add", (2, 3)).values == (5,) and tenant.pid != before


@pytest.fixture
def busy_host_threads(bundle: Path, keys: KeyFiles) -> Iterator[None]:
    """While the test runs: a Wasmtime epoch thread ticking (a guest spinning to its deadline, over and over) and
    bundles verified in this process (the hashing thread)."""
    pytest.importorskip("wasmtime")
    stop = threading.Event()

    def spin() -> None:
        with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmtime") as tenant:
            while not stop.is_set():
                with pytest.raises(CallFailed):
                    tenant.call("spin")

    def verify() -> None:
        while not stop.is_set():
            open_tenant(bundle, trust_file=keys.trust, isolated=False).close()

    workers = [threading.Thread(target=work, daemon=True) for work in (spin, verify)]
    for worker in workers:
        worker.start()
    yield
    stop.set()
    for worker in workers:
        worker.join(timeout=30)


@pytest.mark.usefixtures("busy_host_threads")
def test_spawning_many_tenants_while_host_threads_are_busy_does_not_deadlock(bundle: Path, keys: KeyFiles) -> None:
    answers: list[tuple[int, ...]] = []

    def spawn_all() -> None:
        for _ in range(24):
            with isolated(bundle, keys) as tenant:
                answers.append(tenant.call("add", (2, 3)).values)

    spawner = threading.Thread(target=spawn_all, daemon=True)
    spawner.start()
    spawner.join(timeout=120)
    assert not spawner.is_alive(), "spawning tenants hung"
    assert answers == [(5,)] * 24


FORKED_HOST = """
import os, sys
from pathlib import Path
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote import zygote_pids

bundle, trust = Path(sys.argv[1]), Path(sys.argv[2])
with open_tenant(bundle, trust_file=trust) as tenant:
    assert tenant.call("add", (2, 3)).values == (5,)
    ours = set(zygote_pids())
    child = os.fork()
    if child == 0:
        with open_tenant(bundle, trust_file=trust) as theirs:
            fine = theirs.call("add", (2, 3)).values == (5,) and not set(zygote_pids()) & ours
        os._exit(0 if fine else 3)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    assert tenant.call("add", (2, 3)).values == (5,)
"""


def test_a_forked_host_gets_a_fork_server_of_its_own(bundle: Path, keys: KeyFiles) -> None:
    command = [sys.executable, "-c", FORKED_HOST, str(bundle), str(keys.trust)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == 0, finished.stderr
