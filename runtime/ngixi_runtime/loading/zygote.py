"""The fork server ("zygote") that starts isolated tenants: `python -I -m ngixi_runtime.loading.zygote_server`.

Starting a tenant as a new interpreter costs its imports, every time. A zygote pays them once: it
imports the loader, the engines and every capability module, runs once on fixed inputs what each
child would otherwise run for the first time (`zygote_server._warm_up`: OpenSSL's Ed25519 set-up, the
host facts the loader caches; nothing random, nothing a guest's), freezes what it has made
(`gc.freeze`, so that the collector never writes to those pages and children share them), and
then forks one child per tenant, each ahead of its spawn request (a spare, `zygote_server._Spare`,
handed its descriptors when the request comes). A child imports nothing new and runs no code of the
zygote's but `tenant_child.serve`.

A host process starts one zygote per tenant environment (`isolated.child_environment`: the host's
`CHILD_ENVIRONMENT` variables, its AOT cache, the operator's `child_env`), lazily, on the first
spawn that needs it, the way it started each child before: `python -I` (no working directory, user
site or PYTHON* variables on its path), in `/`, with exactly that environment, so that a tenant's
`/proc/<pid>/environ` is its own. A zygote that died is replaced at the next spawn; a process that
forked from its host starts its own (a zygote belongs to the process id that started it).

What a forked tenant gets is what a fresh child got: its own process and session (`setsid`), the
zygote's clean environment and working directory, descriptors 0-3 only (its requests, its replies,
its stderr file, the verified bundle's open file; every other one closed, the control socket
included), the signal handlers the interpreter starts with (the zygote sets none), Python's
`random` seeded anew (CPython does so after every fork), and Wasmtime's WASI generators seeded in the child
alone (a store given WASI seeds them from its thread's, which a fork copies: the zygote makes none; docs/host-policy.md,
"Randomness in forked tenants"). It opens the bundle from descriptor 3, held
to the signed index bytes its host verified (`bundles.reader.reopen_verified`), sets its rlimits
before the guest's first instruction (tenant_child.py), and serves its host over its own pipes: the
zygote never sees a request.

Shared by all children of one zygote: the str hash seed (`PYTHONHASHSEED` is drawn once per
interpreter) and the read-only pages of imported code. A guest cannot read either.

The zygote is single-threaded (it creates no engine, store or thread; every fork checks
`/proc/self/task`), so no lock is ever held by another thread at fork time, whatever threads the host
runs. It reaps its children and writes each one's wait status to that child's status pipe, so the
host still tells a CPU limit (SIGXCPU) from a crash. The host kills a child through a pidfd the zygote
passes back (`signal.pidfd_send_signal`), so a reused process id is never signalled; without pidfd
support it falls back to the process id. A spawn it cannot serve (no descriptor or process to be had) is
refused with why (`SpawnRefused`), and it serves on. When the host exits, the zygote reads EOF on its control
socket and exits; each tenant reads EOF on its request pipe and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO

from ngixi_runtime.errors import NgixiError

# Where a forked tenant finds what it serves with.
CHILD_REQUESTS, CHILD_REPLIES, CHILD_ERRORS, CHILD_BUNDLE = 0, 1, 2, 3
CHILD_DESCRIPTORS = 4
_ZYGOTE_DIRECTORY = "/"
SPAWN = b"spawn"
NUMBER = struct.Struct("=i")
# The zygote's answer to a spawn request it could not serve (no process or descriptor to be had), then why; never
# as short as a pid's answer.
REFUSED = b"refused: "
MAX_MESSAGE = 64
# Time the zygote may take to start (its imports) and to answer a spawn request.
_ANSWER_SECONDS = 30.0


class ZygoteDied(OSError):
    """The zygote did not answer a spawn request: it is replaced and the request sent again."""


class SpawnRefused(NgixiError):
    """The zygote could not fork a tenant now (a process or descriptor limit): it serves on, the request failed."""


class ForkedProcess:
    """A tenant forked by a zygote, as its host sees it: its pipes, its pid, its pidfd and its wait status."""

    __slots__ = ("pid", "pidfd", "returncode", "status", "status_known", "stdin", "stdout")

    def __init__(
        self,
        pid: int,
        stdin: IO[bytes],
        stdout: IO[bytes],
        status: int | None,  # the read end of the pipe its zygote writes the wait status to; None: this process's child
        pidfd: int | None,
    ) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.status = status
        self.pidfd = pidfd
        self.returncode: int | None = None
        self.status_known = True

    def poll(self) -> int | None:
        """The exit code (minus the signal that ended it) once it has ended, else None."""
        if self.returncode is None and (self.status is None or readable(self.status, 0)):
            self._read_status(wait=False)
        return self.returncode

    def wait(self) -> int:
        """Waits for it to end; its exit code, or minus the signal that ended it (0 if its zygote died first)."""
        if self.returncode is None:
            self._read_status(wait=True)
        assert self.returncode is not None
        return self.returncode

    def _read_status(self, *, wait: bool) -> None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            return
        raw = os.read(self.status, NUMBER.size)  # written at once: all of it or, once its zygote died, nothing
        if raw:
            self.returncode = os.waitstatus_to_exitcode(NUMBER.unpack(raw)[0])
        elif (self.pidfd is None and wait) or (self.pidfd is not None and readable(self.pidfd, None if wait else 0)):
            self.returncode, self.status_known = 0, False

    def kill(self, signum: int) -> None:
        """Sends `signum` unless it has ended (through its pidfd, which never names another process)."""
        if self.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            else:
                os.kill(self.pid, signum)

    def stop(self) -> None:
        """Kills it and waits until it has ended: a zygote's child through its pidfd, which says so as soon as it
        has, rather than for its zygote to reap it and pass on the status (which is then not known here); this
        process's own child by reaping it, which leaves no zombie."""
        self.kill(signal.SIGKILL)
        if self.returncode is None and self.pidfd is not None and self.status is not None:
            readable(self.pidfd, None)
        else:
            self.wait()

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(BrokenPipeError):  # a request still buffered for the dead child
                stream.close()
        if self.status is not None:
            os.close(self.status)
        if self.pidfd is not None:
            os.close(self.pidfd)


