"""Turns a core library guest's start function into its `_initialize` export.

A start function runs while the module is instantiated, before the host has linked the instance's memory to its
host functions: one that calls the host (AssemblyScript's top-level code built without `--exportStart`, say) failed
every load on both engines. Exported as `_initialize`, it is run by the loader once the memory is linked and before
any other export, as a WASI reactor's is. A command guest, and a module that already exports `_initialize`, keep
their start section.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ngixi_runtime.files import write_atomic
from ngixi_runtime.loading.loader import REACTOR_INITIALIZER
from ngixi_runtime.spec.sourcemap import SOURCE_MAP_SECTION, moved_source_map
from ngixi_runtime.spec.wasm import code_start, with_custom_section_replaced, with_start_exported


def export_start(*, wasm_path: Path, library: bool) -> bool:
    """Rewrites a library's .wasm (atomically) so its start function is its `_initialize`; returns whether it did."""
    if not library:
        return False
    wasm, source = wasm_path.read_bytes(), str(wasm_path)
    exported = with_start_exported(wasm, REACTOR_INITIALIZER, source=source)
    if exported == wasm:
        return False
    before, after = code_start(wasm, source=source), code_start(exported, source=source)
    if before is not None and after is not None:  # a dev build's source map points into the code, which moved
        move = partial(moved_source_map, by=after - before)
        exported = with_custom_section_replaced(exported, SOURCE_MAP_SECTION, move, source=source)
    write_atomic(wasm_path, exported)
    return True
