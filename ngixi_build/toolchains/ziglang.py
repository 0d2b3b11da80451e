"""The pinned Zig toolchain (PyPI `ziglang`, `pins/ziglang.txt`): Zig guests, and C guests through `zig cc`.

Installed as a `PinnedWheel` when a guest needs it. Zig's caches stay
out of the guests' directories: the compiled wasi-libc in Zig's global cache (shared by projects),
per-project results in `.ngixi/zig-cache/`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ngixi_build.toolchains.pinned_wheel import PinnedWheel
from ngixi_runtime.errors import ToolchainError

ZIGLANG = PinnedWheel("ziglang", "ziglang.txt", "C and Zig guests")


def pinned_version() -> str:
    return ZIGLANG.pinned_version()


def zig_executable() -> Path | None:
    """The zig binary of the installed wheel, if it is the pinned version."""
    spec = importlib.util.find_spec(ZIGLANG.package)
    if spec is None or spec.origin is None or not ZIGLANG.is_installed():
        return None
    executable = Path(spec.origin).parent / "zig"
    return executable if executable.is_file() else None


def ensure_zig(state_dir: Path) -> Path:
    """The pinned zig, installed first if it is missing."""
    ZIGLANG.ensure(state_dir)
    executable = zig_executable()
    if executable is None:
        raise ToolchainError(f"ziglang {pinned_version()} has no zig executable in {sys.prefix}")
    return executable


def lib_dir(executable: Path) -> Path:
    """The headers, libc sources and standard library that come with the zig at `executable`."""
    return executable.parent / "lib"


def zig_env(state_dir: Path) -> dict[str, str]:
    """The environment zig runs in: its per-project cache under the state directory, not the guest's."""
    return {**os.environ, "ZIG_LOCAL_CACHE_DIR": str(state_dir / "zig-cache")}


def status() -> tuple[bool, str]:
    """Whether the pinned zig is installed, and where or what to do."""
    executable = zig_executable()
    if executable is not None:
        return True, f"ziglang {pinned_version()} at {executable}"
    installed, detail = ZIGLANG.status()
    if installed:  # the pinned wheel, but not its binary
        return False, f"ziglang {pinned_version()} has no zig executable in {sys.prefix}; run `doit toolchain`"
    return False, detail
