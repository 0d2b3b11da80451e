"""The unit tiers' guard fails a test that starts a process, however the process is started."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import subprocess
from collections.abc import Callable

import pytest

from tests.process_guard import processes_refused


def _nothing() -> None:
    pass


@pytest.mark.parametrize(
    "start",
    [
        lambda: subprocess.run(["true"], check=False),
        lambda: subprocess.run(["true"], check=False, close_fds=False),
        lambda: os.system("true"),
        lambda: multiprocessing.get_context("spawn").Process(target=_nothing).start(),
        lambda: multiprocessing.get_context("fork").Process(target=_nothing).start(),
    ],
    ids=["subprocess", "subprocess-posix_spawn", "os.system", "multiprocessing-spawn", "multiprocessing-fork"],
)
def test_starting_a_process_fails_the_test_even_when_the_failure_is_caught(start: Callable[[], object]) -> None:
    refused = pytest.raises(pytest.fail.Exception, match="started a process")
    with refused, processes_refused(), contextlib.suppress(BaseException):
        start()
