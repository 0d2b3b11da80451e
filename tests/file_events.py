"""Whether a file was opened, as Linux's inotify reports it: an open of a FIFO wakes its writer and an open of a
device runs its driver, so the tests of what is refused unopened watch for the open itself."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_IN_OPEN = 0x20


@contextmanager
def watched_opens(path: Path) -> Iterator[Callable[[], int]]:
    """A function counting the opens of `path` since the last count (O_PATH opens nothing and is not one)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "inotify_init1"):
        pytest.skip("inotify is Linux's")
    watcher = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert watcher >= 0 and libc.inotify_add_watch(watcher, os.fsencode(path), _IN_OPEN) >= 0

    def opens() -> int:
        events = b""
        while True:
            try:
                events += os.read(watcher, 4096)
            except BlockingIOError:
                break
        # struct inotify_event without a name (a watched file): wd, mask, cookie, len. IN_IGNORED comes unasked
        # when the file is removed.
        masks = [struct.unpack_from("<iIII", events, offset)[1] for offset in range(0, len(events), 16)]
        return sum(1 for mask in masks if mask & _IN_OPEN)

    try:
        yield opens
    finally:
        os.close(watcher)
