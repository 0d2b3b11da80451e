"""The pinned Zig toolchain (PyPI `ziglang`, `pins/ziglang.txt`): Zig guests, and C guests through `zig cc`.

Installed into the build's own Python environment with pip (`--require-hashes`), once, when a guest
needs it; every later build and every project using that environment reuses it. Zig's caches stay
out of the guests' directories: the compiled wasi-libc in Zig's global cache (shared by projects),
per-project results in `.ngixi/zig-cache/`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
from importlib import metadata, resources
from pathlib import Path

from ngixi_build.locking import file_lock
from ngixi_build.proc import run
from ngixi_runtime.errors import ToolchainError

log = logging.getLogger(__name__)

PACKAGE = "ziglang"
PIN_FILE = "ziglang.txt"
INSTALL_TIMEOUT_SECONDS = 900.0


def requirements() -> str:
    return (resources.files("ngixi_build.toolchains") / "pins" / PIN_FILE).read_text(encoding="utf-8")


def pinned_version() -> str:
    match = re.search(rf"^{PACKAGE}==(\S+)", requirements(), re.MULTILINE)
    if match is None:
        raise ToolchainError(f"pins/{PIN_FILE}: no {PACKAGE}==<version> line")
    return match.group(1)


def installed_version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def zig_executable() -> Path | None:
    """The zig binary of the installed wheel, if it is the pinned version."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None or installed_version() != pinned_version():
        return None
    executable = Path(spec.origin).parent / "zig"
    return executable if executable.is_file() else None


def ensure_zig(state_dir: Path) -> Path:
    """The pinned zig, installed first if it is missing; concurrent builds wait for the first."""
    with file_lock(state_dir / "toolchain" / ".ziglang.lock"):
        executable = zig_executable()
        if executable is not None:
            return executable
        log.info("installing %s %s (pip, hash-checked) for C and Zig guests", PACKAGE, pinned_version())
        pins = state_dir / "toolchain" / PIN_FILE
        pins.write_text(requirements(), encoding="utf-8")
        run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--require-hashes", "-r", pins],
            what=f"pip install {PACKAGE} (pins/{PIN_FILE})",
            timeout=INSTALL_TIMEOUT_SECONDS,
        )  # fmt: skip
        pins.unlink()
        importlib.invalidate_caches()
    executable = zig_executable()
    if executable is None:
        raise ToolchainError(f"{PACKAGE} {pinned_version()} did not install into {sys.prefix}")
    return executable


def zig_env(state_dir: Path) -> dict[str, str]:
    """The environment zig runs in: its per-project cache under the state directory, not the guest's."""
    return {**os.environ, "ZIG_LOCAL_CACHE_DIR": str(state_dir / "zig-cache")}


def status() -> tuple[bool, str]:
    """Whether the pinned zig is installed, and where or what to do."""
    executable = zig_executable()
    if executable is not None:
        return True, f"{PACKAGE} {pinned_version()} at {executable}"
    found = installed_version()
    have = f"{PACKAGE} {found} is installed, not the pinned {pinned_version()}" if found else "not installed"
    return False, f"{have}; run `doit toolchain` (or `make build`) to install it into {sys.prefix}"
