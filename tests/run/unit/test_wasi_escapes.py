"""What the conformance suite does not try: a guest attacking its preopens with links it makes itself, `..`,
renames and trailing slashes; a `ro` preopen against every function that writes; rights; quotas.

Each test calls the WASI functions as a guest would (tests/run/unit/test_wasi_fs.py's `Guest`), over a
real sandbox directory with a secret beside it that nothing may reach.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ngixi_runtime import files
from ngixi_runtime.capabilities import wasi_paths
from ngixi_runtime.capabilities.base import Mount
from ngixi_runtime.capabilities.context import MAX_PATH_DEPTH
from ngixi_runtime.capabilities.wasi_files import WasiFilesystem
from ngixi_runtime.capabilities.wasi_quota import DiskQuota
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.spec.abi import (
    FDFLAG_APPEND,
    LOOKUP_SYMLINK_FOLLOW,
    OFLAG_CREAT,
    OFLAG_DIRECTORY,
    OFLAG_EXCL,
    OFLAG_TRUNC,
    RIGHT_FD_ALLOCATE,
    RIGHT_FD_FDSTAT_SET_FLAGS,
    RIGHT_FD_FILESTAT_SET_SIZE,
    RIGHT_FD_FILESTAT_SET_TIMES,
    RIGHT_FD_READ,
    RIGHT_FD_READDIR,
    RIGHT_FD_SEEK,
    RIGHT_FD_TELL,
    RIGHT_FD_WRITE,
    RIGHT_PATH_OPEN,
    RIGHTS,
    AbiFault,
    Errno,
)
from ngixi_runtime.spec.sandbox_layout import QUOTA_LEDGER_ENDING
from tests.file_events import watched_opens
from tests.integration import descriptors_of
from tests.run.unit.test_wasi_fs import BUFFER, CONFIG, DATA, IOV, OPTIONS, OUT, PATH, Guest, config_sandbox, granted

SECRET = b"the host's secret\n"
OTHER = PATH + 200  # a second path argument's place in memory
RO_CHANGES = RIGHT_FD_READ | RIGHT_FD_FILESTAT_SET_TIMES | RIGHT_FD_FDSTAT_SET_FLAGS


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """data (rw) and config (ro, holding settings.txt) in the sandbox; secret.txt and a directory beside it."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    return config_sandbox(tmp_path)


@pytest.fixture
def guest(sandbox: Path) -> Iterator[Guest]:
    yield from granted(sandbox, "fs")


def rename(guest: Guest, fd: int, path: str, new_fd: int, new_path: str) -> int:
    return guest.call("path_rename", fd, *guest.path(path), new_fd, *guest.path(new_path, at=OTHER))


def symlink(guest: Guest, target: str, fd: int, name: str) -> int:
    return guest.call("path_symlink", *guest.path(target, at=OTHER), fd, *guest.path(name))


def link(guest: Guest, fd: int, old: str, new_fd: int, new: str, *, lookup: int = 0) -> int:
    return guest.call("path_link", fd, lookup, *guest.path(old), new_fd, *guest.path(new, at=OTHER))


def untouched(sandbox: Path) -> None:
    assert (sandbox.parent / "secret.txt").read_bytes() == SECRET
    beside = sorted(p.name for p in sandbox.parent.iterdir() if p.name != f"sandbox{QUOTA_LEDGER_ENDING}")
    assert beside == ["outside", "sandbox", "secret.txt"]  # the disk quota's count the host keeps beside it
    assert list((sandbox.parent / "outside").iterdir()) == []
    assert sorted(p.name for p in (sandbox / "config").iterdir()) == ["settings.txt"]
    assert (sandbox / "config" / "settings.txt").read_text() == "original\n"


# --- links the guest makes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["../../secret.txt", "../config/settings.txt", "a/../../../secret.txt", "..", "../..", "./../../outside"],
)
def test_a_symlink_the_guest_makes_may_point_anywhere_but_is_never_followed_out(
    guest: Guest, sandbox: Path, target: str
) -> None:
    (sandbox / "data" / "a").mkdir()
    assert symlink(guest, target, DATA, "link") == Errno.SUCCESS
    for lookup in (0, LOOKUP_SYMLINK_FOLLOW):
        opened = guest.try_open(DATA, "link", lookup=lookup)
        assert opened == (wasi_paths.ESCAPE if lookup else Errno.LOOP)
        assert guest.try_open(DATA, "link/x", OFLAG_CREAT, RIGHT_FD_WRITE) == wasi_paths.ESCAPE
        assert guest.call("path_filestat_get", DATA, lookup, *guest.path("link/"), OUT) == wasi_paths.ESCAPE
    assert guest.call("path_create_directory", DATA, *guest.path("link/new")) == wasi_paths.ESCAPE
    # rename and rmdir of `link/` act on the link itself, never following it: NOTDIR, as Linux and Wasmtime 51 answer
    assert rename(guest, DATA, "link/", DATA, "moved") == Errno.NOTDIR
    assert guest.call("path_remove_directory", DATA, *guest.path("link/")) == Errno.NOTDIR
    assert link(guest, DATA, "link", DATA, "hard", lookup=LOOKUP_SYMLINK_FOLLOW) == wasi_paths.ESCAPE
    untouched(sandbox)


def test_an_absolute_symlink_is_refused_when_made_and_never_followed_when_found(guest: Guest, sandbox: Path) -> None:
    secret = sandbox.parent / "secret.txt"
    assert symlink(guest, str(secret), DATA, "link") == Errno.PERM
    (sandbox / "data" / "planted").symlink_to(secret)
    assert guest.try_open(DATA, "planted", lookup=LOOKUP_SYMLINK_FOLLOW) == wasi_paths.ESCAPE
    assert guest.try_open(DATA, "planted/", lookup=0) == wasi_paths.ESCAPE  # a trailing slash follows
    untouched(sandbox)


def test_chains_and_loops_of_symlinks(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "dir").mkdir()
    (sandbox / "data" / "dir" / "file").write_text("inside")
    for name, target in (("a", "b"), ("b", "c"), ("c", "dir"), ("up", "dir/../.."), ("x", "y"), ("y", "x")):
        assert symlink(guest, target, DATA, name) == Errno.SUCCESS
    assert guest.read(guest.open(DATA, "a/file")) == b"inside"  # a chain that stays inside works
    assert guest.try_open(DATA, "up/config/settings.txt") == wasi_paths.ESCAPE
    assert guest.try_open(DATA, "x", lookup=LOOKUP_SYMLINK_FOLLOW) == Errno.LOOP
    assert guest.try_open(DATA, "x/file") == Errno.LOOP
    untouched(sandbox)


