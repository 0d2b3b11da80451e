"""The `ngixi-data` AssemblyScript package, shipped with ngixi-build: the call data ABI in one line of a guest.

`import { input, output, Json } from "ngixi-data"` then `output.text(input.text())`; its source is
`aslib/ngixi-data/index.ts`. Every core AssemblyScript guest is compiled with it on asc's package path.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "ngixi-data"
LIBRARY_DIR = Path(__file__).parent / "aslib"
SOURCE = LIBRARY_DIR / PACKAGE / "index.ts"


def compile_arguments(project_root: Path) -> list[str]:
    """asc arguments that make the package importable (a path relative to the project, as asc resolves it)."""
    return ["--path", os.path.relpath(LIBRARY_DIR, project_root)]
