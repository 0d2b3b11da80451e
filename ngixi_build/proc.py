"""The one subprocess helper: find the program, log the command, capture output, fail typed, and bound a tool that
reads a guest's sources (`ToolLimits`)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from ngixi_runtime.errors import InvalidInput, NgixiError, ToolchainError

log = logging.getLogger(__name__)

# Terminal colours: tools colour their output when they think it is read by a person (asc: whenever `CI` is set).
TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LIMITS_VARIABLE = "NGIXI_TOOL_LIMITS"
# How each tool says an allocation failed: clang/LLVM, Zig, Rust (wasm-tools, componentize-py), V8, Python, libc.
_OUT_OF_MEMORY = re.compile(
    r"out of memory|OutOfMemory|memory allocation of \d+ bytes failed|MemoryError|Cannot allocate memory|bad_alloc",
    re.IGNORECASE,
)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # a service manager's stop, the terminal closing
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None  # signal.signal's


class StopSignal(KeyboardInterrupt):
    """A stop signal received: it unwinds as Ctrl-C does, stopping the tools `run` waits for and removing the
    temporaries their outputs are written to, where the signal's default action would end Python at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """A shell's status for a command the signal ended (143 for SIGTERM)."""
        return 128 + self.signum


def _raise_stop_signal(signum: int, _frame: object) -> None:
    raise StopSignal(signum)


def interrupting_on_stop_signals() -> dict[int, SignalHandler]:
    """From now on (this process's main thread) SIGTERM and SIGHUP raise `StopSignal`; the handlers they had."""
    return {signum: signal.signal(signum, _raise_stop_signal) for signum in STOP_SIGNALS}


@contextlib.contextmanager
def interrupt_on_stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `StopSignal` within the block, the handlers they had after it."""
    previous = interrupting_on_stop_signals()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class ToolLimits(NamedTuple):
    """Bounds on a tool that reads a guest's sources, which may be someone else's: `#include "/dev/zero"` or a FIFO
    would have the compiler read (and grow) forever. `memory_mib` bounds the child's writable memory (RLIMIT_DATA,
    not its address space: Node and Wasmtime reserve tens of GiB they never touch); `cpu_seconds` its processor
    time (RLIMIT_CPU, which still holds if the build is killed and the wall-clock limit with it)."""

    seconds: float
    memory_mib: float
    cpu_seconds: float


DEFAULT_LIMITS = ToolLimits(seconds=900, memory_mib=8192, cpu_seconds=3600)


def tool_limits() -> ToolLimits:
    """The default limits, with those `NGIXI_TOOL_LIMITS` sets (`seconds=60,memory_mib=2048,cpu_seconds=120`, any
    of them) instead."""
    text = os.environ.get(LIMITS_VARIABLE, "").strip()
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in ToolLimits._fields or not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) or float(value) <= 0:
            raise InvalidInput(
                f"{LIMITS_VARIABLE}: {item!r} is not a limit; write name=number pairs separated by commas, with names "
                f"{', '.join(ToolLimits._fields)}, e.g. {LIMITS_VARIABLE}=seconds=1800,memory_mib=16384"
            )
        values[name] = float(value)
    return DEFAULT_LIMITS._replace(**values)


# Sets the limits, then becomes the tool: preexec_fn would run Python between fork and exec, unsafe in a process with
# threads (watch mode's). A lower limit the user already has is kept.
_LIMITED_EXEC = (
    "import os, resource as r, sys\n"
    "def lower(kind, soft, hard):\n"
    "    _, current = r.getrlimit(kind)\n"
    "    capped = lambda value: value if current == r.RLIM_INFINITY else min(value, current)\n"
    "    r.setrlimit(kind, (capped(soft), capped(hard)))\n"
    "data, cpu = int(sys.argv[1]), int(sys.argv[2])\n"
    "lower(r.RLIMIT_DATA, data, data)\n"
    "lower(r.RLIMIT_CPU, cpu, cpu + 1)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def limited(args: Sequence[str], limits: ToolLimits) -> list[str]:
    """`args` run under `limits`: SIGXCPU at the CPU limit (SIGKILL a second after), allocations failing past the
    memory limit."""
    memory, cpu = int(limits.memory_mib * 1024 * 1024), max(1, math.ceil(limits.cpu_seconds))
    return [sys.executable, "-I", "-S", "-c", _LIMITED_EXEC, str(memory), str(cpu), *args]


def run(
    command: Sequence[str | Path],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    error: type[NgixiError] = ToolchainError,
    timeout: float | None = None,
    limits: ToolLimits | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion; on failure raises `error` with its output. With `limits`, the command is a
    tool reading a guest's sources: its time and memory are bounded, and a limit it reached is said in one line."""
    program = str(command[0])
    resolved = program if "/" in program else shutil.which(program, path=(env or {}).get("PATH"))
    if resolved is None or not Path(resolved).exists():
        raise ToolchainError(f"{what}: {program} was not found; run `ngixi doctor` to see what is missing")
    args = [resolved, *map(str, command[1:])]
    log.debug("running %s", " ".join(args))
    with subprocess.Popen(
        args if limits is None else limited(args, limits),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, which `_stop` stops whole
    ) as process:
        try:
            with _running(process):
                stdout, stderr = process.communicate(timeout=timeout if limits is None else limits.seconds)
        except subprocess.TimeoutExpired:
            _stop(process)
            if limits is not None:
                raise error(time_limit_reached(what, limits)) from None
            raise error(f"{what}: {program} did not finish within {timeout} s") from None
        except BaseException:
            _stop(process)
            raise
    if process.returncode != 0:
        output = TERMINAL_ESCAPE.sub("", "\n".join(part.strip() for part in (stdout, stderr) if part.strip()))
        if limits is not None:
            _refuse_limit_reached(what, process.returncode, output, limits, error)
        raise error(f"{what} failed (exit {process.returncode}):\n{output}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _refuse_limit_reached(what: str, returncode: int, output: str, limits: ToolLimits, error: type[NgixiError]) -> None:
    """Raises one line if the failure is a limit's: the CPU limit's signals, or the tool saying it is out of memory."""
    if returncode == -signal.SIGXCPU:
        raise error(f"{what}: stopped at its limit of {limits.cpu_seconds:g} s of CPU time ({_raising('cpu_seconds')})")
    if _OUT_OF_MEMORY.search(output):
        raise error(f"{what}: ran out of its {limits.memory_mib:g} MiB memory limit ({_raising('memory_mib')})")


def time_limit_reached(what: str, limits: ToolLimits) -> str:
    return f"{what}: stopped at its time limit of {limits.seconds:g} s ({_raising('seconds')})"


def _raising(field: str) -> str:
    return (
        'a guest\'s sources can make a tool read forever, #include "/dev/zero"; if the build needs more, raise it: '
        f"{LIMITS_VARIABLE}={field}=N"
    )


# The tools `run` is waiting for, on any thread: what `stop_running_tools` stops.
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


@contextlib.contextmanager
def _running(process: subprocess.Popen[str]) -> Iterator[None]:
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(process)


def stop_running_tools() -> None:
    """Stops every tool `run` is waiting for, with the processes each started (for Ctrl-C of a watcher whose builds
    run on other threads, where the interrupt does not reach them); their `run` fails."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """Asks a child and the processes it started to stop, then insists; never leaves one running (`zig cc` runs
    clang and the linker as processes of their own, which would otherwise go on, writing the output)."""
    _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # all of them ended already
        os.killpg(process.pid, signum)