def test_no_path_makes_the_host_hold_unbounded_descriptors(guest: Guest, sandbox: Path) -> None:
    """Each directory on the way is an open host descriptor; links could expand 4 KiB paths 32 times over."""
    (sandbox / "data" / "/".join(["d"] * 300)).mkdir(parents=True)
    before = descriptors_of().items()
    assert guest.try_open(DATA, "/".join(["d"] * 300), OFLAG_DIRECTORY, RIGHT_FD_READDIR) == Errno.NAMETOOLONG
    assert descriptors_of().items() - before == set()
    assert symlink(guest, "/".join(["d"] * 200), DATA, "half") == Errno.SUCCESS
    assert guest.try_open(DATA, "half/" + "/".join(["d"] * 100), OFLAG_DIRECTORY, RIGHT_FD_READDIR) == Errno.NAMETOOLONG
    assert guest.call("fd_close", guest.open(DATA, "/".join(["d"] * 250), OFLAG_DIRECTORY)) == Errno.SUCCESS
    assert descriptors_of().items() - before == set()


def test_a_symlink_swapped_in_while_a_path_is_resolved_fails_the_call(
    guest: Guest, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolution reads "dir" as a directory; by the time it is opened an attacker made it a symlink out."""
    (sandbox / "data" / "dir").symlink_to(sandbox.parent / "outside")
    monkeypatch.setattr(wasi_paths, "link_target", lambda directory, name: None)  # the check saw no link
    refused = (Errno.LOOP, Errno.NOTDIR)  # what O_NOFOLLOW (with O_DIRECTORY) gives on a symlink
    assert guest.try_open(DATA, "dir/new", OFLAG_CREAT, RIGHT_FD_WRITE) in refused
    assert guest.call("path_create_directory", DATA, *guest.path("dir/new")) in refused
    (sandbox / "data" / "last").symlink_to(sandbox.parent / "secret.txt")
    assert guest.try_open(DATA, "last", lookup=LOOKUP_SYMLINK_FOLLOW) == Errno.LOOP
    assert guest.try_open(DATA, "last", OFLAG_TRUNC, RIGHT_FD_WRITE, lookup=LOOKUP_SYMLINK_FOLLOW) == Errno.LOOP
    untouched(sandbox)


def test_removing_or_renaming_a_symlink_touches_the_link_only(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "out").symlink_to(sandbox.parent / "outside")
    (sandbox / "data" / "secret").symlink_to(sandbox.parent / "secret.txt")
    assert rename(guest, DATA, "out", DATA, "renamed") == Errno.SUCCESS
    assert guest.try_open(DATA, "renamed/x", OFLAG_CREAT, RIGHT_FD_WRITE) == wasi_paths.ESCAPE
    assert guest.call("path_remove_directory", DATA, *guest.path("renamed")) == Errno.NOTDIR
    assert guest.call("path_unlink_file", DATA, *guest.path("renamed")) == Errno.SUCCESS
    assert guest.call("path_unlink_file", DATA, *guest.path("secret")) == Errno.SUCCESS
    assert guest.call("path_unlink_file", DATA, *guest.path("secret/")) == Errno.NOENT
    untouched(sandbox)


def test_hard_links_work_inside_a_preopen_and_never_reach_out(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "file").write_text("mine")
    (sandbox / "data" / "secret").symlink_to(sandbox.parent / "secret.txt")
    assert link(guest, DATA, "file", DATA, "hard") == Errno.SUCCESS
    assert os.stat(sandbox / "data" / "hard").st_ino == os.stat(sandbox / "data" / "file").st_ino
    assert link(guest, DATA, "secret", DATA, "copy", lookup=LOOKUP_SYMLINK_FOLLOW) == wasi_paths.ESCAPE
    assert link(guest, DATA, "secret", DATA, "copy") == Errno.SUCCESS  # the symlink itself, still not followed
    assert guest.try_open(DATA, "copy", lookup=LOOKUP_SYMLINK_FOLLOW) == wasi_paths.ESCAPE
    assert link(guest, DATA, "file", DATA, "../escaped") == wasi_paths.ESCAPE
    assert link(guest, DATA, "../config/settings.txt", DATA, "stolen") == wasi_paths.ESCAPE
    untouched(sandbox)


@pytest.mark.parametrize("rights", [RIGHT_FD_READ, RIGHT_FD_WRITE, RIGHT_FD_READ | RIGHT_FD_WRITE])
def test_a_special_file_in_a_preopen_is_refused_without_waiting(guest: Guest, sandbox: Path, rights: int) -> None:
    """Opening a FIFO waited for its other end, holding the host in path_open past the call's deadline (which
    cannot stop a guest inside a host call): a FIFO, socket or device is NXIO, checked on the opened file."""
    os.mkfifo(sandbox / "data" / "pipe")
    (sandbox / "data" / "link").symlink_to("pipe")
    descriptors = descriptors_of().items()
    with socket.socket(socket.AF_UNIX) as listening, _alarm(5):  # without the fix the first open waits for ever
        listening.bind(str(sandbox / "data" / "socket"))
        for name in ("pipe", "link", "socket"):
            assert guest.try_open(DATA, name, rights=rights, lookup=LOOKUP_SYMLINK_FOLLOW) == Errno.NXIO, name
        reader = os.open(sandbox / "data" / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # a writer's open would not wait
        assert guest.try_open(DATA, "pipe", rights=rights) == Errno.NXIO
        os.close(reader)
    assert descriptors_of().items() - descriptors == set()  # nothing refused was left open
    with watched_opens(sandbox / "data" / "pipe") as opens:
        assert guest.try_open(DATA, "pipe", rights=rights) == Errno.NXIO
        assert guest.try_open(DATA, "link", rights=rights, lookup=LOOKUP_SYMLINK_FOLLOW) == Errno.NXIO
        assert opens() == 0  # refused unopened: an open wakes a FIFO's writer, runs a device's driver
    (sandbox / "data" / "plain").write_text("x")
    files = guest.ctx.states["fs"]
    assert isinstance(files, WasiFilesystem)
    plain = files._table[guest.open(DATA, "plain", rights=rights)]
    assert os.get_blocking(plain.host_fd)  # opened without waiting, then as the guest asked


_OPEN_FLAGS = [
    os.O_RDONLY,
    os.O_WRONLY,
    os.O_RDWR,
    os.O_CREAT,
    os.O_CREAT | os.O_WRONLY | os.O_TRUNC,
    os.O_CREAT | os.O_EXCL,
    os.O_DIRECTORY,
    os.O_CREAT | os.O_DIRECTORY,
    os.O_CREAT | os.O_EXCL | os.O_DIRECTORY,
    os.O_TRUNC | os.O_WRONLY,
]


@pytest.mark.parametrize("through_proc", [True, False])
@pytest.mark.parametrize("follow", [False, True])
def test_open_plain_answers_as_open_does_for_all_but_special_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow: bool, through_proc: bool
) -> None:
    """open_plain looks with O_PATH and opens through /proc: it once opened a directory asked for with O_CREAT
    (open(2): EISDIR; path_open with OFLAG_CREAT on a directory succeeded) and took O_CREAT | O_DIRECTORY (EINVAL).
    Without /proc it looks, opens and looks again; a FIFO is refused unopened both ways."""
    if not through_proc:
        monkeypatch.setattr(files, "_can_reopen", lambda: False)
    os.mkfifo(tmp_path / "fifo")
    with watched_opens(tmp_path / "fifo") as opens:
        with pytest.raises(files.SpecialFileError):
            files.open_plain(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)
        assert opens() == 0
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    for name, target in (("to-file", "file"), ("to-dir", "dir"), ("dangling", "nowhere")):
        (tmp_path / name).symlink_to(target)
    names = ["file", "to-file", "dir", "to-dir", "dir/", "dangling", "file/x", "missing", "missing/"]
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)

    def answer(opener: Callable[[str, int], int], name: str, flags: int) -> str:
        try:
            os.close(opener(name, flags))
        except OSError as error:
            return errno.errorcode.get(error.errno or 0, str(error))
        (tmp_path / "missing").unlink(missing_ok=True)
        return "opened"

    try:
        for name in names:
            for asked in _OPEN_FLAGS:
                if asked & os.O_CREAT and follow:
                    continue  # open_plain creates with O_NOFOLLOW only
                flags = asked | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
                expected = answer(lambda n, f: os.open(n, f, 0o644, dir_fd=directory), name, flags)
                got = answer(lambda n, f: files.open_plain(n, f, 0o644, dir_fd=directory)[0], name, flags)
                assert got == expected, (name, flags)
    finally:
        os.close(directory)


def test_path_open_of_a_directory_with_creat_is_isdir(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "made").mkdir()
    assert guest.try_open(DATA, "made", OFLAG_CREAT) == Errno.ISDIR
    assert guest.try_open(DATA, "made", OFLAG_CREAT | OFLAG_DIRECTORY, RIGHT_FD_READDIR) == Errno.INVAL
    assert guest.try_open(DATA, "made", OFLAG_CREAT | OFLAG_EXCL) == Errno.EXIST


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Ends a test stuck in a system call with an error (EINTR) instead of hanging the suite."""

    def interrupted(signum: int, frame: object) -> None:
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupted)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_dotdot_and_renames_cannot_leave_the_preopen(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "file").write_text("mine")
    assert rename(guest, DATA, "file", DATA, "../escaped") == wasi_paths.ESCAPE
    assert rename(guest, DATA, "../config/settings.txt", DATA, "stolen") == wasi_paths.ESCAPE
    assert rename(guest, DATA, "file", DATA, "/tmp/escaped") == wasi_paths.ESCAPE
    assert guest.call("path_readlink", DATA, *guest.path("../secret.txt"), BUFFER, 100, OUT) == wasi_paths.ESCAPE
    untouched(sandbox)


