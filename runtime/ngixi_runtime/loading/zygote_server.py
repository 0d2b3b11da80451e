"""The fork server's own process: `python -I -m ngixi_runtime.loading.zygote_server <socket>`; see zygote.py."""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import gc
import importlib
import os
import signal
import site
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ngixi_runtime.capabilities.registry import REGISTRY, capability, provisions
from ngixi_runtime.engines.base import engine_named, installed_engines
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.files import toml_tables
from ngixi_runtime.loading.zygote import (
    CHILD_DESCRIPTORS,
    CHILD_ERRORS,
    MAX_MESSAGE,
    NUMBER,
    REFUSED,
    SPAWN,
    ForkedProcess,
    forked,
    forking_from_this_process,
    tenant_pipes,
    threads,
)
from ngixi_runtime.spec.digests import blake2b_512, sha256_hex
from ngixi_runtime.spec.targets import host_cpu_features, host_triple

if TYPE_CHECKING:
    import socket

# RFC 8032's first Ed25519 test vector: a public key and its signature of the empty message.
_RFC8032_PUBLIC_KEY = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
_RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
_PRELOADED_PACKAGES = ("ngixi_runtime.capabilities", "ngixi_runtime.engines")
# The tenant child, and what a tenant imports only when its guest needs it (a manifest's [[smoke]] entries, code
# compiled on this host, ctypes for tenant_child's malloc settings after a tenant's first call), which a one-shot
# `ngixi run` leaves out but every fork of this server should share.
_PRELOADED_MODULES = (
    "ngixi_runtime.loading.tenant_child",
    "ngixi_runtime.guest.smoke",
    "ngixi_runtime.loading.aot_cache",
    "ctypes",
)
# A spawn request's: the child's requests, replies, errors and bundle, then its status pipe.
_RECEIVED_DESCRIPTORS = 5


def _preload() -> None:
    """Imports what a tenant may need: `_PRELOADED_MODULES`, every capability and every installed engine."""
    import pkgutil  # here and below: only the zygote's own process (`ngixi run` forks from itself)

    for module_name in _PRELOADED_MODULES:
        importlib.import_module(module_name)
    for package_name in _PRELOADED_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            with contextlib.suppress(ImportError):  # an engine not installed here
                importlib.import_module(module.name)


def _warm_up() -> None:
    """Runs once, on fixed inputs, what each tenant's first request would otherwise run for the first time in
    its own process, so that what is made on first use is made here, before any fork, and shared by every
    tenant: an Ed25519 verification, the digests, a validating base64 decode, a TOML parse, the host's
    facts the loader caches (target triple, CPU features, each installed engine's version), the C library's
    mallopt each tenant sets after its first answer, and the capability tables. Nothing in it is a guest's,
    and nothing random is drawn."""
    from ngixi_runtime.loading.tenant_child import c_mallopt  # here: a one-shot run imports this module, not that

    public = Ed25519PublicKey.from_public_bytes(_RFC8032_PUBLIC_KEY)
    public.verify(_RFC8032_SIGNATURE, b"")
    sha256_hex(b"")
    blake2b_512(b"")
    blake3.blake3(b"").hexdigest()
    base64.b64decode(b"", validate=True)
    toml_tables('a = "b"', source="")
    host_triple()
    host_cpu_features()
    c_mallopt()
    for name in installed_engines():
        with contextlib.suppress(NgixiError):  # an engine that does not load here: the tenant says so
            engine_named(name).current_engine()
    for name in REGISTRY:
        with contextlib.suppress(ImportError):  # one whose dependency is missing: only its guests need it
            capability(name)
    provisions(())


def serve(control: socket.socket) -> None:
    """Forks a tenant for each spawn request until the host closes the control socket."""
    _Server(control).serve()


