"""Python guests: the module `app.py` (or the guest's only .py file), whose class `WitWorld` implements
the exports, made a component of the guest's world by the pinned componentize-py. Its bindings are
the generated package `wit_world`: `from wit_world.imports import log`.
"""

from __future__ import annotations

from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.project import Project
from ngixi_build.stages import component, language_component
from ngixi_build.toolchains import installs, python, python_deps
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.manifest import Manifest, load_manifest

ENTRIES = ("app.py",)
SUFFIXES = (".py",)


class Python(Language):
    name = "python"
    abis = ("component",)

    def may_read(self, name: str) -> bool:
        """Only what componentize-py is given of the guest's folder (no __pycache__/, nothing hidden: an author's
        .venv/ there is no input, nor walked), which is all its compile reads there."""
        return not python.not_copied(name)

    def toolchain_marker(self, state_dir: Path) -> Path:
        return python.toolchain_for(state_dir).root / installs.COMPLETE

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [*component.catalog_sources(project), project.manifest_path(guest.name)]

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {
            "toolchain": python.pinned_version(),
            "pins": python.toolchain_for(project.state_dir).root.name,
            "entry module": python.ENTRY_DIGEST,  # built into the component beside the guest's own modules
            "requirements.txt": python_deps.INSTALLED_WITH,  # the file itself is one of the guest's sources
        }

    def install(self, state_dir: Path) -> None:
        python.ensure_python_toolchain(state_dir=state_dir)

    def not_reproducible(self) -> str | None:
        return "componentize-py snapshots its interpreter with the random string hashes of the build"

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        root = python.toolchain_for(project.state_dir).root
        return ToolchainStatus(
            "python toolchain", installs.is_complete(root), installs.describe(python.pinned_version(), root)
        )

    def compile(self, job: CompileJob) -> int:
        project = job.project
        manifest = load_manifest(project.manifest_path(job.guest.name))
        refuse_ungrantable(manifest)
        component.check_export_names(manifest)  # before its packages are downloaded and installed
        entry = language_component.entry_file(project, job.guest.name, ENTRIES, SUFFIXES)
        toolchain = python.ensure_python_toolchain(state_dir=project.state_dir)
        shown_as = entry.parent.relative_to(project.root)
        dependencies = python_deps.ensure_dependencies(
            project.state_dir, entry.parent, shown_as=shown_as / python_deps.REQUIREMENTS
        )
        if dependencies is not None:
            python_deps.refuse_shadowing(entry.parent, dependencies, shown_as)

        def build(world_dir: Path, manifest: Manifest, out: Path) -> None:
            python.build_component(
                toolchain,
                module=entry.stem,
                source_dir=entry.parent,
                shown_as=shown_as,
                world_dir=world_dir,
                world=manifest.guest.name,
                out_path=out,
                dependencies=dependencies,
            )

        return language_component.build_component(project, job.guest.name, job.out_path, build)


def refuse_ungrantable(manifest: Manifest) -> None:
    """A stdio or random grant, which a Python guest cannot use: its WASI is stubbed (print writes nowhere, and
    no randomness comes from the host)."""
    tool = python.pinned_version()
    if "stdio" in manifest.grants:
        raise InvalidInput(
            f"{manifest.source}: capabilities.stdio: a Python guest has no standard output ({tool} "
            "stubs all of WASI, so print writes nowhere); remove the grant and write with log"
        )
    if "random" in manifest.grants:
        raise InvalidInput(
            f"{manifest.source}: capabilities.random: a Python guest gets no randomness from the host ({tool} stubs "
            "all of WASI, wasi:random too); remove the grant: os.urandom, secrets and uuid4 refuse at run time, and "
            "random until the guest seeds it"
        )


LANGUAGE = Python()
