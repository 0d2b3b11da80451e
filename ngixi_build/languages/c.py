"""C guests: every `*.c` file of `guests/<name>/`, compiled by `zig cc` for wasm32-wasi against Zig's wasi-libc."""

from __future__ import annotations

from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages import native
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_build.toolchains import ziglang
from ngixi_runtime.spec.bundle_format import BuildProfile

# Dev keeps debug info; not -O0, with which zig links a debug wasi-libc and UBSan runtime that import WASI
# clocks, files and random_get.
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {"release": ("-O2", "-s"), "dev": ("-O1", "-g")}


def cc_arguments(job: CompileJob, output: Path, exports: tuple[str, ...]) -> list[str]:
    project, guest = job.project, job.guest
    sources = [native.relative(project, p) for p in project.guest_sources(guest.name) if p.suffix == ".c"]
    library = ["-mexec-model=reactor", *(f"-Wl,--export={name}" for name in exports)]
    return [
        "cc",
        f"--target={native.WASI_TARGET}",
        *OPTIMIZATION[project.profile],
        "-I",
        native.relative(project, project.guests_dir / guest.name),
        "-I",
        native.relative(project, core_bindings.c_header(project).parent),
        *sources,
        "-o",
        str(output),
        f"-Wl,--max-memory={guest.memory_pages * native.PAGE_BYTES}",
        f"-Wl,-z,stack-size={native.STACK_BYTES}",
        *(library if guest.type.kind == "library" else []),
    ]


class C(Language):
    name = "c"

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [project.manifest_path(guest.name), core_bindings.c_header(project)]

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {**native.zig_settings(project, guest), "flags": list(OPTIMIZATION[project.profile])}

    def install(self, state_dir: Path) -> None:
        ziglang.ensure_zig(state_dir)

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        return native.zig_status()

    def compile(self, job: CompileJob) -> int:
        core_bindings.generate(job.project)  # unchanged ones are left alone (a release builds without doit)
        return native.compile_with_zig(job, cc_arguments, "zig cc")


LANGUAGE = C()
