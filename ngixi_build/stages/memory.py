"""Bounds a built core module's memory by the manifest's `limits.memory_pages`, which the loader requires.

Toolchains other than AssemblyScript's (C, Zig, Rust, a prebuilt .wasm) declare no memory maximum
unless told to. The build gives a module that declares none the maximum `limits.memory_pages`, and
refuses one whose memory starts, or may grow, beyond it, saying how to fix that for each toolchain.
A table that declares no maximum (Go's wasip1 output) gets the most elements the guest's tables may
hold, which Wasmer needs to bound it.
"""

from __future__ import annotations

from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import write_atomic
from ngixi_runtime.guest.limits import memory_fixes, table_elements
from ngixi_runtime.spec.wasm import read_module_info, with_memory_maximum, with_table_maximum


def bound_memory(*, wasm_path: Path, memory_pages: int, prebuilt_manifest: Path | None = None) -> bool:
    """Gives the memory `wasm_path` defines the maximum `memory_pages` when it declares none, and each table it
    defines without one the most elements its tables may hold, rewriting the file atomically; returns whether it
    did. Imported memories and tables, a second memory and a table over the ceiling are left to validation,
    which refuses them. `prebuilt_manifest`: the manifest of a module the project does not compile, whose
    memory only that manifest's limit can make room for."""
    wasm = wasm_path.read_bytes()
    source = str(wasm_path)
    info = read_module_info(wasm, source=source)
    for memory in info.memories:
        if memory.minimum_pages > memory_pages:
            raise InvalidInput(initial_memory_problem(source, memory.minimum_pages, memory_pages, prebuilt_manifest))
        if memory.maximum_pages is not None and memory.maximum_pages > memory_pages:
            raise InvalidInput(
                f"{source}: its memory may grow to {memory.maximum_pages} pages, over limits.memory_pages = "
                f"{memory_pages}; {memory_fixes(memory_pages)}"
            )
    bounded = with_memory_maximum(wasm, memory_pages, source=source)
    bounded = with_table_maximum(bounded, table_elements(memory_pages), source=source)
    if bounded == wasm:
        return False
    write_atomic(wasm_path, bounded)
    return True


def initial_memory_problem(source: str, minimum: int, memory_pages: int, prebuilt_manifest: Path | None) -> str:
    """Why a module whose memory starts above limits.memory_pages is refused, and what its builder can change."""
    if prebuilt_manifest is not None:
        return (
            f"{prebuilt_manifest}: limits.memory_pages = {memory_pages}, but its prebuilt module starts with "
            f"{minimum} pages of memory; raise it to at least {minimum}"
        )
    return (
        f"{source}: its memory starts at {minimum} pages, over limits.memory_pages = {memory_pages}; raise "
        f"limits.memory_pages to at least {minimum}, or build it with a smaller initial memory "
        "(AssemblyScript --initialMemory, C/Zig/Rust linker --initial-memory=)"
    )
