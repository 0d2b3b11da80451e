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
from collections.abc import Iterator
from contextlib import contextmanager

_ORDER = struct.Struct("<dI")  # the deadline (time.monotonic, 0: none) and the length of the message after it
# POSIX fixes SIGKILL's number; `signal` (its enums, about 1 ms) would be imported by every in-process run for it.
_SIGKILL = 9


class ProcessWatchdog:
    """Ends this process (SIGKILL), with a one-line error on stderr, when a `limit` block outlives its time.

    The watcher is forked on first use and reads its orders from a pipe; it exits when this process does.
    """

    def __init__(self) -> None:
        self._orders: int | None = None

    @contextmanager
    def limit(self, seconds: float, message: str) -> Iterator[None]:
        self._order(time.monotonic() + seconds, message)
        try:
            yield
        finally:
            self._order(0.0, "")

    def close(self) -> None:
        if self._orders is not None:
            os.close(self._orders)
            self._orders = None

    def _order(self, deadline: float, message: str) -> None:
        if self._orders is None:
            self._orders = _fork_watcher()
        text = f"ngixi: error: {message}\n".encode(errors="replace") if message else b""
        os.write(self._orders, _ORDER.pack(deadline, len(text)) + text)


def _fork_watcher() -> int:
    """Forks the watcher; the write end of its order pipe."""
    reading, writing = os.pipe()
    parent = os.getpid()
    if os.fork() == 0:
        try:
            _keep_only(reading)
            _watch(reading, parent)
        finally:
            os._exit(0)
    os.close(reading)
    os.set_inheritable(writing, False)
    return writing


def _keep_only(orders: int) -> None:
    """Closes every descriptor but stderr and `orders`: the watcher holds no pipe of the guest's process open."""
    os.closerange(0, 2)
    os.closerange(3, orders)
    os.closerange(orders + 1, os.sysconf("SC_OPEN_MAX"))


def _watch(orders: int, parent: int) -> None:
    deadline, message = 0.0, b""
    pending = b""
    while True:
        timeout = None if deadline == 0 else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([orders], [], [], timeout)
        if not ready:
            os.write(2, message)
            os.kill(parent, _SIGKILL)
            return
        chunk = os.read(orders, 65536)
        if not chunk:
            return  # the guest's process is gone
        pending += chunk
        while len(pending) >= _ORDER.size:
            next_deadline, length = _ORDER.unpack_from(pending)
            end = _ORDER.size + length
            if len(pending) < end:
                break
            deadline, message, pending = next_deadline, pending[_ORDER.size : end], pending[end:]
