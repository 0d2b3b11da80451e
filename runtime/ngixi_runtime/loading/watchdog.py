"""A deadline for a guest in this process on an engine that cannot interrupt it (Wasmer): the process is ended.

Wasmer holds the GIL for the whole of a call, so no thread or signal handler of this process can act while
a guest spins: a forked watcher does. It is only for a process that exists to run that guest (`ngixi run
--in-process`); a host serving anything else runs such guests isolated, where the tenant's child is stopped.
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

# The deadline (time.monotonic, 0: none) and the lengths of the stderr line and the stdout report after it.
_ORDER = struct.Struct("<dII")
_STOP = -1.0  # an order's deadline that ends the watcher (`close`)
# POSIX fixes SIGKILL's number; `signal` (its enums, about 1 ms) would be imported by every in-process run for it.
_SIGKILL = 9


class ProcessWatchdog:
    """Ends this process (SIGKILL), with a one-line error on stderr, when a `limit` block outlives its time; with
    `report`, what it makes of that line (`ngixi run --json`'s failure document) is written to stdout first.

    The watcher is forked on first use and reads its orders from a pipe; it exits when this process does, or at
    `close`, which waits for it: whatever this process writes after that (`ngixi run --json`'s own document) never
    meets a report of a watcher that fired as the last `limit` block ended.
    """

    def __init__(self, report: Callable[[str], str] | None = None) -> None:
        self._orders: int | None = None
        self._watcher = self._forked_by = 0
        self._report = report

    @contextmanager
    def limit(self, seconds: float, message: str) -> Iterator[None]:
        self._order(time.monotonic() + seconds, message)
        try:
            yield
        finally:
            self._order(0.0, "")

    def close(self) -> None:
        """Ends the watcher; once this returns it writes nothing more (or it fired, and this process is ended)."""
        if self._orders is None:
            return
        orders, self._orders = self._orders, None
        try:
            if os.getpid() == self._forked_by:  # a process forked since would end its parent's watcher
                with suppress(BrokenPipeError):  # it is gone already
                    os.write(orders, _ORDER.pack(_STOP, 0, 0))
                with suppress(ChildProcessError):  # reaped by someone else
                    os.waitpid(self._watcher, 0)
        finally:
            os.close(orders)

    def _order(self, deadline: float, message: str) -> None:
        if self._orders is None:
            self._watcher, self._orders = _fork_watcher(keep_stdout=self._report is not None)
            self._forked_by = os.getpid()
        text = f"ngixi: error: {message}\n".encode(errors="replace") if message else b""
        report = f"{self._report(message)}\n".encode(errors="replace") if message and self._report else b""
        os.write(self._orders, _ORDER.pack(deadline, len(text), len(report)) + text + report)


def _fork_watcher(*, keep_stdout: bool) -> tuple[int, int]:
    """Forks the watcher; its process id and the write end of its order pipe."""
    reading, writing = os.pipe()
    parent = os.getpid()
    watcher = os.fork()
    if watcher == 0:
        try:
            _ignore_the_terminals_signals()
            _keep_only(reading, keep_stdout=keep_stdout)
            _watch(reading, parent)
        finally:
            os._exit(0)
    os.close(reading)
    os.set_inheritable(writing, False)
    return watcher, writing


def _ignore_the_terminals_signals() -> None:
    """A terminal's Ctrl-C or hang-up reaches its whole process group, the watcher too, which died of it: the guest's
    process handles them, or, held by a guest it cannot interrupt, is ended at the deadline all the same."""
    import signal  # in the watcher alone (see _SIGKILL)

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGHUP, signal.SIGTERM})


def _keep_only(orders: int, *, keep_stdout: bool) -> None:
    """Closes every descriptor but stderr, `orders` and stdout if kept: the watcher holds no other pipe of the
    guest's process open (a kept stdout's reader sees its end once this process and the watcher have ended)."""
    os.closerange(0, 1 if keep_stdout else 2)
    os.closerange(3, orders)
    os.closerange(orders + 1, os.sysconf("SC_OPEN_MAX"))


def _watch(orders: int, parent: int) -> None:
    deadline, message, report = 0.0, b"", b""
    pending = b""
    while True:
        timeout = None if deadline == 0 else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([orders], [], [], timeout)
        if not ready:
            for descriptor, text in ((1, report), (2, message)):
                with suppress(OSError):  # a reader gone: the process is ended all the same
                    _write_all(descriptor, text)
            os.kill(parent, _SIGKILL)
            return
        chunk = os.read(orders, 65536)
        if not chunk:
            return  # the guest's process is gone
        pending += chunk
        while len(pending) >= _ORDER.size:
            next_deadline, length, report_length = _ORDER.unpack_from(pending)
            split, end = _ORDER.size + length, _ORDER.size + length + report_length
            if len(pending) < end:
                break
            deadline, message, report = next_deadline, pending[_ORDER.size : split], pending[split:end]
            pending = pending[end:]
        if deadline == _STOP:
            return


def _write_all(descriptor: int, data: bytes) -> None:
    while data:
        data = data[os.write(descriptor, data) :]
