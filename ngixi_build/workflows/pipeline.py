"""The build stages bound to a project's layout: what each doit task (and watch) runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomli
from doit.exceptions import TaskFailed

from ngixi_build.locking import build_lock
from ngixi_build.project import GUEST_ENTRY, Project
from ngixi_build.stages import compile as compile_stage
from ngixi_build.stages import component
from ngixi_build.stages.bundle import ArtifactInput, write_bundle
from ngixi_build.stages.precompile import precompile_guest, precompile_wasmtime, read_metadata
from ngixi_build.stages.signing import SigningKey, ensure_dev_key
from ngixi_build.stages.smoke import smoke_bundle
from ngixi_build.stages.validate import check_validated, validate_guest
from ngixi_build.toolchains.assemblyscript import ensure_toolchain, toolchain_for
from ngixi_build.workflows.clean import remove_leftovers
from ngixi_runtime.engines import wasmer as engine
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.manifest import DEFAULT_LIMITS
from ngixi_runtime.spec.bundle_format import BuildProfile, Channel
from ngixi_runtime.spec.targets import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageAction:
    """A doit python-action that reports an NgixiError as a clean failure, not a traceback.

    A module-level class rather than a closure, so that `doit -n N` can pickle it where
    multiprocessing spawns its workers (macOS, Windows) instead of forking them. A `locked`
    action holds the build lock (shared with other doit tasks), so it never interleaves with a
    watcher's rebuild steps; actions outside the project's build outputs (release, publish) need not.
    """

    function: Callable[..., object]
    kwargs: dict[str, Any]
    locked: bool = True

    def __call__(self) -> TaskFailed | None:
        _show_logs()
        with build_lock(self.kwargs["project"].state_dir, shared=True) if self.locked else contextlib.nullcontext():
            return _clean_failure(lambda: self.function(**self.kwargs))


def as_action(
    function: Callable[..., object], *, locked: bool = True, **kwargs: Any
) -> tuple[StageAction, list[Any], dict[str, Any]]:
    return StageAction(function, kwargs, locked), [], {}


@dataclass(frozen=True)
class WatchAction:
    """doit's watch task (`poll`, `smoke` and `release` are task parameters); it locks each rebuild itself."""

    project: Project

    def __call__(self, poll: bool, smoke: bool, release: bool) -> TaskFailed | None:
        from ngixi_build.workflows.watch import watch  # watchdog and the compiler client only when watching

        _show_logs()
        profile: BuildProfile = "release" if release else "dev"
        return _clean_failure(lambda: watch(self.project, poll=poll, smoke=smoke, profile=profile))


def _show_logs() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")


def _clean_failure(work: Callable[[], object]) -> TaskFailed | None:
    try:
        work()
    except NgixiError as error:
        return TaskFailed(str(error))
    return None


def existing(paths: list[Path]) -> list[str]:
    """Paths that exist: a missing manifest is reported by validate, not as a doit error."""
    return [str(p) for p in paths if p.exists()]


def lenient_guest_fields(project: Project, guest: str) -> dict[str, Any]:
    """Manifest fields needed to declare tasks; the validate step reports any problem properly."""
    try:
        raw = tomli.loads(project.manifest_path(guest).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
        raw = {}
    table = raw.get("guest", {}) if isinstance(raw.get("guest"), dict) else {}
    limits = raw.get("limits", {}) if isinstance(raw.get("limits"), dict) else {}
    version = table.get("version")
    return {
        "version": version if isinstance(version, str) and version else "unknown",
        "kind": table.get("kind", "library"),
        "abi": table.get("abi", "core"),
        "memory_pages": limits.get("memory_pages", DEFAULT_LIMITS["memory_pages"]),
        "metered": "fuel" in limits,
    }


def is_component_guest(project: Project, guest: str) -> bool:
    return bool(lenient_guest_fields(project, guest)["abi"] == "component")


def artifact_plan(project: Project, guest: str) -> tuple[list[Target], list[str]]:
    """The Wasmer targets and the Wasmtime triples of a guest's artifacts (Wasmer 2.1 runs no components)."""
    if is_component_guest(project, guest):
        return [], list(component.wasmtime_triples(project))
    return list(project.targets()), list(project.wasmtime_triples())


def install_toolchain(project: Project) -> None:
    ensure_toolchain(state_dir=project.state_dir)


def make_dev_key(project: Project) -> None:
    ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)


