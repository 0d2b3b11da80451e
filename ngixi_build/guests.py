"""The guests of a project as its build sees them: read once per build, from manifests that may be broken."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import tomli

from ngixi_build.project import Project
from ngixi_runtime.guest.kind import GuestType, lenient_guest_type
from ngixi_runtime.guest.manifest import DEFAULT_LIMITS

UNKNOWN_VERSION = "unknown"


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


def read_guest(project: Project, name: str) -> GuestBuild:
    try:
        raw = tomli.loads(project.manifest_path(name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
        raw = {}
    table, limits = _table(raw.get("guest")), _table(raw.get("limits"))
    version = table.get("version")
    return GuestBuild(
        name=name,
        type=lenient_guest_type(table),
        version=version if isinstance(version, str) and version else UNKNOWN_VERSION,
        memory_pages=_memory_pages(limits.get("memory_pages")),
        metered="fuel" in limits,
    )


def read_guests(project: Project) -> dict[str, GuestBuild]:
    """Every guest of the project by name, in name order."""
    return {name: read_guest(project, name) for name in project.guest_names()}


def _table(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _memory_pages(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_LIMITS["memory_pages"]
