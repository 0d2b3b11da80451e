"""Watch mode's rebuild of one guest, the quickest way to a verified dev bundle (rebuilds of different guests may
run side by side, on threads of their own).

Foreground: compile with the warm compiler → validate → the host's artifact → dev bundle,
signed and verified. Background, one step at a time while nothing else waits: the other
targets' artifacts (and any Wasmtime ones), then the bundle again with all of them.

In between, the dev bundle holds the new .wasm and the host's artifact only, never an artifact
built from an older .wasm (the bundle writer refuses such a mix). A loader on another target
compiles the .wasm meanwhile and says so.

A dev-profile build (the default) compiles quickly and keeps its outputs under artifacts/dev/, apart
from `doit build`'s. A release-profile build writes `doit build`'s outputs: once its background steps
are done, its bundle is byte for byte what `doit build` makes from the same sources (and where it wrote
other bytes, doit's check of its targets makes the next `doit build` redo those tasks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ngixi_build.files import refuse_links
from ngixi_build.guests import GuestBuild, read_guest
from ngixi_build.languages import assemblyscript
from ngixi_build.languages.base import CompileJob
from ngixi_build.languages.registry import language_of
from ngixi_build.locking import build_lock
from ngixi_build.project import Project
from ngixi_build.stages import component, core_bindings
from ngixi_build.stages.compile import (
    AscOptions,
    asc_arguments,
    asc_failure,
    asc_output,
    refuse_reads_outside,
    source_map_path,
)
from ngixi_build.stages.precompile import artifact_metadata, made_here, read_metadata, wasmtime_artifact_is_current
from ngixi_build.toolchains.asc_server import AscReply, AscServer, CompilerDied
from ngixi_build.toolchains.assemblyscript import Toolchain, ensure_toolchain
from ngixi_build.workflows import pipeline
from ngixi_runtime.bundles.reader import VerifiedBundle, read_bundle
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import sha256_of, without_fsync, write_atomic
from ngixi_runtime.spec.bundle_format import BuildProfile
from ngixi_runtime.spec.targets import Target, host_triple
from ngixi_runtime.trust.signatures import load_trust

log = logging.getLogger(__name__)

COMPILE_TIMEOUT_SECONDS = 600.0
WARM_UP_COMPILES = 4


@dataclass(frozen=True)
class _Compile:
    argv: tuple[str, ...]
    reply: Future[AscReply]


@dataclass
class _Remaining:
    """Background work left for one guest, valid while its .wasm is still `wasm_sha256`."""

    guest: GuestBuild
    wasm_sha256: str
    targets: list[Target] = field(default_factory=list)
    wasmtime_triples: list[str] = field(default_factory=list)


class StepTimes:
    """How long each step of one rebuild took, for `ngixi -v watch`."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.steps.append((name, seconds))

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in self.steps)