class _Spare:
    """A tenant process forked ahead of its spawn request, so that the fork and what a new process does first (the
    interpreter's after-fork work, the copies of the first pages it writes) are off the spawn's path. It waits on
    its end of `handoff` for its tenant's descriptors (`_await_tenant`); nothing else is sent to it."""

    __slots__ = ("handoff", "pid", "pidfd")

    def __init__(self, pid: int, pidfd: int | None, handoff: socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.handoff = handoff

    def discard(self) -> None:
        """Closes this server's ends: a spare still waiting reads the end of its handoff socket and exits."""
        self.handoff.close()
        if self.pidfd is not None:
            os.close(self.pidfd)


class _Server:
    """The fork server's state: each tenant's status pipe and pidfd by pid, and the spare forked for the next one."""

    def __init__(self, control: socket.socket) -> None:
        import selectors

        self.control = control
        self.selector = selectors.DefaultSelector()
        self.readable = selectors.EVENT_READ
        self.selector.register(control, self.readable)
        self.statuses: dict[int, int] = {}  # pid -> the write end of its status pipe
        self.pidfds: dict[int, int] = {}
        self.spare: _Spare | None = None

    def serve(self) -> None:
        import socket

        self.spare = _spare_or_none()
        while True:
            for key, _ in self.selector.select(None if hasattr(os, "pidfd_open") else 0.1):
                if key.fileobj is self.control:
                    message, descriptors, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, _RECEIVED_DESCRIPTORS)
                    if not message:
                        return
                    try:
                        self._spawn(descriptors)
                    except _HostUnreachable:
                        return
            self._reap()

    def _spawn(self, descriptors: list[int]) -> None:
        """Hands a spare (or a process forked now) the request's descriptors and tells the host its pid and pidfd;
        then forks the next spare, while the new tenant starts."""
        try:
            if len(descriptors) != _RECEIVED_DESCRIPTORS:  # some did not fit this process's table
                raise OSError(errno.EMFILE, "too many open files: the spawn request's descriptors were cut")
            tenant = self._handed_over(descriptors[:CHILD_DESCRIPTORS])
        except OSError as error:  # no process or descriptor to be had now: that request fails, not the server
            _refuse(self.control, descriptors, error)
            return
        self.statuses[tenant.pid] = descriptors[-1]
        for descriptor in descriptors[:-1]:
            os.close(descriptor)
        _answer(self.control, tenant)
        if tenant.pidfd is not None:
            self.pidfds[tenant.pid] = tenant.pidfd
            self.selector.register(tenant.pidfd, self.readable)
        self.spare = _spare_or_none()

    def _handed_over(self, descriptors: list[int]) -> _Spare:
        """The spare, once it holds `descriptors` (one forked now if there is none, or it cannot take them)."""
        import socket

        for attempt in range(2):
            spare, self.spare = self.spare or _forked_spare(), None
            try:
                socket.send_fds(spare.handoff, [SPAWN], descriptors)
            except OSError:  # it has died (say, killed): it is reaped as any child is
                spare.discard()
                if attempt:
                    raise
                continue
            spare.handoff.close()
            return spare
        raise AssertionError("unreachable")

    def _reap(self) -> None:
        """Reaps every ended child and writes a tenant's wait status to its status pipe."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare.pid == pid:  # it died waiting
                self.spare.discard()
                self.spare = None
            writer = self.statuses.pop(pid, None)
            if writer is not None:
                with contextlib.suppress(BrokenPipeError):  # its host is gone or no longer asks
                    os.write(writer, NUMBER.pack(status))
                os.close(writer)
            pidfd = self.pidfds.pop(pid, None)
            if pidfd is not None:
                self.selector.unregister(pidfd)
                os.close(pidfd)


def _pidfd_of(pid: int) -> int | None:
    """A pidfd for the child just forked (None where the system has none); a child no descriptor can be had for
    is killed and reaped before the error is raised, so it neither runs unseen by its host nor stays a zombie."""
    try:
        return os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


class _HostUnreachable(Exception):
    """The answer to a spawn could not be sent (the host has gone, or its socket took no more): the server ends,
    which a host still there sees as the end of its fork server; the tenant reads the end of its requests."""


def _refuse(control: socket.socket, descriptors: list[int], error: OSError) -> None:
    """Tells the host that its spawn request failed, and why; closes what came with it."""
    for descriptor in descriptors:
        os.close(descriptor)
    control.send((REFUSED + str(error).encode(errors="replace"))[:MAX_MESSAGE])


def _answer(control: socket.socket, tenant: _Spare) -> None:
    """Tells the host the new tenant's pid and passes it a pidfd (this server keeps its own)."""
    import socket

    try:
        socket.send_fds(control, [NUMBER.pack(tenant.pid)], [] if tenant.pidfd is None else [tenant.pidfd])
    except OSError as error:  # the request's descriptors are closed: no refusal can follow
        raise _HostUnreachable from error


def _spare_or_none() -> _Spare | None:
    """A spare for the next spawn request, or None if none can be had now (that request forks its own, or fails)."""
    try:
        return _forked_spare()
    except OSError:
        return None


def _forked_spare() -> _Spare:
    """Forks a spare waiting for its tenant's descriptors on a socket of its own."""
    import socket

    if threads() != 1:
        raise RuntimeError("the tenant fork server must be single-threaded when it forks")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except BaseException:
        ours.close()
        theirs.close()
        raise
    if pid == 0:
        _await_tenant(theirs)
    theirs.close()
    try:
        pidfd = _pidfd_of(pid)
    except BaseException:
        ours.close()
        raise
    return _Spare(pid, pidfd, ours)


