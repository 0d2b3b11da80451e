"""The release record read from git: a record deleted or edited since never brings a sequence back down."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ngixi_build.workflows.release_history import (
    HISTORY_FILE,
    History,
    ReleasedGuest,
    ReleaseRecord,
    read_history,
    write_history,
)

pytestmark = pytest.mark.integration

IDENTITY = ["-c", "user.name=Release Tests", "-c", "user.email=release@example.invalid"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *IDENTITY, *args], cwd=root, check=True, capture_output=True)


def test_a_deleted_or_lowered_record_keeps_the_sequences_it_ever_gave(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    released = ReleaseRecord("1.4.0", "", False, (ReleasedGuest("hello", "0.4.0", "release", 4, "sha256:" + "a" * 64),))
    write_history(tmp_path, History((released,)))
    git(tmp_path, "add", HISTORY_FILE)
    git(tmp_path, "commit", "-qm", "release 1.4.0")
    lowered = ReleaseRecord("1.0.0", "", False, (ReleasedGuest("hello", "0.1.0", "release", 1, "sha256:" + "b" * 64),))
    write_history(tmp_path, History((lowered,)))  # edited by hand down to one old release
    git(tmp_path, "commit", "-qam", "a hand-edited record")
    assert read_history(tmp_path).next_sequence("hello", "release") == 5
    git(tmp_path, "rm", "-q", HISTORY_FILE)
    git(tmp_path, "commit", "-qm", "the record deleted")
    assert read_history(tmp_path).next_sequence("hello", "release") == 5
