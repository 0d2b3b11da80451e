"""The run and build sides use their dependencies' public names only (the standard library is not checked);
`engines/wasmtime_fastpath/` is the one, version-gated, exception (docs/dependencies.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

RUNTIME = REPO / "runtime" / "ngixi_runtime"
EXCEPTION = RUNTIME / "engines" / "wasmtime_fastpath"
SOURCES = sorted(
    p for p in [*RUNTIME.rglob("*.py"), *(REPO / "ngixi_build").rglob("*.py")] if EXCEPTION not in p.parents
)
OURS = {"ngixi_runtime", "ngixi_build", "tests"}
# Private attributes of wasmtime-py's and py-minisign's objects this code once reached for.
FORMERLY_USED = {
    "_func",
    "_context",
    "_from_ptr",
    "_consume",
    "_keynum_pk",
    "_key_id",
    "_signature",
    "_global_signature",
}


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def _dependency(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return top not in OURS and top not in sys.stdlib_module_names


def _dependency_modules(tree: ast.Module) -> set[str]:
    """The names this file binds to dependencies' modules (`import x`, `import x as y`)."""
    return {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if _dependency(alias.name)
    }


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    modules = _dependency_modules(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _dependency(node.module or ""):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [f"line {node.lineno}: imports {name}" for name in names if _private(name)]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: imports {a.name}" for a in node.names if _dependency(a.name) and _private(a.name)
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner in modules or (node.attr in FORMERLY_USED and owner not in ("self", "cls")):
                found.append(f"line {node.lineno}: uses {owner or '(an object)'}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_no_private_names_of_other_packages(path: Path) -> None:
    assert private_uses(path) == []


def test_the_check_finds_what_the_fast_path_uses() -> None:
    found = "\n".join(use for path in sorted(EXCEPTION.glob("*.py")) for use in private_uses(path))
    for name in ("wasmtime._ffi", "wasmtime._func", "._func", "._context", "._from_ptr"):
        assert name in found
