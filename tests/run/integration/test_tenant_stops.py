"""Spawning and stopping many tenants: no descriptor, zombie or process left behind, from a fork server or from
this process (a one-shot command's `fork_here`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ngixi_runtime.loading.zygote import spawn_tenant, zygote_pids
from tests.integration import descriptors_of
from tests.run.integration.test_rollback import wait_until_dead
from tests.run.integration.test_tenant_fork import kill_and_wait

SPAWNS = 500
STDIO = {0, 1, 2}
# A child of a single-threaded process, as `ngixi run` forks its one-shot tenant: SPAWNS forks and stops, then
# the descriptors it holds and the children it left unreaped.
FORKED_HERE = """
import os, sys, tempfile
from ngixi_runtime.loading.zygote_server import fork_here

spawns = int(sys.argv[1])
with tempfile.TemporaryFile() as bundle, tempfile.TemporaryFile() as errors:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(spawns):
        child = fork_here({}, bundle.fileno(), errors.fileno())
        child.stop()
        child.close()
    after = len(os.listdir("/proc/self/fd"))
    unreaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not pid:
            break
        unreaped += 1
print(before, after, unreaped)
"""


def open_descriptors(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(child) for task in tasks.iterdir() for child in (task / "children").read_text().split()]


def settled_descriptors(zygote: int) -> int:
    """The fork server's open descriptors once it has reaped every tenant (and closed each one's pidfd and status
    pipe) and its one child is the spare it forks ahead of the next spawn, waiting with its four descriptors."""
    deadline = time.monotonic() + 10
    while (settled := _settled(zygote)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert settled is not None
    return settled


def _settled(zygote: int) -> int | None:
    """The server's descriptors if it has only a waiting spare and they stay the same for a moment, else None."""
    children = children_of(zygote)
    try:
        if len(children) != 1 or open_descriptors(children[0]) != 4:
            return None
    except FileNotFoundError:  # ended meanwhile
        return None
    held = open_descriptors(zygote)
    time.sleep(0.05)
    return held if children_of(zygote) == children and open_descriptors(zygote) == held else None


def test_spawning_and_stopping_many_tenants_from_a_fork_server_leaks_nothing() -> None:
    environment = {"LANG": "C.UTF-8", "NGIXI_TEST": "test_tenant_stops"}  # a fork server of its own
    with tempfile.TemporaryFile() as bundle, tempfile.TemporaryFile() as errors:
        others = set(zygote_pids())
        first = spawn_tenant(environment, bundle.fileno(), errors.fileno())  # starts the fork server
        first.stop()
        first.close()
        (zygote,) = set(zygote_pids()) - others
        ours, its = open_descriptors(), settled_descriptors(zygote)
        for _ in range(SPAWNS):
            child = spawn_tenant(environment, bundle.fileno(), errors.fileno())
            child.stop()
            assert child.returncode is not None or child.pidfd is not None
            child.close()
        assert open_descriptors() == ours
        assert settled_descriptors(zygote) == its


def test_tenants_forked_here_are_reaped_when_stopped() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKED_HERE, "50"], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, unreaped = map(int, done.stdout.split())
    assert (after, unreaped) == (before, 0)


# A host whose fork server starts with few descriptors (the host then takes its own limit back): spawns until the
# server runs out, then stops its tenants and spawns again.
OUT_OF_DESCRIPTORS = """
import resource, tempfile
from ngixi_runtime.loading.zygote import SpawnRefused, spawn_tenant, zygote_pids

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
environment = {"LANG": "C.UTF-8"}
with tempfile.TemporaryFile() as bundle, tempfile.TemporaryFile() as errors:
    kept = [spawn_tenant(environment, bundle.fileno(), errors.fileno())]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    server = zygote_pids()
    try:
        for _ in range(100):
            kept.append(spawn_tenant(environment, bundle.fileno(), errors.fileno()))
    except SpawnRefused as refusal:
        print(refusal)
    for child in kept:
        child.stop()
        child.close()
    again = spawn_tenant(environment, bundle.fileno(), errors.fileno())
    again.stop()
    again.close()
    print(zygote_pids() == server, len(kept) > 1)
"""


