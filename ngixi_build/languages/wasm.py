"""Guests of any other toolchain (`language = "wasm"`): a committed module, or the manifest's [build] command.

The command runs in its workdir with the build's Python first on PATH and `NGIXI_GUEST`,
`NGIXI_PROFILE` ("release" or "dev") and `NGIXI_MEMORY_PAGES` set; its diagnostics reach the user
as it printed them. Only a module it wrote in full becomes the guest's .wasm: the build copies
`output` atomically once the command has succeeded, so a failure leaves the previous .wasm as it was.
The files matching `inputs` are what `doit build`'s up-to-date check and watch mode follow; the
output itself never counts as an input.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from functools import cache
from pathlib import Path, PurePosixPath

from ngixi_build.guests import GuestBuild
from ngixi_build.languages.base import CompileJob, Language, ToolchainStatus
from ngixi_build.proc import run
from ngixi_build.project import NEVER_READ, Project
from ngixi_build.stages.compile import CompileError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.guest.build_command import BuildCommand
from ngixi_runtime.guest.manifest import Manifest, load_manifest

COMMAND_TIMEOUT_SECONDS = 900.0
_WASM_MAGIC = b"\0asm"
_LAYERS = {b"\x01\x00\x00\x00": "core", b"\x0d\x00\x01\x00": "component"}  # by the version and layer bytes


@cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A "/"-separated glob as a regex: `**/` any directories, `*` and `?` within one name."""
    parts = re.split(r"(\*\*/|\*|\?)", pattern)
    wildcards = {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts) + r"\Z")


def matches(pattern: str, relative: str) -> bool:
    return _glob_regex(pattern).match(relative) is not None


def workdir(project: Project, guest: str, build: BuildCommand) -> Path:
    return project.guests_dir / guest / build.workdir


def is_declared_input(project: Project, guest: GuestBuild, path: Path) -> bool:
    """Whether `path` is one of the files a command guest's build reads (any file of another guest's)."""
    build = guest.build
    if build is None or not build.command:
        return True
    try:
        relative = path.relative_to(workdir(project, guest.name, build)).as_posix()
    except ValueError:
        return False
    return relative != build.output and any(matches(pattern, relative) for pattern in build.inputs)


class Wasm(Language):
    name = "wasm"
    abis = ("core", "component")

    def is_source(self, project: Project, guest: GuestBuild, path: Path) -> bool:
        return is_declared_input(project, guest, path) and super().is_source(project, guest, path)

    def never_read(self, guest: GuestBuild) -> frozenset[str]:
        """All but those a [build] command's inputs name (`".git/HEAD"` for a version stamp); a wildcard names none."""
        build = guest.build
        patterns = build.inputs if build is not None and build.command else ()
        return NEVER_READ.difference(part for pattern in patterns for part in PurePosixPath(pattern).parts)

    def inputs(self, project: Project, guest: GuestBuild) -> list[Path]:
        return [project.manifest_path(guest.name)]  # the command and its paths are read from it

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        build = guest.build
        return {"command": list(build.command) if build else [], "profile": project.profile}

    def install(self, state_dir: Path) -> None:
        """A command brings its own toolchain."""

    def toolchain_status(self, project: Project, guests: list[GuestBuild]) -> ToolchainStatus:
        """Whether each [build] command's program is there (on PATH, or a path in its workdir)."""
        missing = [problem for guest in guests if (problem := _missing_program(project, guest))]
        if missing:
            return ToolchainStatus("wasm guests' build commands", False, "; ".join(missing) + "; install it")
        return ToolchainStatus("wasm guests' build commands", True, "each command's program is there")

    def compile(self, job: CompileJob) -> int:
        name = job.guest.name
        manifest = load_manifest(job.project.manifest_path(name))
        build = manifest.build
        module = self._built_module(job, build) if build else self._committed_module(job.project, name)
        _refuse_module_outside(module, job.project.guests_dir / name)
        data = module.read_bytes()
        if not data.startswith(_WASM_MAGIC):
            raise CompileError(f"{module}: not a WebAssembly module (no \\0asm header)")
        _check_layer(module, data, manifest)
        write_atomic(job.out_path, data)
        return len(data)

    def _committed_module(self, project: Project, guest: str) -> Path:
        found = [path for path in project.visible_guest_sources(guest) if path.suffix == ".wasm"]
        if len(found) != 1:
            listed = ", ".join(str(p.relative_to(project.root)) for p in found) or "none"
            raise CompileError(
                f"guests/{guest}: a wasm guest without [build] is its one .wasm file (found: {listed}); "
                f'name it in {project.manifest_path(guest).relative_to(project.root)}: [build] output = "..."'
            )
        return found[0]

    def _built_module(self, job: CompileJob, build: BuildCommand) -> Path:
        project, guest = job.project, job.guest
        directory = workdir(project, guest.name, build)
        output = directory / build.output
        if build.command:
            run(
                _program(build.command, directory),
                what=f"{guest.name}: [build] command",
                cwd=directory,
                env=_command_env(project, guest),
                error=CompileError,
                timeout=COMMAND_TIMEOUT_SECONDS,
            )
        if not output.is_file():
            raise CompileError(f"{output}: the [build] output is missing; the command must write it")
        return output


def _refuse_module_outside(module: Path, guest_dir: Path) -> None:
    """Refuses a module that is a link (or lies in a linked folder) out of the guest's folder: the build signs what
    it reads, and a project someone else made chose its links (`answer.wasm -> ~/work/other/artifacts/x.wasm`)."""
    read, folder = Path(os.path.realpath(module)), Path(os.path.realpath(guest_dir))
    if not read.is_relative_to(folder):
        raise CompileError(
            f"{module}: is {read}, outside the guest's folder; the build signs only a module of the guest's own: "
            f"copy the file into {guest_dir}"
        )


def _check_layer(module: Path, data: bytes, manifest: Manifest) -> None:
    """Refuses a component declared a core module, and a core module declared a component, naming both files."""
    layer = _LAYERS.get(data[4:8])  # another version is left to validation, which names it
    if layer is None or layer == manifest.guest.type.abi:
        return
    found, advice = (
        ("a core module", ", or make it a component (wasm-tools component new)")
        if layer == "core"
        else ("a component", "")
    )
    raise CompileError(
        f'{module}: is {found}, and {manifest.source} says abi = "{manifest.guest.type.abi}"; declare '
        f'[guest] abi = "{layer}" there{advice}'
    )


def _program(command: tuple[str, ...], directory: Path) -> list[str]:
    """The command with a relative program path (`./build.sh`) taken from its workdir."""
    program = command[0]
    if "/" in program and not os.path.isabs(program):
        program = str(directory / program)
    return [program, *command[1:]]


def _missing_program(project: Project, guest: GuestBuild) -> str | None:
    build = guest.build
    if build is None or not build.command:
        return None
    program = _program(build.command, workdir(project, guest.name, build))[0]
    found = Path(program).is_file() if "/" in program else shutil.which(program, path=_command_path()) is not None
    return None if found else f"{guest.name} runs {build.command[0]!r}, which is not there"


def _command_path() -> str:
    """The command's PATH: the build's Python first."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _command_env(project: Project, guest: GuestBuild) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": _command_path(),
        "NGIXI_GUEST": guest.name,
        "NGIXI_PROFILE": project.profile,
        "NGIXI_MEMORY_PAGES": str(guest.memory_pages),
    }


LANGUAGE = Wasm()
