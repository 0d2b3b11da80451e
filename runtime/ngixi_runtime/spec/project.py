"""What makes a directory an ngixi project, and where a project keeps its state.

A project's root holds a `pyproject.toml` with a `[tool.ngixi]` table; it is found by walking up
from a starting directory (the working directory, or one given with --project). Its state (dev key
and trust file, doit's records, the toolchain, sandboxes) lives in `<root>/.ngixi`, or in the
directory given with --state-dir, so two projects never share state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_toml_text, resolved, toml_tables
from ngixi_runtime.kept import Kept

PROJECT_FILE = "pyproject.toml"
STATE_DIR = ".ngixi"
DEV_TRUST_NAME = "trust.toml"
SANDBOX_NAME = "sandbox"


def is_project_root(directory: Path) -> bool:
    """Whether `directory` holds a pyproject.toml with a [tool.ngixi] table (a broken one is an error)."""
    path = directory / PROJECT_FILE
    if not path.is_file():
        return False
    text = read_toml_text(path, what="the project file")
    declares = _DECLARES_NGIXI.get(text)
    if declares is None:  # `ngixi run` looks for its project twice (its trust file, its sandboxes)
        declares = _DECLARES_NGIXI.keep(text, _declares_ngixi(toml_tables(text, source=str(path)), path))
    return declares


def _declares_ngixi(tables: dict[str, Any], path: Path) -> bool:
    tool = tables.get("tool")
    if not isinstance(tool, dict) or "ngixi" not in tool:
        return False
    if not isinstance(tool["ngixi"], dict):
        raise InvalidInput(f"{path}: tool.ngixi: must be a table ([tool.ngixi]); see `ngixi init`")
    return True


_DECLARES_NGIXI: Kept[str, bool] = Kept(8)  # per exact text of a project file


def find_project_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` that is a project root; None when there is none."""
    start = resolved(start)
    return next((d for d in (start, *start.parents) if is_project_root(d)), None)


def project_state_dir(root: Path, override: Path | None = None) -> Path:
    """Where the project at `root` keeps its state: `override` (--state-dir) or `<root>/.ngixi`."""
    return resolved(override) if override is not None else root / STATE_DIR