def test_a_fork_server_out_of_descriptors_refuses_a_spawn_and_serves_on() -> None:
    done = subprocess.run(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no traceback from the server or a child
    refusal, same_server = done.stdout.splitlines()
    assert refusal.startswith("the tenant fork server could not start a tenant process: [Errno 24] "), refusal
    assert same_server == "True True"


# A host that goes while the fork server forks its tenant (killed, or stopped waiting): the answer cannot be sent.
HOST_GONE = """
import os, socket, tempfile
from ngixi_runtime.loading.zygote import SPAWN
from ngixi_runtime.loading.zygote_server import serve

ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
with tempfile.TemporaryFile() as bundle, tempfile.TemporaryFile() as errors:
    requests, replies, status = os.pipe(), os.pipe(), os.pipe()
    socket.send_fds(ours, [SPAWN], [requests[0], replies[1], errors.fileno(), bundle.fileno(), status[1]])
    ours.close()
    for descriptor in (*requests, replies[1], status[1]):  # the server holds its own copies
        os.close(descriptor)
    serve(theirs)
print("served to the end")
"""


def test_a_fork_server_whose_host_went_before_its_answer_ends_without_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-c", HOST_GONE], capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "served to the end\n")


def spare_of(zygote: int, *tenants: int) -> int:
    """The child the fork server forked ahead of the next spawn: its only living child that is not one of `tenants`
    (a spare killed before is a zombie until the server reaps it, after the spawn that found it dead)."""
    deadline = time.monotonic() + 10
    while len(spares := _living(set(children_of(zygote)) - set(tenants))) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    (spare,) = spares
    return spare


def _living(pids: set[int]) -> set[int]:
    """The processes of `pids` that are neither zombies nor gone."""
    living = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                living.add(pid)
    return living


def _spare_and_server_descriptors(spare: int, server: int) -> tuple[dict[int, str], set[str]]:
    """The spare's descriptors (number → what it is) and what the server's are, once the spare has closed the server's
    (it keeps four) and the server its copy of the spare's socket (closed just after the fork), 10 s at most."""
    deadline = time.monotonic() + 10
    while True:
        held, servers = descriptors_of(spare), set(descriptors_of(server).values())
        settled = len(held) == 4 and not servers & {what for number, what in held.items() if number not in STDIO}
        if settled or time.monotonic() > deadline:
            return held, servers
        time.sleep(0.01)


def test_a_spare_holds_nothing_of_the_server_and_one_killed_or_left_alone_ends_cleanly() -> None:
    """The spare waits with the standard streams and its own socket alone (not the control socket, nor another
    tenant's status pipe); killed, it is replaced at the next spawn; its server gone, it ends."""
    environment = {"LANG": "C.UTF-8", "NGIXI_TEST": "test_a_spare"}  # a fork server of its own
    with tempfile.TemporaryFile() as bundle, tempfile.TemporaryFile() as errors:
        others = set(zygote_pids())
        first = spawn_tenant(environment, bundle.fileno(), errors.fileno())
        (zygote,) = set(zygote_pids()) - others
        spare = spare_of(zygote, first.pid)
        held, servers = _spare_and_server_descriptors(spare, zygote)
        (own,) = set(held) - STDIO
        assert held[own].startswith("socket:") and held[own] not in servers, (held, servers)
        kill_and_wait(spare)
        second = spawn_tenant(environment, bundle.fileno(), errors.fileno())
        assert second.pid != spare and second.poll() is None
        last_spare = spare_of(zygote, first.pid, second.pid)
        kill_and_wait(zygote)
        wait_until_dead(last_spare)
        for tenant in (first, second):
            assert tenant.poll() is None  # tenants serve on without their server
            tenant.stop()
            tenant.close()
