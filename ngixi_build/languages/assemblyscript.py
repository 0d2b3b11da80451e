"""AssemblyScript guests: `guests/<name>/assembly/index.ts` compiled by the pinned asc (components: wasm-tools)."""

from __future__ import annotations

import os
from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.project import GUEST_ENTRY, NODE_MODULES, Project
from ngixi_build.stages import compile as compile_stage
from ngixi_build.stages import component, core_bindings
from ngixi_build.toolchains import asdata, installs, npm_deps
from ngixi_build.toolchains.assemblyscript import ensure_toolchain, toolchain_for
from ngixi_runtime.guest.manifest import load_manifest


def compile_inputs(project: Project, guest: GuestBuild) -> tuple[Path, compile_stage.AscOptions]:
    """The guest's entry (relative to the project root) and its compile options from the manifest.

    A library component's entry is its export glue, written here from its world (`component.write_guest_bindings`).
    """
    guest_dir = project.guests_dir / guest.name
    entry = (guest_dir / GUEST_ENTRY).relative_to(project.root)
    kind = guest.type.kind
    if guest.type.is_component and kind == "library":
        manifest = load_manifest(project.manifest_path(guest.name))
        entry = component.write_guest_bindings(project, manifest, entry).relative_to(project.root)
    if guest.type.is_component:
        extra = (*component.compile_arguments(project, kind, guest.name), *asdata.runtime_arguments(project.root))
    else:  # the core bindings' package (`import { kv } from "ngixi"`) and the call data ABI's
        bindings = os.path.relpath(core_bindings.as_package_dir(project), project.root)
        extra = ("--path", bindings, *asdata.compile_arguments(project.root))
    if npm_deps.has_dependencies(guest_dir):  # imports by package name resolve in the guest's node_modules
        extra += ("--path", str((guest_dir / NODE_MODULES).relative_to(project.root)))
    return entry, compile_stage.AscOptions(
        kind=kind,
        memory_pages=guest.memory_pages,
        extra_arguments=extra,
        profile=project.profile,
        readable=(
            guest_dir,
            core_bindings.bindings_dir(project),
            component.bindings_dir(project),
            asdata.LIBRARY_DIR,
            asdata.RUNTIME_LIBRARY_DIR,
            asdata.EMPTY_ASCONFIG.parent,
            toolchain_for(project.state_dir).root,
        ),
    )


class AssemblyScript(Language):
    name = "assemblyscript"
    abis = ("core", "component")

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        if not guest.type.is_component:
            return [
                *core_bindings.inputs(project, core_bindings.as_module(project)),
                asdata.SOURCE,
                *asdata.RUNTIME_SOURCES,
                asdata.EXPORT_CHECK,
            ]
        # A component embeds its world, made of the catalog and the manifest's exports.
        return [
            *component.catalog_sources(project),
            *component.bindings_paths(project),
            *(Path(p) for p in component.GLUE_GENERATOR),
            project.manifest_path(guest.name),
            *asdata.RUNTIME_SOURCES,
        ]

    def intermediates(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [component.core_path(project, guest.name)] if guest.type.is_component else []

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {
            "flags": list(compile_stage.OPTIMIZATION_FLAGS[project.profile]),
            "pins": toolchain_for(project.state_dir).root.name,
        }

    def toolchain_marker(self, state_dir: Path) -> Path:
        return toolchain_for(state_dir).root / installs.COMPLETE

    def install(self, state_dir: Path) -> None:
        ensure_toolchain(state_dir=state_dir)

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        toolchain = toolchain_for(project.state_dir)
        detail = f"installed in {toolchain.root}" if toolchain.complete else installs.not_installed(toolchain.root)
        return ToolchainStatus("assemblyscript toolchain", toolchain.complete, detail)

    def compile(self, job: CompileJob) -> int:
        project, guest = job.project, job.guest
        toolchain = ensure_toolchain(state_dir=project.state_dir)
        if not guest.type.is_component:
            core_bindings.generate(project)  # unchanged ones are left alone (a release builds without doit)
        entry, options = compile_inputs(project, guest)
        size = compile_stage.compile_guest(
            toolchain=toolchain,
            project_root=project.root,
            entry=entry,
            out_path=component.core_path(project, guest.name) if guest.type.is_component else job.out_path,
            options=options,
        )
        if guest.type.is_component:
            size = component.componentize_guest(project, guest.name)
        return size


LANGUAGE = AssemblyScript()