def test_a_preopen_whose_host_path_became_a_symlink_out_is_refused(sandbox: Path) -> None:
    """fs.py checked the real path; the preopen is still opened from the root, one O_NOFOLLOW step at a time."""
    (sandbox / "data").symlink_to(sandbox.parent / "outside")
    mount = Mount("/data", "rw", sandbox / "data")
    with pytest.raises(InvalidInput, match="leaves the sandbox through a symlink"):
        WasiFilesystem.over([mount], guest="g", root=sandbox)


# --- read-only preopens ------------------------------------------------------------------------


def _open_settings(guest: Guest) -> int:
    return guest.open(CONFIG, "settings.txt", 0, RO_CHANGES)


RO_CALLS: dict[str, Callable[[Guest], int]] = {
    "path_open CREAT": lambda g: g.try_open(CONFIG, "new", OFLAG_CREAT, 0),
    "path_open TRUNC": lambda g: g.try_open(CONFIG, "settings.txt", OFLAG_TRUNC, RIGHT_FD_READ),
    "path_open FD_WRITE": lambda g: g.try_open(CONFIG, "settings.txt", 0, RIGHT_FD_WRITE),
    "fd_write": lambda g: g.write(_open_settings(g), b"changed"),
    "fd_pwrite": lambda g: g.call("fd_pwrite", _open_settings(g), IOV, 1, 0, OUT),
    "fd_filestat_set_size": lambda g: g.call("fd_filestat_set_size", _open_settings(g), 0),
    "fd_filestat_set_times": lambda g: g.call("fd_filestat_set_times", _open_settings(g), 0, 0, 2 | 8),
    "path_filestat_set_times": lambda g: g.call(
        "path_filestat_set_times", CONFIG, 0, *g.path("settings.txt"), 0, 0, 2 | 8
    ),
    "path_create_directory": lambda g: g.call("path_create_directory", CONFIG, *g.path("new")),
    "path_remove_directory": lambda g: g.call("path_remove_directory", CONFIG, *g.path("settings.txt")),
    "path_unlink_file": lambda g: g.call("path_unlink_file", CONFIG, *g.path("settings.txt")),
    "path_rename out": lambda g: rename(g, CONFIG, "settings.txt", DATA, "moved"),
    "path_rename in": lambda g: rename(g, DATA, "file", CONFIG, "settings.txt"),
    "path_rename within": lambda g: rename(g, CONFIG, "settings.txt", CONFIG, "moved"),
    "path_link out": lambda g: link(g, CONFIG, "settings.txt", DATA, "writable"),
    "path_link in": lambda g: link(g, DATA, "file", CONFIG, "new"),
    "path_symlink": lambda g: symlink(g, "settings.txt", CONFIG, "new"),
}


@pytest.mark.parametrize("change", RO_CALLS)
def test_a_ro_preopen_refuses_every_function_that_writes(guest: Guest, sandbox: Path, change: str) -> None:
    (sandbox / "data" / "file").write_text("mine")
    guest.memory.write(BUFFER, b"changed")
    guest.memory.write(IOV, struct.pack("<II", BUFFER, 7))
    before = os.stat(sandbox / "config" / "settings.txt")
    assert RO_CALLS[change](guest) == Errno.PERM
    after = os.stat(sandbox / "config" / "settings.txt")
    assert (after.st_mtime_ns, after.st_atime_ns, after.st_nlink) == (before.st_mtime_ns, before.st_atime_ns, 1)
    assert (sandbox / "data" / "file").read_text() == "mine"
    untouched(sandbox)


