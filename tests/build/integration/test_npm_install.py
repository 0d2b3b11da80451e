"""npm as the build runs it, held to the folder it installs: the system's npm, no toolchain needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ngixi_build.toolchains import npm_deps
from ngixi_build.toolchains.assemblyscript import Toolchain

pytestmark = pytest.mark.integration


def test_npm_reads_no_settings_or_lock_file_above_the_guest(tmp_path: Path) -> None:
    """npm walks up to a workspace root listing the folder it installs, wherever it is (a repository holding the
    project), and read that root's .npmrc and lock file; `--prefix` holds it to the guest (npm ci failed before,
    at the root, here as the root's settings ask for engines the guest does not run on)."""
    outer = tmp_path / "repository"
    guest = outer / "project" / "guests" / "g"
    guest.mkdir(parents=True)
    (outer / "package.json").write_text('{"name": "outer", "workspaces": ["project/guests/g"]}')
    for settings in (outer, outer / "project", outer / "project" / "guests"):
        (settings / ".npmrc").write_text("engine-strict=true\n")
    (guest / "package.json").write_text('{"name": "g", "version": "1.0.0", "engines": {"node": "<1"}}')
    lock = {"name": "g", "version": "1.0.0", "lockfileVersion": 3, "packages": {"": {"name": "g", "version": "1.0.0"}}}
    (guest / "package-lock.json").write_text(json.dumps(lock))
    record = npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)
    assert json.loads(record.read_text())["packages"] == [] and not (outer / "node_modules").exists()
