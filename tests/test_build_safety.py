"""Real `doit build` runs: byte-reproducible bundles, and builds killed at random points."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngixi_build.runtime.bundle_format import BUNDLE_SUFFIX
from ngixi_build.runtime.bundle_reader import read_bundle
from ngixi_build.runtime.errors import NgixiError
from ngixi_build.runtime.verify import load_trust
from tests.integration import BIN, copy_project, run

pytestmark = pytest.mark.integration

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
KILLS = 3


@dataclass(frozen=True)
class Built:
    project: Path
    seconds: float

    @property
    def bundles(self) -> dict[str, bytes]:
        return bundles_of(self.project)


def bundles_of(project: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((project / "artifacts" / "bundles").glob(f"*{BUNDLE_SUFFIX}"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    project = copy_project(tmp_path_factory.mktemp("safety") / "project")
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


def test_two_builds_in_different_conditions_give_identical_bundles(tmp_path: Path, built: Built) -> None:
    rng = random.Random(5)
    project = tmp_path / "p"
    with umask(0o077):
        copy_in_reverse_order(copy_project(tmp_path / "staging"), project, rng)
        shutil.copytree(built.project / ".ngixi" / "toolchain", project / ".ngixi" / "toolchain", symlinks=True)
        with_dev_key_of(project, built)
        run(project, "doit", "build", env=EPOCH)
    assert sorted(built.bundles) == ["hello-0.1.0.ngx", "wasi-hello-0.1.0.ngx"]
    assert bundles_of(project) == built.bundles


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


def test_builds_killed_at_random_points_leave_no_partial_bundle(tmp_path: Path, built: Built) -> None:
    project = with_dev_key_of(copy_project(tmp_path / "p", toolchain_from=built.project), built)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    trust = project / ".ngixi" / "trust.toml"
    for kill in range(KILLS):
        moment = rng.uniform(0.2, built.seconds)
        kill_build_after(project, moment)
        assert unfinished_bundles(project, trust) == [], f"seed {seed}, kill {kill} after {moment:.2f} s"
    run(project, "doit", "build", env=EPOCH)
    assert bundles_of(project) == built.bundles, f"seed {seed}"
