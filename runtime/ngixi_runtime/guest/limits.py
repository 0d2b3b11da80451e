"""What a core guest may hold besides its code (docs/host-policy.md, "Memory"), checked before any of it runs.

One memory, imported or defined, whose declared maximum fits `limits.memory_pages`; a few tables,
each bounded. The loader checks a module with these functions before instantiating it, and the
build's validate step with the same functions, so a bundle the build signs is never refused for them.
"""

from __future__ import annotations

from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.wasm import CompileCounts, ModuleInfo, compile_counts

# A table element costs the host 8 to 16 bytes, so a table may hold at most TABLE_ELEMENTS_PER_PAGE
# per page of limits.memory_pages, and at least MIN_TABLE_ELEMENTS.
MAX_MEMORIES = 1
MAX_TABLES = 8
MIN_TABLE_ELEMENTS = 65_536
TABLE_ELEMENTS_PER_PAGE = 1024
PAGE_BYTES = 65_536


def table_elements(memory_pages: int) -> int:
    """The most elements one table of a guest with this limits.memory_pages may hold."""
    return max(MIN_TABLE_ELEMENTS, memory_pages * TABLE_ELEMENTS_PER_PAGE)


def memory_fixes(pages: int) -> str:
    """How to give a module a memory maximum of `pages`, for each toolchain, or make room for it."""
    size = pages * PAGE_BYTES
    return (
        f"declare a maximum of at most {pages} pages when building it (AssemblyScript --maximumMemory {pages}; "
        f"C with clang or zig cc -Wl,--max-memory={size}; Zig build-exe --max-memory={size}; "
        f"Rust -C link-arg=--max-memory={size}), or raise limits.memory_pages"
    )


def memory_problems(manifest: Manifest, info: ModuleInfo) -> list[str]:
    """Why the module's memories are not bounded by limits.memory_pages; empty when they are."""
    limit = manifest.limits.memory_pages
    if len(info.memories) > MAX_MEMORIES:
        count = len(info.memories)
        return [f"it has {count} memories; a guest may have {MAX_MEMORIES}, bounded by limits.memory_pages"]
    problems = []
    for memory in info.memories:
        if memory.shared:
            problems.append(
                "its memory is shared (threads: a -pthread or wasm32-wasip1-threads build), which a guest may not "
                "have: no engine here runs a shared memory; build it without threads"
            )
        elif memory.minimum_pages > limit:  # no maximum could fit: only the manifest's limit can make room
            problems.append(
                f"its memory starts at {memory.minimum_pages} pages, over limits.memory_pages = {limit}; "
                f"raise limits.memory_pages to at least {memory.minimum_pages}"
            )
        elif memory.maximum_pages is None:
            problems.append(
                f"its memory declares no maximum: build it with ngixi-build, which sets limits.memory_pages = "
                f"{limit} on a module that declares none, or {memory_fixes(limit)}"
            )
        elif memory.maximum_pages > limit:
            problems.append(
                f"its memory may grow to {memory.maximum_pages} pages, over its limits.memory_pages = {limit}; "
                + memory_fixes(limit)
            )
    return problems


def table_problems(manifest: Manifest, info: ModuleInfo, *, engine_caps_growth: bool) -> list[str]:
    """Why the module's tables are not bounded; on an engine that caps growth only their initial sizes count."""
    if len(info.tables) > MAX_TABLES:
        return [f"it has {len(info.tables)} tables; a guest may have at most {MAX_TABLES}"]
    ceiling = table_elements(manifest.limits.memory_pages)
    where = f"the {ceiling} elements a guest with limits.memory_pages = {manifest.limits.memory_pages} may hold"
    problems = []
    for number, table in enumerate(info.tables):
        if table.minimum_elements > ceiling:
            problems.append(f"its table {number} starts with {table.minimum_elements} elements, over {where}")
        elif engine_caps_growth:
            continue
        elif table.maximum_elements is None:
            problems.append(f"its table {number} declares no maximum, which Wasmer needs: at most {where}")
        elif table.maximum_elements > ceiling:
            problems.append(f"its table {number} may grow to {table.maximum_elements} elements, over {where}")
    return problems


def limit_problems(manifest: Manifest, info: ModuleInfo, *, engine_caps_growth: bool) -> list[str]:
    """Every way the module's memories and tables exceed the manifest's limits on such an engine.

    On an engine that does not cap growth itself (`engine_caps_growth` false), `info` must be the
    module's own (every memory and table it defines, not only those it exports); that is also what
    holds on every engine, so the build checks with it.
    """
    return [*memory_problems(manifest, info), *table_problems(manifest, info, engine_caps_growth=engine_caps_growth)]


# Compiling a function, a type or an element segment costs an engine kilobytes of memory beside its code's, a global
# bytes in each instance (of up to 64 in a component), and each declared local compile time; real programs have
# hundreds of bytes for each function and local, and few types, segments and globals (figures: docs/performance.md,
# thirty-eighth pass). So a module may declare MIN_ENTRIES of them, and more only at one per BYTES_PER_ENTRY of its
# size; and MIN_LOCALS locals, more only at LOCALS_PER_BYTE.
MIN_ENTRIES = 50_000
BYTES_PER_ENTRY = 64
MIN_LOCALS = 1_000_000
LOCALS_PER_BYTE = 4


def compile_cost_problem(wasm: bytes, *, source: str) -> str | None:
    """Why compiling the module (or component) would cost an engine more than its size allows, or None."""
    allowed = CompileCounts(
        max(MIN_ENTRIES, len(wasm) // BYTES_PER_ENTRY), max(MIN_LOCALS, len(wasm) * LOCALS_PER_BYTE)
    )
    counts = compile_counts(wasm, source=source, at_most=allowed)
    if counts.entries > allowed.entries:
        return (
            f"it declares more than {allowed.entries} functions, types, element segments and globals in {len(wasm)}"
            f" bytes, where real programs have hundreds of bytes for each: each takes an engine kilobytes of memory"
            f" (a global, in each instance), so a module may declare {MIN_ENTRIES}, or one per {BYTES_PER_ENTRY} bytes"
            " of its size; whoever built it can build it with fewer, larger functions (an optimizing build, such as"
            " wasm-opt -O, inlines small ones and drops those never called)"
        )
    if counts.locals > allowed.locals:
        return (
            f"its functions declare more than {allowed.locals} locals in {len(wasm)} bytes, where real programs"
            f" have a hundred bytes or more for each: compiling each takes an engine time, so a module may declare"
            f" {MIN_LOCALS}, or {LOCALS_PER_BYTE} per byte of its size; whoever built it can build it with fewer"
            " locals (an optimizing build, such as wasm-opt -O, reuses them)"
        )
    return None
