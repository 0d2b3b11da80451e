"""Builds and bundle writes in hard conditions: byte-reproducible bundles, and SIGKILL at random points."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO, KeyFiles, make_bundle
from tests.integration import BIN, LANGUAGE_COMPONENTS, copy_project, installed_toolchain, run, share_toolchains

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=130)]

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
KILLS = 3
# Core guests get Wasmtime artifacts too (by default they have Wasmer's alone): about 0.1 s each.
WASMTIME_TARGETS = '[tool.ngixi]\nwasmtime_targets = ["host", "pulley64"]\n'


@dataclass(frozen=True)
class Built:
    project: Path
    seconds: float

    @property
    def bundles(self) -> dict[str, bytes]:
        return bundles_of(self.project)


def bundles_of(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "artifacts" / "bundles").glob(f"*{BUNDLE_SUFFIX}"))}


def with_wasmtime_artifacts(project: Path) -> Path:
    """The project, every guest of which gets Wasmtime artifacts for this host and pulley64 besides Wasmer's."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[tool.ngixi]\n", WASMTIME_TARGETS, 1))
    return project


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    # The installed toolchain, linked: `doit toolchain` only checks its stamp, where installing afresh ran npm ci and
    # pip again.
    project = copy_project(tmp_path_factory.mktemp("safety") / "project", toolchain_from=installed_toolchain())
    with_wasmtime_artifacts(project)
    run(project, "doit", "toolchain")
    started = time.monotonic()
    run(project, "doit", "build", env=EPOCH)
    return Built(project, time.monotonic() - started)


def with_dev_key_of(project: Path, built: Built) -> Path:
    """Gives `project` the built project's development key and trust file."""
    shutil.copytree(built.project / ".ngixi" / "keys", project / ".ngixi" / "keys")
    shutil.copy2(built.project / ".ngixi" / "trust.toml", project / ".ngixi" / "trust.toml")
    return project


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def copy_in_reverse_order(source: Path, destination: Path, rng: random.Random) -> None:
    """Recreates `source` file by file in reverse order, each file with a different past mtime."""
    for path in sorted((p for p in source.rglob("*") if p.is_file()), reverse=True):
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        moment = rng.uniform(1e9, 1.6e9)
        os.utime(target, (moment, moment))


def unfinished_bundles(project: Path, trust: Path) -> list[str]:
    """Bundles at final paths that do not verify (temporary files start with a dot)."""
    refused = []
    for path in (project / "artifacts" / "bundles").glob(f"*{BUNDLE_SUFFIX}"):
        try:
            read_bundle(path, load_trust(trust))
        except NgixiError as error:
            refused.append(f"{path.name}: {error}")
    return refused


def kill_build_after(project: Path, seconds: float) -> None:
    build = subprocess.Popen(
        [str(BIN / "doit"), "build"],
        cwd=project,
        env={**os.environ, **EPOCH},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        build.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()


def test_a_build_in_other_conditions_killed_at_random_points_gives_identical_bundles(
    tmp_path: Path, built: Built
) -> None:
    """A second build, of a copy in another folder written file by file in reverse order with past mtimes, under
    umask 077, killed with SIGKILL at random points before it is let finish: no kill leaves a bundle that does not
    verify at a final path, and the finished bundles are the module build's, byte for byte. (One build for both
    checks: each killed build carries on where the last left off, as a user's next build would.)"""
    project = tmp_path / "p"
    seed = random.randrange(1 << 30)
    kills = random.Random(seed)
    trust = project / ".ngixi" / "trust.toml"
    with umask(0o077):
        copy_in_reverse_order(with_wasmtime_artifacts(copy_project(tmp_path / "staging")), project, random.Random(5))
        share_toolchains(built.project / ".ngixi", project / ".ngixi")
        with_dev_key_of(project, built)
        for kill in range(KILLS):
            moment = kills.uniform(0.2, built.seconds)
            kill_build_after(project, moment)
            assert unfinished_bundles(project, trust) == [], f"seed {seed}, kill {kill} after {moment:.2f} s"
        run(project, "doit", "build", env=EPOCH)
    guests = [guest for guest in Project(REPO).guest_names() if guest not in LANGUAGE_COMPONENTS]
    assert sorted(built.bundles) == [f"{guest}-0.1.0.ngx" for guest in guests]
    assert bundles_of(project) == built.bundles, f"seed {seed}"
    for name, data in built.bundles.items():
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
        # Nothing of the builder's: the sequence as the only time, no owner, one mode.
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) for m in members} == {
            (int(EPOCH["SOURCE_DATE_EPOCH"]), 0, 0, "", "", 0o644, tarfile.REGTYPE)
        }, name
        artifacts = {m.name for m in members if m.name.startswith("aot/")}
        assert {"aot/pulley64.cwasm", f"aot/{host_triple()}.cwasm"} <= artifacts, name  # Wasmtime's, every guest


WRITE_BIG_BUNDLE = """
import sys
from pathlib import Path
from ngixi_build.stages.bundle import write_bundle
from ngixi_build.stages.signing import load_signing_key
d = Path(sys.argv[1])
write_bundle(guest="hello", version="0.1.0", manifest_path=d / "hello.toml", wasm_path=d / "big.wasm", artifacts=[],
             key=load_signing_key(Path(sys.argv[2])), channel="dev", sequence=2, out_path=d / "hello-0.1.0.ngx")
"""


def kill_once_writing(directory: Path, keys: KeyFiles) -> bool:
    """Starts writing a 64 MiB bundle and kills it once its temporary file has data; False if it finished first."""
    writer = subprocess.Popen([sys.executable, "-c", WRITE_BIG_BUNDLE, str(directory), str(keys.secret)])
    while writer.poll() is None:
        if any(t.stat().st_size for t in directory.glob(".hello-0.1.0.ngx.*.tmp")):
            writer.kill()
            writer.wait()
            return True
        time.sleep(0.002)
    return False


def test_a_bundle_write_killed_midway_leaves_the_previous_bundle(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=b"\0asm\1\0\0\0", sequence=1)
    previous = path.read_bytes()
    (tmp_path / "big.wasm").write_bytes(random.randbytes(64 << 20))
    for _ in range(3):
        path.write_bytes(previous)
        if kill_once_writing(tmp_path, keys):
            break
    else:
        pytest.fail("the writer always finished before it could be killed")
    assert path.read_bytes() == previous
    assert read_bundle(path, load_trust(keys.trust)).index.sequence == 1
    subprocess.run([sys.executable, "-c", WRITE_BIG_BUNDLE, str(tmp_path), str(keys.secret)], check=True)
    assert read_bundle(path, load_trust(keys.trust)).index.sequence == 2
