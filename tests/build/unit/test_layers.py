"""Imports point down only: each side's folders form layers, and a module imports only from its own layer or below.

The layers are the ones docs/architecture.md draws, lowest first. A new folder or top-level module has to be
placed in one here, which is the moment to decide where it stands.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.build.unit.test_import_graph import PACKAGE_DIRS, imported_names, module_name, project_sources

RUN_LAYERS = (
    ("ngixi_runtime", "ngixi_runtime.errors", "ngixi_runtime.kept", "ngixi_runtime.printable"),
    ("ngixi_runtime.files",),
    ("ngixi_runtime.spec",),
    ("ngixi_runtime.capabilities",),
    ("ngixi_runtime.guest",),
    ("ngixi_runtime.engines", "ngixi_runtime.trust"),
    ("ngixi_runtime.bundles",),
    ("ngixi_runtime.loading", "ngixi_runtime.registry"),
    ("ngixi_runtime.cli", "ngixi_runtime.call_io", "ngixi_runtime.launch"),
)
BUILD_LAYERS = (
    ("ngixi_build", "ngixi_build.proc", "ngixi_build.locking", "ngixi_build.reporter", "ngixi_build.files"),
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


# Names the run side defines that only the build side uses, kept there on purpose: the formats and contracts both
# sides share (a bundle's, a target's, a module's, a manifest's, a trust file's, a source map's, a registry's), the
# manifest tables' lenient readers beside their strict ones, and atomic output's own switch.
SHARED_CONTRACTS = {
    "ngixi_runtime.engines.wasmer": {"missing_cpu_features"},
    "ngixi_runtime.files": {"without_fsync"},
    "ngixi_runtime.guest.build_command": {"lenient_build"},
    "ngixi_runtime.guest.check": {"check_core_guest"},
    "ngixi_runtime.guest.compile_options": {"lenient_compile"},
    "ngixi_runtime.guest.component_memory": {"component_memory_problems"},
    "ngixi_runtime.guest.kind": {"lenient_guest_type", "infer_language"},
    "ngixi_runtime.guest.manifest": {"load_manifest"},
    "ngixi_runtime.registry.oci": {"CONFIG_MEDIA_TYPE"},
    "ngixi_runtime.spec.sourcemap": {"moved_source_map"},
    "ngixi_runtime.spec.targets": {"DEFAULT_TARGETS", "resolve_target"},
    "ngixi_runtime.spec.wasm": {
        "with_memory_maximum",
        "with_table_maximum",
        "with_start_exported",
        "with_custom_section_replaced",
        "code_start",
        "custom_section",
    },
    "ngixi_runtime.trust.editing": {"check_new_trust", "render_keys"},
    "ngixi_runtime.trust.minisign_format": {"is_secret_key_file"},
}


def test_the_run_side_keeps_no_helper_only_the_build_side_uses() -> None:
    """The run side installs alone on 3.12 with Wasmtime: a helper only the build calls belongs to the build side
    (sha256_of and regular_files lived in ngixi_runtime.files)."""
    sources = {
        module_name(package, path): path.read_text()
        for package, directory in PACKAGE_DIRS.items()
        for path in sorted(directory.rglob("*.py"))
    }
    # A name's whole-word uses (`\bname\b`) are its maximal runs of word characters: counted once per module.
    words = {name: Counter(re.findall(r"\w+", text)) for name, text in sources.items()}
    run_side = {name: text for name, text in sources.items() if name.startswith("ngixi_runtime")}
    build_side_words = set().union(*(w for name, w in words.items() if name.startswith("ngixi_build")))
    build_only: dict[str, set[str]] = {}
    for module, text in run_side.items():
        for found in re.findall(r"^(?:def|class) ([A-Za-z]\w*)|^([A-Z][A-Z0-9_]*) = ", text, re.MULTILINE):
            name = next(filter(None, found))
            elsewhere_on_run_side = any(words[m][name] for m in run_side if m != module)
            if words[module][name] == 1 and not elsewhere_on_run_side and name in build_side_words:
                build_only.setdefault(module, set()).add(name)
    assert build_only == SHARED_CONTRACTS