@pytest.mark.parametrize(
    ("rights", "fdflags"),
    [(RIGHT_FD_READ, FDFLAG_APPEND), (RIGHT_FD_ALLOCATE, 0), (RIGHT_FD_READ | RIGHT_FD_FILESTAT_SET_SIZE, 0)],
    ids=["APPEND", "FD_ALLOCATE", "FD_FILESTAT_SET_SIZE"],
)
def test_a_ro_preopen_opens_to_read_what_asks_to_write_without_fd_write(
    guest: Guest, sandbox: Path, rights: int, fdflags: int
) -> None:
    """Wasmtime's WASI opens these for reading under a read-only preopen, for core guests and (through the adapter)
    components: only FD_WRITE, CREAT and TRUNC are refused there; they refused with PERM. APPEND stays in the
    descriptor's flags, as open(2) keeps O_RDONLY|O_APPEND's; setting it is no change (Wasmtime: success) and
    fd_allocate is NOTSUP, as anywhere; every write is still PERM."""
    fd = guest.open(CONFIG, "settings.txt", 0, rights | RIGHT_FD_FDSTAT_SET_FLAGS, fdflags=fdflags)
    assert guest.call("fd_fdstat_get", fd, OUT) == Errno.SUCCESS
    assert guest.memory.read(OUT + 2, 2) == struct.pack("<H", fdflags)
    assert guest.read(fd) == b"original\n"
    assert guest.call("fd_fdstat_set_flags", fd, FDFLAG_APPEND) == Errno.SUCCESS
    assert guest.call("fd_allocate", fd, 0, 100) == Errno.NOTSUP
    guest.memory.write(BUFFER, b"changed")
    guest.memory.write(IOV, struct.pack("<II", BUFFER, 7))
    assert guest.write(fd, b"changed") == Errno.PERM
    assert guest.call("fd_pwrite", fd, IOV, 1, 0, OUT) == Errno.PERM
    assert guest.call("fd_filestat_set_size", fd, 0) == Errno.PERM
    untouched(sandbox)


def test_a_ro_descriptor_stays_read_only_when_renumbered(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "file").write_text("mine")
    settings = _open_settings(guest)
    mine = guest.open(DATA, "file", 0, RIGHT_FD_READ | RIGHT_FD_WRITE)
    assert guest.call("fd_renumber", settings, mine) == Errno.SUCCESS
    assert guest.write(mine, b"changed") == Errno.PERM
    untouched(sandbox)


# --- rights --------------------------------------------------------------------------------------


def test_rights_are_narrowed_and_enforced(guest: Guest, sandbox: Path) -> None:
    """A descriptor lacks what its type or access mode cannot do (BADF, as a POSIX descriptor not open for it)
    and what fd_fdstat_set_rights removed (NOTCAPABLE); the other rights path_open asks for narrow nothing."""
    directory = guest.open(DATA, ".", OFLAG_DIRECTORY, RIGHT_FD_READDIR | RIGHT_FD_SEEK)
    assert guest.call("fd_seek", directory, 0, 0, OUT) == Errno.BADF  # a directory has no seek right
    assert guest.try_open(DATA, ".", OFLAG_DIRECTORY, RIGHT_FD_READ | RIGHT_FD_WRITE) == Errno.ISDIR
    file = guest.open(DATA, "file", OFLAG_CREAT, RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL)
    assert guest.write(file, b"x") == Errno.BADF
    assert guest.call("fd_fdstat_set_rights", file, RIGHT_FD_READ | RIGHT_FD_WRITE, 0) == Errno.NOTCAPABLE
    assert guest.call("fd_fdstat_set_rights", file, RIGHT_FD_READ, 0) == Errno.SUCCESS
    assert guest.call("fd_seek", file, 0, 0, OUT) == Errno.NOTCAPABLE
    # A directory that may hand down only reading gives no more, whatever is asked.
    assert guest.call("fd_fdstat_set_rights", directory, RIGHT_FD_READDIR, 0) == Errno.SUCCESS
    assert guest.try_open(directory, "file", 0, RIGHT_FD_READ) == Errno.NOTCAPABLE  # no PATH_OPEN left


def test_rights_path_open_asks_for_beyond_reading_and_writing_narrow_nothing(guest: Guest, sandbox: Path) -> None:
    """Wasmtime's own p1 programs open files with FD_READ or FD_WRITE alone, then seek, tell, stat, pread and
    poll them; they expect a directory to be BADF for every call that reads, writes, seeks or syncs it."""
    (sandbox / "data" / "file").write_text("mine")
    reader = guest.open(DATA, "file", 0, RIGHT_FD_READ)
    assert guest.call("fd_seek", reader, 2, 0, OUT) == Errno.SUCCESS
    assert guest.call("fd_tell", reader, OUT) == Errno.SUCCESS
    assert guest.call("fd_filestat_get", reader, OUT) == Errno.SUCCESS
    assert guest.call("fd_pread", reader, IOV, 1, 0, OUT) == Errno.SUCCESS
    assert guest.write(reader, b"") == Errno.BADF
    writer = guest.open(DATA, "file", 0, RIGHT_FD_WRITE)
    assert guest.call("fd_read", writer, IOV, 1, OUT) == Errno.BADF
    directory = guest.open(DATA, ".", OFLAG_DIRECTORY, 0)
    calls: list[tuple[str, tuple[int, ...]]] = [
        ("fd_sync", ()),
        ("fd_datasync", ()),
        ("fd_fdstat_set_flags", (4,)),  # NONBLOCK
        ("fd_allocate", (0, 0)),
    ]
    for call, args in calls:
        assert guest.call(call, directory, *args) == Errno.BADF, call
    assert (sandbox / "data" / "file").read_text() == "mine"


def _read_only_mine(g: Guest) -> int:
    return g.open(DATA, "file", 0, RIGHT_FD_READ | RIGHT_FD_SEEK | RIGHT_FD_TELL)


