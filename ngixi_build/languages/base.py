"""What a guest language provides to the build: its inputs, its compile and its toolchain."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ngixi_build.guests import GuestBuild
from ngixi_build.project import NEVER_READ, Project
from ngixi_runtime.guest.kind import GuestAbi, GuestLanguage


@dataclass(frozen=True)
class CompileJob:
    """One guest to compile into `out_path` (its .wasm: a core module, or a component for that ABI)."""

    project: Project
    guest: GuestBuild
    out_path: Path


@dataclass(frozen=True)
class ToolchainStatus:
    """What `ngixi doctor` says about a language's toolchain."""

    what: str
    ok: bool
    detail: str


class Language(ABC):
    """One guest language; a module of this package defines `LANGUAGE`, an instance of its subclass."""

    name: ClassVar[GuestLanguage]
    abis: ClassVar[tuple[GuestAbi, ...]] = ("core",)
    # The languages whose toolchains this one's runs on, installed with it (JavaScript: AssemblyScript's Node.js).
    runs_on: ClassVar[tuple[GuestLanguage, ...]] = ()

    def sources(self, project: Project, guest: GuestBuild) -> list[Path]:
        """The guest's own files its compile may read (its up-to-date check follows them; watch mode, `is_source`)."""
        found = project.guest_sources(guest.name, enter=self.may_read, never_read=self.never_read(guest))
        return [path for path in found if self.is_source(project, guest, path)]

    def is_source(self, project: Project, guest: GuestBuild, path: Path) -> bool:
        """Whether `path`, under the guest's folder, is (or may hold) one of `sources`: `Project.guest_sources`'
        with no file or folder on its way there that `may_read` refuses."""
        parts = path.relative_to(project.guests_dir / guest.name).parts
        never_read = self.never_read(guest)
        return all(map(self.may_read, parts)) and project.is_guest_source(guest.name, path, never_read=never_read)

    def may_read(self, name: str) -> bool:
        """Whether its compile may read a file or folder of this name in a guest's folder (all but `NEVER_READ`
        and the like, which `Project.guest_sources` leaves out for every language)."""
        return True

    def never_read(self, guest: GuestBuild) -> frozenset[str]:
        """The folders of version control and editors its compile does not read (`project.NEVER_READ`: all)."""
        return NEVER_READ

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        """Other files its compile reads: generated bindings, the manifest. A toolchain is told by its pins in
        `settings`, not by its install's marker, whose stamp names where it is."""
        return []

    def intermediates(self, project: Project, guest: GuestBuild) -> list[Path]:
        """Files its compile writes besides the .wasm."""
        return []

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        """What else decides the output (flags, toolchain version and pins): a change recompiles."""
        return {}

    def not_reproducible(self) -> str | None:
        """Why two builds of the same guest in this language differ (None: they give the same bytes)."""
        return None

    def toolchain_marker(self, state_dir: Path) -> Path | None:
        """The file an install of a toolchain kept in `state_dir` writes last (the toolchain task's target)."""
        return None

    @abstractmethod
    def install(self, state_dir: Path) -> None:
        """Installs the pinned toolchain if it is missing."""

    @abstractmethod
    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        """Whether what `guests` (the project's guests of this language) need to build is there."""

    @abstractmethod
    def compile(self, job: CompileJob) -> int:
        """Writes `job.out_path` (atomically: nothing on failure); returns its size. The toolchain is ensured here,
        not assumed from doit's toolchain task: watch mode and a release's clean copy compile without it, and ran
        a missing install (componentize-js: "Cannot find module 'oxc-parser'") or one that came with the project."""