def compile_inputs(project: Project, guest: str) -> tuple[Path, compile_stage.CompileOptions]:
    """The guest's entry (relative to the project root) and its compile options from the manifest."""
    fields = lenient_guest_fields(project, guest)
    kind, pages = fields["kind"], fields["memory_pages"]
    if kind not in ("library", "command") or not isinstance(pages, int):
        kind, pages = "library", DEFAULT_LIMITS["memory_pages"]  # validate names the bad field
    entry = (project.guests_dir / guest / GUEST_ENTRY).relative_to(project.root)
    extra = tuple(component.compile_arguments(project, kind)) if is_component_guest(project, guest) else ()
    return entry, compile_stage.CompileOptions(
        kind=kind, memory_pages=pages, extra_arguments=extra, profile=project.profile
    )


def compile_guest(project: Project, guest: str) -> None:
    entry, options = compile_inputs(project, guest)
    is_component = bool(options.extra_arguments)
    size = compile_stage.compile_guest(
        toolchain=toolchain_for(project.state_dir),
        project_root=project.root,
        entry=entry,
        out_path=component.core_path(project, guest) if is_component else project.wasm_path(guest),
        options=options,
    )
    if is_component:
        size = component.componentize_guest(project, guest)
    log.debug("%s: %d bytes of wasm", guest, size)


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


def precompile_with_wasmtime(project: Project, guest: str, triple: str) -> None:
    precompile_wasmtime(
        wasm_path=project.wasm_path(guest),
        target=project.wasmtime_target(triple),
        metered=lenient_guest_fields(project, guest)["metered"],
        out_path=project.artifact_path(guest, triple, "wasmtime"),
    )


def wasmtime_precompile_inputs(project: Project, guest: str, triple: str) -> dict[str, object]:
    """What a Wasmtime artifact depends on besides the .wasm: baseline, fuel metering, Wasmtime version."""
    from ngixi_runtime.engines import wasmtime as engine_wasmtime

    return {
        "cpu_features": list(project.wasmtime_target(triple).cpu_features),
        "metered": lenient_guest_fields(project, guest)["metered"],
        "engine": asdict(engine_wasmtime.compiled_by(triple)),
    }


def precompile_inputs(target: Target) -> dict[str, object]:
    """What an artifact depends on besides the .wasm: its CPU baseline and the engine that builds it."""
    return {"cpu_features": list(target.cpu_features), "engine": asdict(engine.current_engine())}


def bundle(
    project: Project,
    guest: str,
    triples: list[str],
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
    check_validated(
        record_path=project.validated_path(guest),
        manifest_path=project.manifest_path(guest),
        wasm_path=project.wasm_path(guest),
    )
    if key is None:
        key, _ = ensure_dev_key(keys_dir=project.keys_dir, trust_file=project.dev_trust_file)
    version = lenient_guest_fields(project, guest)["version"]
    paths = [
        *(project.artifact_path(guest, t) for t in triples),
        *(project.artifact_path(guest, t, "wasmtime") for t in wasmtime_triples),
    ]
    artifacts = [ArtifactInput(path, read_metadata(path)) for path in paths]
    out_path = project.bundle_path(guest, version)
    if out_dir is not None:
        out_path = out_dir / out_path.name
    write_bundle(
        guest=guest,
        version=version,
        manifest_path=project.manifest_path(guest),
        wasm_path=project.wasm_path(guest),
        artifacts=artifacts,
        key=key,
        channel=channel,
        sequence=project.source_epoch() if sequence is None else sequence,
        out_path=out_path,
        profile=project.profile,
    )
    return out_path


def clean_leftovers(project: Project) -> None:
    for path in remove_leftovers(project):
        log.info("removed %s", path.relative_to(project.root))


def smoke(project: Project, guest: str) -> None:
    version = lenient_guest_fields(project, guest)["version"]
    count = smoke_bundle(
        bundle_path=project.bundle_path(guest, version),
        trust_file=project.dev_trust_file,
        label=str(project.manifest_path(guest).relative_to(project.root)),
    )
    log.info("%s: %d smoke calls passed", guest, count)
