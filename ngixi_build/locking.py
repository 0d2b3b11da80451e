"""Advisory file locks (fcntl): watch rebuilds against doit build tasks, toolchain installs."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import make_directories, open_lock_file

log = logging.getLogger(__name__)


@contextmanager
def file_lock(path: Path, *, shared: bool = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Holds a lock on `path` for the block; `on_wait` is called if another holder makes us wait."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    make_directories(path.parent, 0o755)
    try:
        descriptor = open_lock_file(path)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot take this lock: {error.strerror}; remove it and run again") from None
    try:
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(descriptor, mode)
        yield
    finally:
        os.close(descriptor)


def build_lock(state_dir: Path, *, shared: bool = False) -> AbstractContextManager[None]:
    """Keeps a watcher's rebuild steps (exclusive) and doit's build tasks apart.

    doit's tasks take it shared, so that `doit -n N` still runs tasks side by side.
    """
    path = state_dir / "build.lock"
    return file_lock(path, shared=shared, on_wait=lambda: log.warning("waiting for another build to release %s", path))
