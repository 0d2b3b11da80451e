"""Imports point down only: each side's folders form layers, and a module imports only from its own layer or below.

The layers are the ones docs/architecture.md draws, lowest first. A new folder or top-level module has to be
placed in one here, which is the moment to decide where it stands.
"""

from __future__ import annotations

import pytest

from tests.build.unit.test_import_graph import imported_names, project_sources

RUN_LAYERS = (
    ("ngixi_runtime", "ngixi_runtime.errors", "ngixi_runtime.kept", "ngixi_runtime.printable"),
    ("ngixi_runtime.files",),
    ("ngixi_runtime.spec",),
    ("ngixi_runtime.capabilities",),
    ("ngixi_runtime.guest",),
    ("ngixi_runtime.engines", "ngixi_runtime.trust"),
    ("ngixi_runtime.bundles",),
    ("ngixi_runtime.loading",),
    ("ngixi_runtime.cli", "ngixi_runtime.call_io"),
)
BUILD_LAYERS = (
    ("ngixi_build", "ngixi_build.proc", "ngixi_build.locking", "ngixi_build.reporter"),
    ("ngixi_build.project",),
    ("ngixi_build.guests",),
    ("ngixi_build.toolchains",),
    ("ngixi_build.stages",),
    ("ngixi_build.languages",),
    ("ngixi_build.workflows",),
    ("ngixi_build.doctor",),
    ("ngixi_build.cli",),
)
RANKS = {
    **{prefix: rank for rank, layer in enumerate(RUN_LAYERS) for prefix in layer},
    **{prefix: len(RUN_LAYERS) + rank for rank, layer in enumerate(BUILD_LAYERS) for prefix in layer},
}


def rank_of(module: str) -> int | None:
    """The rank of the longest declared prefix of `module` (a package or a module), if any."""
    parts = module.split(".")
    return next((RANKS[p] for p in (".".join(parts[:n]) for n in range(len(parts), 0, -1)) if p in RANKS), None)


def test_every_project_module_stands_in_a_layer() -> None:
    assert [module for module in project_sources() if rank_of(module) is None] == []


def test_imports_point_down_only() -> None:
    sources = project_sources()
    upward = sorted(
        f"{module} imports {name}"
        for module, tree in sources.items()
        for name in imported_names(tree)
        if name in sources and (rank_of(name) or 0) > (rank_of(module) or 0)
    )
    assert upward == []


@pytest.mark.parametrize(
    ("module", "rank"),
    [
        ("ngixi_runtime.errors", 0),
        ("ngixi_runtime.capabilities.kv", 3),
        ("ngixi_runtime.trust.policy", 5),
        ("ngixi_build.stages.compile", len(RUN_LAYERS) + 4),
    ],
)
def test_a_module_takes_the_rank_of_its_longest_declared_prefix(module: str, rank: int) -> None:
    assert rank_of(module) == rank
