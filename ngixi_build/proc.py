"""The one subprocess helper: find the program, log the command, capture output, fail typed."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ngixi_runtime.errors import NgixiError, ToolchainError

log = logging.getLogger(__name__)

# Terminal colours: tools colour their output when they think it is read by a person (asc: whenever `CI` is set).
TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(
    command: Sequence[str | Path],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    error: type[NgixiError] = ToolchainError,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command to completion; on failure raises `error` with its output."""
    program = str(command[0])
    resolved = program if "/" in program else shutil.which(program, path=(env or {}).get("PATH"))
    if resolved is None or not Path(resolved).exists():
        raise ToolchainError(f"{what}: {program} was not found; run `ngixi doctor` to see what is missing")
    args = [resolved, *map(str, command[1:])]
    log.debug("running %s", " ".join(args))
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise error(f"{what}: {program} did not finish within {timeout} s") from None
        except BaseException:
            _stop(process)
            raise
    if process.returncode != 0:
        output = TERMINAL_ESCAPE.sub("", "\n".join(part.strip() for part in (stdout, stderr) if part.strip()))
        raise error(f"{what} failed (exit {process.returncode}):\n{output}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def _stop(process: subprocess.Popen[str]) -> None:
    """Asks a child to stop, then insists; never leaves it running."""
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
