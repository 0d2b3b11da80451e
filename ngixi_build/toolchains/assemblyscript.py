"""The pinned AssemblyScript toolchain: nodeenv (system Node when suitable) plus `npm ci`, and the
WASI preview 1 adapter for component guests (taken from a pinned, digest-checked npm tarball).

Installs live in `<state>/toolchain/<key>/`, where the key digests the pins, so changing a pin
installs afresh and an unchanged one is reused. A `.complete` marker is written last; an
install that failed or was killed is removed and redone.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomli

from ngixi_build.proc import run
from ngixi_build.toolchains import installs
from ngixi_runtime.errors import ToolchainError
from ngixi_runtime.guest.kind import GUEST_KINDS, GuestKind

log = logging.getLogger(__name__)

PIN_FILES = ("pins.toml", "package.json", "package-lock.json")


@dataclass(frozen=True)
class NodePins:
    minimum_major: int
    version: str


@dataclass(frozen=True)
class AdapterPin:
    """Where the WASI preview 1 adapters come from: files in an npm package's tarball."""

    package: str
    version: str
    integrity: str  # npm's "sha512-<base64>" of the tarball
    files: Mapping[GuestKind, tuple[str, str]]  # the adapter for each kind of guest: its path in the tarball, sha256


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

    def wasi_adapter(self, kind: GuestKind) -> Path:
        """The WASI preview 1 adapter a component guest of this kind that imports WASI is made with."""
        return self.root / "wasi-adapter" / f"{kind}.wasm"

    def npm(self, package: Path, *arguments: str) -> tuple[list[str], dict[str, str]]:
        """The toolchain's npm (the system's with a system Node.js) given `arguments` for the package at `package`,
        and the environment that runs it with its node. --prefix holds npm to that folder: without it npm walks up
        to a workspace root that lists the folder, anywhere above it (a repository holding the project), and reads
        that root's .npmrc and installs that root's lock file."""
        bin_dir = self.root / "env" / "bin"
        npm = bin_dir / "npm" if (bin_dir / "npm").exists() else Path(shutil.which("npm") or "npm")
        command = [str(npm), *arguments, "--prefix", str(package)]
        return command, {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    @property
    def complete(self) -> bool:
        return installs.is_complete(self.root)


def pin_bytes() -> dict[str, bytes]:
    pins = resources.files("ngixi_build.toolchains") / "pins"
    return {name: (pins / name).read_bytes() for name in PIN_FILES}


def node_pins() -> NodePins:
    node = tomli.loads(pin_bytes()["pins.toml"].decode())["node"]
    return NodePins(int(node["minimum_major"]), str(node["version"]))


def adapter_pin() -> AdapterPin:
    pin = tomli.loads(pin_bytes()["pins.toml"].decode())["wasi_adapter"]
    files = {kind: (str(pin[kind]["path"]), str(pin[kind]["sha256"])) for kind in GUEST_KINDS}
    return AdapterPin(str(pin["package"]), str(pin["version"]), str(pin["integrity"]), files)


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
    command, env = toolchain.npm(toolchain.root, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
    run(
        command,
        what="npm ci (AssemblyScript toolchain)",
        cwd=toolchain.root,
        env=env,
        timeout=900,
    )
    _install_wasi_adapter(toolchain)


def _install_wasi_adapter(toolchain: Toolchain) -> None:
    """Fetches the pinned package's tarball, checks it and the adapters in it, and keeps only the adapters."""
    pin = adapter_pin()
    spec = f"{pin.package}@{pin.version}"
    with tempfile.TemporaryDirectory(dir=toolchain.root) as work:
        command, env = toolchain.npm(toolchain.root, "pack", spec, "--ignore-scripts", "--pack-destination", work)
        run(
            command,
            what=f"npm pack {spec} (WASI adapter)",
            cwd=toolchain.root,
            env=env,
            timeout=900,
        )
        tarball = next(Path(work).glob("*.tgz"))
        data = tarball.read_bytes()
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        if integrity != pin.integrity:
            raise ToolchainError(
                f"npm pack {spec}: the tarball's integrity is {integrity}, pins.toml says {pin.integrity}"
            )
        with tarfile.open(tarball, "r:gz") as archive:
            adapters = {kind: _tar_file(archive, path) for kind, (path, _) in pin.files.items()}
    (toolchain.root / "wasi-adapter").mkdir()
    for kind, (path, sha256) in pin.files.items():
        if hashlib.sha256(adapters[kind]).hexdigest() != sha256:
            raise ToolchainError(f"{spec}: {path} is missing or differs from the sha256 in pins.toml")
        toolchain.wasi_adapter(kind).write_bytes(adapters[kind])


def _tar_file(archive: tarfile.TarFile, path: str) -> bytes:
    """A regular file's bytes, or nothing when the archive has no such file."""
    try:
        member = archive.extractfile(path)
    except KeyError:
        return b""
    return member.read() if member is not None else b""


def ensure_toolchain(*, state_dir: Path) -> Toolchain:
    """Installs the pinned toolchain once, as every project install is (`installs.ensure_install`: concurrent
    callers wait for the first, earlier pins' installs go, and never through a link that came with the project)."""
    toolchain = toolchain_for(state_dir)
    installs.ensure_install(toolchain.root, lambda root: _install(Toolchain(root)))
    return toolchain
