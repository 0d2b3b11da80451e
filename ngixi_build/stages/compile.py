"""Compiles one guest's AssemblyScript to an optimized .wasm with the pinned asc."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.proc import run
from ngixi_build.toolchains.assemblyscript import Toolchain
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.kind import GuestKind
from ngixi_runtime.spec.bundle_format import BuildProfile


class CompileError(NgixiError):
    """asc rejected the guest's source; the message carries asc's own diagnostics."""


# Release: fully optimized. Dev: binaryen's optimizer skipped (most of a warm compile's time), names kept.
OPTIMIZATION_FLAGS: dict[BuildProfile, tuple[str, ...]] = {"release": ("-O3",), "dev": ("-O0", "--debug")}


@dataclass(frozen=True)
class CompileOptions:
    kind: GuestKind
    memory_pages: int
    extra_arguments: tuple[str, ...] = ()  # e.g. a component guest's bindings
    profile: BuildProfile = "release"


def asc_arguments(
    toolchain: Toolchain, project_root: Path, entry: Path, output: Path, options: CompileOptions
) -> list[str]:
    arguments = [
        str(entry),
        "-o",
        str(output),
        *OPTIMIZATION_FLAGS[options.profile],
        "--maximumMemory",
        str(options.memory_pages),
    ]
    arguments += options.extra_arguments
    if options.kind == "command":
        # asc resolves the shim's "lib" wrongly from an absolute --config path; a relative one works.
        arguments += ["--config", os.path.relpath(toolchain.wasi_shim_config, project_root)]
    return arguments


def compile_guest(
    *,
    toolchain: Toolchain,
    project_root: Path,
    entry: Path,
    out_path: Path,
    options: CompileOptions,
) -> int:
    """Compiles `entry` (relative to the project root) into `out_path`; returns the .wasm size."""
    with compiled_into(out_path) as temporary:
        run(
            [*toolchain.asc, *asc_arguments(toolchain, project_root, entry, temporary, options)],
            what=f"asc {entry}",
            cwd=project_root,
            error=CompileError,
        )
    return out_path.stat().st_size


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
