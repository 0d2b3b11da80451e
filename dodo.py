"""doit tasks for ngixi-build. Only declarations: the work is in ngixi_build.workflows (pipeline and the others)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doit.tools import config_changed, run_once

from ngixi_build.cli import project_or_exit
from ngixi_build.guests import read_guests
from ngixi_build.reporter import ProgressReporter
from ngixi_build.stages import component, core_bindings
from ngixi_build.stages.precompile import metadata_path, precompile_inputs, wasmtime_precompile_inputs
from ngixi_build.toolchains.assemblyscript import PIN_FILES, toolchain_for
from ngixi_build.workflows import clean, pipeline, publish, release
from ngixi_build.workflows.tasks import TargetsUnchanged, as_action, existing, precompile_subtask
from ngixi_build.workflows.watch import WatchAction
from ngixi_runtime.spec.bundle_format import FORMAT_VERSION

PROJECT = project_or_exit(Path(__file__).parent)
GUESTS = read_guests(PROJECT)  # read once: every task below is declared from these
PLANS = {g: pipeline.artifact_plan(PROJECT, guest) for g, guest in GUESTS.items()}  # components: Wasmtime only
WASMER_TRIPLES = {g: [t.triple for t in targets] for g, (targets, _) in PLANS.items()}
WASMTIME_FOR = {g: triples for g, (_, triples) in PLANS.items()}
TOOLCHAIN = toolchain_for(PROJECT.state_dir)
LANGUAGE_TOOLCHAINS = pipeline.toolchain_markers(PROJECT)  # componentize-js/-py, when a guest needs them

DOIT_CONFIG = {
    "default_tasks": ["build"],
    "reporter": ProgressReporter,
    "dep_file": str(PROJECT.doit_db),
    "backend": "sqlite3",
}

Task = dict[str, Any]


def task_toolchain() -> Task:
    """Install the pinned Node.js/AssemblyScript toolchain (nodeenv + npm ci)."""
    return {
        "actions": [as_action(pipeline.install_toolchain, project=PROJECT)],
        "targets": [str(TOOLCHAIN.root / ".complete"), *(str(m) for m in LANGUAGE_TOOLCHAINS)],
        "uptodate": [
            config_changed(
                {"pins": TOOLCHAIN.root.name, "files": list(PIN_FILES), "others": [str(m) for m in LANGUAGE_TOOLCHAINS]}
            )
        ],
    }


def task_devkey() -> Task:
    """Create the development signing key and its trust file on first use."""
    return {
        "actions": [as_action(pipeline.make_dev_key, project=PROJECT)],
        "targets": [str(PROJECT.keys_dir / "dev.pub")],
        "uptodate": [run_once],
    }


def task_bindings() -> Task:
    """Generate bindings of the WIT catalog (wit/) into artifacts/bindings/: components' AssemblyScript, and
    core guests' C header, Zig module and AssemblyScript module."""
    return {
        "actions": [
            as_action(component.generate_bindings, project=PROJECT),
            as_action(core_bindings.generate, project=PROJECT),
        ],
        "file_dep": [
            *(str(p) for p in component.catalog_sources(PROJECT)),
            component.GENERATOR,
            core_bindings.GENERATOR,
        ],
        "targets": [str(p) for p in [*component.bindings_paths(PROJECT), *core_bindings.paths(PROJECT)]],
        "clean": True,
    }


def task_compile() -> Any:
    """Compile each guest with its language's toolchain to artifacts/wasm/<guest>.wasm (or a component)."""
    for name, guest in GUESTS.items():
        deps = pipeline.compile_deps(PROJECT, guest)
        yield {
            "name": name,
            "actions": [as_action(pipeline.compile_guest, project=PROJECT, guest=guest)],
            "file_dep": [str(p) for p in deps.file_dep],
            "targets": [str(p) for p in deps.targets],
            "uptodate": [config_changed(deps.settings), TargetsUnchanged()],
            "clean": True,
        }


def task_validate() -> Any:
    """Check each manifest, and the .wasm against it (imports granted, exports declared)."""
    for name in GUESTS:
        yield {
            "name": name,
            "actions": [as_action(pipeline.validate, project=PROJECT, guest=name)],
            "file_dep": [
                *existing([PROJECT.manifest_path(name)]),
                str(PROJECT.wasm_path(name)),
            ],
            "targets": [str(PROJECT.validated_path(name))],
            "uptodate": [TargetsUnchanged()],
            "clean": True,
        }


