"""Lock files are opened by name where another user or program may have put something first: a symlink there
is refused, never followed to a file it chose, and a FIFO is refused, never opened (its open would wait)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.locking import file_lock
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import open_lock_file
from ngixi_runtime.spec.bundle_format import BundleIndex
from ngixi_runtime.trust import editing
from ngixi_runtime.trust.editing import add_key
from ngixi_runtime.trust.project_trust import register_dev_key
from ngixi_runtime.trust.rollback import RollbackGuard
from tests.file_events import watched_opens
from tests.run.unit.test_trust_editing import RELEASE_HELLO, new_public_key


def _symlink_to_victim(path: Path) -> Path:
    victim = path.parent / "victim"
    victim.write_bytes(b"kept")
    path.symlink_to(victim)
    return victim


def _dangling_symlink(path: Path) -> Path:
    victim = path.parent / "made-through-the-link"
    path.symlink_to(victim)
    return victim


PLANTED: dict[str, Callable[[Path], Path]] = {"symlink": _symlink_to_victim, "dangling": _dangling_symlink}


def test_a_lock_file_is_made_then_opened_again(tmp_path: Path) -> None:
    for _ in range(2):
        os.close(open_lock_file(tmp_path / "x.lock"))
    assert (tmp_path / "x.lock").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("plant", PLANTED)
def test_a_symlink_where_a_lock_goes_is_not_followed(tmp_path: Path, plant: str) -> None:
    victim = PLANTED[plant](tmp_path / "x.lock")
    with pytest.raises(OSError, match="a symbolic link"):
        open_lock_file(tmp_path / "x.lock")
    assert victim.read_bytes() == b"kept" if plant == "symlink" else not victim.exists()


def test_a_fifo_where_a_lock_goes_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "x.lock", 0o600)
    with pytest.raises(OSError, match="a FIFO, not a regular file") as refused:
        open_lock_file(tmp_path / "x.lock")
    assert refused.value.filename == str(tmp_path / "x.lock")


def test_the_build_sides_lock_refuses_a_symlink_in_one_line(tmp_path: Path) -> None:
    victim = _dangling_symlink(tmp_path / "build.lock")
    refused = pytest.raises(InvalidInput, match=r"build\.lock: cannot take this lock: a symbolic link.*remove it")
    with refused, file_lock(tmp_path / "build.lock"):
        pass
    assert not victim.exists()


def test_the_rollback_lock_refuses_a_fifo_in_one_line(tmp_path: Path) -> None:
    state_file = tmp_path / "rollback" / "domain.json"
    state_file.parent.mkdir()
    os.mkfifo(f"{state_file}.lock", 0o600)
    guard = RollbackGuard(state_file, str(tmp_path / "trust.toml"))
    index = BundleIndex(1, "hello", "0.1.0", "release", 3, (), {})
    with pytest.raises(InvalidInput, match=r"json\.lock: cannot record the sequence of here\.ngx: a FIFO, not a"):
        guard.record(index, source="here.ngx")
    assert not state_file.exists()


def test_the_dev_key_records_lock_is_not_followed(tmp_path: Path) -> None:
    record = tmp_path / "dev-keys"
    victim = _dangling_symlink(Path(f"{record}.lock"))
    with pytest.raises(OSError, match="a symbolic link"):  # the build's signing step warns and builds on
        register_dev_key("key", record)
    assert not victim.exists() and not record.exists()


def test_trust_editings_lock_never_opens_a_fifo_swapped_in_for_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ngixi trust add/remove` locked the trust file's folder by opening it as whatever was there: a FIFO swapped
    in once the folder was made was opened (its writer woken; without one, the edit waited for ever). It is opened
    as a directory only, never the FIFO, and the edit says why it cannot go on."""
    folder = tmp_path / "trust"
    os.mkfifo(folder, 0o600)
    writer = os.open(folder, os.O_RDWR)  # so that an open of it shows at once, where it would wait
    monkeypatch.setattr(editing, "make_directories", lambda path, mode: None)  # made, then swapped
    try:
        with watched_opens(folder) as opens:
            refusal = rf"^{folder}: cannot edit trust files there: it is not a directory$"
            with pytest.raises(InvalidInput, match=refusal):
                add_key(folder / "trust.toml", new_public_key(), RELEASE_HELLO)
            assert opens() == 0
    finally:
        os.close(writer)