# Every function that changes a file's bytes through its descriptor, on one opened under the rw preopen for
# reading: not open for writing (BADF, as POSIX and Wasmtime; ftruncate(2)'s INVAL), fd_allocate supported by
# none (NOTSUP, as Wasmtime), and the right to write cannot be added (NOTCAPABLE).
WRITES_THROUGH_A_DESCRIPTOR: dict[str, tuple[Callable[[Guest], int], Errno]] = {
    "fd_write": (lambda g: g.write(_read_only_mine(g), b"changed"), Errno.BADF),
    "fd_pwrite": (lambda g: g.call("fd_pwrite", _read_only_mine(g), IOV, 1, 0, OUT), Errno.BADF),
    "fd_allocate": (lambda g: g.call("fd_allocate", _read_only_mine(g), 0, 100), Errno.NOTSUP),
    "fd_filestat_set_size": (lambda g: g.call("fd_filestat_set_size", _read_only_mine(g), 0), Errno.INVAL),
    "fd_fdstat_set_rights back": (
        lambda g: g.call("fd_fdstat_set_rights", _read_only_mine(g), RIGHT_FD_READ | RIGHT_FD_WRITE, 0),
        Errno.NOTCAPABLE,
    ),
}


@pytest.mark.parametrize("change", WRITES_THROUGH_A_DESCRIPTOR)
def test_a_descriptor_opened_to_read_under_a_rw_preopen_cannot_change_its_file(
    guest: Guest, sandbox: Path, change: str
) -> None:
    (sandbox / "data" / "file").write_text("mine")
    before = os.stat(sandbox / "data" / "file")
    guest.memory.write(BUFFER, b"changed")
    guest.memory.write(IOV, struct.pack("<II", BUFFER, 7))
    call, refusal = WRITES_THROUGH_A_DESCRIPTOR[change]
    assert call(guest) == refusal
    after = os.stat(sandbox / "data" / "file")
    assert (sandbox / "data" / "file").read_text() == "mine"
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_what_a_directory_hands_down_is_narrowed_by_fd_fdstat_set_rights_only(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "sub").mkdir()
    (sandbox / "data" / "sub" / "file").write_text("mine")
    everything, directory = RIGHTS, OFLAG_DIRECTORY
    # The inheriting rights path_open is asked for are not enforced (as Wasmtime's WASI): Zig's std asks a
    # directory for inheriting rights without FD_READ or FD_WRITE, then opens files through it to write them.
    opened = guest.call("path_open", DATA, 0, *guest.path("sub"), directory, RIGHT_PATH_OPEN, RIGHT_PATH_OPEN, 0, OUT)
    assert opened == Errno.SUCCESS
    sub = guest.u32(OUT)
    assert guest.write(guest.open(sub, "file", 0, RIGHT_FD_READ | RIGHT_FD_WRITE), b"x") == Errno.SUCCESS
    # fd_fdstat_set_rights narrows what it hands down, through every level, and can never widen it again.
    assert guest.call("fd_fdstat_set_rights", sub, RIGHT_PATH_OPEN, RIGHT_PATH_OPEN | RIGHT_FD_READ) == 0
    assert guest.call("path_open", sub, 0, *guest.path("."), directory, everything, everything, 0, OUT) == 0
    inner = guest.u32(OUT)
    assert guest.call("fd_fdstat_get", inner, OUT) == Errno.SUCCESS
    _, _, rights, inheriting = struct.unpack("<BxH4xQQ", guest.memory.read(OUT, 24))
    assert (rights, inheriting) == (RIGHT_PATH_OPEN, RIGHT_PATH_OPEN | RIGHT_FD_READ)
    file = guest.open(inner, "file", 0, everything)
    assert guest.read(file) == b"xine"
    assert guest.write(file, b"y") == Errno.NOTCAPABLE
    assert guest.try_open(inner, "new", OFLAG_CREAT, RIGHT_FD_WRITE) == Errno.NOTCAPABLE  # no PATH_CREATE_FILE
    assert guest.call("fd_fdstat_set_rights", sub, RIGHT_PATH_OPEN, everything) == Errno.NOTCAPABLE
    assert (sandbox / "data" / "sub" / "file").read_text() == "xine"
    assert sorted(p.name for p in (sandbox / "data" / "sub").iterdir()) == ["file"]


def test_odd_bytes_and_huge_numbers_are_answered_not_crashed_on(guest: Guest, sandbox: Path) -> None:
    os.close(os.open(os.fsencode(sandbox / "data") + b"/caf\xe9", os.O_CREAT | os.O_WRONLY))  # not UTF-8
    os.symlink(b"caf\xe9", os.fsencode(sandbox / "data") + b"/alias")
    directory = guest.open(DATA, ".", OFLAG_DIRECTORY, RIGHT_FD_READDIR)
    assert guest.call("fd_readdir", directory, BUFFER, 1024, 0, OUT) == Errno.SUCCESS
    assert b"caf\xe9" in guest.memory.read(BUFFER, guest.u32(OUT))
    assert guest.call("path_readlink", DATA, *guest.path("alias"), BUFFER, 100, OUT) == Errno.SUCCESS
    assert guest.memory.read(BUFFER, guest.u32(OUT)) == b"caf\xe9"
    file = guest.open(DATA, "file", OFLAG_CREAT, RIGHT_FD_FILESTAT_SET_TIMES | RIGHT_FD_FILESTAT_SET_SIZE)
    assert guest.call("fd_filestat_set_times", file, -1, -1, 1 | 4) == Errno.SUCCESS  # the file system's latest
    assert (sandbox / "data" / "file").stat().st_mtime_ns > time.time_ns()
    assert guest.call("fd_filestat_set_size", file, -1) == Errno.INVAL
    assert guest.call("fd_seek", file, -1, 0, OUT) == Errno.INVAL  # before the start
    assert guest.call("fd_fdstat_set_rights", file, RIGHTS, RIGHTS) == Errno.NOTCAPABLE
    assert guest.call("fd_fdstat_set_rights", file, -1, -1) == Errno.INVAL  # rights witx does not define


def _listed_inodes(guest: Guest, directory: int) -> dict[str, int]:
    assert guest.call("fd_readdir", directory, BUFFER, 1024, 0, OUT) == Errno.SUCCESS
    listing, inodes = guest.memory.read(BUFFER, guest.u32(OUT)), {}
    while listing:
        inode, length = struct.unpack_from("<QI", listing, 8)
        inodes[listing[24 : 24 + length].decode()] = inode
        listing = listing[24 + length :]
    return inodes


def test_a_preopens_dotdot_entry_shows_the_preopen_not_the_host_directory_above(guest: Guest, sandbox: Path) -> None:
    (sandbox / "data" / "sub").mkdir()
    data, sub = (sandbox / "data").stat().st_ino, (sandbox / "data" / "sub").stat().st_ino
    for directory in (DATA, guest.open(DATA, "sub/..", OFLAG_DIRECTORY, RIGHT_FD_READDIR)):
        assert _listed_inodes(guest, directory) == {".": data, "..": data, "sub": sub}
    below = guest.open(DATA, "sub", OFLAG_DIRECTORY, RIGHT_FD_READDIR)
    assert _listed_inodes(guest, below) == {".": sub, "..": data}  # beneath a preopen, the parent as it is


