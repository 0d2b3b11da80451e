"""Compiles one guest's AssemblyScript to an optimized .wasm with the pinned asc."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.proc import TERMINAL_ESCAPE, time_limit_reached, tool_limits
from ngixi_build.toolchains import asdata
from ngixi_build.toolchains.asc_server import AscReply, AscServer, CompilerDied, CompileTimedOut, shared_server
from ngixi_build.toolchains.assemblyscript import Toolchain
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.guest.kind import GuestKind
from ngixi_runtime.spec.bundle_format import BuildProfile
from ngixi_runtime.spec.sourcemap import SOURCE_MAP_SECTION
from ngixi_runtime.spec.wasm import custom_section

log = logging.getLogger(__name__)
_ATTEMPTS = 2  # compiles of a guest whose sources change as asc reads them


class CompileError(NgixiError):
    """asc rejected the guest's source; the message carries asc's own diagnostics."""


# Release: fully optimized, with the name section (`--debug` changes no code at -O3), so that a trap names
# the guest's function. Dev: binaryen's optimizer skipped (most of a warm compile's time), names kept, and a
# source map, embedded by `with_source_map` so that a trap names the guest's own source line.
OPTIMIZATION_FLAGS: dict[BuildProfile, tuple[str, ...]] = {
    "release": ("-O3", "--debug"),
    "dev": ("-O0", "--debug", "--sourceMap"),
}


@dataclass(frozen=True)
class AscOptions:
    """What an AssemblyScript guest's `asc` run is given beyond its entry and output."""

    kind: GuestKind
    memory_pages: int
    extra_arguments: tuple[str, ...] = ()  # e.g. a component guest's bindings
    profile: BuildProfile = "release"
    # The folders whose files the compile may read (the guest's, the bindings, the toolchain's); none: any.
    readable: tuple[Path, ...] = ()


def asc_arguments(
    toolchain: Toolchain, project_root: Path, entry: Path, output: Path, options: AscOptions
) -> list[str]:
    arguments = [
        str(entry),
        "-o",
        str(output),
        *OPTIMIZATION_FLAGS[options.profile],
        "--maximumMemory",
        str(options.memory_pages),
        "--noColors",
    ]
    arguments += options.extra_arguments
    # Always a configuration of ours: without --config, asc reads the project's asconfig.json, whose
    # "transform" entries are JavaScript it runs and whose textFile/bindings write anywhere. (asc resolves
    # the shim's "lib" wrongly from an absolute --config path; a relative one works.)
    config = toolchain.wasi_shim_config if options.kind == "command" else asdata.EMPTY_ASCONFIG
    return [*arguments, "--config", os.path.relpath(config, project_root)]


def compile_guest(
    *,
    toolchain: Toolchain,
    project_root: Path,
    entry: Path,
    out_path: Path,
    options: AscOptions,
) -> int:
    """Compiles `entry` (relative to the project root) into `out_path`; returns the .wasm size."""
    with compiled_into(out_path) as temporary, asc_output(temporary, options.profile):
        argv = asc_arguments(toolchain, project_root, entry, temporary, options)
        compile_with_asc(toolchain, project_root, argv, what=f"asc {entry}", readable=options.readable)
    return out_path.stat().st_size


def compile_with_asc(
    toolchain: Toolchain, project_root: Path, argv: Sequence[str], *, what: str, readable: Sequence[Path] = ()
) -> None:
    """Runs one asc command line in this process's warm compiler (`asc_server.shared_server`): a one-off asc paid
    Node's start and asc's loading at every guest. If that compiler dies, a compiler of its own compiles instead
    (its reply, too, lists the files asc read). With `readable`, a file read outside those folders is refused."""
    limits = tool_limits()
    server = shared_server(toolchain, project_root)
    for _attempt in range(_ATTEMPTS):
        try:
            reply = server.compile(argv, timeout=limits.seconds, retry=False, cwd=project_root)
        except CompilerDied as died:
            log.info("%s; compiling with a compiler of its own", died)
            reply = _compiled_alone(toolchain, project_root, argv, what)
        except CompileTimedOut:
            raise CompileError(time_limit_reached(what, limits)) from None
        if readable:
            refuse_reads_outside(what, reply, readable)
        if not reply.ok:
            raise asc_failure(what, reply.diagnostics, project_root / argv[0])
        if reply.still_current():  # else a source changed as asc read it: the build would record the new one
            return
    raise CompileError(f"{what}: its sources changed while asc compiled them, {_ATTEMPTS} times; build again")


