"""The import graph of the project's modules (ngixi_runtime and ngixi_build), read from their source.

What is allowed:
- No import cycle among the project's modules. Every import counts wherever it stands: at module level,
  inside a function (where a cycle is only hidden, not gone) and under `if TYPE_CHECKING:`.
- The run side (ngixi_runtime) imports, anywhere in a module, only the standard library, itself, and
  the distributions that ngixi-runtime declares (its extras included: Wasmer and its Cranelift compiler
  are the optional engine). Installed alone it has nothing else, so ngixi_build, doit, nodeenv,
  watchdog, tomli_w and the like are refused even inside a function.
- The build side may import the run side and its own dependencies.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import metadata
from itertools import chain
from pathlib import Path

import tomli
from packaging.requirements import Requirement

from tests.conftest import REPO

RUN_PACKAGE = "ngixi_runtime"
PACKAGE_DIRS = {RUN_PACKAGE: REPO / "runtime" / RUN_PACKAGE, "ngixi_build": REPO / "ngixi_build"}
Graph = Mapping[str, frozenset[str]]


def module_name(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIRS[package]).with_suffix("").parts
    return ".".join((package, *parts[: -1 if parts[-1] == "__init__" else None]))


@cache
def project_sources() -> dict[str, ast.Module]:
    return {
        module_name(package, path): ast.parse(path.read_bytes(), filename=str(path))
        for package, directory in PACKAGE_DIRS.items()
        for path in sorted(directory.rglob("*.py"))
    }


def imported_names(tree: ast.Module) -> Iterator[str]:
    """Every module an import anywhere in `tree` names; `from m import x` names m.x too, in case x is a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def project_graph() -> Graph:
    sources = project_sources()
    return {
        module: frozenset(name for name in imported_names(tree) if name in sources and name != module)
        for module, tree in sources.items()
    }


def import_cycles(graph: Graph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component: list[str] = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(cycles)


def top_level_names(distribution: str) -> set[str]:
    """The importable names an installed distribution provides, from its list of files."""
    files = metadata.distribution(distribution).files or []
    tops = {file.parts[0].split(".")[0] for file in files if file.suffix in {".py", ".so"}}
    return tops - {"", "__pycache__"}


def run_side_allowed() -> frozenset[str]:
    """Top-level names the run side may import: the standard library, itself, and its declared distributions."""
    project = tomli.loads((REPO / "runtime" / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *chain.from_iterable(project["optional-dependencies"].values())]
    declared = [Requirement(line).name for line in requirements]
    installed = [name for name in declared if _installed(name)]
    return frozenset({*sys.stdlib_module_names, RUN_PACKAGE, *(n for d in installed for n in top_level_names(d))})


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_the_project_has_no_import_cycle() -> None:
    cycles = import_cycles(project_graph())
    assert not cycles, "modules that import one another: " + "; ".join(", ".join(c) for c in cycles)


def test_the_run_side_imports_only_the_standard_library_itself_and_its_declared_distributions() -> None:
    allowed = run_side_allowed()
    strays = {
        f"{module} imports {name}"
        for module, tree in project_sources().items()
        if module.startswith(f"{RUN_PACKAGE}.") or module == RUN_PACKAGE
        for name in imported_names(tree)
        if name.split(".")[0] not in allowed
    }
    assert sorted(strays) == []


def test_the_build_side_and_its_tools_are_not_among_what_the_run_side_may_import() -> None:
    assert not {"ngixi_build", "doit", "nodeenv", "watchdog", "tomli_w"} & run_side_allowed()


def test_only_the_run_sides_registry_imports_the_pull_extras_client() -> None:
    """oras, requests and urllib3 come with the `pull` extra: a run side installed without it loads and runs bundles,
    and only `ngixi pull` says what to install."""
    client = {"oras", "requests", "urllib3"}
    importers = {
        module
        for module, tree in project_sources().items()
        if module.startswith(RUN_PACKAGE) and client & {name.split(".")[0] for name in imported_names(tree)}
    }
    assert importers == {"ngixi_runtime.registry.client", "ngixi_runtime.registry.oci", "ngixi_runtime.registry.pull"}


def test_the_cycle_finder_finds_cycles_closed_inside_functions() -> None:
    sources = {
        "a": "import b\n",
        "b": "def late() -> None:\n    from c import x\n",
        "c": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nx = 1\n",
        "d": "import a\n",
    }
    trees = {name: ast.parse(text) for name, text in sources.items()}
    graph = {name: frozenset(n for n in imported_names(tree) if n in trees) for name, tree in trees.items()}
    assert import_cycles(graph) == [["a", "b", "c"]]
