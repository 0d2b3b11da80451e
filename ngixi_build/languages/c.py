"""C guests: every `*.c` file of `guests/<name>/`, compiled by `zig cc` for wasm32-wasi against Zig's wasi-libc."""

from __future__ import annotations

from pathlib import Path

from ngixi_build.languages import native
from ngixi_build.languages.base import CompileJob
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_runtime.spec.bundle_format import BuildProfile

# Dev keeps debug info (turned into a source map); not -O0, with which zig links a debug wasi-libc and UBSan
# runtime that import WASI clocks, files and random_get. Neither strips: the name section stays.
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {"release": ("-O2",), "dev": ("-O1", "-g")}


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


class C(native.ZigCompiled):
    name = "c"
    optimization = OPTIMIZATION
    command = "zig cc"

    def bindings(self, project: Project) -> Path:
        return core_bindings.c_header(project)

    def arguments(self, job: CompileJob, output: Path, exports: tuple[str, ...]) -> list[str]:
        return cc_arguments(job, output, exports)


LANGUAGE = C()
