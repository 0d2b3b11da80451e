"""The unit tiers' guard: a unit test that starts a process fails, in its fixtures of any scope too.

The conftest of each unit folder imports these hooks, so pytest applies them to that folder's tests only.
They are hooks rather than an autouse fixture so that module- and session-scoped fixtures set up or torn
down for a unit test are guarded as well.
"""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest

# subprocess, multiprocessing (fork, spawn, forkserver), os.system, os.spawn*, os.exec* and pty all start
# their processes through these (subprocess through its own name for fork_exec from Python 3.11 on).
_PROCESS_STARTERS: tuple[tuple[ModuleType, str], ...] = (
    (_posixsubprocess, "fork_exec"),
    (subprocess, "_fork_exec"),
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
    (os, "execv"),
    (os, "execve"),
)


def _refusal(name: str, started: list[str]) -> Callable[..., object]:
    def refuse(*_args: object, **_kwargs: object) -> object:
        started.append(name)
        pytest.fail(f"a unit test started a process ({name}); integration tests live in the integration folders")

    return refuse


@contextmanager
def processes_refused() -> Iterator[None]:
    """Makes every way to start a process fail the test, even where the failure is caught."""
    started: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        for module, name in _PROCESS_STARTERS:
            if hasattr(module, name):
                patch.setattr(module, name, _refusal(f"{module.__name__}.{name}", started))
        yield
    if started:
        pytest.fail(f"a unit test started a process ({', '.join(started)}), and caught the failure")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with processes_refused():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with processes_refused():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    with processes_refused():
        return (yield)
