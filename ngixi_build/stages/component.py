"""Component-model guests: bindings from the WIT catalog, then core module → component.

A guest whose manifest says `[guest] abi = "component"` imports the generated bindings
(`import { log } from "ngixi-host"`). Its core module is compiled with them, the guest's own
world (the host's `guest` world plus the manifest's exports) is embedded, and `wasm-tools
component new` makes the component; unused host interfaces are dropped on the way. A core module
that imports WASI preview 1 is adapted to WASI preview 2 by the pinned adapter (`--adapt`), which
brings only the WASI functions the module uses (see docs/components.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ngixi_build.proc import run
from ngixi_build.project import Project
from ngixi_build.toolchains import asbindings
from ngixi_build.toolchains.asbindings import CABI, INDEX, write_bindings
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.toolchains.wit import HOST_WORLD, load_catalog, wasm_tools, wit_sources
from ngixi_runtime.capabilities.base import WASI
from ngixi_runtime.capabilities.component import WIT_VALUE_TYPES
from ngixi_runtime.engines.base import PORTABLE_TRIPLE
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.kind import GuestKind
from ngixi_runtime.guest.manifest import Manifest, load_manifest
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.spec.wasm import read_module_info

# The binding generator's own source: changing it regenerates the bindings.
GENERATOR = asbindings.__file__


class ComponentError(NgixiError):
    """wasm-tools could not make a component of the guest's core module."""


def wasmtime_triples(project: Project) -> tuple[str, ...]:
    """What a component guest gets Wasmtime artifacts for: the project's wasmtime_targets, else the build
    machine's triple and the portable `pulley64` (Wasmer 2.1, the core guests' default, has no component model)."""
    return project.wasmtime_triples() or (host_triple(), PORTABLE_TRIPLE)


def bindings_dir(project: Project) -> Path:
    return project.artifacts_dir / "bindings"


def bindings_paths(project: Project) -> list[Path]:
    return [bindings_dir(project) / INDEX, bindings_dir(project) / CABI]


def catalog_sources(project: Project) -> list[Path]:
    return wit_sources(project.wit_dir)


def generate_bindings(project: Project) -> list[Path]:
    """Writes the AssemblyScript bindings of the project's WIT catalog."""
    return write_bindings(load_catalog(project.wit_dir), bindings_dir(project))


def core_path(project: Project, guest: str) -> Path:
    """Where a component guest's core module is compiled to, before it becomes the component."""
    return project.wasm_path(guest).with_suffix(".core.wasm")


def compile_arguments(project: Project, kind: GuestKind) -> list[str]:
    """asc arguments a component guest's core module adds: the bindings package and `cabi_realloc`.

    `--use abort=` drops AssemblyScript's `env.abort` import, which no component world provides; a
    command's WASI shim aborts through WASI instead.
    """
    cabi = os.path.relpath(bindings_dir(project) / CABI, project.root)
    no_abort = ["--use", "abort="] if kind == "library" else []
    return [cabi, "--path", os.path.relpath(bindings_dir(project), project.root), *no_abort]


def world_text(manifest: Manifest, package: str) -> str:
    """The guest's world: every host interface it may import, and the exports its manifest declares."""
    lines = [f"package ngixi-guest:{manifest.guest.name};", "", f"world {manifest.guest.name} {{"]
    namespace_name, _, version = package.partition("@")
    lines.append(f"  include {namespace_name}/{HOST_WORLD}@{version};")
    for export in manifest.exports:
        params = ", ".join(f"arg{i}: {WIT_VALUE_TYPES[t]}" for i, t in enumerate(export.params))
        results = "".join(f" -> {WIT_VALUE_TYPES[t]}" for t in export.results)
        lines.append(f"  export {export.name}: func({params}){results};")
    lines.append("}")
    return "\n".join(lines) + "\n"


@contextmanager
def _world_dir(project: Project, manifest: Manifest) -> Iterator[Path]:
    """A WIT directory with the guest's world and the host catalog as its dependency."""
    with tempfile.TemporaryDirectory(prefix="ngixi-world-") as temporary:
        directory = Path(temporary)
        package = load_catalog(project.wit_dir).package
        shutil.copytree(project.wit_dir, directory / "deps" / "ngixi-host")
        (directory / "world.wit").write_text(world_text(manifest, package), encoding="utf-8")
        yield directory


def imports_wasi(core_wasm: Path) -> bool:
    info = read_module_info(core_wasm.read_bytes(), source=str(core_wasm))
    return any(imp.module == WASI for imp in info.imports)


def componentize(
    *, project: Project, manifest: Manifest, core_wasm: Path, out_path: Path, wasi_adapter: Path | None = None
) -> int:
    """Embeds the guest's world in its core module and makes the component; returns its size.

    `wasi_adapter`: the WASI preview 1 adapter, for a core module that imports WASI.
    """
    guest = manifest.guest.name
    adapt = ["--adapt", f"{WASI}={wasi_adapter}"] if wasi_adapter else []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        _world_dir(project, manifest) as world,
        tempfile.TemporaryDirectory(prefix=".component-", dir=out_path.parent) as work,
    ):
        embedded, component = Path(work) / "embedded.wasm", Path(work) / "component.wasm"
        _wasm_tools(["component", "embed", world, "--world", guest, core_wasm, "-o", embedded], guest)
        _wasm_tools(["component", "new", embedded, *adapt, "-o", component], guest)
        os.replace(component, out_path)
    return out_path.stat().st_size


def _wasm_tools(arguments: Sequence[str | Path], guest: str) -> None:
    what = f"{guest}: wasm-tools {' '.join(map(str, arguments[:2]))}"
    run([wasm_tools(), *arguments], what=what, error=ComponentError)


def componentize_guest(project: Project, guest: str, *, core_wasm: Path | None = None) -> int:
    """Makes `artifacts/wasm/<guest>.wasm`, the component, from the guest's compiled core module."""
    manifest = load_manifest(project.manifest_path(guest))
    core = core_wasm or core_path(project, guest)
    adapter = toolchain_for(project.state_dir).wasi_adapter(manifest.guest.type.kind) if imports_wasi(core) else None
    return componentize(
        project=project, manifest=manifest, core_wasm=core, out_path=project.wasm_path(guest), wasi_adapter=adapter
    )
