"""The call data ABI for core AssemblyScript guests (the `ngixi-data` package, and the check of their exports), and
the runtime every AssemblyScript guest, core or component, compiles with.

`import { input, output, Json } from "ngixi-data"` then `output.text(input.text())`; its source is
`aslib/ngixi-data/index.ts`. Every core AssemblyScript guest is compiled with it on asc's package
path, and with the transform `js/export_check.mjs`, which refuses an export whose parameter or
result is a managed type (`words(text: string)` compiles to `(i32) -> i32`: a pointer the host
cannot fill, which a manifest declaring `params = ["i32"]` would otherwise let through).

The runtime (`asruntime/ngixi-runtime`) is the pinned compiler's incremental collector with an allocator that collects
before it traps at the memory's limit; it sits in a folder of its own, so that a component guest, given it on asc's
package path, is not given `ngixi-data`, whose host functions no component world provides.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "ngixi-data"
LIBRARY_DIR = Path(__file__).parent / "aslib"
SOURCE = LIBRARY_DIR / PACKAGE / "index.ts"
RUNTIME_LIBRARY_DIR = Path(__file__).parent / "asruntime"
RUNTIME = RUNTIME_LIBRARY_DIR / "ngixi-runtime"
RUNTIME_SOURCES = (RUNTIME / "index.ts", RUNTIME / "tlsf.ts")
EXPORT_CHECK = Path(__file__).parent / "js" / "export_check.mjs"
EMPTY_ASCONFIG = Path(__file__).parent / "js" / "asconfig.json"  # {}: asc's configuration when the shim's is not


def compile_arguments(project_root: Path) -> list[str]:
    """asc arguments of a core guest: the package importable (a path relative to the project, as asc resolves a
    package path), the exports checked (an absolute path: asc takes a bare relative one for a package name) and the
    runtime (`runtime_arguments`)."""
    return [
        "--path",
        os.path.relpath(LIBRARY_DIR, project_root),
        "--transform",
        str(EXPORT_CHECK),
        *runtime_arguments(project_root),
    ]


def runtime_arguments(project_root: Path) -> list[str]:
    """asc arguments giving the runtime whose allocator collects before it traps at the memory's limit: its folder on
    the package path (it imports its allocator as a package, so that its functions are named `~lib/ngixi-runtime/...`)
    and its entry (relative, without `.ts`, as asc reads a runtime's path)."""
    return [
        "--path",
        os.path.relpath(RUNTIME_LIBRARY_DIR, project_root),
        "--runtime",
        os.path.relpath(RUNTIME / "index", project_root),
    ]