def _compiled_alone(toolchain: Toolchain, project_root: Path, argv: Sequence[str], what: str) -> AscReply:
    """`argv` compiled by a warm compiler started for it alone."""
    limits = tool_limits()
    with AscServer(toolchain, project_root, own_session=False) as alone:
        try:
            return alone.compile(argv, timeout=limits.seconds, retry=False, cwd=project_root)
        except CompileTimedOut:
            raise CompileError(time_limit_reached(what, limits)) from None
        except CompilerDied as died:
            raise CompileError(f"{what}: {died}") from None


def refuse_reads_outside(what: str, reply: AscReply, readable: Sequence[Path]) -> None:
    """Refuses a file asc read (an import's, a package's) under none of the `readable` folders once links are
    resolved: a guest's `import { TOKEN } from "../../../../home/u/work/config"` put that file's strings into it."""
    folders = [Path(os.path.realpath(folder)) for folder in readable]
    for name, digest in reply.inputs.items():
        read = Path(os.path.realpath(name))
        if digest is not None and not any(read == folder or folder in read.parents for folder in folders):
            raise CompileError(
                f"{what}: reads {read}, outside the guest's folder; an AssemblyScript guest's compile reads only its "
                f"own folder (its node_modules/ too), the generated bindings and the compiler's library: copy the "
                "file into the guest's folder"
            )


def asc_failure(what: str, diagnostics: str, entry: Path) -> CompileError:
    """asc's diagnostics of a source it rejected, under a header naming the compile; its first error says so when
    it is in a library of the guest's that needs an asc transform (json-as: `Cannot find name 'JSON_STRICT'`)."""
    diagnostics = TERMINAL_ESCAPE.sub("", diagnostics)
    needing = _library_needing_a_transform(diagnostics, entry)
    if needing is not None:
        first, newline, rest = diagnostics.partition("\n")
        diagnostics = f"{first.rstrip('.')}: {needing}{newline}{rest}"
    return CompileError(f"{what} failed:\n{diagnostics}")


def _library_needing_a_transform(diagnostics: str, entry: Path) -> str | None:
    """Why a library in asc's diagnostics (`~lib/PACKAGE/...`) cannot compile, if it ships an asc transform: the
    build runs none."""
    for package in dict.fromkeys(re.findall(r"~lib/((?:@[\w.-]+/)?[\w.-]+)/", diagnostics)):
        for folder in entry.parents:
            if (folder / "node_modules" / package / "transform").is_dir():
                return (
                    f"{package} needs its asc transform (node_modules/{package}/transform), a program asc runs, which "
                    "the build never runs: use a library without one (for JSON, ngixi-data's Json)"
                )
    return None


@contextmanager
def asc_output(wasm_path: Path, profile: BuildProfile) -> Iterator[None]:
    """Around asc writing `wasm_path`: then a dev build's module carries its source map, and the .map file is gone."""
    try:
        yield
        if profile == "dev":
            write_atomic(wasm_path, with_source_map(wasm_path))
    finally:
        source_map_path(wasm_path).unlink(missing_ok=True)


@contextmanager
def compiled_into(out_path: Path) -> Iterator[Path]:
    """A temporary path beside `out_path` for a compiler to write; it becomes `out_path` only if the block succeeds."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out_path.stem}.", suffix=".wasm", dir=out_path.parent)
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.replace(temporary, out_path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def source_map_path(wasm_path: Path) -> Path:
    """Where asc's --sourceMap writes the map of the module it writes to `wasm_path`."""
    return wasm_path.with_name(f"{wasm_path.name}.map")


def with_source_map(wasm_path: Path) -> bytes:
    """The module at `wasm_path` with its source map (sources and mappings only) in a custom section."""
    wasm = wasm_path.read_bytes()
    try:
        document = json.loads(source_map_path(wasm_path).read_text(encoding="utf-8"))
        slim = {"version": 3, "sources": document["sources"], "mappings": document["mappings"]}
    except (OSError, ValueError, KeyError, TypeError):
        return wasm  # no map written: the trap still names the function
    return wasm + custom_section(SOURCE_MAP_SECTION, json.dumps(slim, separators=(",", ":")).encode())