def _await_tenant(handoff: socket.socket) -> None:
    """In a spare: closes every descriptor but its handoff socket's and the standard streams (the control socket,
    other tenants' status pipes and pidfds), waits for its tenant's descriptors and becomes that tenant; exits if
    the server ends first. Never returns."""
    import socket

    try:
        os.closerange(3, handoff.fileno())
        os.closerange(handoff.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
        _, descriptors, _, _ = socket.recv_fds(handoff, MAX_MESSAGE, CHILD_DESCRIPTORS)
        handoff.detach()  # closed with every other descriptor by _become_tenant, never by this object
    except BaseException:
        os._exit(1)
    if len(descriptors) != CHILD_DESCRIPTORS:  # the server ended (or sent something else): no tenant to become
        os._exit(0)
    _become_tenant(descriptors)


def _become_tenant(descriptors: list[int], enter: Callable[[], None] | None = None) -> None:
    """In the forked child: its own session, descriptors 0-3 only, `enter` (the clean room of a child forked from
    a command's own process), then the tenant's serve loop; never returns, whatever fails on the way."""
    code = 1
    moved: list[int] = []
    try:
        os.setsid()
        moved = [fcntl.fcntl(descriptor, fcntl.F_DUPFD_CLOEXEC, CHILD_DESCRIPTORS) for descriptor in descriptors]
        for target, descriptor in enumerate(moved):
            os.dup2(descriptor, target, inheritable=False)
        os.closerange(CHILD_DESCRIPTORS, os.sysconf("SC_OPEN_MAX"))  # the control socket, other tenants' pipes
        if enter is not None:
            enter()
        from ngixi_runtime.loading import tenant_child

        code = tenant_child.main()
    except BaseException as error:
        if not moved:  # its error on the tenant's error stream, never on the one it was forked with (a terminal)
            with contextlib.suppress(OSError):
                os.dup2(descriptors[CHILD_ERRORS], 2, inheritable=False)
        # The interpreter's own printer, not the traceback module's, which a one-shot run's parent would import.
        sys.__excepthook__(type(error), error, error.__traceback__)
    finally:
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
        os._exit(code)  # never the zygote's own clean-up: its objects name descriptors this process closed


def tenants_forked_here() -> contextlib.AbstractContextManager[None]:
    """Within the block, this process forks its isolated tenants from itself while single-threaded (`fork_here`)."""
    return forking_from_this_process(fork_here)


def fork_here(environment: Mapping[str, str], bundle: int, errors: int) -> ForkedProcess:
    """Forks a tenant from this single-threaded process: for a one-shot command, instead of starting a zygote.

    The child is the clean room a zygote's is, but for what this process imported before the fork: it moves to
    `/`, replaces its environment with `environment` (its /proc/<pid>/environ still shows the one it started
    with), and imports anything more only from the interpreter's own paths (no working directory, script
    directory, PYTHONPATH or user site).
    """
    for stream in (sys.stdout, sys.stderr):  # or the child would write what this process left in their buffers
        stream.flush()
    with tenant_pipes(2) as made:
        requests, replies = made.pipes
        pid = os.fork()
        if pid == 0:
            _become_tenant([requests[0], replies[1], errors, bundle], partial(_enter_clean_room, environment))
        return forked(pid, made, requests, replies, status=None, pidfd=_pidfd_of(pid))


def _enter_clean_room(environment: Mapping[str, str]) -> None:
    sys.path[:] = _isolated_path()  # before the environment goes: it names the PYTHONPATH entries to leave out
    os.chdir("/")
    os.environ.clear()
    os.environ.update(environment)


def _isolated_path() -> list[str]:
    """This interpreter's module path without what `python -I` leaves out: the script's directory (or the working
    directory) Python put first, PYTHONPATH's entries and the user site."""
    isolated = sys.flags.isolated or getattr(sys.flags, "safe_path", False)
    path = sys.path if isolated else sys.path[1:]
    left_out = {site.getusersitepackages()}
    if not sys.flags.ignore_environment:
        left_out.update(os.environ.get("PYTHONPATH", "").split(os.pathsep))
    return [entry for entry in path if entry not in left_out]


def main() -> None:
    import socket

    _preload()
    _warm_up()
    control = socket.socket(fileno=int(sys.argv[1]))
    gc.collect()
    gc.freeze()
    if threads() != 1:
        raise SystemExit("the tenant fork server started a thread while importing")
    serve(control)


if __name__ == "__main__":
    main()
