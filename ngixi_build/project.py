"""Where a project's inputs, outputs and state live, and its configuration."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import tomli

from ngixi_runtime.engines.base import PORTABLE_TRIPLE
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX, BuildProfile, artifact_path
from ngixi_runtime.spec.targets import DEFAULT_TARGETS, SUPPORTED_TARGETS, Target, host_triple, resolve_target
from ngixi_runtime.trust.choice import DEV_TRUST_FILE

GUEST_ENTRY = Path("assembly/index.ts")
_CONFIG_KEYS = ("targets", "wasmtime_targets")
# Wasmtime's wheel compiles only for the machine it runs on and for its portable interpreter.
WASMTIME_TARGETS = ("host", PORTABLE_TRIPLE)
_TARGET_KEYS = ("triple", "cpu_features")


@dataclass(frozen=True)
class Project:
    root: Path
    # Which build's outputs the paths below name: dev builds (watch mode) keep theirs apart.
    profile: BuildProfile = "release"

    @property
    def state_dir(self) -> Path:
        return self.root / ".ngixi"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def outputs_dir(self) -> Path:
        """artifacts/ for release builds; artifacts/dev/ for dev builds, so neither overwrites the other."""
        return self.artifacts_dir if self.profile == "release" else self.artifacts_dir / "dev"

    @property
    def guests_dir(self) -> Path:
        return self.root / "guests"

    @property
    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def watch_dir(self) -> Path:
        """Watch mode's scratch files."""
        return self.state_dir / "watch"

    @property
    def dev_trust_file(self) -> Path:
        return self.root / DEV_TRUST_FILE

    @property
    def doit_db(self) -> Path:
        """doit's record of what it built (sqlite3)."""
        return self.state_dir / "doit.db"

    def guest_names(self) -> list[str]:
        """Every directory under guests/ with a manifest in manifests/ or an assembly/index.ts entry."""
        if not self.guests_dir.is_dir():
            return []
        return sorted(d.name for d in self.guests_dir.iterdir() if self._is_guest(d))

    def _is_guest(self, directory: Path) -> bool:
        if not directory.is_dir() or directory.name.startswith("."):
            return False
        return self.manifest_path(directory.name).is_file() or (directory / GUEST_ENTRY).is_file()

    def guest_sources(self, guest: str) -> list[Path]:
        """The files a guest's compile depends on (sources and any asconfig)."""
        directory = self.guests_dir / guest
        return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))

    def manifest_path(self, guest: str) -> Path:
        return self.manifests_dir / f"{guest}.toml"

    def wasm_path(self, guest: str) -> Path:
        return self.outputs_dir / "wasm" / f"{guest}.wasm"

    def validated_path(self, guest: str) -> Path:
        return self.outputs_dir / "validated" / f"{guest}.json"

    def artifact_path(self, guest: str, triple: str, engine: str = "wasmer") -> Path:
        return self.outputs_dir / "aot" / guest / Path(artifact_path(triple, engine)).name

    def bundle_path(self, guest: str, version: str) -> Path:
        return self.outputs_dir / "bundles" / f"{guest}-{version}{BUNDLE_SUFFIX}"

    @cached_property
    def config(self) -> dict[str, object]:
        """`[tool.ngixi]` from pyproject.toml (empty when absent)."""
        path = self.root / "pyproject.toml"
        if not path.exists():
            return {}
        try:
            table = tomli.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("ngixi", {})
        except tomli.TOMLDecodeError as error:
            raise InvalidInput(f"{path}: not valid TOML: {error}") from None
        unknown = sorted(set(table) - set(_CONFIG_KEYS))
        if unknown:
            raise InvalidInput(f"{path}: tool.ngixi.{unknown[0]}: unknown key; allowed: {', '.join(_CONFIG_KEYS)}")
        return dict(table)

    def targets(self) -> tuple[Target, ...]:
        """The configured targets: triples, or `{ triple = ..., cpu_features = [...] }` tables."""
        source = f"{self.root / 'pyproject.toml'}: tool.ngixi.targets"
        entries = self.config.get("targets", list(DEFAULT_TARGETS))
        if not isinstance(entries, list):
            raise InvalidInput(f"{source}: must be an array of target triples or {{ triple, cpu_features }} tables")
        targets = tuple(_target(entry, f"{source}[{i}]") for i, entry in enumerate(entries))
        triples = [t.triple for t in targets]
        twice = next((t for t in triples if triples.count(t) > 1), None)
        if twice is not None:
            raise InvalidInput(f'{source}: "{twice}" is listed twice; give each triple one baseline')
        return targets

    def wasmtime_triples(self) -> tuple[str, ...]:
        """Triples to add Wasmtime artifacts for (none by default): "host" is the build machine's."""
        source = f"{self.root / 'pyproject.toml'}: tool.ngixi.wasmtime_targets"
        entries = self.config.get("wasmtime_targets", [])
        if not isinstance(entries, list) or not all(e in WASMTIME_TARGETS for e in entries):
            raise InvalidInput(f"{source}: must be an array of {' and '.join(map(repr, WASMTIME_TARGETS))}")
        return tuple(dict.fromkeys(host_triple() if e == "host" else e for e in entries))

    def wasmtime_target(self, triple: str) -> Target:
        """A Wasmtime artifact's target: the host's gets the CPU baseline its Wasmer artifact has (or the default)."""
        if triple == PORTABLE_TRIPLE:
            return Target(triple, ())
        configured = {t.triple: t for t in self.targets()}
        return configured.get(triple) or SUPPORTED_TARGETS.get(triple) or Target(triple, ())

    def source_epoch(self) -> int:
        """The build's timestamp: SOURCE_DATE_EPOCH, else the last commit's time, else 0."""
        if "SOURCE_DATE_EPOCH" in os.environ:
            value = os.environ["SOURCE_DATE_EPOCH"]
            if not value.isdigit():
                raise InvalidInput(f"SOURCE_DATE_EPOCH: {value!r} must be a whole number of seconds")
            return int(value)
        committed = git_output(self.root, "log", "-1", "--format=%ct")
        return int(committed) if committed else 0


def git_output(root: Path, *args: str) -> str | None:
    """What a git command prints in `root`, stripped; None when git is missing or the command fails."""
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _target(entry: object, field: str) -> Target:
    if isinstance(entry, str):
        return resolve_target(entry, source=field)
    if not isinstance(entry, dict):
        raise InvalidInput(f"{field}: must be a target triple or a {{ triple, cpu_features }} table")
    unknown = sorted(set(entry) - set(_TARGET_KEYS))
    if unknown:
        raise InvalidInput(f"{field}.{unknown[0]}: unknown key; allowed: {', '.join(_TARGET_KEYS)}")
    triple, features = entry.get("triple"), entry.get("cpu_features")
    if not isinstance(triple, str):
        raise InvalidInput(f'{field}.triple: must be a target triple such as "{DEFAULT_TARGETS[0]}"')
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise InvalidInput(f'{field}.cpu_features: must be an array of CPU feature names, e.g. ["sse2", "sse4.2"]')
    return resolve_target(triple, source=field, cpu_features=features)


def find_project(start: Path) -> Project:
    """The nearest directory at or above `start` with guests/ or manifests/ and a pyproject.toml."""
    for directory in (start.resolve(), *start.resolve().parents):
        if (directory / "pyproject.toml").exists() and (directory / "manifests").is_dir():
            return Project(directory)
    raise InvalidInput(f"{start}: not inside an ngixi project (no pyproject.toml with a manifests/ directory)")
