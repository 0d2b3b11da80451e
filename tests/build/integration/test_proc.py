"""The subprocess helper: a failing tool's output reaches the error as plain text; a tool reading a guest's sources
is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ngixi_build.proc import DEFAULT_LIMITS, LIMITS_VARIABLE, ToolLimits, run, tool_limits
from ngixi_runtime.errors import InvalidInput, ToolchainError


def test_a_tools_terminal_colours_are_left_out_of_its_error() -> None:
    coloured = r"printf '\033[91mERROR\033[0m TS2304: \033[1;4mnope\033[0m\n' >&2; exit 1"
    with pytest.raises(ToolchainError) as failure:
        run(["sh", "-c", coloured], what="tool")
    assert str(failure.value) == "tool failed (exit 1):\nERROR TS2304: nope"


def test_a_tool_is_stopped_at_its_cpu_and_memory_limits_in_one_line() -> None:
    spin = ["sh", "-c", "while :; do :; done"]
    with pytest.raises(ToolchainError) as stopped:
        run(spin, what="g: spin", limits=ToolLimits(seconds=60, memory_mib=1024, cpu_seconds=1))
    assert str(stopped.value).startswith("g: spin: stopped at its limit of 1 s of CPU time (a guest's sources can")
    assert str(stopped.value).endswith("raise it: NGIXI_TOOL_LIMITS=cpu_seconds=N)")
    grow = [sys.executable, "-c", "bytearray(64 << 20)"]
    run(grow, what="g: grow", limits=DEFAULT_LIMITS)
    with pytest.raises(ToolchainError) as stopped:
        run(grow, what="g: grow", limits=ToolLimits(seconds=60, memory_mib=32, cpu_seconds=60))
    assert str(stopped.value).startswith("g: grow: ran out of its 32 MiB memory limit (") and "\n" not in str(
        stopped.value
    )


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tool_limits() == DEFAULT_LIMITS
    monkeypatch.setenv(LIMITS_VARIABLE, " seconds=1.5 , memory_mib=100")
    assert tool_limits() == DEFAULT_LIMITS._replace(seconds=1.5, memory_mib=100)
    for wrong in ("seconds", "seconds=0", "minutes=3", "memory_mib=-1", "cpu_seconds=1e9"):
        monkeypatch.setenv(LIMITS_VARIABLE, wrong)
        with pytest.raises(InvalidInput, match=rf"^{LIMITS_VARIABLE}: '{wrong}' is not a limit; write name=number"):
            tool_limits()


def test_a_lower_limit_the_user_has_is_kept() -> None:
    """Asking for more than the hard limit a user set (`ulimit -d`) would fail every tool."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_DATA, (1 << 31, 1 << 31))\n"
        "from ngixi_build.proc import DEFAULT_LIMITS, run\n"
        "limits = run([sys.executable, '-c', 'import resource; print(resource.getrlimit(resource.RLIMIT_DATA))'],"
        " what='t', limits=DEFAULT_LIMITS)\n"
        "print(limits.stdout, end='')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout == f"({1 << 31}, {1 << 31})\n"


# A tool that starts a process of its own and waits for it, as `zig cc` runs clang and the linker.
_STARTS_A_CHILD = (
    "import subprocess, sys\n"
    "child = subprocess.Popen(['sleep', '60'])\n"
    "open(sys.argv[1], 'w').write(str(child.pid))\n"
    "child.wait()\n"
)


def _ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def _assert_ends(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _ended(pid):
        assert time.monotonic() < deadline, f"the tool's own child {pid} is still running"
        time.sleep(0.02)


@contextmanager
def _interrupted_after(seconds: float) -> Iterator[None]:
    """Ctrl-C in `seconds` (as watch mode turns SIGTERM into one), however the block waits."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_tool_stopped_at_its_time_limit_or_by_ctrl_c_leaves_none_of_its_processes(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    tool = [sys.executable, "-c", _STARTS_A_CHILD, str(pid_file)]
    with pytest.raises(ToolchainError, match=r"^g: tool: stopped at its time limit of 1 s"):
        run(tool, what="g: tool", limits=ToolLimits(seconds=1, memory_mib=1024, cpu_seconds=60))
    _assert_ends(pid_file)
    pid_file.unlink()
    with pytest.raises(KeyboardInterrupt), _interrupted_after(1.0):
        run(tool, what="g: tool")
    _assert_ends(pid_file)
    assert os.getpgid(0) == os.getpgrp()  # our own group was left alone
