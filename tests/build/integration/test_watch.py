"""`ngixi watch` as a subprocess on a copy of the project: real watchdog, node/asc, wasmer and locks."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.smoke import smoke_bundle
from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.workflows.tasks import precompile_subtask
from ngixi_runtime.bundles.reader import VerifiedBundle, read_bundle
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO
from tests.integration import (
    BIN,
    Line,
    WatchProcess,
    compiler_processes,
    copy_project,
    is_compiler_process,
    ran_tasks,
    run,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=35)]

HELLO_SOURCE = (REPO / "guests" / "hello" / "assembly" / "index.ts").read_text()


@dataclass(frozen=True)
class Watched:
    project: Project  # the dev profile's paths: what the watcher writes
    watch: WatchProcess

    def bundle(self, guest: str, project: Project | None = None) -> VerifiedBundle:
        project = project or self.project
        return read_bundle(project.bundle_path(guest, "0.1.0"), load_trust(project.dev_trust_file))

    def add(self, a: int, b: int, project: Project | None = None) -> int:
        (result,) = open_guest(self.bundle("hello", project)).call("add", (a, b))
        assert isinstance(result, int)
        return result

    def write_hello(self, add_expression: str) -> None:
        source = self.project.guests_dir / "hello" / "assembly" / "index.ts"
        source.write_text(HELLO_SOURCE.replace("return a + b;", f"return {add_expression};"))

    def rebuild_of(self, guest: str) -> list[Line]:
        return self.watch.until(f"{guest}: rebuilt", f"{guest}: failed")

    def settled(self, guest: str) -> None:
        """Waits until the background steps have put every target's artifact in the bundle."""
        targets = len(self.project.targets()) + len(self.project.wasmtime_triples())
        wait_until(lambda: len(self.bundle(guest).index.artifacts) == targets, what=f"{guest}'s full bundle")


def texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


def new_project(directory: Path, guests: tuple[str, ...]) -> Project:
    """A copy of the project with only `guests`, so the watcher's first build stays short."""
    ensure_toolchain(state_dir=REPO / ".ngixi")
    project = Project(copy_project(directory / "project", toolchain_from=REPO))
    for other in set(project.guest_names()) - set(guests):
        shutil.rmtree(project.guests_dir / other)
        project.manifest_path(other).unlink()
    return project


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    project = new_project(tmp_path_factory.mktemp("watch"), ("hello", "handmade"))
    config = project.root / "pyproject.toml"  # Wasmtime artifacts too, so the background steps build both kinds
    config.write_text(config.read_text().replace("[tool.ngixi]\n", '[tool.ngixi]\nwasmtime_targets = ["host"]\n'))
    watch = WatchProcess(project.root)
    try:
        started = texts(watch.until("watching"))
        assert any(t.startswith("hello: rebuilt") for t in started), started
        assert "dev-profile bundles in artifacts/dev/bundles/" in started[-1], started
        yield Watched(dataclasses.replace(project, profile="dev"), watch)
    finally:
        watch.stop()


def test_dev_bundles_of_unedited_guests_pass_their_smoke_calls(watched: Watched) -> None:
    for guest in ("hello", "handmade"):
        bundle = watched.bundle(guest)
        assert bundle.index.profile == "dev"
        label = str(watched.project.manifest_path(guest))
        assert smoke_bundle(bundle_path=Path(bundle.source), trust_file=watched.project.dev_trust_file, label=label)


def test_an_edit_gives_a_verified_bundle_with_the_new_behaviour(watched: Watched) -> None:
    watched.write_hello("a + b + 100")
    assert watched.rebuild_of("hello")[-1].text.startswith("hello: rebuilt in ")
    assert watched.add(2, 3) == 105
    assert watched.bundle("hello").index.profile == "dev"
    watched.settled("hello")
    assert watched.add(2, 3) == 105


def test_a_syntax_error_is_reported_once_and_the_fix_rebuilds(watched: Watched) -> None:
    watched.write_hello("a +")
    failed = watched.rebuild_of("hello")
    assert failed[-1].text.startswith("hello: failed")
    watched.write_hello("a + b + 200")
    after = texts(watched.rebuild_of("hello"))
    diagnostics = "\n".join(after)
    assert "ERROR" in diagnostics and "guests/hello/assembly/index.ts(" in diagnostics
    assert after[-1].startswith("hello: rebuilt")
    assert sum(t.startswith("hello: failed") for t in texts(failed) + after) == 1
    assert watched.add(2, 3) == 205


def test_outputs_state_and_editor_files_trigger_nothing(watched: Watched) -> None:
    project = watched.project
    (project.outputs_dir / "wasm" / "stray.wasm").write_bytes(b"\0asm")
    (project.artifacts_dir / "notes.txt").write_text("x")
    (project.state_dir / "notes.txt").write_text("x")
    sources = project.guests_dir / "hello" / "assembly"
    for noise in (".index.ts.swp", "index.ts~", "4913", ".#index.ts", "index.ts.tmp"):
        (sources / noise).write_text("x")
        (sources / noise).unlink()
    manifest = project.manifest_path("handmade")
    manifest.write_text(manifest.read_text() + "# touched\n")
    lines = texts(watched.rebuild_of("handmade"))
    assert len(lines) == 1 and lines[0].startswith("handmade: rebuilt"), lines


def test_editing_one_guest_leaves_the_other_alone(watched: Watched) -> None:
    watched.settled("handmade")
    other = watched.project.bundle_path("handmade", "0.1.0")
    before = other.stat().st_mtime_ns
    watched.write_hello("a + b + 300")
    lines = texts(watched.rebuild_of("hello"))
    assert not any("handmade" in line for line in lines), lines
    watched.settled("hello")
    assert other.stat().st_mtime_ns == before


