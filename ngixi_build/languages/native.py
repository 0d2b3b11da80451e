"""What C and Zig guests share: the pinned zig, the memory maximum, the exports, the output written atomically.

A library guest exports what its manifest declares under [exports] (the linker keeps those and
no others of its functions); a command guest is a WASI program with `_start`. The memory maximum
is `limits.memory_pages`, the stack 64 KiB. The compiler runs in the project root on relative
paths, so its diagnostics name `guests/<name>/...` with line and column.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import CompileJob, ToolchainStatus
from ngixi_build.proc import run
from ngixi_build.project import Project
from ngixi_build.stages.compile import CompileError, compiled_into
from ngixi_build.toolchains import ziglang
from ngixi_runtime.guest.manifest import load_manifest

PAGE_BYTES = 65536
STACK_BYTES = 65536
WASI_TARGET = "wasm32-wasi"

Arguments = Callable[[CompileJob, Path, tuple[str, ...]], list[str]]


def declared_exports(project: Project, guest: str) -> tuple[str, ...]:
    """The functions the manifest declares, which a library guest exports (a broken manifest fails here)."""
    return tuple(export.name for export in load_manifest(project.manifest_path(guest)).exports)


def relative(project: Project, path: Path) -> str:
    return str(path.relative_to(project.root))


def compile_with_zig(job: CompileJob, arguments: Arguments, what: str) -> int:
    """Runs `zig <arguments(job, temporary output, exports)>` in the project root; returns the module's size."""
    project, guest = job.project, job.guest
    zig = ziglang.ensure_zig(project.state_dir)
    exports = declared_exports(project, guest.name) if guest.type.kind == "library" else ()
    with compiled_into(job.out_path) as temporary:
        run(
            [zig, *arguments(job, temporary, exports)],
            what=f"{guest.name}: {what}",
            cwd=project.root,
            env=ziglang.zig_env(project.state_dir),
            error=CompileError,
        )
    return job.out_path.stat().st_size


def zig_settings(project: Project, guest: GuestBuild) -> dict[str, object]:
    return {"ziglang": ziglang.pinned_version(), "profile": project.profile, "stack": STACK_BYTES}


def zig_status() -> ToolchainStatus:
    ok, detail = ziglang.status()
    return ToolchainStatus("zig toolchain (C and Zig guests)", ok, detail)
