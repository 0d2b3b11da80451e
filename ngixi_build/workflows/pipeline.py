"""The build stages bound to a project's layout: what doit's tasks, watch mode and a release run for one guest."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ngixi_build.guests import GuestBuild, read_guests
from ngixi_build.languages.base import CompileJob, Language
from ngixi_build.languages.registry import language_of, needs_node, toolchain_languages
from ngixi_build.project import Project
from ngixi_build.stages import component
from ngixi_build.stages.bundle import ArtifactInput, write_bundle
from ngixi_build.stages.memory import bound_memory
from ngixi_build.stages.precompile import (
    made_here,
    precompile_guest,
    precompile_wasmtime,
    precompile_wasmtime_in_child,
    read_metadata,
)
from ngixi_build.stages.signing import SigningKey, ensure_dev_key
from ngixi_build.stages.smoke import smoke_in_child
from ngixi_build.stages.start import export_start
from ngixi_build.stages.validate import check_validated, validate_guest
from ngixi_build.toolchains import npm_deps
from ngixi_build.toolchains.assemblyscript import ensure_toolchain, toolchain_for
from ngixi_build.toolchains.wit import WASM_TOOLS
from ngixi_build.workflows.scaffold import link_for_editors
from ngixi_runtime.errors import InvalidInput, counted
from ngixi_runtime.guest.manifest import Manifest, load_manifest
from ngixi_runtime.spec.bundle_format import Channel
from ngixi_runtime.spec.targets import Target
from ngixi_runtime.spec.wasm import read_module_info

log = logging.getLogger(__name__)


def artifact_plan(project: Project, guest: GuestBuild) -> tuple[list[Target], list[str]]:
    """The Wasmer targets and the Wasmtime triples of a guest's artifacts (Wasmer 2.1 runs no components)."""
    if guest.type.is_component:
        return [], list(component.wasmtime_triples(project))
    return list(project.targets()), list(project.wasmtime_triples())


def install_toolchain(project: Project) -> None:
    """wasm-tools, and the toolchain of each language the project's guests need (`registry.toolchain_languages`): a
    project of C, Zig and `wasm` guests installs no Node.js."""
    WASM_TOOLS.ensure(project.state_dir)  # every build resolves the WIT catalog with it
    languages = toolchain_languages(project, list(read_guests(project).values()))
    for language in languages:
        language.install(project.state_dir)
    if needs_node(languages):
        link_for_editors(project.state_dir, toolchain_for(project.state_dir).root / "node_modules")


def wasm_tools_installed() -> bool:
    """Whether this environment has the pinned wasm-tools (a new environment for an old project may not)."""
    return WASM_TOOLS.is_installed()


def toolchain_markers(project: Project, languages: list[Language]) -> list[Path]:
    """The files the installs of these languages' toolchains kept in the project's state write last."""
    markers = (language.toolchain_marker(project.state_dir) for language in languages)
    return [marker for marker in markers if marker is not None]


def make_dev_key(project: Project) -> None:
    ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)


def install_dependencies(project: Project, guest: str) -> None:
    """The guest's own npm dependencies (package.json + package-lock.json), installed when its lock changed by the
    AssemblyScript toolchain's npm, whatever the guest's language (watch mode and a release's clean copy run no
    toolchain task)."""
    npm_deps.install_dependencies(ensure_toolchain(state_dir=project.state_dir), project.guests_dir / guest)


def install_dependencies_if_any(project: Project, guest: str) -> None:
    if npm_deps.has_dependencies(project.guests_dir / guest):
        install_dependencies(project, guest)


def guest_dependencies(project: Project, guest: str) -> list[dict[str, str]]:
    """For release provenance: each npm package the guest's build used, with its version, integrity and sha256."""
    return npm_deps.recorded_dependencies(project.guests_dir / guest)


@dataclass(frozen=True)
class CompileDeps:
    """What a guest's compile task reads, writes and is configured by, from its language."""

    file_dep: list[Path]
    targets: list[Path]
    settings: dict[str, object]


def compile_deps(project: Project, guest: GuestBuild) -> CompileDeps:
    """The compile task's declaration; a guest whose language is unknown gets a task that reports it."""
    settings: dict[str, object] = {**guest.type._asdict(), "memory_pages": guest.memory_pages}
    try:
        language = language_of(project, guest)
    except InvalidInput:
        return CompileDeps(project.guest_sources(guest.name), [project.wasm_path(guest.name)], settings)
    return CompileDeps(
        file_dep=[*language.sources(project, guest), *language.inputs(project, guest)],
        targets=[project.wasm_path(guest.name), *language.intermediates(project, guest)],
        settings={**settings, **language.settings(project, guest)},
    )


def check_manifest(project: Project, guest: str) -> None:
    """Reads the guest's manifest: a missing or broken one fails before anything is compiled."""
    load_manifest(project.manifest_path(guest))


def compile_guest(project: Project, guest: GuestBuild) -> None:
    """Compiles the guest with its language's toolchain into its .wasm."""
    check_manifest(project, guest.name)
    install_dependencies_if_any(project, guest.name)  # a release's clean copy has no node_modules yet
    language = language_of(project, guest)
    wasm_path = project.wasm_path(guest.name)
    size = language.compile(CompileJob(project, guest, wasm_path))
    if not guest.type.is_component:
        fit_core_module(project, wasm_path, guest)
    log.debug("%s: %d bytes of %s wasm", guest.name, size, language.name)


# A note that says what each build of the same sources does, not what happened this time: watch says it once.
SAME_EACH_BUILD = {"same_each_build": True}


