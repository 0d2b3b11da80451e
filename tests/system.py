"""System programs the tests use for real: installed from Debian's packages when missing."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def require_program(program: str, package: str) -> str:
    """The path of `program`, installing Debian's `package` first if needed (CI runs as root)."""
    found = shutil.which(program)
    if found is None:
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q"]
        subprocess.run([*apt, "update"], capture_output=True, check=False)
        result = subprocess.run([*apt, "install", "-y", package], capture_output=True, text=True, check=False)
        found = shutil.which(program)
        if found is None:
            pytest.fail(f"could not install {package} for {program}: {result.stderr[-2000:]}")
    return found
