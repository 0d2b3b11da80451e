"""The build stages bound to a project's layout: what doit's tasks, watch mode and a release run for one guest."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.guests import GuestBuild, read_guests
from ngixi_build.languages.base import CompileJob
from ngixi_build.languages.registry import language_of, used_languages
from ngixi_build.project import Project
from ngixi_build.stages import component
from ngixi_build.stages.bundle import ArtifactInput, write_bundle
from ngixi_build.stages.memory import bound_memory
from ngixi_build.stages.precompile import precompile_guest, precompile_wasmtime, read_metadata
from ngixi_build.stages.signing import SigningKey, ensure_dev_key
from ngixi_build.stages.smoke import smoke_bundle
from ngixi_build.stages.validate import check_validated, validate_guest
from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.bundle_format import Channel
from ngixi_runtime.spec.targets import Target

log = logging.getLogger(__name__)


def artifact_plan(project: Project, guest: GuestBuild) -> tuple[list[Target], list[str]]:
    """The Wasmer targets and the Wasmtime triples of a guest's artifacts (Wasmer 2.1 runs no components)."""
    if guest.type.is_component:
        return [], list(component.wasmtime_triples(project))
    return list(project.targets()), list(project.wasmtime_triples())


def install_toolchain(project: Project) -> None:
    """The AssemblyScript toolchain, and every other toolchain a guest of the project needs."""
    ensure_toolchain(state_dir=project.state_dir)
    for language in used_languages(project, list(read_guests(project).values())):
        language.install(project.state_dir)


def toolchain_markers(project: Project) -> list[Path]:
    """The files the installs of the toolchains kept in the project's state write last."""
    languages = used_languages(project, list(read_guests(project).values()))
    return [m for m in (language.toolchain_marker(project.state_dir) for language in languages) if m is not None]


def make_dev_key(project: Project) -> None:
    ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)


@dataclass(frozen=True)
class CompileDeps:
    """What a guest's compile task reads, writes and is configured by, from its language."""

    file_dep: list[Path]
    targets: list[Path]
    settings: dict[str, object]


def compile_deps(project: Project, guest: GuestBuild) -> CompileDeps:
    """The compile task's declaration; a guest whose language is unknown gets a task that reports it."""
    settings: dict[str, object] = {**dataclasses.asdict(guest.type), "memory_pages": guest.memory_pages}
    try:
        language = language_of(project, guest)
    except InvalidInput:
        return CompileDeps(project.guest_sources(guest.name), [project.wasm_path(guest.name)], settings)
    return CompileDeps(
        file_dep=[*language.sources(project, guest), *language.inputs(project, guest)],
        targets=[project.wasm_path(guest.name), *language.intermediates(project, guest)],
        settings={**settings, **language.settings(project, guest)},
    )


def compile_guest(project: Project, guest: GuestBuild) -> None:
    """Compiles the guest with its language's toolchain into its .wasm."""
    language = language_of(project, guest)
    wasm_path = project.wasm_path(guest.name)
    size = language.compile(CompileJob(project, guest, wasm_path))
    if not guest.type.is_component and bound_memory(wasm_path=wasm_path, memory_pages=guest.memory_pages):
        log.info("%s: its memory declared no maximum; set to limits.memory_pages = %d", guest.name, guest.memory_pages)
    log.debug("%s: %d bytes of %s wasm", guest.name, size, language.name)


def validate(project: Project, guest: str) -> None:
    validate_guest(
        manifest_path=project.manifest_path(guest),
        wasm_path=project.wasm_path(guest),
        record_path=project.validated_path(guest),
    )


def precompile(project: Project, guest: str, target: Target) -> None:
    precompile_guest(
        wasm_path=project.wasm_path(guest),
        target=target,
        out_path=project.artifact_path(guest, target.triple),
    )


def precompile_with_wasmtime(project: Project, guest: GuestBuild, triple: str) -> None:
    precompile_wasmtime(
        wasm_path=project.wasm_path(guest.name),
        target=project.wasmtime_target(triple),
        metered=guest.metered,
        out_path=project.artifact_path(guest.name, triple, "wasmtime"),
    )


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
    count = smoke_bundle(
        bundle_path=project.bundle_path(guest.name, guest.version),
        trust_file=project.dev_trust_file,
        label=str(project.manifest_path(guest.name).relative_to(project.root)),
    )
    log.info("%s: %d smoke calls passed", guest.name, count)