# --- stdio in the descriptor table, and its quota ---------------------------------------------


def test_stdout_renumbered_still_counts_against_the_quota(sandbox: Path) -> None:
    for guest in granted(sandbox, "stdio", "fs"):
        file = guest.open(DATA, "file", OFLAG_CREAT, RIGHT_FD_WRITE)
        assert guest.call("fd_renumber", 1, file) == Errno.SUCCESS
        assert guest.call("fd_fdstat_get", 1, OUT) == Errno.BADF
        assert guest.write(file, b"x" * 60) == Errno.SUCCESS
        with pytest.raises(GuestError, match="exceeded its quota of 100 bytes"):
            guest.write(2, b"y" * 60)
        assert bytes(guest.ctx.output.stdout) == b"x" * 60
    assert (sandbox / "data" / "file").read_bytes() == b""


# --- the disk quota of the rw preopens ---------------------------------------------------------

QUOTA = OPTIONS._replace(max_bytes=100, max_files=3)


def _quota_guest(sandbox: Path) -> Iterator[Guest]:
    return granted(sandbox, "fs", options=QUOTA)


def _file(guest: Guest, name: str) -> int:
    rights = RIGHT_FD_WRITE | RIGHT_FD_SEEK | RIGHT_FD_FILESTAT_SET_SIZE | RIGHT_FD_ALLOCATE
    return guest.open(DATA, name, OFLAG_CREAT, rights)


def test_a_guest_cannot_fill_the_disk_through_its_rw_preopens(sandbox: Path) -> None:
    """Nothing bounded what a guest wrote, or how many names it made, under a rw preopen: one call after
    another filled the host's disk. Growth past max_bytes and names past max_files are DQUOT, and undone."""
    (sandbox / "data").mkdir()
    (sandbox / "data" / "old").write_bytes(b"o" * 40)  # there before the load: counted
    for guest in _quota_guest(sandbox):
        file = _file(guest, "new")  # names: old, new
        assert guest.write(file, b"x" * 50) == Errno.SUCCESS  # 90 bytes
        assert guest.write(file, b"x" * 20) == Errno.DQUOT
        guest.memory.write(BUFFER, b"y")
        guest.memory.write(IOV, struct.pack("<II", BUFFER, 1))
        assert guest.call("fd_pwrite", file, IOV, 1, 1 << 40, OUT) == Errno.DQUOT
        assert guest.call("fd_filestat_set_size", file, 1 << 40) == Errno.DQUOT
        assert os.stat(sandbox / "data" / "new").st_size == 50
        assert guest.call("path_create_directory", DATA, *guest.path("dir")) == Errno.SUCCESS  # 3 names
        assert symlink(guest, "new", DATA, "alias") == Errno.DQUOT
        assert guest.call("path_create_directory", DATA, *guest.path("dir")) == Errno.EXIST  # as mkdir(2) says
        assert link(guest, DATA, "new", DATA, "hard") == Errno.DQUOT
        assert guest.try_open(DATA, "more", OFLAG_CREAT, RIGHT_FD_WRITE) == Errno.DQUOT
        assert guest.call("path_unlink_file", DATA, *guest.path("old")) == Errno.SUCCESS  # 40 bytes, a name back
        assert guest.write(file, b"x" * 20) == Errno.SUCCESS
        assert guest.call("fd_filestat_set_size", file, 10) == Errno.SUCCESS  # 10 bytes
        assert guest.call("fd_filestat_set_size", file, 100) == Errno.SUCCESS
    assert sorted(p.name for p in (sandbox / "data").iterdir()) == ["dir", "new"]
    for guest in _quota_guest(sandbox):  # a new load counts what the last one left
        assert guest.call("fd_filestat_set_size", _file(guest, "new"), 101) == Errno.DQUOT


def test_what_an_earlier_version_left_outside_the_mounts_counts_and_read_only_contents_do_not(sandbox: Path) -> None:
    """The walk measured only the rw preopens: each version of a guest mounting a new folder got max_bytes more of
    the disk, and what the last one filled stayed. The whole sandbox counts now, but what ro preopens hold."""
    (sandbox / "earlier").mkdir()
    (sandbox / "earlier" / "filled").write_bytes(b"e" * 90)
    (sandbox / "config" / "large").write_bytes(b"c" * 1000)  # the operator's: the guest cannot change it
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "new"), b"x" * 20) == Errno.DQUOT
        assert guest.write(_file(guest, "new"), b"x" * 10) == Errno.SUCCESS


def test_a_removed_file_frees_nothing_while_open_or_named_elsewhere(sandbox: Path) -> None:
    for guest in _quota_guest(sandbox):
        kept_open = _file(guest, "a")
        assert guest.write(kept_open, b"a" * 60) == Errno.SUCCESS
        assert guest.call("path_unlink_file", DATA, *guest.path("a")) == Errno.SUCCESS  # still on disk
        other = _file(guest, "b")
        assert guest.write(other, b"b" * 40) == Errno.SUCCESS
        assert link(guest, DATA, "b", DATA, "c") == Errno.SUCCESS
        assert rename(guest, DATA, "c", DATA, "b") == Errno.SUCCESS  # two names of one file: nothing happens
        assert guest.call("path_unlink_file", DATA, *guest.path("b")) == Errno.SUCCESS  # its other name is gone
        assert guest.write(other, b"b") == Errno.DQUOT
        assert guest.call("fd_close", kept_open) == Errno.SUCCESS


def test_a_tree_too_deep_to_walk_fills_the_quota_instead_of_hiding_from_it(sandbox: Path) -> None:
    """A guest can nest directories one descriptor at a time, deeper than any path reaches. The first walk
    recursed once per level (1,200 levels: RecursionError at the next load) and held a descriptor per level;
    a tree deeper than MAX_PATH_DEPTH now counts as a full quota: nothing may grow or be added."""
    (sandbox / "data").mkdir()
    (sandbox / "data" / "top").write_bytes(b"t")
    bottom = os.open(sandbox / "data", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(MAX_PATH_DEPTH + 10):
        os.mkdir("d", dir_fd=bottom)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=bottom)
        os.close(bottom)
        bottom = inner
    hidden = os.open("hidden", os.O_CREAT | os.O_WRONLY, dir_fd=bottom)
    os.ftruncate(hidden, 1 << 30)
    os.close(hidden)
    os.close(bottom)
    for guest in granted(sandbox, "fs", options=OPTIONS._replace(max_bytes=2 << 30, max_files=100_000)):
        assert guest.write(_file(guest, "top"), b"more") == Errno.DQUOT
        assert guest.call("path_create_directory", DATA, *guest.path("new")) == Errno.DQUOT


