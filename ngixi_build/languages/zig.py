"""Zig guests: `main.zig` (or `src/main.zig`, or the guest's one `.zig` file) built by `zig build-exe` for wasm32-wasi.

The generated bindings are the module `ngixi` (`const ngixi = @import("ngixi");`).
"""

from __future__ import annotations

from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages import native
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_build.stages.compile import CompileError
from ngixi_build.toolchains import ziglang
from ngixi_runtime.spec.bundle_format import BuildProfile

# Dev keeps debug info and names; not Zig's Debug mode, whose panic handler imports WASI clocks and files.
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {
    "release": ("-O", "ReleaseSmall", "-fstrip"),
    "dev": ("-O", "ReleaseSmall"),
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


def build_arguments(job: CompileJob, output: Path, exports: tuple[str, ...]) -> list[str]:
    project, guest = job.project, job.guest
    library = ["-fno-entry", *(f"--export={name}" for name in exports)]
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
        "--dep",
        core_bindings.ZIG_MODULE,
        f"-Mroot={native.relative(project, root_source(project, guest.name))}",
        f"-M{core_bindings.ZIG_MODULE}={native.relative(project, core_bindings.zig_module(project))}",
    ]


class Zig(Language):
    name = "zig"

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [project.manifest_path(guest.name), core_bindings.zig_module(project)]

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {**native.zig_settings(project, guest), "flags": list(OPTIMIZATION[project.profile])}

    def install(self, state_dir: Path) -> None:
        ziglang.ensure_zig(state_dir)

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        return native.zig_status()

    def compile(self, job: CompileJob) -> int:
        core_bindings.generate(job.project)  # unchanged ones are left alone (a release builds without doit)
        return native.compile_with_zig(job, build_arguments, "zig build-exe")


LANGUAGE = Zig()
