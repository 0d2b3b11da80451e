"""The pinned Zig toolchain (PyPI `ziglang`, `pins/ziglang.txt`): Zig guests, and C guests through `zig cc`.

Installed once per user, version and platform, when a guest needs it, into `$XDG_CACHE_HOME/ngixi/toolchains/
ziglang/<key>/` (else `~/.cache/ngixi/...`), which every Python environment's build uses. Zig's global cache keys
the wasi-libc it compiles on the path of its lib directory: a zig in each environment compiled wasi-libc again at
each new environment's first C or Zig build. Per-project results go to `.ngixi/zig-cache/`, never into `guests/`.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from ngixi_build.toolchains import installs
from ngixi_build.toolchains.pinned_wheel import PinnedWheel
from ngixi_runtime.errors import ToolchainError
from ngixi_runtime.files import user_cache_dir

ZIGLANG = PinnedWheel("ziglang", "ziglang.txt", "C and Zig guests")


def pinned_version() -> str:
    return ZIGLANG.pinned_version()


def install_root() -> Path:
    """Where this user's install of the pinned ziglang for this platform lives (installed or not)."""
    pins = {ZIGLANG.pin_file: ZIGLANG.requirements().encode(), "platform": _platform().encode()}
    return user_cache_dir() / "toolchains" / "ziglang" / f"{pinned_version()}-{installs.install_key(pins)}"


def _platform() -> str:
    return f"{sys.platform}-{platform.machine()}"


def zig_executable() -> Path | None:
    """The pinned zig, if this user has installed it."""
    root = install_root()
    executable = root / ZIGLANG.package / "zig"
    return executable if installs.is_complete(root) and executable.is_file() else None


def ensure_zig() -> Path:
    """The pinned zig, installed first if it is missing."""
    root = installs.ensure_shared_install(install_root(), ZIGLANG.install_into)
    executable = root / ZIGLANG.package / "zig"
    if not executable.is_file():
        raise ToolchainError(f"ziglang {pinned_version()} has no zig executable in {root}")
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
    return False, f"ziglang {pinned_version()} {installs.not_installed(install_root())}"
