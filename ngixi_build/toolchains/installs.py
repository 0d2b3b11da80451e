"""Pinned toolchain installs that a build makes only when a guest needs them, kept between builds.

Each lives in `<state>/toolchains/<name>/<key>/`, where the key digests the pin files, so changing a
pin installs afresh and an unchanged one is reused. A `.complete` marker is written last; an install
that failed or was killed is removed and redone, and installs made for earlier pins are removed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from ngixi_build.locking import file_lock

COMPLETE = ".complete"


def pin_files(folder: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The pin files `names` of `toolchains/pins/<folder>/`."""
    pins = resources.files("ngixi_build.toolchains") / "pins" / folder
    return {name: (pins / name).read_bytes() for name in names}


def install_key(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def install_root(state_dir: Path, name: str, files: Mapping[str, bytes]) -> Path:
    """Where the install of `name` for these pin files lives (installed or not)."""
    return state_dir / "toolchains" / name / install_key(files)


def is_complete(root: Path) -> bool:
    return (root / COMPLETE).exists()


def ensure_install(root: Path, install: Callable[[Path], None]) -> Path:
    """Runs `install(root)` once for this root; concurrent callers wait for the first."""
    with file_lock(root.parent / ".lock"):
        if is_complete(root):
            return root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        try:
            install(root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        (root / COMPLETE).write_text(root.name + "\n")
        for other in root.parent.iterdir():
            if other.is_dir() and other != root:
                shutil.rmtree(other, ignore_errors=True)
    return root


def describe(version: str, root: Path) -> str:
    """What `ngixi doctor` says of a toolchain the build installs when a guest needs it."""
    if is_complete(root):
        return f"{version} installed in {root}"
    return f"{version} not installed; `doit toolchain` installs it"