def test_instances_running_at_once_share_one_count(sandbox: Path) -> None:
    """Each instance measured the sandbox at its load and then counted only its own changes: two running at once
    wrote 100 bytes each under a 100-byte quota, N instances N times it. Bytes and names are one count now."""
    first, second = _quota_guest(sandbox), _quota_guest(sandbox)
    one, two = next(first), next(second)
    a = _file(one, "a")
    assert one.write(a, b"a" * 60) == Errno.SUCCESS
    assert one.call("fd_close", a) == Errno.SUCCESS
    b = _file(two, "b")  # names: data's a, b
    assert two.write(b, b"b" * 60) == Errno.DQUOT
    assert two.write(b, b"b" * 40) == Errno.SUCCESS
    assert one.call("path_create_directory", DATA, *one.path("dir")) == Errno.SUCCESS
    assert two.call("path_create_directory", DATA, *two.path("more")) == Errno.DQUOT
    assert two.call("path_unlink_file", DATA, *two.path("a")) == Errno.SUCCESS  # the other's file: 60 bytes back
    assert one.write(_file(one, "c"), b"c" * 60) == Errno.SUCCESS
    for ended in (first, second):
        next(ended, None)
    assert sum(f.stat().st_size for f in (sandbox / "data").iterdir() if f.is_file()) == 100


def test_a_file_another_instance_holds_open_frees_nothing_when_removed(sandbox: Path) -> None:
    """With one count, an instance removing a file another holds open freed its bytes, which stay on disk while it is
    held: the holder filled the quota again and again, each file removed by the other (limits.open_files times
    max_bytes). The bytes stay counted now; and a file removed between another's open and its use is NOENT there."""
    first, second = _quota_guest(sandbox), _quota_guest(sandbox)
    one, two = next(first), next(second)
    held = _file(one, "a")
    assert one.write(held, b"a" * 60) == Errno.SUCCESS
    assert two.call("path_unlink_file", DATA, *two.path("a")) == Errno.SUCCESS
    assert one.write(_file(one, "b"), b"b" * 60) == Errno.DQUOT
    assert one.call("fd_close", held) == Errno.SUCCESS  # its bytes leave the disk: still counted, until measured again
    two.write(_file(two, "c"), b"c" * 10)
    assert two.call("path_rename", DATA, *two.path("c"), DATA, *two.path("b", at=OTHER)) == Errno.SUCCESS
    for ended in (first, second):
        next(ended, None)
    for guest in _quota_guest(sandbox):  # measured: "b", 10 bytes
        assert guest.write(_file(guest, "d"), b"d" * 90) == Errno.SUCCESS


def test_a_file_removed_before_its_opener_holds_it_is_not_found_there(sandbox: Path) -> None:
    """The race `held` closes: another instance's removal, which freed the bytes, came between this one's open(2) and
    its lock; the file is NOENT, so no one holds the bytes the count no longer has."""
    for guest in _quota_guest(sandbox):
        (sandbox / "data" / "late").write_bytes(b"l" * 10)
        opened = os.open(sandbox / "data" / "late", os.O_RDONLY)
        os.unlink(sandbox / "data" / "late")
        filesystem = guest.ctx.states["fs"]
        assert isinstance(filesystem, WasiFilesystem)
        with pytest.raises(AbiFault) as refused:
            filesystem._quota.held(opened)
        os.close(opened)
        assert refused.value.code == Errno.NOENT


def test_only_files_the_guest_may_remove_are_held_locked(sandbox: Path) -> None:
    """What an instance holds open carries a shared lock, so that another's removal frees nothing; a file of a ro
    preopen (the operator's, which the guest cannot remove) does not, or an operator's program locking it to change
    it would wait for as long as the guest kept it open."""
    (sandbox / "data").mkdir()
    (sandbox / "data" / "own").write_bytes(b"o")
    for guest in _quota_guest(sandbox):
        assert guest.open(CONFIG, "settings.txt") > 0 and guest.open(DATA, "own") > 0
        with open(sandbox / "config" / "settings.txt", "rb") as operators:
            fcntl.flock(operators, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with open(sandbox / "data" / "own", "rb") as others, pytest.raises(BlockingIOError):
            fcntl.flock(others, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_count_left_too_high_is_measured_again_once_no_instance_runs(sandbox: Path) -> None:
    """A change is counted before it is made, so an instance killed meanwhile leaves the shared count too high;
    the next instance to find none other running measures the sandbox instead of reading it."""
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "a"), b"a" * 10) == Errno.SUCCESS
    ledger = sandbox.with_name(sandbox.name + QUOTA_LEDGER_ENDING)
    ledger.write_bytes(struct.pack("<QQ", 100, 3))
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "b"), b"b" * 90) == Errno.SUCCESS


def test_a_load_after_every_instance_ended_reads_the_count_instead_of_walking_the_sandbox(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox was walked at each load when no other instance ran: a guest that made a million names made every
    later load walk them (seconds). The last instance to end leaves the count stamped exact, and the next load
    trusts it while the sandbox's folders are as that instance left them."""
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "a"), b"a" * 10) == Errno.SUCCESS
    monkeypatch.setattr(DiskQuota, "_walk", lambda *_: pytest.fail("walked the sandbox"))
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "b"), b"b" * 91) == Errno.DQUOT  # a's 10 bytes still counted
        assert guest.write(_file(guest, "b"), b"b" * 90) == Errno.SUCCESS
    monkeypatch.undo()
    time.sleep(0.05)  # a clock tick of the file system's later: a change within the ledger's own is not told apart
    (sandbox / "data" / "a").unlink()  # an operator's change where the guest's folders are: measured again
    for guest in _quota_guest(sandbox):
        assert guest.write(_file(guest, "c"), b"c" * 10) == Errno.SUCCESS


@pytest.mark.parametrize("planted", ["symlink", "hard link", "others may write"])
def test_a_count_that_is_not_the_hosts_alone_is_refused(sandbox: Path, planted: str) -> None:
    ledger = sandbox.with_name(sandbox.name + QUOTA_LEDGER_ENDING)
    elsewhere = sandbox.parent / "outside" / "count"
    elsewhere.write_bytes(bytes(16))
    if planted == "symlink":
        ledger.symlink_to(elsewhere)
    elif planted == "hard link":
        os.link(elsewhere, ledger)
    else:
        ledger.write_bytes(bytes(16))
        ledger.chmod(0o666)
    before = descriptors_of()
    with pytest.raises(InvalidInput, match=f"^g: .*{ledger}.*remove it"):
        next(_quota_guest(sandbox))
    assert descriptors_of() == before


