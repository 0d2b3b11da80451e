"""`ngixi new NAME --wasm FILE`: a guest of a WASI command another toolchain built (a wheel's or an npm package's
`.wasm`), copied into the project with a manifest granting what the module imports."""

from __future__ import annotations

from pathlib import Path

from ngixi_build.project import Project
from ngixi_build.workflows.scaffold import new_guest_paths, write_all
from ngixi_runtime.capabilities.base import WASI as WASI_MODULE
from ngixi_runtime.capabilities.registry import REGISTRY, Provision, provisions
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_input_bytes
from ngixi_runtime.guest.limits import compile_cost_problem
from ngixi_runtime.spec.wasm import ModuleInfo, read_module_info

MODULE_LIMIT = 1 << 30  # the largest module copied: YoWASP's yosys.wasm is 69 MB, CPython's 26 MB
MEMORY_PAGES = 4096  # 256 MiB: a program's allocations fail inside it past the limit (malloc answers NULL)
TIMEOUT_MS = 60_000
PREOPEN = "/work"
_CORE = b"\0asm\x01\x00\x00\x00"
_COMPONENT = b"\0asm\x0d\x00\x01\x00"
_STREAMS = {"fd_write": "stdio", "fd_read": "stdin"}  # what a command writes and reads first: its standard streams
_NOTES = {
    "stdin": "# `ngixi run`'s standard input, read whole before the program starts",
    "args": "# argv[0] is the guest's name; `ngixi run BUNDLE -- ARGS...` gives the rest",
    "env": '# no variable but those named: allow = ["NAME"], fixed = { NAME = "value" }',
    "fs": (
        f"# {PREOPEN} is the sandbox's files/work/ (`ngixi new` said where); copy the program's input files there."
        '\n# Data its wrapper mounts beside it (a wheel\'s share/) is one more preopen, mode = "ro".'
    ),
}


class PrebuiltGuest:
    """What `new_prebuilt_guest` wrote and granted."""

    def __init__(self, written: list[Path], grants: tuple[str, ...]) -> None:
        self.written = written
        self.grants = grants


def new_prebuilt_guest(project: Project, name: str, wasm_path: Path) -> PrebuiltGuest:
    """Copies the WASI command at `wasm_path` to guests/<name>/<name>.wasm and writes manifests/<name>.toml,
    granting the capabilities its imports need."""
    guest_dir, manifest = new_guest_paths(project, name)
    module = read_input_bytes(wasm_path, what="the module", limit=MODULE_LIMIT)
    info = _command_module(wasm_path, module)
    grants = granted_capabilities(wasm_path, info)
    text = manifest_text(name, grants, _memory_pages(info))
    written = write_all({guest_dir / f"{name}.wasm": module, manifest: text.encode()})
    return PrebuiltGuest(written, grants)


def _command_module(wasm_path: Path, module: bytes) -> ModuleInfo:
    if module.startswith(_COMPONENT):
        raise InvalidInput(
            f"{wasm_path}: a component, not a core module; write its manifest yourself (README, 'Prebuilt"
            " components'), or give the core module of a WASI preview 1 command"
        )
    if not module.startswith(_CORE):
        raise InvalidInput(f"{wasm_path}: not a WebAssembly module (no \\0asm header); name a .wasm file")
    too_costly = compile_cost_problem(module, source=str(wasm_path))  # the build's validation would refuse it
    if too_costly is not None:
        raise InvalidInput(f"{wasm_path}: {too_costly}")
    info = read_module_info(module, source=str(wasm_path))
    exported = {export.name for export in info.exports if export.kind == "func"}
    if "_start" not in exported:
        reactor = " (a reactor: it exports _initialize)" if "_initialize" in exported else ""
        raise InvalidInput(
            f"{wasm_path}: exports no _start, so it is no WASI command{reactor}; a library's manifest declares its"
            " exports and their types: write it yourself (README, 'Prebuilt WASI programs')"
        )
    return info


def granted_capabilities(wasm_path: Path, info: ModuleInfo) -> tuple[str, ...]:
    """The capabilities that grant every function the module imports, in the registry's order: stdio for
    fd_write and stdin for fd_read, each one only one capability grants, and for the others (fd_seek: stdio,
    stdin or fs) the first that grants it unless one chosen already does."""
    known = provisions()
    needed: list[Provision] = []
    chosen: set[str] = set()
    for imp in info.imports:
        found = known.get((imp.module, imp.name))
        if imp.kind != "func" or found is None:
            raise InvalidInput(
                f"{wasm_path}: imports {imp.kind} {imp.qualified}, which no Ngixi capability provides; only"
                " programs built for WASI preview 1 (wasm32-wasi, wasm32-wasip1) run as they are"
            )
        if found.is_baseline:
            continue
        needed.append(found)
        if imp.module == WASI_MODULE and imp.name in _STREAMS:
            chosen.add(_STREAMS[imp.name])
    chosen.update(p.capabilities[0].name for p in needed if len(p.capabilities) == 1)
    for provision in needed:
        if not chosen.intersection(c.name for c in provision.capabilities):
            chosen.add(provision.capabilities[0].name)
    return tuple(name for name in REGISTRY if name in chosen)


def _memory_pages(info: ModuleInfo) -> int:
    if not info.memories:
        return MEMORY_PAGES
    memory = info.memories[0]
    pages = max(memory.minimum_pages, MEMORY_PAGES)
    return pages if memory.maximum_pages is None else min(pages, max(memory.maximum_pages, memory.minimum_pages))


def manifest_text(name: str, grants: tuple[str, ...], memory_pages: int) -> str:
    """The manifest of a prebuilt command: its grants, each with what a user needs to know of it, and its limits."""
    lines = [
        "[guest]",
        f'name = "{name}"',
        'version = "0.1.0"',
        'kind = "command"',
        f'description = "{name}: a prebuilt WASI program"',
        "",
        "# What the module imports, granted; the build names any import a grant is missing for.",
    ]
    for grant in grants:
        lines.append(f"[capabilities.{grant}]")
        if grant in _NOTES:
            lines.append(_NOTES[grant])
        if grant == "fs":
            lines.append(f'preopens = [{{ guest = "{PREOPEN}", host = "work", mode = "rw" }}]')
    lines += [
        "",
        "[limits]",
        f"memory_pages = {memory_pages}  # 64 KiB pages: raise it when the program runs out of memory",
        f"timeout_ms = {TIMEOUT_MS}",
        "# stdout_bytes = 1048576  # what it may print (1 MiB unless raised)",
        "",
    ]
    return "\n".join(lines)
