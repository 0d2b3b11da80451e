"""Zig guests: `main.zig` (or `src/main.zig`, or the guest's one `.zig` file) built by `zig build-exe` for wasm32-wasi.

The generated bindings are the module `ngixi` (`const ngixi = @import("ngixi");`).
"""

from __future__ import annotations

from pathlib import Path

from ngixi_build.languages import native
from ngixi_build.languages.base import CompileJob
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_build.stages.compile import CompileError
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.bundle_format import BuildProfile

# Both keep debug info and names (-fno-strip; the build drops the DWARF, a dev build after making a source map
# of it); not Zig's Debug mode, whose panic handler imports WASI clocks and files.
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {
    "release": ("-O", "ReleaseSmall", "-fno-strip"),
    "dev": ("-O", "ReleaseSmall", "-fno-strip"),
}
ROOTS = ("main.zig", "src/main.zig")


def root_source(project: Project, guest: str) -> Path:
    directory = project.guests_dir / guest
    for name in ROOTS:
        if (directory / name).is_file():
            return directory / name
    found = [p for p in project.guest_sources(guest) if p.suffix == ".zig"]
    if len(found) != 1:
        raise CompileError(f"guests/{guest}: a Zig guest's root is {' or '.join(ROOTS)} (or its only .zig file)")
    return found[0]


def build_arguments(job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
    project, guest = job.project, job.guest
    library = ["-fno-entry", *(f"--export={name}" for name in native.exports_of(guest, manifest))]
    return [
        "build-exe",
        "-target",
        native.WASI_TARGET,
        *OPTIMIZATION[project.profile],
        *(library if guest.type.kind == "library" else []),
        f"--max-memory={guest.memory_pages * native.PAGE_BYTES}",
        "--stack",
        str(native.STACK_BYTES),
        f"-femit-bin={output}",
        *modules(project, root_source(project, guest.name)),
    ]


def modules(project: Project, root: Path) -> list[str]:
    """The root source, with the bindings as the module `ngixi` when the project has a WIT catalog."""
    if not core_bindings.available(project):
        return [f"-Mroot={native.relative(project, root)}"]
    bindings = native.relative(project, core_bindings.zig_module(project))
    return [
        "--dep",
        core_bindings.ZIG_MODULE,
        f"-Mroot={native.relative(project, root)}",
        f"-M{core_bindings.ZIG_MODULE}={bindings}",
    ]


class Zig(native.ZigCompiled):
    name = "zig"
    optimization = OPTIMIZATION
    command = "zig build-exe"

    def bindings(self, project: Project) -> Path:
        return core_bindings.zig_module(project)

    def arguments(self, job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
        return build_arguments(job, output, manifest)


LANGUAGE = Zig()
