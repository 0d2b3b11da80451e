"""The pinned AssemblyScript toolchain: nodeenv (system Node when suitable) plus `npm ci`.

Installs live in `<state>/toolchain/<key>/`, where the key digests the pins, so changing a pin
installs afresh and an unchanged one is reused. A `.complete` marker is written last; an
install that failed or was killed is removed and redone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomli

from .locking import file_lock
from .proc import run
from .runtime.errors import ToolchainError

log = logging.getLogger(__name__)

PIN_FILES = ("pins.toml", "package.json", "package-lock.json")
_COMPLETE = ".complete"


@dataclass(frozen=True)
class NodePins:
    minimum_major: int
    version: str


@dataclass(frozen=True)
class Toolchain:
    root: Path

    @property
    def node(self) -> Path:
        return self.root / "env" / "bin" / "node"

    @property
    def asc(self) -> list[str]:
        # Without --enable-source-maps, bin/asc.js starts a second Node process to add it.
        return [
            str(self.node),
            "--enable-source-maps",
            str(self.root / "node_modules" / "assemblyscript" / "bin" / "asc.js"),
        ]

    @property
    def asc_module(self) -> Path:
        """asc's JavaScript API (`main(argv, options)`), for a process that keeps it loaded."""
        return self.root / "node_modules" / "assemblyscript" / "dist" / "asc.js"

    @property
    def wasi_shim_config(self) -> Path:
        return self.root / "node_modules" / "@assemblyscript" / "wasi-shim" / "asconfig.json"

    @property
    def complete(self) -> bool:
        return (self.root / _COMPLETE).exists()


def pin_bytes() -> dict[str, bytes]:
    pins = resources.files("ngixi_build") / "pins"
    return {name: (pins / name).read_bytes() for name in PIN_FILES}


def node_pins() -> NodePins:
    node = tomli.loads(pin_bytes()["pins.toml"].decode())["node"]
    return NodePins(int(node["minimum_major"]), str(node["version"]))


def toolchain_key() -> str:
    digest = hashlib.sha256()
    for name, data in sorted(pin_bytes().items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def toolchain_for(state_dir: Path) -> Toolchain:
    """Where the toolchain for the current pins lives (installed or not)."""
    return Toolchain(state_dir / "toolchain" / toolchain_key())


def system_node(minimum_major: int) -> tuple[Path, str] | None:
    """The Node.js on PATH and its version, if it is at least `minimum_major`."""
    found = shutil.which("node")
    if found is None:
        return None
    try:
        version = run([found, "--version"], what="node --version", timeout=30).stdout.strip()
    except ToolchainError:
        return None
    match = re.match(r"v(\d+)\.", version)
    return (Path(found), version) if match and int(match.group(1)) >= minimum_major else None


def _install(toolchain: Toolchain) -> None:
    pins = node_pins()
    env_dir = toolchain.root / "env"
    found = system_node(pins.minimum_major)
    if found:
        log.info("using the system Node.js %s (%s)", found[1], found[0])
        node_args = ["--node=system"]
    else:
        log.info(
            "no Node.js >= %d on PATH; nodeenv downloads Node.js %s",
            pins.minimum_major,
            pins.version,
        )
        node_args = [f"--node={pins.version}", "--prebuilt"]
    run([sys.executable, "-m", "nodeenv", *node_args, env_dir], what="nodeenv", timeout=900)
    for name, data in pin_bytes().items():
        if name != "pins.toml":
            (toolchain.root / name).write_bytes(data)
    npm = env_dir / "bin" / "npm" if (env_dir / "bin" / "npm").exists() else Path(shutil.which("npm") or "npm")
    path = f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        what="npm ci (AssemblyScript toolchain)",
        cwd=toolchain.root,
        env={**os.environ, "PATH": path},
        timeout=900,
    )
    (toolchain.root / _COMPLETE).write_text(toolchain_key() + "\n")


def ensure_toolchain(*, state_dir: Path) -> Toolchain:
    """Installs the pinned toolchain once; concurrent callers wait for the first."""
    toolchain = toolchain_for(state_dir)
    with file_lock(state_dir / "toolchain" / ".lock"):
        if toolchain.complete:
            return toolchain
        shutil.rmtree(toolchain.root, ignore_errors=True)
        toolchain.root.mkdir(parents=True)
        try:
            _install(toolchain)
        except BaseException:
            shutil.rmtree(toolchain.root, ignore_errors=True)
            raise
        _remove_other_installs(toolchain)
    return toolchain


def _remove_other_installs(current: Toolchain) -> None:
    """Drops installs made for earlier pins; they are never used again."""
    for directory in current.root.parent.iterdir():
        if directory.is_dir() and directory != current.root:
            shutil.rmtree(directory, ignore_errors=True)