def task_precompile() -> Any:
    """Precompile Wasmer/Cranelift AOT artifacts for each guest and target triple."""
    for name, guest in GUESTS.items():
        for target in PLANS[name][0]:
            artifact = PROJECT.artifact_path(name, target.triple)
            yield {
                "name": precompile_subtask(name, target.triple),
                "actions": [as_action(pipeline.precompile, project=PROJECT, guest=name, target=target)],
                "file_dep": [str(PROJECT.wasm_path(name))],
                "targets": [str(artifact), str(metadata_path(artifact))],
                "uptodate": [config_changed(precompile_inputs(target)), TargetsUnchanged()],
                "clean": True,
            }
        for triple in WASMTIME_FOR[name]:
            artifact = PROJECT.artifact_path(name, triple, "wasmtime")
            inputs = wasmtime_precompile_inputs(PROJECT.wasmtime_target(triple), metered=guest.metered)
            yield {
                "name": precompile_subtask(name, triple, "wasmtime"),
                "actions": [as_action(pipeline.precompile_with_wasmtime, project=PROJECT, guest=guest, triple=triple)],
                "file_dep": [str(PROJECT.wasm_path(name))],
                "targets": [str(artifact), str(metadata_path(artifact))],
                "uptodate": [config_changed(inputs), TargetsUnchanged()],
                "clean": True,
            }


def task_bundle() -> Any:
    """Package each guest into a signed bundle, artifacts/bundles/<guest>-<version>.ngx."""
    for name, guest in GUESTS.items():
        artifacts = [
            *(PROJECT.artifact_path(name, t) for t in WASMER_TRIPLES[name]),
            *(PROJECT.artifact_path(name, t, "wasmtime") for t in WASMTIME_FOR[name]),
        ]
        yield {
            "name": name,
            "actions": [
                as_action(
                    pipeline.bundle,
                    project=PROJECT,
                    guest=guest,
                    triples=WASMER_TRIPLES[name],
                    wasmtime_triples=WASMTIME_FOR[name],
                )
            ],
            "file_dep": [
                str(PROJECT.validated_path(name)),
                *existing([PROJECT.manifest_path(name)]),
                str(PROJECT.wasm_path(name)),
                str(PROJECT.keys_dir / "dev.pub"),
                *(str(a) for a in artifacts),
                *(str(metadata_path(a)) for a in artifacts),
            ],
            "targets": [str(PROJECT.bundle_path(name, guest.version))],
            "uptodate": [
                config_changed(
                    {
                        "format": FORMAT_VERSION,  # a checkout upgraded to a new format rebuilds its bundles
                        "sequence": PROJECT.source_epoch(),
                        "channel": "dev",
                        "triples": WASMER_TRIPLES[name],
                        "wasmtime_triples": WASMTIME_FOR[name],
                    }
                ),
                TargetsUnchanged(),
            ],
            "clean": True,
        }


def task_smoke() -> Any:
    """Load each built bundle through the loader and run its [[smoke]] calls (an http guest gets a local server)."""
    for name, guest in GUESTS.items():
        yield {
            "name": name,
            "actions": [as_action(pipeline.smoke, project=PROJECT, guest=guest)],
            "file_dep": [str(PROJECT.bundle_path(name, guest.version))],
            "uptodate": [False],
        }


def task_build() -> Task:
    """Build every guest: compile, validate, precompile and bundle (the default)."""
    return {
        "actions": None,
        "task_dep": ["bundle"],
        # `doit clean` also removes what killed builds left and watch mode's dev outputs.
        "clean": [as_action(clean.clean, locked=False, project=PROJECT)],
    }


def task_release() -> Task:
    """Build every guest for every target twice from clean copies; write artifacts/release/<version>/."""
    return {
        "actions": [as_action(release.release, locked=False, project=PROJECT)],
        "task_dep": ["toolchain"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_publish() -> Task:
    """Push the release bundles to the OCI registry in $NGIXI_REGISTRY."""
    return {
        "actions": [as_action(publish.publish_project_release, locked=False, project=PROJECT)],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_watch() -> Task:
    """Rebuild a guest's dev bundle whenever its sources or manifest change; Ctrl-C stops."""
    return {
        "actions": [WatchAction(PROJECT)],
        "params": [
            {"name": "poll", "long": "poll", "type": bool, "default": False, "help": "poll for changes"},
            {"name": "smoke", "long": "smoke", "type": bool, "default": False, "help": "run [[smoke]] calls"},
            {"name": "release", "long": "release", "type": bool, "default": False, "help": "build with release flags"},
        ],
        "verbosity": 2,
    }
