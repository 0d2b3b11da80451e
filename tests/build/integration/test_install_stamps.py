"""Install and artifact stamps made by doit's workers, whichever way they are started."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ngixi_build.toolchains import installs

pytestmark = pytest.mark.integration


def test_a_worker_that_is_not_forked_stamps_with_the_builds_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the user's key cannot be kept, the build's own key was made at import: a doit worker started by spawn
    or forkserver (Python 3.14's default) made its own, and the bundle step refused the other workers' artifacts."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "a-file" / "state"))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        theirs = worker.submit(installs.user_stamp, "artifact", b"machine code").result()
    assert theirs == installs.user_stamp("artifact", b"machine code")


def test_a_program_the_build_runs_cannot_make_the_builds_stamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build's own key was handed to doit's workers in the environment, which every program the build runs
    inherits (npm, zig, a Python guest's code run by componentize-py): any of them could stamp a `node` of its own
    as this user's install. A child that is not one of the build's workers now makes other stamps."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "a-file" / "state"))
    ours = installs.user_stamp("install", b"/a/place")
    script = "from ngixi_build.toolchains import installs; print(installs.user_stamp('install', b'/a/place'))"
    theirs = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert theirs.strip() != ours and len(theirs.strip()) == len(ours)
