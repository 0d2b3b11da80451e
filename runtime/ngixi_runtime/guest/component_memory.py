"""A component's memories against its manifest's limits.memory_pages, read from the component binary.

A JavaScript or Python component starts with its language's runtime already in memory (hundreds of
pages), and Wasmtime caps every memory of a component guest at limits.memory_pages: a lower limit
could never instantiate, so it is refused when the guest is built, naming the pages it needs.
"""

from __future__ import annotations

from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.wasm import component_memory_floor


def memory_floor_problem(floor: int, limit: int) -> str:
    return (
        f"limits.memory_pages: {limit} pages, but the component's memory starts at {floor} pages; "
        f"raise limits.memory_pages to at least {floor}"
    )


def component_memory_problems(manifest: Manifest, wasm: bytes, *, source: str) -> list[str]:
    """The manifest's memory limit if a memory of the component starts above it, as a `FILE: field: message` line."""
    floor = component_memory_floor(wasm, source=source)
    if floor <= manifest.limits.memory_pages:
        return []
    return [f"{manifest.source}: {memory_floor_problem(floor, manifest.limits.memory_pages)}"]
