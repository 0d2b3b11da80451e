"""What makes a directory an ngixi project, and where a project keeps its state.

A project's root holds a `pyproject.toml` with a `[tool.ngixi]` table; it is found by walking up
from a starting directory (the working directory, or one given with --project). Its state (dev key
and trust file, doit's records, the toolchain, sandboxes) lives in `<root>/.ngixi`, or in the
directory given with --state-dir, so two projects never share state.
"""

from __future__ import annotations

from pathlib import Path

import tomli

from ngixi_runtime.errors import InvalidInput

PROJECT_FILE = "pyproject.toml"
STATE_DIR = ".ngixi"
DEV_TRUST_NAME = "trust.toml"
SANDBOX_NAME = "sandbox"


def is_project_root(directory: Path) -> bool:
    """Whether `directory` holds a pyproject.toml with a [tool.ngixi] table (a broken one is an error)."""
    path = directory / PROJECT_FILE
    if not path.is_file():
        return False
    try:
        document = tomli.loads(path.read_text(encoding="utf-8"))
    except (tomli.TOMLDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidInput(f"{path}: not valid TOML: {error}") from None
    tool = document.get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("ngixi"), dict)


def find_project_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` that is a project root; None when there is none."""
    start = start.resolve()
    return next((d for d in (start, *start.parents) if is_project_root(d)), None)


def project_state_dir(root: Path, override: Path | None = None) -> Path:
    """Where the project at `root` keeps its state: `override` (--state-dir) or `<root>/.ngixi`."""
    return override.resolve() if override is not None else root / STATE_DIR