def fit_core_module(project: Project, wasm_path: Path, guest: GuestBuild) -> None:
    """What the build changes of any toolchain's core module: a memory maximum where it declares none, and a
    library's start function exported as `_initialize`."""
    prebuilt_manifest = project.manifest_path(guest.name) if guest.is_prebuilt else None
    if bound_memory(wasm_path=wasm_path, memory_pages=guest.memory_pages, prebuilt_manifest=prebuilt_manifest):
        log.info(
            "%s: its memory declared no maximum; set to limits.memory_pages = %d",
            guest.name,
            guest.memory_pages,
            extra=SAME_EACH_BUILD,
        )
    if export_start(wasm_path=wasm_path, library=guest.type.kind == "library"):
        # Another toolchain's start section is news to its author; asc's top-level code is every library's own.
        log.log(
            logging.INFO if guest.type.language == "wasm" else logging.DEBUG,
            "%s: its start function is exported as _initialize, run once its memory is linked",
            guest.name,
            extra=SAME_EACH_BUILD,
        )


def validate(project: Project, guest: str) -> None:
    manifest = validate_guest(
        manifest_path=project.manifest_path(guest),
        wasm_path=project.wasm_path(guest),
        record_path=project.validated_path(guest),
    )
    extra = undeclared_exports(manifest, project.wasm_path(guest))
    if extra:
        log.warning(
            "warning: %s: exported by the .wasm but not declared in %s: %s (no host can call %s;"
            " declare %s under [exports] or stop exporting %s)",
            guest,
            project.manifest_path(guest).relative_to(project.root),
            ", ".join(extra),
            *(["it"] * 3 if len(extra) == 1 else ["them"] * 3),
        )


def undeclared_exports(manifest: Manifest, wasm_path: Path) -> list[str]:
    """A core guest's exported functions its manifest does not declare (`_`-prefixed runtime helpers aside, and a
    command's `main`: the function its `_start` calls, which Rust 1.63's wasm32-wasi programs export)."""
    if manifest.guest.type.is_component:
        return []
    info = read_module_info(wasm_path.read_bytes(), source=str(wasm_path))
    declared = {e.name for e in manifest.exports}
    if manifest.guest.type.kind == "command":
        declared.add("main")
    return sorted(e.name for e in info.exports if e.kind == "func" and e.name not in declared and e.name[:1] != "_")


def precompile(project: Project, guest: str, target: Target) -> None:
    precompile_guest(
        wasm_path=project.wasm_path(guest),
        target=target,
        out_path=project.artifact_path(guest, target.triple),
    )


def precompile_with_wasmtime(project: Project, guest: GuestBuild, triple: str) -> None:
    precompile_wasmtime(**_wasmtime_precompile(project, guest, triple))


def precompile_with_wasmtime_in_child(project: Project, guest: GuestBuild, triple: str) -> None:
    """The same, compiled in a process that stopping a watcher ends (`precompile_wasmtime_in_child`)."""
    precompile_wasmtime_in_child(**_wasmtime_precompile(project, guest, triple))


def _wasmtime_precompile(project: Project, guest: GuestBuild, triple: str) -> dict[str, Any]:
    return {
        "wasm_path": project.wasm_path(guest.name),
        "target": project.wasmtime_target(triple),
        "metered": guest.metered,
        "out_path": project.artifact_path(guest.name, triple, "wasmtime"),
    }


def bundle(
    project: Project,
    guest: GuestBuild,
    triples: Sequence[str],
    *,
    wasmtime_triples: Sequence[str] = (),
    key: SigningKey | None = None,
    channel: Channel = "dev",
    out_dir: Path | None = None,
    sequence: int | None = None,
) -> Path:
    """Writes the guest's bundle, signed by `key` (the dev key when none is given).

    `sequence` defaults to the project's source epoch (a git call: a caller may have it already).
    """
    name = guest.name
    check_validated(
        record_path=project.validated_path(name),
        manifest_path=project.manifest_path(name),
        wasm_path=project.wasm_path(name),
    )
    if key is None:
        key, _ = ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)
    paths = [
        *(project.artifact_path(name, t) for t in triples),
        *(project.artifact_path(name, t, "wasmtime") for t in wasmtime_triples),
    ]
    for path in paths:
        if not made_here(path):
            raise InvalidInput(
                f"{path}: not compiled by your builds (it came with the project?): this machine code would be "
                "signed with your key; run `doit clean`, then build"
            )
    artifacts = [ArtifactInput(path, read_metadata(path)) for path in paths]
    out_path = project.bundle_path(name, guest.version)
    if out_dir is not None:
        out_path = out_dir / out_path.name
    write_bundle(
        guest=name,
        version=guest.version,
        manifest_path=project.manifest_path(name),
        wasm_path=project.wasm_path(name),
        artifacts=artifacts,
        key=key,
        channel=channel,
        sequence=project.source_epoch() if sequence is None else sequence,
        out_path=out_path,
        profile=project.profile,
    )
    return out_path


def smoke(project: Project, guest: GuestBuild) -> None:
    count = smoke_in_child(
        bundle_path=project.bundle_path(guest.name, guest.version),
        trust_file=project.dev_trust_file,
        label=str(project.manifest_path(guest.name).relative_to(project.root)),
    )
    log.info("%s: %s", guest.name, smoke_summary(count))


def smoke_summary(count: int) -> str:
    """How a guest's smoke calls went, as one line: "1 smoke call passed"."""
    if count == 0:
        return "no [[smoke]] calls in its manifest, nothing to check"
    return f"{counted(count, 'smoke call')} passed"
