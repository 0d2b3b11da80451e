"""Where a project's inputs, outputs and state live, and its configuration."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ngixi_build.files import is_editor_noise, link_out_of, refuse_links, regular_files
from ngixi_runtime.engines.base import PORTABLE_TRIPLE
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_toml_file
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX, BuildProfile, artifact_path
from ngixi_runtime.spec.project import DEV_TRUST_NAME, PROJECT_FILE, find_project_root, project_state_dir
from ngixi_runtime.spec.targets import DEFAULT_TARGETS, SUPPORTED_TARGETS, Target, host_triple, resolve_target

GUEST_ENTRY = Path("assembly/index.ts")
# `release`: the guests `doit release` ships (read by workflows/release.py).
_CONFIG_KEYS = ("targets", "wasmtime_targets", "release", "shared_sources")
# The WIT catalog of host capabilities shipped with this package, for projects without their own wit/.
PACKAGED_WIT = Path(__file__).parent / "wit"
WIT_DIR = "wit"
NODE_MODULES = "node_modules"
# Version control's and editors' folders and Python's bytecode: no compile reads them, in a guest's folder or a
# shared one.
NEVER_READ = frozenset(
    {".git", ".hg", ".svn", ".bzr", ".jj", "CVS", ".idea", ".vscode", ".vs", ".fleet", "__pycache__"}
)
PACKAGE_JSON = "package.json"
# Wasmtime's wheel compiles only for the machine it runs on and for its portable interpreter.
WASMTIME_TARGETS = ("host", PORTABLE_TRIPLE)
_TARGET_KEYS = ("triple", "cpu_features")


@dataclass(frozen=True)
class Project:
    root: Path
    # Which build's outputs the paths below name: dev builds (watch mode) keep theirs apart.
    profile: BuildProfile = "release"
    # --state-dir: where this project's state lives instead of <root>/.ngixi.
    state_override: Path | None = None

    @property
    def state_dir(self) -> Path:
        return project_state_dir(self.root, self.state_override)

    @property
    def wit_dir(self) -> Path:
        """The project's own WIT catalog (wit/), else the one this package ships."""
        own = self.root / WIT_DIR
        if not own.is_dir():
            return PACKAGED_WIT
        _refuse_links_out_of_wit(own)
        return own

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
        return self.state_dir / DEV_TRUST_NAME

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

    def guest_sources(
        self,
        guest: str,
        *,
        enter: Callable[[str], bool] = lambda _name: True,
        never_read: frozenset[str] = NEVER_READ,
    ) -> list[Path]:
        """The files of a guest's folder its compile may read: every one, hidden ones and those in hidden folders
        too, but editors' scratch files, version control's and editors' folders (`never_read`) and, in a guest with
        npm dependencies (a package.json), node_modules/, whose install record is the compile's input instead.
        Folders whose name `enter` refuses are not walked (their files are no sources either)."""
        directory = self.guests_dir / guest
        installed = (directory / PACKAGE_JSON).is_file()  # node_modules/ is not walked: it may hold 10,000s of files

        def walked(name: str) -> bool:
            return name not in never_read and (name != NODE_MODULES or not installed) and enter(name)

        found = regular_files(directory, enter=walked)
        return [path for path in found if self.is_guest_source(guest, path, never_read=never_read)]

    def visible_guest_sources(self, guest: str) -> list[Path]:
        """`guest_sources` but those hidden or in a hidden folder: the files a language picks what to compile from
        (its .c files, its only .zig or .wasm file) and a guest's language is told by."""
        directory = self.guests_dir / guest
        found = self.guest_sources(guest, enter=lambda name: not name.startswith("."))
        return [path for path in found if not is_hidden(path, directory)]

    def is_guest_source(self, guest: str, path: Path, *, never_read: frozenset[str] = NEVER_READ) -> bool:
        """Whether `path`, under the guest's folder, is one of `guest_sources` (or a folder that may hold them)."""
        directory = self.guests_dir / guest
        if never_an_input(path, directory, never_read):
            return False
        return NODE_MODULES not in path.relative_to(directory).parts or not (directory / PACKAGE_JSON).is_file()

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
        path = self.root / PROJECT_FILE
        if not path.exists():
            return {}
        tool = read_toml_file(path, what="the project file").get("tool", {})
        table = tool.get("ngixi", {}) if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise InvalidInput(f"{path}: tool.ngixi: must be a table ([tool.ngixi]); see `ngixi init`")
        unknown = sorted(set(table) - set(_CONFIG_KEYS))
        if unknown:
            raise InvalidInput(f"{path}: tool.ngixi.{unknown[0]}: unknown key; allowed: {', '.join(_CONFIG_KEYS)}")
        return dict(table)

    def check_config(self) -> None:
        """Raises at the first wrong value in `[tool.ngixi]`, whichever command would read it."""
        self.targets()
        self.wasmtime_triples()
        self.release_guests()
        self.shared_sources()

    def refuse_linked_outputs(self) -> None:
        """Refuses a symbolic link in artifacts/ (or at it), or at the project's own .ngixi/ or its keys/: the build
        writes there by fixed names, so a link that came with the project (`artifacts -> ~/.config/app`) had it write
        `validated/<guest>.json` and the rest into the builder's folders. A `--state-dir` is the builder's own.
        Also refuses a link out of the project's `wit/` (`wit_dir`, which every reader of the catalog goes through)
        here, where it is said in one line before doit declares a task."""
        refuse_links((self.state_dir, self.keys_dir) if self.state_override is None else (), InvalidInput)
        if (self.root / WIT_DIR).is_dir():
            _refuse_links_out_of_wit(self.root / WIT_DIR)
        link = next((p for p in (self.artifacts_dir, *_entries_under(self.artifacts_dir)) if p.is_symlink()), None)
        if link is not None:
            raise InvalidInput(
                f"{link}: is a symbolic link among the build's outputs, which it writes by fixed names (did it come "
                "with the project?): remove it and build again"
            )

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

    def release_guests(self) -> list[str]:
        """`[tool.ngixi] release`: the guests `doit release` ships (empty: every guest)."""
        entries = self.config.get("release", [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise InvalidInput(f"{self.root / 'pyproject.toml'}: tool.ngixi.release: must be an array of guest names")
        return list(entries)

    def shared_sources(self) -> tuple[Path, ...]:
        """`[tool.ngixi] shared_sources`: folders of the project whose code C and Zig guests share (each guest's
        compile may read them, and each of their files is an input of each such guest)."""
        field = f"{self.root / PROJECT_FILE}: tool.ngixi.shared_sources"
        entries = self.config.get("shared_sources", [])
        if not isinstance(entries, list):
            raise InvalidInput(f'{field}: must be an array of folders of the project, e.g. ["guests/common", "lib"]')
        return tuple(self._shared_folder(entry, f"{field}[{index}]") for index, entry in enumerate(entries))

    def declared_shared_sources(self) -> tuple[Path, ...]:
        """The folders `shared_sources` names, unchecked: for telling which files they hold (a wrong entry fails the
        build of each guest that reads them, through `shared_sources`)."""
        entries = self.config.get("shared_sources", [])
        named = entries if isinstance(entries, list) else []
        return tuple(self.root / os.path.normpath(e) for e in named if isinstance(e, str) and e)

    def _shared_folder(self, entry: object, field: str) -> Path:
        if not isinstance(entry, str) or not entry or Path(entry).is_absolute():
            raise InvalidInput(f'{field}: must be a folder\'s path relative to the project root, e.g. "lib"')
        if "\0" in entry:
            raise InvalidInput(f"{field}: {entry!r} holds a NUL character, which no path can hold; remove it")
        root = Path(os.path.realpath(self.root))
        folder = Path(os.path.realpath(self.root / entry))
        if not folder.is_relative_to(root):
            raise InvalidInput(f"{field}: {entry!r} is outside the project ({folder}); shared code must be inside it")
        if not folder.is_dir():
            raise InvalidInput(f"{field}: {entry!r} is not a folder of the project; make it, or remove the entry")
        for kept in (self.state_dir, self.artifacts_dir, self.root / ".git"):
            real = Path(os.path.realpath(kept))
            if folder.is_relative_to(real) or real.is_relative_to(folder):
                raise InvalidInput(
                    f"{field}: {entry!r} holds or is in {kept.name}/, which the build writes or keeps apart; "
                    'name a folder of sources only, e.g. "lib"'
                )
        outside = link_out_of(folder)
        if outside is not None:
            link, target = outside
            raise InvalidInput(f"{field}: {link} is a link out of {entry!r} (to {target}); copy the file there")
        return self.root / os.path.normpath(entry)

    def shared_source_files(self) -> list[Path]:
        """Every file of the shared folders (hidden ones too, but `never_an_input`), each once, sorted."""
        found = {
            path
            for folder in self.shared_sources()
            for path in regular_files(folder, enter=lambda name: name not in NEVER_READ)
            if not never_an_input(path, folder)
        }
        return sorted(found)

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


def never_an_input(path: Path, folder: Path, never_read: frozenset[str] = NEVER_READ) -> bool:
    """Whether `path`, under `folder`, is an editor's scratch file or in a folder of version control's or an
    editor's (`never_read`): no compile reads it, in any language (but a [build] command naming it)."""
    parts = path.relative_to(folder).parts
    return (bool(parts) and is_editor_noise(parts[-1])) or not never_read.isdisjoint(parts)


def is_hidden(path: Path, folder: Path) -> bool:
    """Whether `path`, under `folder`, is hidden or in a hidden folder there."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


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


def _entries_under(folder: Path) -> list[Path]:
    """Every file and folder under `folder`, its links not followed."""
    if folder.is_symlink():
        return []
    return [Path(root) / name for root, dirs, files in os.walk(folder) for name in (*dirs, *files)]


def find_project(start: Path, *, state_dir: Path | None = None) -> Project:
    """The project whose root is at or above `start` (a pyproject.toml with [tool.ngixi])."""
    root = find_project_root(start)
    if root is None:
        raise InvalidInput(
            f"{start}: not inside an ngixi project (no {PROJECT_FILE} with a [tool.ngixi] table here or above);"
            " create one with `ngixi init DIR`, or name one with --project"
        )
    project = Project(root, state_override=state_dir)
    project.check_config()
    project.refuse_linked_outputs()
    return project


def _refuse_links_out_of_wit(wit_dir: Path) -> None:
    """Refuses a project's `wit/` that is, or holds, a link out of the project's folder or of `wit/`: every build reads
    the catalog and copies it, links followed, into each component guest's world, so `wit/deps/x -> ~` had the
    builder's whole home read (a `.wit` among its files quoted in an error)."""
    outside = link_out_of(wit_dir)
    target = Path(os.path.realpath(wit_dir))
    if outside is None and Path(os.path.realpath(wit_dir.parent)) not in target.parents:
        outside = (wit_dir, target)
    if outside is not None:
        link, target = outside
        raise InvalidInput(
            f"{link}: a link out of the project's WIT folder (to {target}); a build reads only the project's own "
            f"files: copy what it names into {wit_dir}/"
        )