def readable(descriptor: int, seconds: float | None) -> bool:
    """Whether `descriptor` is readable (or at its end) within `seconds` (None: waits); any descriptor number."""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    return bool(poller.poll(None if seconds is None else max(0, round(seconds * 1000))))


class Zygote:
    """A host's handle on one zygote process: it sends spawn requests and receives forked tenants."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        import socket  # here and below: only a host that starts a zygote (`ngixi run` forks from itself)
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-m", "ngixi_runtime.loading.zygote_server", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                cwd=_ZYGOTE_DIRECTORY,
                env=dict(environment),
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(_ANSWER_SECONDS)
        self._socket = ours
        self._lock = threading.Lock()
        self.owner = os.getpid()

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self.owner == os.getpid() and self._process.poll() is None

    def spawn(self, bundle: int, errors: int) -> ForkedProcess:
        """Forks a tenant that reads requests from a new pipe, replies on another, and writes errors to `errors`."""
        import socket

        with tenant_pipes(3) as made:
            requests, replies, status = made.pipes
            handed = [requests[0], replies[1], errors, bundle, status[1]]
            with self._lock:
                try:
                    socket.send_fds(self._socket, [SPAWN], handed)
                    message, received, _, _ = socket.recv_fds(self._socket, MAX_MESSAGE, 1)
                except OSError as error:  # a timeout too
                    raise ZygoteDied(f"the tenant fork server did not answer: {error}") from error
            if len(message) != NUMBER.size:
                for descriptor in received:
                    os.close(descriptor)
                if message.startswith(REFUSED):
                    why = message[len(REFUSED) :].decode(errors="replace")
                    raise SpawnRefused(f"the tenant fork server could not start a tenant process: {why}")
                raise ZygoteDied("the tenant fork server ended")
            made.close(status[1])
            (pid,) = NUMBER.unpack(message)
            return forked(pid, made, requests, replies, status=status[0], pidfd=received[0] if received else None)

    def close(self) -> None:
        """Closes the control socket: the zygote exits (its tenants serve on until their hosts close them)."""
        import subprocess

        self._socket.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=_ANSWER_SECONDS)


class Descriptors:
    """The descriptors made for one tenant, each closed exactly once: by `close`, by the holder `release` hands it
    to, or by `tenant_pipes` when its block fails. One closed twice could be another thread's by then (a new
    descriptor takes the lowest free number)."""

    __slots__ = ("_open", "pipes")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self.pipes: list[tuple[int, int]] = []

    def pipe(self) -> None:
        read, write = os.pipe()
        self._open.update((read, write))
        self.pipes.append((read, write))

    def release(self, descriptor: int) -> int:
        """Hands `descriptor` to a holder that closes it from now on."""
        self._open.remove(descriptor)
        return descriptor

    def close(self, descriptor: int) -> None:
        os.close(self.release(descriptor))

    def close_all(self) -> None:
        while self._open:
            with contextlib.suppress(OSError):
                os.close(self._open.pop())


@contextlib.contextmanager
def tenant_pipes(count: int) -> Iterator[Descriptors]:
    """A tenant's pipes (`pipes`): its requests, its replies, then any other; every end not yet closed or handed
    over is closed if the block fails (on success `forked` and the block close or hand over each)."""
    made = Descriptors()
    try:
        for _ in range(count):
            made.pipe()
        yield made
    except BaseException:
        made.close_all()
        raise


def forked(
    pid: int,
    made: Descriptors,
    requests: tuple[int, int],
    replies: tuple[int, int],
    *,
    status: int | None,
    pidfd: int | None,
) -> ForkedProcess:
    """The host's side of tenant `pid`, forked on `requests` and `replies` (and `status`) of `made`: the child's
    ends closed here, this side's handed to the ForkedProcess. `pidfd` is the caller's, handed over."""
    for descriptor in (requests[0], replies[1]):
        made.close(descriptor)
    stdin = open(made.release(requests[1]), "wb")  # noqa: SIM115 - the ForkedProcess's from here
    try:
        stdout = open(made.release(replies[0]), "rb")  # noqa: SIM115 - likewise
    except BaseException:
        stdin.close()
        raise
    return ForkedProcess(
        pid, stdin=stdin, stdout=stdout, status=None if status is None else made.release(status), pidfd=pidfd
    )


Environment = tuple[tuple[str, str], ...]
_zygotes: dict[Environment, Zygote] = {}  # the least recently used first
_zygotes_lock = threading.Lock()
# The tenants open per environment (`tenant_opened`): a zygote none of whose tenants is open is idle.
_tenants_open: dict[Environment, int] = {}
# How many idle zygotes a host keeps, the most recently used, for the next tenants of their environments: a host
# opening tenants with ever new `child_env`s would otherwise keep a zygote and its spare for each until it exits.
IDLE_ZYGOTES = 2


Spawner = Callable[[Mapping[str, str], int, int], ForkedProcess]
_forking_here: list[Spawner] = []


@contextlib.contextmanager
def forking_from_this_process(spawner: Spawner) -> Iterator[None]:
    """Within the block, `spawn_tenant` calls `spawner` instead of a zygote while this process is single-threaded
    (a one-shot command, which would otherwise pay a zygote's start for one tenant)."""
    _forking_here.append(spawner)
    try:
        yield
    finally:
        _forking_here.remove(spawner)


def threads() -> int:
    """How many threads this process runs."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()


def spawn_tenant(environment: Mapping[str, str], bundle: int, errors: int) -> ForkedProcess:
    """Forks a tenant from this process's zygote for `environment`, starting or replacing the zygote as needed."""
    if _forking_here and threads() == 1:
        return _forking_here[-1](environment, bundle, errors)
    key = _key(environment)
    for attempt in range(2):
        zygote = _zygote_for(key, environment)
        try:
            return zygote.spawn(bundle, errors)
        except ZygoteDied:
            with _zygotes_lock:
                if _zygotes.get(key) is zygote:
                    del _zygotes[key]
            zygote.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _key(environment: Mapping[str, str]) -> Environment:
    return tuple(sorted(environment.items()))


def _zygote_for(key: Environment, environment: Mapping[str, str]) -> Zygote:
    with _zygotes_lock:
        zygote = _zygotes.pop(key, None)
        if zygote is None or not zygote.alive():
            if zygote is not None and zygote.owner == os.getpid():
                zygote.close()
            zygote = Zygote(environment)
        _zygotes[key] = zygote  # the most recently used, last
        return zygote


def tenant_opened(environment: Mapping[str, str]) -> None:
    """Counts a tenant whose children an `environment`'s zygote forks, open until `tenant_closed`."""
    key = _key(environment)
    with _zygotes_lock:
        _tenants_open[key] = _tenants_open.get(key, 0) + 1


def tenant_closed(environment: Mapping[str, str]) -> None:
    """Counts a tenant of `tenant_opened` closed, and closes the least recently used idle zygotes beyond
    `IDLE_ZYGOTES` (their spares exit with them; a running tenant of theirs serves on)."""
    key = _key(environment)
    with _zygotes_lock:
        left = _tenants_open.pop(key, 0) - 1
        if left > 0:
            _tenants_open[key] = left
        idle = [other for other in _zygotes if other not in _tenants_open]
        surplus = [_zygotes.pop(other) for other in idle[: max(0, len(idle) - IDLE_ZYGOTES)]]
    for zygote in surplus:
        if zygote.owner == os.getpid():
            zygote.close()


def zygote_pids() -> list[int]:
    """The process ids of this process's zygotes (for measuring them)."""
    with _zygotes_lock:
        return [zygote.pid for zygote in _zygotes.values() if zygote.alive()]


@atexit.register
def _close_zygotes() -> None:
    with _zygotes_lock:
        for zygote in _zygotes.values():
            if zygote.owner == os.getpid():
                zygote.close()
        _zygotes.clear()
