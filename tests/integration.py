"""Helpers for integration tests: temporary copies of the project and real doit/ngixi runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent
_NOT_COPIED = {".venv", ".ngixi", "artifacts", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}


def copy_project(destination: Path, *, toolchain_from: Path | None = None) -> Path:
    """A copy of the repository's project files; optionally reusing an installed toolchain."""
    shutil.copytree(REPO, destination, ignore=lambda _d, names: [n for n in names if n in _NOT_COPIED])
    if toolchain_from is not None:
        shutil.copytree(toolchain_from / ".ngixi" / "toolchain", destination / ".ngixi" / "toolchain", symlinks=True)
    return destination


def run(
    project: Path, *command: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a project command (doit, ngixi) from the test's virtual environment."""
    executable = str(BIN / command[0])
    result = subprocess.run(
        [executable, *command[1:]],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def ran_tasks(build_output: str) -> set[str]:
    """Names of the tasks a doit run with our progress reporter executed."""
    return {line.split()[1] for line in build_output.splitlines() if line.startswith("[") and line.endswith(" ...")}
