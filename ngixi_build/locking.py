"""Advisory file locks (fcntl): watch rebuilds against doit build tasks, toolchain installs."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def file_lock(path: Path, *, shared: bool = False, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Holds a lock on `path` for the block; `on_wait` is called if another holder makes us wait."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, mode)
        yield


def build_lock(state_dir: Path, *, shared: bool = False) -> AbstractContextManager[None]:
    """Keeps a watcher's rebuild steps (exclusive) and doit's build tasks apart.

    doit's tasks take it shared, so that `doit -n N` still runs tasks side by side.
    """
    path = state_dir / "build.lock"
    return file_lock(path, shared=shared, on_wait=lambda: log.warning("waiting for another build to release %s", path))
