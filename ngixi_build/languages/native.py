"""What C and Zig guests share: the pinned zig, the memory maximum, the exports, the output written atomically,
the project's shared source folders (`[tool.ngixi] shared_sources`: inputs of every such guest).

A library guest exports what its manifest declares under [exports] (the linker keeps those and
no others of its functions); a command guest is a WASI program with `_start`. The memory maximum
is `limits.memory_pages`, the stack 64 KiB. The compiler runs in the project root on relative
paths, so its diagnostics name `guests/<name>/...` with line and column. Every build keeps the name section
and drops the DWARF; a dev build turns the DWARF line table of the guest's own files into a source map first.
"""

from __future__ import annotations

import re
import tempfile
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from ngixi_build.guests import GuestBuild
from ngixi_build.languages import native_reads
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.proc import run, tool_limits
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_build.stages.compile import CompileError, compiled_into
from ngixi_build.toolchains import ziglang
from ngixi_build.toolchains.dwarf_lines import with_line_source_map, without_debug_sections
from ngixi_runtime.guest.compile_options import DEFAULT_STACK_BYTES
from ngixi_runtime.guest.manifest import Manifest, load_manifest
from ngixi_runtime.spec.bundle_format import BuildProfile

PAGE_BYTES = 65536
STACK_BYTES = DEFAULT_STACK_BYTES  # a Zig guest's; a C guest's is its [compile] stack_bytes
WASI_TARGET = "wasm32-wasi"
# The languages whose guests read the project's shared source folders: ZigCompiled's (C's and Zig's names).
SHARED_SOURCE_LANGUAGES = ("c", "zig")


def library_arguments(guest: GuestBuild, manifest: Manifest, *, no_entry: str, export: str) -> list[str]:
    """A library guest's compiler arguments: `no_entry` (it has no `_start`), and `export` followed by each function
    its manifest declares; none for a command guest, which exports its `_start` only."""
    if guest.type.kind != "library":
        return []
    return [no_entry, *(f"{export}{function.name}" for function in manifest.exports)]


_MEMORY_TOO_SMALL = re.compile(r"maximum memory too small, (\d+) bytes needed")


def memory_too_small(project: Project, guest: GuestBuild, failure: str) -> CompileError | None:
    """The manifest's field to raise, and to what, when the linker found the memory maximum smaller than the module's
    stack and data; None for any other failure."""
    found = _MEMORY_TOO_SMALL.search(failure)
    if found is None:
        return None
    pages = -(-int(found.group(1)) // PAGE_BYTES)
    return CompileError(
        f"{relative(project, project.manifest_path(guest.name))}: limits.memory_pages: {guest.memory_pages} pages "
        f"cannot hold the module's stack and static data (wasm-ld: {found.group(0)}): raise it to {pages} or more"
    )


def relative(project: Project, path: Path) -> str:
    return str(path.relative_to(project.root))


def debug_info_for(project: Project, guest: str, wasm: bytes, *, source: str) -> bytes:
    """The module without DWARF, keeping its names (a trap names the guest's function); a dev build's with a
    source map of the guest's own and shared files, so that a trap names its file and line."""
    if project.profile != "dev":
        return without_debug_sections(wasm, source=source)
    own = [project.guests_dir / guest, *project.shared_sources()]

    def shown(path: str) -> str | None:
        absolute = project.root / path
        return relative(project, absolute) if any(absolute.is_relative_to(folder) for folder in own) else None

    return with_line_source_map(wasm, shown, source=source)


class ZigCompiled(Language):
    """A language the pinned zig compiles against the generated core bindings: C (`zig cc`), Zig (`zig build-exe`)."""

    optimization: ClassVar[Mapping[BuildProfile, tuple[str, ...]]]
    command: ClassVar[str]  # how the build names the compile step, e.g. "zig cc"

    @abstractmethod
    def bindings(self, project: Project) -> Path:
        """The generated bindings file this language's guests compile against."""

    @abstractmethod
    def arguments(self, job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
        """zig's arguments that compile the guest to `output` as its manifest says (`library_arguments`, [compile])."""

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [
            project.manifest_path(guest.name),
            *core_bindings.inputs(project, self.bindings(project)),
            *project.shared_source_files(),
        ]

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {
            "ziglang": ziglang.pinned_version(),
            "profile": project.profile,
            "stack": STACK_BYTES,
            "flags": list(self.optimization[project.profile]),
        }

    def install(self, state_dir: Path) -> None:
        ziglang.ensure_zig()

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        ok, detail = ziglang.status()
        return ToolchainStatus("zig toolchain (C and Zig guests)", ok, detail)

    def compile(self, job: CompileJob) -> int:
        """Runs `zig <arguments>` in the project root; returns the module's size."""
        project, guest = job.project, job.guest
        core_bindings.generate(project)  # unchanged ones are left alone (a release builds without doit)
        zig = ziglang.ensure_zig()
        manifest = load_manifest(project.manifest_path(guest.name))  # a broken manifest fails the compile here
        directory = project.guests_dir / guest.name
        native_reads.refuse_links_out(guest.name, directory, relative(project, directory))
        self.refuse_reads(job, manifest, zig)
        with compiled_into(job.out_path) as temporary, tempfile.TemporaryDirectory(prefix="ngixi-link-") as scratch:
            arguments = [*self.arguments(job, temporary, manifest), *self.libraries(job, manifest, zig, Path(scratch))]
            try:
                self.run_zig(project, guest, [zig, *arguments])
            except CompileError as failed:
                again = self.arguments_again(arguments, str(failed))
                if again is None:
                    raise memory_too_small(project, guest, str(failed)) or failed from None
                self.run_zig(project, guest, [zig, *again])
            temporary.write_bytes(debug_info_for(project, guest.name, temporary.read_bytes(), source=str(temporary)))
        return job.out_path.stat().st_size

    @abstractmethod
    def refuse_reads(self, job: CompileJob, manifest: Manifest, zig: Path) -> None:
        """Refuses a guest whose compile would read a file other than its own, the toolchain's or the bindings'
        (`native_reads`), or that has inline assembly."""

    def libraries(self, job: CompileJob, manifest: Manifest, zig: Path, scratch: Path) -> list[str]:
        """Archives made in `scratch` for the guest to link with (the linker takes only the members it needs)."""
        return []

    def arguments_again(self, arguments: list[str], failure: str) -> list[str] | None:
        """The arguments to compile with once more after a compile failed saying `failure`, or None: fail."""
        return None

    def run_zig(self, project: Project, guest: GuestBuild, command: list[str | Path]) -> None:
        run(
            command,
            what=f"{guest.name}: {self.command}",
            cwd=project.root,
            env=ziglang.zig_env(project.state_dir),
            error=CompileError,
            limits=tool_limits(),
        )
