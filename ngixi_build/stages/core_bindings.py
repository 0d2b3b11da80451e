"""The core-guest bindings of the project's WIT catalog, in artifacts/bindings/: C, Zig and AssemblyScript."""

from __future__ import annotations

from pathlib import Path

from ngixi_build.project import Project
from ngixi_build.toolchains import corebindings
from ngixi_build.toolchains.wit import WIT_DIR, load_catalog
from ngixi_runtime.files import write_atomic

GENERATOR = corebindings.__file__
ZIG_MODULE = "ngixi"  # what a Zig guest imports: @import("ngixi")


def bindings_dir(project: Project) -> Path:
    return project.artifacts_dir / "bindings"


def c_header(project: Project) -> Path:
    return bindings_dir(project) / corebindings.C_HEADER


def zig_module(project: Project) -> Path:
    return bindings_dir(project) / corebindings.ZIG_MODULE


def as_module(project: Project) -> Path:
    return bindings_dir(project) / corebindings.AS_MODULE


def as_package_dir(project: Project) -> Path:
    """asc's `--path` for an AssemblyScript core guest's `import { kv } from "ngixi"`."""
    return bindings_dir(project)


def paths(project: Project) -> list[Path]:
    return [c_header(project), zig_module(project), as_module(project)]


def generate(project: Project) -> list[Path]:
    """Writes the bindings where their text changed (an unchanged file keeps its time for doit and asc)."""
    written = []
    for relative, text in corebindings.generate(load_catalog(project.root / WIT_DIR)).items():
        path = bindings_dir(project) / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text.encode())
        written.append(path)
    return written
