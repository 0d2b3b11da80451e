"""JavaScript guests: an ES module (`index.js`, or the guest's only .js/.mjs file) made a component of
the guest's world by the pinned componentize-js. Its bindings are the granted catalog interfaces,
imported by their WIT names: `import { write } from "ngixi:host/log@0.1.0"`. A guest with npm dependencies
(`package.json` and its lock file) imports them by package name: the build bundles it with them first.
"""

from __future__ import annotations

from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.project import Project
from ngixi_build.stages import component, language_component
from ngixi_build.toolchains import installs, javascript, npm_deps
from ngixi_runtime.guest.manifest import ExportDecl, Manifest

ENTRIES = ("index.js", "index.mjs")
SUFFIXES = (".js", ".mjs")


class JavaScript(Language):
    name = "javascript"
    abis = ("component",)
    runs_on = ("assemblyscript",)

    def toolchain_marker(self, state_dir: Path) -> Path:
        return javascript.toolchain_for(state_dir).root / installs.COMPLETE

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        # The driver too: what it writes into the component (the exports wrapper, the corrected glue) is its own.
        return [*component.catalog_sources(project), project.manifest_path(guest.name), javascript.DRIVER]

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {
            "toolchain": javascript.pinned_version(),
            "pins": javascript.toolchain_for(project.state_dir).root.name,
            "disabled": list(javascript.WASI_FEATURES),
            "stdio": "if granted",
            "thrown errors": "logged if log is granted, any value and rejections too, but a result's err",
            "randomness": "refused at run time unless random is granted",
            "npm dependencies": "bundled with rolldown",
        }

    def install(self, state_dir: Path) -> None:
        javascript.ensure_javascript_toolchain(state_dir=state_dir)

    def not_reproducible(self) -> str | None:
        return "componentize-js snapshots its engine with the random numbers and clock readings of the build"

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        root = javascript.toolchain_for(project.state_dir).root
        return ToolchainStatus(
            "javascript toolchain", installs.is_complete(root), installs.describe(javascript.pinned_version(), root)
        )

    def compile(self, job: CompileJob) -> int:
        project = job.project
        entry = language_component.entry_file(project, job.guest.name, ENTRIES, SUFFIXES).relative_to(project.root)
        toolchain = javascript.ensure_javascript_toolchain(state_dir=project.state_dir)

        def build(world_dir: Path, manifest: Manifest, out: Path) -> None:
            world = manifest.guest.name
            javascript.build_component(
                toolchain,
                entry=entry,
                world_dir=world_dir,
                world=world,
                out_path=out,
                cwd=project.root,
                grants=manifest.grants,
                exports_wrapper=_exports_wrapper(project, manifest, job.out_path),
                result_exports=[export.name for export in manifest.exports if _returns_result(export)],
                bundle=_bundle(project, manifest, job.out_path),
                guest_dir=(project.guests_dir / job.guest.name).relative_to(project.root),
            )

        return language_component.build_component(project, job.guest.name, job.out_path, build)


def _returns_result(export: ExportDecl) -> bool:
    """Whether an export's WIT type returns a `result` (what it throws is then its err)."""
    first = export.results[0] if export.results else ""
    return first == "result" or first.startswith("result<")


def _exports_wrapper(project: Project, manifest: Manifest, out_path: Path) -> Path | None:
    """Where the build's export wrapper goes: it hands each export its arguments as values of the guest's realm, and
    logs what an export throws (a guest granted log); without random, or clock and stdio, its randomness, or its
    timers, refuse at run time."""
    return _build_file(project, manifest, out_path, "exports")


def _bundle(project: Project, manifest: Manifest, out_path: Path) -> Path | None:
    """Where the guest is bundled with its npm dependencies (none for a guest without them)."""
    has_dependencies = npm_deps.has_dependencies(project.guests_dir / manifest.guest.name)
    return _build_file(project, manifest, out_path, "bundle") if has_dependencies else None


def _build_file(project: Project, manifest: Manifest, out_path: Path, role: str) -> Path | None:
    """A module the driver writes for the build only: beside the component, at a fixed path (its name is in the
    component); none outside the project (componentize-js sees only the project). Only its directory is
    resolved: whatever is at the path itself, a symbolic link too, is replaced, never followed."""
    root = project.root.resolve()
    path = out_path.parent.resolve() / f".{manifest.guest.name}.{role}.mjs"
    return path.relative_to(root) if path.is_relative_to(root) else None


LANGUAGE = JavaScript()
