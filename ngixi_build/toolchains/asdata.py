"""The call data ABI for core AssemblyScript guests: the `ngixi-data` package, and the check of their exports.

`import { input, output, Json } from "ngixi-data"` then `output.text(input.text())`; its source is
`aslib/ngixi-data/index.ts`. Every core AssemblyScript guest is compiled with it on asc's package
path, and with the transform `js/export_check.mjs`, which refuses an export whose parameter or
result is a managed type (`words(text: string)` compiles to `(i32) -> i32`: a pointer the host
cannot fill, which a manifest declaring `params = ["i32"]` would otherwise let through).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "ngixi-data"
LIBRARY_DIR = Path(__file__).parent / "aslib"
SOURCE = LIBRARY_DIR / PACKAGE / "index.ts"
RUNTIME = LIBRARY_DIR / "ngixi-runtime"
RUNTIME_SOURCES = (RUNTIME / "index.ts", RUNTIME / "tlsf.ts")
EXPORT_CHECK = Path(__file__).parent / "js" / "export_check.mjs"
EMPTY_ASCONFIG = Path(__file__).parent / "js" / "asconfig.json"  # {}: asc's configuration when the shim's is not


def compile_arguments(project_root: Path) -> list[str]:
    """asc arguments that make the package importable (a path relative to the project, as asc resolves a
    package path), check the exports (an absolute path: asc takes a bare relative one for a package name) and give
    the runtime whose allocator collects before it traps at the memory's limit (relative, without `.ts`, as asc
    reads a runtime's path)."""
    return [
        "--path",
        os.path.relpath(LIBRARY_DIR, project_root),
        "--transform",
        str(EXPORT_CHECK),
        "--runtime",
        os.path.relpath(RUNTIME / "index", project_root),
    ]