class DevBuilder:
    def __init__(self, project: Project, server: AscServer, *, profile: BuildProfile = "dev") -> None:
        self.project = dataclasses.replace(project, profile=profile)
        self.server = server
        self._toolchain: Toolchain | None = None
        self._compiles: dict[str, _Compile] = {}
        self._background: dict[str, _Remaining] = {}
        self._build_lock = _HeldWhileAnyWrites(project.state_dir)

    def prefetch(self, guest: str) -> None:
        """Starts compiling now (e.g. while events settle); `rebuild` uses the result if the sources still match."""
        if guest not in self._compiles and guest in self.project.guest_names():
            with _reported_by_the_rebuild(f"{guest}: early compile"):
                build = read_guest(self.project, guest)
                if _compiled_by_asc(build) and self._toolchain is not None:  # a rebuild installs it, reporting failures
                    argv = self._argv(build)
                    self._compiles[guest] = _Compile(argv, self.server.submit(argv))

    def warm_up(self, guests: list[str]) -> None:
        """A few throw-away compiles of the first AssemblyScript guest: V8 optimizes asc's hot paths only after
        it has run them a few times."""
        with _reported_by_the_rebuild("warm-up"):
            builds = (read_guest(self.project, guest) for guest in guests)
            first = next((build for build in builds if _compiled_by_asc(build)), None)
            if first is None or self._toolchain is None:  # none compiled, or its install failed (the rebuild said so)
                return
            argv = self._argv(first)
            for _ in range(WARM_UP_COMPILES):
                self.server.compile(argv, timeout=COMPILE_TIMEOUT_SECONDS)

    def rebuild(self, name: str, times: StepTimes | None = None) -> VerifiedBundle:
        """The foreground steps; raises NgixiError (compile or manifest errors) with the diagnostics."""
        step = (times or StepTimes()).step
        self._background.pop(name, None)
        sequence = self.project.source_epoch()  # its git call runs while asc still compiles
        guest = read_guest(self.project, name)
        if guest.type.is_component:
            component.generate_bindings(self.project)
        else:
            core_bindings.generate(self.project)
        pipeline.check_manifest(self.project, name)
        pipeline.install_dependencies_if_any(self.project, name)
        with step("compile"):
            self._compile(guest)
        targets, wasmtime_triples = pipeline.artifact_plan(self.project, guest)
        with self._build_lock(), self._writing():
            with step("write"):
                if guest.type.is_component and _compiled_by_asc(guest):
                    component.componentize_guest(self.project, name, core_wasm=self._scratch(name))
                else:
                    write_atomic(self.project.wasm_path(name), self._scratch(name).read_bytes())
                    if not guest.type.is_component:  # as doit build does
                        pipeline.fit_core_module(self.project, self.project.wasm_path(name), guest)
            with step("validate"):
                pipeline.validate(self.project, name)
            wasm_sha256 = hashlib.sha256(self.project.wasm_path(name).read_bytes()).hexdigest()
            with step("host artifact"):
                for target in (t for t in targets if t.triple == host_triple()):
                    self._precompile(name, target, wasm_sha256)
            with step("bundle"):
                path = self._bundle(guest, wasm_sha256, sequence)
            with step("verify"):
                bundle = self._verify(path)
        remaining = _Remaining(
            guest,
            wasm_sha256,
            [t for t in targets if not self._artifact_fits(name, t, wasm_sha256)],
            [t for t in wasmtime_triples if not self._wasmtime_artifact_fits(guest, t, wasm_sha256)],
        )
        if remaining.targets or remaining.wasmtime_triples:
            self._background[name] = remaining
        return bundle

    def drop(self, guest: str) -> None:
        """Forgets a guest that is gone: no background work, no pending compile."""
        self._background.pop(guest, None)
        self._compiles.pop(guest, None)

    @property
    def has_background_work(self) -> bool:
        return bool(self._background)

    def next_background_guest(self) -> str:
        """The guest whose background work comes next."""
        return next(iter(self._background))

    def background_step(self, name: str) -> None:
        """One artifact of the guest for another target, or its final bundle with every artifact that was built."""
        remaining = self._background.get(name)
        if remaining is None:  # dropped since (the guest is gone)
            return
        with self._build_lock(), self._writing():
            if self._wasm_sha256(name) != remaining.wasm_sha256:
                del self._background[name]  # changed or gone since (a doit build, a clean): not ours any more
            elif remaining.targets:
                self._precompile(name, remaining.targets.pop(0), remaining.wasm_sha256)
            elif remaining.wasmtime_triples:
                triple = remaining.wasmtime_triples.pop(0)
                pipeline.precompile_with_wasmtime_in_child(self.project, remaining.guest, triple)
            else:
                del self._background[name]
                self._verify(self._bundle(remaining.guest, remaining.wasm_sha256))

    def _writing(self) -> AbstractContextManager[None]:
        """Dev outputs are rebuilt on the next save and verified when read: no need to wait for the disk."""
        return without_fsync() if self.project.profile == "dev" else nullcontext()

    def _asc_toolchain(self) -> Toolchain:
        """The AssemblyScript toolchain, installed by the first compile that needs it rather than when watching
        starts (a project of other guests needs no Node.js; one that gains an AssemblyScript guest installs it then)."""
        if self._toolchain is None:
            self._toolchain = ensure_toolchain(state_dir=self.project.state_dir)
        return self._toolchain

    def _argv(self, guest: GuestBuild) -> tuple[str, ...]:
        return self._asc_argv(*assemblyscript.compile_inputs(self.project, guest), guest.name)

    def _asc_argv(self, entry: Path, options: AscOptions, guest: str) -> tuple[str, ...]:
        return tuple(asc_arguments(self._asc_toolchain(), self.project.root, entry, self._scratch(guest), options))

    def _scratch(self, guest: str) -> Path:
        """Where asc writes a guest's module (and its source map), which it opens by name: never through a link
        that came with the project's `.ngixi/`, which would have it write over the file the link names."""
        folder = self.project.watch_dir / self.project.profile
        refuse_links((self.project.watch_dir, folder), InvalidInput)
        path = folder / f"{guest}.wasm"
        for written in (path, source_map_path(path)):
            if written.is_symlink():
                written.unlink()
        return path

    def _compile(self, guest: GuestBuild) -> None:
        """Compiles into the scratch file, reusing a prefetched compile of the same sources."""
        if not _compiled_by_asc(guest):
            language = language_of(self.project, guest)
            language.compile(CompileJob(self.project, guest, self._scratch(guest.name)))
            return
        entry, options = assemblyscript.compile_inputs(self.project, guest)
        argv = self._asc_argv(entry, options, guest.name)
        with asc_output(self._scratch(guest.name), self.project.profile):  # as compile_guest's asc run
            reply = self._prefetched_reply(guest.name, argv)
            if reply is None:
                reply = self.server.compile(argv, timeout=COMPILE_TIMEOUT_SECONDS)
            refuse_reads_outside(f"asc {argv[0]}", reply, options.readable)
            if not reply.ok:
                raise asc_failure(f"asc {argv[0]}", reply.diagnostics, self.project.root / argv[0])

    def _prefetched_reply(self, guest: str, argv: tuple[str, ...]) -> AscReply | None:
        started = self._compiles.pop(guest, None)
        if started is None or started.argv != argv:
            return None
        try:
            reply = started.reply.result(timeout=COMPILE_TIMEOUT_SECONDS)
        except CompilerDied:
            return None
        current = reply.still_current()
        log.debug("%s: the compile started early is %s", guest, "used" if current else "stale; compiling again")
        return reply if current else None

    def _wasm_sha256(self, guest: str) -> str | None:
        return sha256_of(self.project.wasm_path(guest))

    def _artifact_fits(self, guest: str, target: Target, wasm_sha256: str) -> bool:
        """Whether the artifact on disk was built here from this .wasm for this baseline by this engine."""
        path = self.project.artifact_path(guest, target.triple)
        try:
            built = read_metadata(path)
        except NgixiError:
            return False
        return built == artifact_metadata(target, wasm_sha256) and made_here(path)

    def _wasmtime_artifact_fits(self, guest: GuestBuild, triple: str, wasm_sha256: str) -> bool:
        return wasmtime_artifact_is_current(
            self.project.artifact_path(guest.name, triple, "wasmtime"),
            target=self.project.wasmtime_target(triple),
            wasm_sha256=wasm_sha256,
            metered=guest.metered,
        )

    def _precompile(self, guest: str, target: Target, wasm_sha256: str) -> None:
        if not self._artifact_fits(guest, target, wasm_sha256):
            pipeline.precompile(self.project, guest, target)

    def _bundle(self, guest: GuestBuild, wasm_sha256: str, sequence: int | None = None) -> Path:
        """Writes the bundle with every artifact built from this .wasm."""
        targets, wasmtime_triples = pipeline.artifact_plan(self.project, guest)
        fitting = [t.triple for t in targets if self._artifact_fits(guest.name, t, wasm_sha256)]
        wasmtime = [t for t in wasmtime_triples if self._wasmtime_artifact_fits(guest, t, wasm_sha256)]
        return pipeline.bundle(self.project, guest, fitting, wasmtime_triples=wasmtime, sequence=sequence)

    def _verify(self, bundle: Path) -> VerifiedBundle:
        return read_bundle(bundle, load_trust(self.project.dev_trust_file))


class _HeldWhileAnyWrites:
    """The build lock, held (exclusive) while any of this builder's rebuilds writes: rebuilds of different guests
    write apart from each other (each its own .wasm, artifacts and bundle), and none beside a `doit build`."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._count_lock = threading.Lock()
        self._writers = 0
        self._held: ExitStack | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._count_lock:
            if self._writers == 0:
                held = ExitStack()
                held.enter_context(build_lock(self._state_dir))
                self._held = held
            self._writers += 1
        try:
            yield
        finally:
            with self._count_lock:
                self._writers -= 1
                if self._writers == 0 and self._held is not None:
                    self._held.close()
                    self._held = None


@contextmanager
def _reported_by_the_rebuild(step: str) -> Iterator[None]:
    """A step that only saves time before a rebuild: what fails in it (a manifest saved half-edited, a compiler
    that died) fails the guest's rebuild too, which reports it as watch reports build errors."""
    try:
        yield
    except (NgixiError, OSError) as error:
        log.debug("%s skipped: %s", step, error)


def _compiled_by_asc(guest: GuestBuild) -> bool:
    """Whether the warm compiler process compiles the guest; other languages run their own compiler."""
    return guest.type.language == "assemblyscript"