def test_a_new_guest_is_picked_up_and_a_deleted_one_dropped(watched: Watched) -> None:
    project = watched.project
    manifest = project.manifest_path("extra")
    manifest.write_text(project.manifest_path("hello").read_text().replace('name = "hello"', 'name = "extra"'))
    (project.guests_dir / "extra" / "assembly").mkdir(parents=True)
    (project.guests_dir / "extra" / "assembly" / "index.ts").write_text(HELLO_SOURCE)
    lines = texts(watched.rebuild_of("extra"))
    assert "extra: new guest" in lines and lines[-1].startswith("extra: rebuilt"), lines
    assert watched.bundle("extra").index.guest == "extra"
    shutil.rmtree(project.guests_dir / "extra")
    manifest.unlink()
    assert texts(watched.watch.until("extra: removed")) == ["extra: removed; no longer built"]


def test_a_doit_build_racing_a_rebuild_never_mixes_outputs(watched: Watched) -> None:
    doit = subprocess.Popen(
        [str(BIN / "doit"), "bundle:hello"],
        cwd=watched.project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert doit.stdout is not None
    output = [next(line for line in doit.stdout if "compile:hello ..." in line)]
    watched.write_hello("a + b + 400")  # while doit compiles the previous source under the lock
    output += doit.stdout.readlines()
    if doit.wait() != 0:  # the edit landed inside doit's chain: refused cleanly, never bundled mixed
        assert "Traceback" not in "".join(output) and "FAILED bundle:hello" in "".join(output), output
        run(watched.project.root, "doit", "bundle:hello")
    assert watched.rebuild_of("hello")[-1].text.startswith("hello: rebuilt")
    watched.settled("hello")
    assert watched.add(2, 3) == 405
    listed = set(run(watched.project.root, "doit", "list", "--all", "-q").stdout.split())
    precompiled = [precompile_subtask("hello", t.triple) for t in watched.project.targets()]
    precompiled += [precompile_subtask("hello", t, "wasmtime") for t in watched.project.wasmtime_triples()]
    assert {"compile:hello", "validate:hello", "bundle:hello", *(f"precompile:{p}" for p in precompiled)} <= listed


def test_doit_build_after_watching_builds_release_outputs_from_the_sources(watched: Watched) -> None:
    release, source = Project(watched.project.root), watched.project.guests_dir / "hello" / "assembly" / "index.ts"
    run(release.root, "doit", "build")
    built, built_source = release.bundle_path("hello", "0.1.0").read_bytes(), source.read_text()
    watched.write_hello("a + b + 500")
    watched.rebuild_of("hello")
    assert watched.add(2, 3) == 505 and release.bundle_path("hello", "0.1.0").read_bytes() == built
    source.write_text(built_source)  # back to what doit built: its records and outputs are still right
    watched.rebuild_of("hello")
    assert "compile:hello" not in ran_tasks(run(release.root, "doit", "build").stdout)
    assert release.bundle_path("hello", "0.1.0").read_bytes() == built
    watched.write_hello("a + b + 600")
    watched.rebuild_of("hello")
    assert "compile:hello" in ran_tasks(run(release.root, "doit", "build").stdout)
    assert watched.bundle("hello", release).index.profile == "release" and watched.add(2, 3, release) == 605
    assert watched.bundle("hello").index.profile == "dev" and watched.add(2, 3) == 605


def test_a_fuel_change_alone_rebuilds_the_wasmtime_artifacts_in_watch_and_doit(watched: Watched) -> None:
    release, manifest = Project(watched.project.root), watched.project.manifest_path("hello")
    unmetered = manifest.read_text()
    for text in (unmetered.replace("[limits]\n", "[limits]\nfuel = 1000000\n"), unmetered):
        manifest.write_text(text)  # the same .wasm: only fuel metering, compiled into the .cwasm, changes
        watched.rebuild_of("hello")
        watched.settled("hello")
        ran = ran_tasks(run(release.root, "doit", "bundle:hello").stdout)
        assert f"precompile:hello@{host_triple()}.wasmtime" in ran
        for project in (watched.project, release):
            guest = open_guest(watched.bundle("hello", project), engine="wasmtime")
            assert guest.origin == f"artifact aot/{host_triple()}.cwasm"


def test_doit_watch_polling_with_smoke_stops_on_ctrl_c_with_no_compiler_left(tmp_path: Path) -> None:
    project = new_project(tmp_path, ("hello",))
    watch = WatchProcess(project.root, ("doit", "watch", "--poll", "--smoke", "--release"))
    try:
        started = texts(watch.until("watching"))
        assert "hello: 1 smoke call passed" in started
        assert "release-profile bundles in artifacts/bundles/" in started[-1], started
        compilers = compiler_processes(watch.process.pid)
        assert compilers
        source = project.guests_dir / "hello" / "assembly" / "index.ts"
        source.write_text(HELLO_SOURCE.replace("return a + b;", "return a - b;"))
        lines = texts(watch.until("hello: smoke failed"))
        assert any(t.startswith("hello: rebuilt") for t in lines), lines
        failure = texts(watch.until("manifests/hello.toml: smoke[0]"))[-1]
        assert failure.endswith("add(2, 3) returned -1, expected 5"), failure
    finally:
        status = watch.stop(signal.SIGINT)
    assert status == 0
    assert not any(is_compiler_process(pid) for pid in compilers)
    bundle = read_bundle(project.bundle_path("hello", "0.1.0"), load_trust(project.dev_trust_file))
    assert bundle.index.profile == "release" and not (project.artifacts_dir / "dev").exists()
