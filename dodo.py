"""doit tasks for ngixi-build. Only declarations: the work is in ngixi_build.workflows.pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doit.tools import config_changed, run_once

from ngixi_build.cli import project_or_exit
from ngixi_build.reporter import ProgressReporter
from ngixi_build.stages import component
from ngixi_build.stages.compile import OPTIMIZATION_FLAGS
from ngixi_build.stages.precompile import metadata_path
from ngixi_build.toolchains.assemblyscript import PIN_FILES, toolchain_for
from ngixi_build.workflows import pipeline as stages
from ngixi_build.workflows import publish, release
from ngixi_runtime.spec.bundle_format import FORMAT_VERSION

PROJECT = project_or_exit(Path(__file__).parent)
GUESTS = PROJECT.guest_names()
PLANS = {g: stages.artifact_plan(PROJECT, g) for g in GUESTS}  # component guests: Wasmtime artifacts only
WASMER_TRIPLES = {g: [t.triple for t in targets] for g, (targets, _) in PLANS.items()}
WASMTIME_FOR = {g: triples for g, (_, triples) in PLANS.items()}
TOOLCHAIN = toolchain_for(PROJECT.state_dir)

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
        "actions": [stages.as_action(stages.install_toolchain, project=PROJECT)],
        "targets": [str(TOOLCHAIN.root / ".complete")],
        "uptodate": [config_changed({"pins": TOOLCHAIN.root.name, "files": list(PIN_FILES)})],
    }


def task_devkey() -> Task:
    """Create the development signing key and its trust file on first use."""
    return {
        "actions": [stages.as_action(stages.make_dev_key, project=PROJECT)],
        "targets": [str(PROJECT.keys_dir / "dev.pub")],
        "uptodate": [run_once],
    }


def task_bindings() -> Task:
    """Generate AssemblyScript bindings of the WIT catalog (wit/) into artifacts/bindings/ngixi-host/."""
    return {
        "actions": [stages.as_action(component.generate_bindings, project=PROJECT)],
        "file_dep": [str(p) for p in component.catalog_sources(PROJECT)] + [component.GENERATOR],
        "targets": [str(p) for p in component.bindings_paths(PROJECT)],
        "clean": True,
    }


def task_compile() -> Any:
    """Compile each guest's AssemblyScript to artifacts/wasm/<guest>.wasm (a component guest's to a component)."""
    for guest in GUESTS:
        fields = stages.lenient_guest_fields(PROJECT, guest)
        is_component = stages.is_component_guest(PROJECT, guest)
        # A component embeds its world, made of the catalog and the manifest's exports.
        component_inputs = [
            *component.catalog_sources(PROJECT),
            *component.bindings_paths(PROJECT),
            PROJECT.manifest_path(guest),
        ]
        yield {
            "name": guest,
            "actions": [stages.as_action(stages.compile_guest, project=PROJECT, guest=guest)],
            "file_dep": [
                *(str(p) for p in PROJECT.guest_sources(guest)),
                str(TOOLCHAIN.root / ".complete"),
                *(str(p) for p in (component_inputs if is_component else [])),
            ],
            "targets": [
                str(PROJECT.wasm_path(guest)),
                *([str(component.core_path(PROJECT, guest))] if is_component else []),
            ],
            "uptodate": [
                config_changed(
                    {
                        **{k: fields[k] for k in ("kind", "memory_pages", "abi")},
                        "flags": list(OPTIMIZATION_FLAGS[PROJECT.profile]),
                    }
                )
            ],
            "clean": True,
        }


def task_validate() -> Any:
    """Check each manifest, and the .wasm against it (imports granted, exports declared)."""
    for guest in GUESTS:
        yield {
            "name": guest,
            "actions": [stages.as_action(stages.validate, project=PROJECT, guest=guest)],
            "file_dep": [
                *stages.existing([PROJECT.manifest_path(guest)]),
                str(PROJECT.wasm_path(guest)),
            ],
            "targets": [str(PROJECT.validated_path(guest))],
            "clean": True,
        }


def task_precompile() -> Any:
    """Precompile Wasmer/Cranelift AOT artifacts for each guest and target triple."""
    for guest in GUESTS:
        for target in PLANS[guest][0]:
            artifact = PROJECT.artifact_path(guest, target.triple)
            yield {
                "name": f"{guest}@{target.triple}",
                "actions": [stages.as_action(stages.precompile, project=PROJECT, guest=guest, target=target)],
                "file_dep": [str(PROJECT.wasm_path(guest))],
                "targets": [str(artifact), str(metadata_path(artifact))],
                "uptodate": [config_changed(stages.precompile_inputs(target))],
                "clean": True,
            }
        for triple in WASMTIME_FOR[guest]:
            artifact = PROJECT.artifact_path(guest, triple, "wasmtime")
            yield {
                "name": f"{guest}@{triple}.wasmtime",
                "actions": [
                    stages.as_action(stages.precompile_with_wasmtime, project=PROJECT, guest=guest, triple=triple)
                ],
                "file_dep": [str(PROJECT.wasm_path(guest))],
                "targets": [str(artifact), str(metadata_path(artifact))],
                "uptodate": [config_changed(stages.wasmtime_precompile_inputs(PROJECT, guest, triple))],
                "clean": True,
            }


def task_bundle() -> Any:
    """Package each guest into a signed bundle, artifacts/bundles/<guest>-<version>.ngx."""
    for guest in GUESTS:
        version = stages.lenient_guest_fields(PROJECT, guest)["version"]
        artifacts = [
            *(PROJECT.artifact_path(guest, t) for t in WASMER_TRIPLES[guest]),
            *(PROJECT.artifact_path(guest, t, "wasmtime") for t in WASMTIME_FOR[guest]),
        ]
        yield {
            "name": guest,
            "actions": [
                stages.as_action(
                    stages.bundle,
                    project=PROJECT,
                    guest=guest,
                    triples=WASMER_TRIPLES[guest],
                    wasmtime_triples=WASMTIME_FOR[guest],
                )
            ],
            "file_dep": [
                str(PROJECT.validated_path(guest)),
                *stages.existing([PROJECT.manifest_path(guest)]),
                str(PROJECT.wasm_path(guest)),
                str(PROJECT.keys_dir / "dev.pub"),
                *(str(a) for a in artifacts),
                *(str(metadata_path(a)) for a in artifacts),
            ],
            "targets": [str(PROJECT.bundle_path(guest, version))],
            "uptodate": [
                config_changed(
                    {
                        "format": FORMAT_VERSION,  # a checkout upgraded to a new format rebuilds its bundles
                        "sequence": PROJECT.source_epoch(),
                        "channel": "dev",
                        "triples": WASMER_TRIPLES[guest],
                        "wasmtime_triples": WASMTIME_FOR[guest],
                    }
                )
            ],
            "clean": True,
        }


def task_smoke() -> Any:
    """Load each built bundle through the loader and run its [[smoke]] calls (an http guest gets a local server)."""
    for guest in GUESTS:
        version = stages.lenient_guest_fields(PROJECT, guest)["version"]
        yield {
            "name": guest,
            "actions": [stages.as_action(stages.smoke, project=PROJECT, guest=guest)],
            "file_dep": [str(PROJECT.bundle_path(guest, version))],
            "uptodate": [False],
        }


def task_build() -> Task:
    """Build every guest: compile, validate, precompile and bundle (the default)."""
    return {
        "actions": None,
        "task_dep": ["bundle"],
        # `doit clean` also removes what killed builds left and watch mode's dev outputs.
        "clean": [stages.as_action(stages.clean_leftovers, locked=False, project=PROJECT)],
    }


def task_release() -> Task:
    """Build every guest for every target twice from clean copies; write artifacts/release/<version>/."""
    return {
        "actions": [stages.as_action(release.release, locked=False, project=PROJECT)],
        "task_dep": ["toolchain"],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_publish() -> Task:
    """Push the release bundles to the OCI registry in $NGIXI_REGISTRY."""
    return {
        "actions": [stages.as_action(publish.publish_project_release, locked=False, project=PROJECT)],
        "uptodate": [False],
        "verbosity": 2,
    }


def task_watch() -> Task:
    """Rebuild a guest's dev bundle whenever its sources or manifest change; Ctrl-C stops."""
    return {
        "actions": [stages.WatchAction(PROJECT)],
        "params": [
            {"name": "poll", "long": "poll", "type": bool, "default": False, "help": "poll for changes"},
            {"name": "smoke", "long": "smoke", "type": bool, "default": False, "help": "run [[smoke]] calls"},
            {"name": "release", "long": "release", "type": bool, "default": False, "help": "build with release flags"},
        ],
        "verbosity": 2,
    }
