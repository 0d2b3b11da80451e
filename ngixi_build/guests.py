"""The guests of a project as its build sees them: read once per build, from manifests that may be broken."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.project import Project
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_toml_file
from ngixi_runtime.guest.build_command import BuildCommand, lenient_build
from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions, lenient_compile
from ngixi_runtime.guest.kind import GuestLanguage, GuestType, infer_language, lenient_guest_type
from ngixi_runtime.guest.manifest import DEFAULT_LIMITS

UNKNOWN_VERSION = "unknown"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuestBuild:
    """What building one guest takes from its manifest; a value the manifest gets wrong reads as its default.

    Reading never fails, so that `doit list` works with a broken manifest and the validate step
    reports what is wrong with it.
    """

    name: str
    type: GuestType
    version: str
    memory_pages: int
    metered: bool  # [limits] fuel is set: Wasmtime artifacts count fuel
    build: BuildCommand | None = None  # a "wasm" guest's [build] table
    compile: CCompileOptions | ZigCompileOptions | None = None  # a C or Zig guest's [compile] table

    @property
    def is_prebuilt(self) -> bool:
        """A "wasm" guest without a [build] command: a module the project takes as it is."""
        return self.type.language == "wasm" and (self.build is None or not self.build.command)


def read_guest(project: Project, name: str) -> GuestBuild:
    try:  # leniently: the validate task reports what is wrong with the manifest
        raw = read_toml_file(project.manifest_path(name), what="the manifest")
    except InvalidInput:
        raw = {}
    table, limits = _table(raw.get("guest")), _table(raw.get("limits"))
    version = table.get("version")
    declared = lenient_guest_type(table)
    language = declared.language or _inferred_language(project, name, has_build="build" in raw)
    return GuestBuild(
        name=name,
        type=declared._replace(language=language),
        version=version if isinstance(version, str) and version else UNKNOWN_VERSION,
        memory_pages=_memory_pages(limits.get("memory_pages")),
        metered="fuel" in limits,
        build=lenient_build(raw),
        compile=lenient_compile(raw, declared.language),  # read as the manifest is: by the language it names
    )


def _inferred_language(project: Project, name: str, *, has_build: bool) -> GuestLanguage | None:
    """The language of a guest whose manifest names none: "wasm" with a [build] table, else from its files."""
    if has_build:
        return "wasm"
    directory = project.guests_dir / name
    return infer_language(path.relative_to(directory).as_posix() for path in project.visible_guest_sources(name))


def read_guests(project: Project) -> dict[str, GuestBuild]:
    """Every guest of the project by name, in name order."""
    return {name: read_guest(project, name) for name in project.guest_names()}


def manifests_without_guest(project: Project) -> list[Path]:
    """Manifests whose guest has no directory under guests/, which the build would otherwise pass over."""
    names = set(project.guest_names())
    manifests = sorted(project.manifests_dir.glob("*.toml")) if project.manifests_dir.is_dir() else []
    return [path for path in manifests if path.stem not in names]


def refuse_manifest_without_guest(*, project: Project, manifest: Path) -> None:
    """The failure of a guest that has a manifest and no directory."""
    raise InvalidInput(manifest_without_guest_problem(project, manifest))


def manifest_without_guest_problem(project: Project, manifest: Path) -> str:
    missing = f"{project.guests_dir / manifest.stem}/"
    return f"{manifest}: guest {manifest.stem!r} has no directory {missing}; put its sources there, or remove it"


def folders_without_manifest(project: Project) -> list[Path]:
    """Folders under guests/ that are no guest (no manifest, no assembly/index.ts), which the build passes over."""
    if not project.guests_dir.is_dir():
        return []
    names = set(project.guest_names())
    shared = set(project.declared_shared_sources())
    found = (d for d in project.guests_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    return sorted(d for d in found if d.name not in names and d not in shared)


def folder_without_manifest_warning(project: Project, folder: Path) -> str:
    return (
        f"{folder}/: not built: it has no manifest {project.manifest_path(folder.name)}; write one to build it as a "
        "guest, or, if it holds C or Zig code guests share, declare it in pyproject.toml: [tool.ngixi] "
        f'shared_sources = ["{folder.relative_to(project.root).as_posix()}"]'
    )


def warn_folder_without_manifest(*, project: Project, folder: Path) -> None:
    """What the build says of a folder under guests/ that is no guest: it passes it over."""
    log.warning("%s", folder_without_manifest_warning(project, folder))


def _table(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _memory_pages(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_LIMITS["memory_pages"]
