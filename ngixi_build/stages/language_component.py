"""Components built from source by a language's own component toolchain (componentize-js, componentize-py).

The guest's world imports only the host interfaces its manifest grants (these tools import every
interface of the world, used or not) and exports the functions its manifest declares. So the
generated bindings offer exactly the granted capabilities: importing another one is the tool's own
error, with file and line, after a line naming the grant it needs. The component is written to a
temporary file and renamed into place: a failed build leaves no output.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from ngixi_build.project import Project
from ngixi_build.stages.component import world_dir, world_text
from ngixi_build.toolchains.wit import qualified_name
from ngixi_runtime.capabilities.registry import capability, every_capability
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.guest.manifest import Manifest, load_manifest

# A host interface the guest imports and its world lacks, as componentize-js (loading the module) and componentize-py
# (importing from the generated bindings) report it.
_MISSING_INTERFACE = re.compile(
    r'Error loading module "ngixi:host/(?P<js>[a-z0-9-]+)@|'
    r"cannot import name '(?P<py>[a-z0-9_]+)' from 'wit_world\.imports'"
)
# Makes the component of the guest's world (WIT directory; the manifest, whose guest names the world) at the given path.
Builder = Callable[[Path, Manifest, Path], None]


def granted_interfaces(manifest: Manifest) -> list[str]:
    """The catalog interfaces of the capabilities the manifest grants, in name order."""
    interfaces = (capability(name).interface for name in sorted(manifest.grants))
    return [interface for interface in interfaces if interface is not None]


def guest_world_text(manifest: Manifest, package: str) -> str:
    """The guest's world: the granted host interfaces (not the whole host world) and the declared exports."""
    imports = [f"  import {qualified_name(package, interface)};" for interface in granted_interfaces(manifest)]
    lines = [line for line in world_text(manifest, package).splitlines() if not line.strip().startswith("include ")]
    opening = next(i for i, line in enumerate(lines) if line.startswith("world "))
    return "\n".join([*lines[: opening + 1], *imports, *lines[opening + 1 :]]) + "\n"


def guest_world_dir(project: Project, manifest: Manifest) -> AbstractContextManager[Path]:
    """A WIT directory holding the guest's world, with the host catalog as its dependency."""
    return world_dir(project, lambda package: guest_world_text(manifest, package))


def entry_file(project: Project, guest: str, names: tuple[str, ...], suffixes: tuple[str, ...]) -> Path:
    """The guest's entry: the first of `names` in its directory, else its only file with one of `suffixes`."""
    directory = project.guests_dir / guest
    found = next((directory / name for name in names if (directory / name).is_file()), None)
    candidates = [p for p in directory.iterdir() if p.is_file() and p.suffix in suffixes] if found is None else []
    if found is None and len(candidates) != 1:
        raise InvalidInput(
            f"guests/{guest}: the guest's entry is {' or '.join(names)} (or its only {'/'.join(suffixes)} file)"
        )
    return found or candidates[0]


def build_component(project: Project, guest: str, out_path: Path, builder: Builder) -> int:
    """Has `builder` make the guest's component, then renames it to `out_path`; returns its size."""
    manifest = load_manifest(project.manifest_path(guest))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        guest_world_dir(project, manifest) as world_dir,
        tempfile.TemporaryDirectory(prefix=f".{guest}-", dir=out_path.parent) as work,
    ):
        built = Path(work) / "component.wasm"
        try:
            builder(world_dir, manifest, built)
        except NgixiError as error:
            missing = ungranted_import(str(error), manifest)
            if missing is None:
                raise
            raise type(error)(f"{project.manifest_path(guest).relative_to(project.root)}: {missing}\n{error}") from None
        os.replace(built, out_path)
    return out_path.stat().st_size


def ungranted_import(diagnostics: str, manifest: Manifest) -> str | None:
    """What to grant, when the tool's diagnostics say the guest imports a host interface its manifest does not grant
    (the guest's world, and so its bindings, has only the granted ones)."""
    found = _MISSING_INTERFACE.search(diagnostics)
    if found is None:
        return None
    interface = (found["js"] or found["py"]).replace("_", "-")
    name = next((c.name for c in every_capability() if c.interface == interface), None)
    if name is None or name in manifest.grants:
        return None
    return (
        f"capabilities.{name}: the guest imports the host's {interface} interface, which needs [capabilities.{name}];"
        " grant it in the manifest or remove the import"
    )