def test_a_change_that_fails_counts_nothing() -> None:
    quota = DiskQuota(100, 10)
    with pytest.raises(OSError), quota.growing(0, 60):
        raise OSError(errno.EIO, "the disk failed")
    with quota.growing(0, 100):  # all of it is still there
        pass
    assert quota.used_bytes == 100
    assert quota.exact
    with pytest.raises(KeyboardInterrupt), quota.growing(100, 50):  # a signal, once the change may be made
        raise KeyboardInterrupt
    assert not quota.exact  # measured when no instance runs


def test_a_file_grown_by_set_size_counts_its_growth_once(sandbox: Path) -> None:
    """fd_filestat_set_size counted a file's growth while it grew it, then "gave back" a negative amount: the
    growth twice, so a guest that set a file to 60 bytes under a 100-byte quota could write nothing more."""
    for guest in _quota_guest(sandbox):
        file = _file(guest, "grown")
        assert guest.call("fd_filestat_set_size", file, 60) == Errno.SUCCESS
        assert guest.call("fd_pwrite", file, *_one_byte_at(guest, 99)) == Errno.SUCCESS  # 100 bytes, not 160
        assert guest.call("fd_pwrite", file, *_one_byte_at(guest, 100)) == Errno.DQUOT


def _one_byte_at(guest: Guest, offset: int) -> tuple[int, int, int, int]:
    guest.memory.write(BUFFER, b"y")
    guest.memory.write(IOV, struct.pack("<II", BUFFER, 1))
    return IOV, 1, offset, OUT


def test_a_removed_file_frees_its_bytes_when_its_last_descriptor_closes(sandbox: Path) -> None:
    """A file removed while open (tmpfile's way: create, unlink, use, close) kept its bytes counted after its
    last descriptor closed, when they leave the disk: a tenant's instance doing so twice was out of quota with
    an empty directory. They are freed by the close (or renumber) of its last descriptor."""
    for guest in _quota_guest(sandbox):
        for name in ("a", "b", "c"):
            temporary = _file(guest, name)
            assert guest.write(temporary, b"t" * 60) == Errno.SUCCESS
            assert guest.call("path_unlink_file", DATA, *guest.path(name)) == Errno.SUCCESS
            if name == "b":  # its last descriptor is replaced by another
                assert guest.call("fd_renumber", _file(guest, "kept"), temporary) == Errno.SUCCESS
            else:
                assert guest.call("fd_close", temporary) == Errno.SUCCESS
        shared = _file(guest, "shared")  # two descriptors of one removed file: the last close frees it
        assert guest.write(shared, b"s" * 60) == Errno.SUCCESS
        again = guest.open(DATA, "shared", 0, RIGHT_FD_WRITE)
        assert guest.call("path_unlink_file", DATA, *guest.path("shared")) == Errno.SUCCESS
        assert guest.call("fd_close", shared) == Errno.SUCCESS
        assert guest.write(_file(guest, "d"), b"d" * 60) == Errno.DQUOT
        assert guest.call("fd_close", again) == Errno.SUCCESS
        assert guest.write(_file(guest, "d"), b"d" * 60) == Errno.SUCCESS


@pytest.mark.parametrize("meanwhile", ["removed", "a symlink", "a file"])
def test_a_directory_that_changes_during_the_walk_is_passed_over(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """Another instance of the tenant may remove or replace a directory between the walk's listing of its name and
    its open: the next load failed with "cannot open the preopen" naming the directory inside it."""
    data = sandbox / "data"
    (data / "going").mkdir(parents=True)
    (data / "kept").write_bytes(b"k" * 10)
    real_open = os.open

    def changing_first(name: str, flags: int, *args: object, dir_fd: int | None = None) -> int:
        if name == "going" and (data / "going").is_dir():
            (data / "going").rmdir()
            if meanwhile == "a symlink":
                (data / "going").symlink_to("/")
            elif meanwhile == "a file":
                (data / "going").write_bytes(b"")
        return real_open(name, flags, *args, dir_fd=dir_fd)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", changing_first)
    directory = real_open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        quota = DiskQuota.measured([directory], 100, 10)
    finally:
        os.close(directory)
    assert (quota.used_bytes, quota.used_names) == (10, 2)


def test_a_name_that_exists_is_exist_whatever_the_quota(sandbox: Path) -> None:
    """With the names quota full, path_symlink and path_link to a name that exists answered DQUOT where
    symlink(2) and link(2) say EXIST (a lock taken by link() or symlink() reads EXIST as "held")."""
    for guest in _quota_guest(sandbox):
        for name in ("a", "b", "c"):
            _file(guest, name)
        assert symlink(guest, "a", DATA, "b") == Errno.EXIST
        assert link(guest, DATA, "a", DATA, "b") == Errno.EXIST
        assert guest.call("path_create_directory", DATA, *guest.path("b")) == Errno.EXIST
        assert guest.try_open(DATA, "b", OFLAG_CREAT | OFLAG_EXCL, RIGHT_FD_WRITE) == Errno.EXIST
        assert symlink(guest, "a", DATA, "d") == Errno.DQUOT


def test_a_symlinks_target_counts_as_bytes(sandbox: Path) -> None:
    """A symbolic link's target is bytes the guest chose, kept on disk (a block of its own past 60 bytes on ext4):
    max_files symlinks of 4 KiB targets each held 4 KiB beyond max_bytes. It counts against max_bytes now, made,
    found at load, and freed when the link's last name goes."""
    target = "t" * 60
    for guest in _quota_guest(sandbox):
        assert symlink(guest, target, DATA, "first") == Errno.SUCCESS
        assert symlink(guest, target, DATA, "second") == Errno.DQUOT
        assert guest.write(_file(guest, "file"), b"x" * 41) == Errno.DQUOT
        assert link(guest, DATA, "first", DATA, "again") == Errno.SUCCESS  # the same link: nothing more
        assert guest.call("path_unlink_file", DATA, *guest.path("first")) == Errno.SUCCESS
        assert symlink(guest, target, DATA, "second") == Errno.DQUOT  # `again` still holds it
        assert rename(guest, DATA, "file", DATA, "again") == Errno.SUCCESS
        assert symlink(guest, target, DATA, "second") == Errno.SUCCESS
    for guest in _quota_guest(sandbox):  # a new load counts the link it finds
        assert guest.write(_file(guest, "again"), b"x" * 41) == Errno.DQUOT
