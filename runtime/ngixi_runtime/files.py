"""Atomic file output (write to a temporary file beside the target, then rename it into place), and reading
the files a user names: bounded, regular files only (a FIFO or device is never waited on), TOML with one-line
errors."""

from __future__ import annotations

import errno
import functools
import math
import os
import re
import select
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

import tomli

from ngixi_runtime.errors import InvalidInput

# What our writers leave if killed mid-write, beside the file they were making: `.<name>.<mkstemp's 8
# random characters>.tmp` (atomic_output, release staging directories) or `.<stem>.<8>.wasm` (compile).
_TEMPORARY_NAME = r"^\..+\.[a-z0-9_]{8}\.(tmp|wasm)$"  # a pattern, compiled by `re` when first used


_DIGEST_CHUNK = 1 << 20
_SYNC = ContextVar("fsync before rename", default=True)


def is_temporary_name(name: str) -> bool:
    return re.match(_TEMPORARY_NAME, name) is not None


def environment_path(name: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The path `$name` gives, None when it is unset or empty; refused unless absolute: a relative one would name
    a file in whatever directory a command runs in, such as one someone else prepared."""
    value = environ.get(name)
    if not value:
        return None
    if not os.path.isabs(value):
        raise InvalidInput(
            f"${name}: must be an absolute path, not {value!r}, which would name a file in whatever directory "
            "ngixi runs in"
        )
    return Path(value)


def user_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """This user's cache of ngixi: $XDG_CACHE_HOME/ngixi (when absolute), else ~/.cache/ngixi; RuntimeError when
    there is no home directory to be found, InvalidInput when $HOME names none (`home_directory`)."""
    xdg = environ.get("XDG_CACHE_HOME", "")
    if Path(xdg).is_absolute():
        return Path(xdg) / "ngixi"
    return home_directory(environ, "ngixi's cache", "$XDG_CACHE_HOME") / ".cache" / "ngixi"


def home_directory(environ: Mapping[str, str], what: str, instead: str) -> Path:
    """This user's home directory, under which `what` is kept unless `instead` (the variables naming it) says
    otherwise: $HOME when set, else the password database's entry (RuntimeError when there is none). An empty or
    relative $HOME is refused (Python takes an empty one as / or the working directory), and so is one that does
    not exist, which would be made (as root, /nonexistent)."""
    home = environ.get("HOME")
    if home is None:
        import pwd

        try:
            return Path(pwd.getpwuid(os.getuid()).pw_dir)
        except KeyError:
            raise RuntimeError("no home directory: $HOME is unset and this user has no password entry") from None
    problem = home_problem(home)
    if problem is not None:
        raise InvalidInput(
            f"$HOME: {home[:200]!r} {problem}, and {what} would be kept under it; set HOME to your home directory, "
            f"or name the directory with {instead}"
        )
    return Path(home)


def home_problem(home: str) -> str | None:
    """Why `home`, the value of $HOME, names no home directory, or None when it names one."""
    if not os.path.isabs(home):
        return "is not an absolute path"
    return None if os.path.isdir(home) else "is not an existing directory"


@contextmanager
def without_fsync() -> Iterator[None]:
    """Atomic writes in this block skip fsync: still whole or absent, but maybe lost in a power cut.

    For outputs that are rebuilt at will and verified when read (watch mode's dev builds).
    """
    token = _SYNC.set(False)
    try:
        yield
    finally:
        _SYNC.reset(token)


def not_a_directory(path: Path) -> str | None:
    """Why `path` cannot be a directory, made if missing: it, or the nearest of the paths above it that exists,
    is not one ("is not a directory", "is under /dev/null, which is not a directory"); None when it can."""
    existing = next((p for p in (path, *path.absolute().parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        return None
    return "is not a directory" if existing == path else f"is under {existing}, which is not a directory"


def make_directories(path: Path, mode: int) -> None:
    """Makes `path` and each missing directory above it with `mode` (less the umask), as `mkdir -p -m` would not:
    `Path.mkdir` gives the directories above the umask's mode alone, group- or world-writable under a umask of 002
    or 000, where `local_paths` then refuses what this user made."""
    try:
        path.mkdir(mode=mode, exist_ok=True)
    except FileNotFoundError:
        make_directories(path.parent, mode)
        path.mkdir(mode=mode, exist_ok=True)


class _PrivateCreation:
    """Narrows the process's umask to its user alone while any caller is inside (`private_creation`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._before = 0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if not self._inside:
                self._before = os.umask(0o077)
                os.umask(self._before | 0o077)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if not self._inside:
                    os.umask(self._before)


private_creation = _PrivateCreation()
"""While inside, what this process creates is its user's alone (mode bits of group and others cleared), whatever
the umask: for code that makes a guest's files with modes we cannot choose (Wasmtime's WASI, SQLite). The umask is
process-wide: other threads' files made meanwhile are private too; the one before is back when the last caller
leaves."""


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o644, new: bool = False) -> Iterator[IO[bytes]]:
    """Yields a file that replaces `path` only if the block completes; else nothing changes.

    `new`: `path` must not exist, even if something (another process) made it while the block ran: then
    FileExistsError, and what is there stays. A look before writing cannot promise that; a hard link can.
    """
    import tempfile  # here: it imports shutil and random, which a run that writes nothing never needs

    path.parent.mkdir(parents=True, exist_ok=True)
    with _naming(path):
        descriptor, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with _naming(path), os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            if _SYNC.get():
                os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        _put_in_place(temporary, path, new=new)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError of writing `path` names it: a full disk's ENOSPC from a write names no file (the CLI then said
    'unexpected OSError'), and one of its temporary file names a file the user did not name. An error that names
    another file (one the block read) is left as it is."""
    try:
        yield
    except OSError as error:
        if error.errno is None or (
            error.filename is not None and not is_temporary_name(Path(os.fsdecode(error.filename)).name)
        ):
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None


# A file name holds 255 bytes on Linux's filesystems, and a temporary one adds 14 to the name it stands for.
_TEMPORARY_STEM_BYTES = 200


def _temporary_prefix(name: str) -> str:
    """The start of a temporary file's name beside the file `name`: its name, cut to leave room for the rest."""
    return f".{os.fsdecode(os.fsencode(name)[:_TEMPORARY_STEM_BYTES])}."


def _put_in_place(temporary: str, path: Path, *, new: bool) -> None:
    """The finished file renamed (or linked) to `path`; a failure names `path`, never the temporary file the user
    did not name (a name too long for the filesystem, a directory there)."""
    with _naming(path):
        if new:
            _link_new(temporary, path)
        else:
            os.replace(temporary, path)


def _link_new(temporary: str, path: Path) -> None:
    """Puts the finished file at `path` only if nothing is there (a dangling symlink counts)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: the look and the rename leave a narrow window
        if os.path.lexists(path):
            raise FileExistsError(str(path)) from None
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, new: bool = False) -> None:
    with atomic_output(path, mode=mode, new=new) as stream:
        stream.write(data)


# What a file the user names may hold at most, unless its reader says otherwise: far above any real
# manifest, policy, trust file or configuration, far below what /dev/zero would feed a reader.
INPUT_FILE_LIMIT = 16 << 20
# A minisign key file: a comment line and a line of base64.
KEY_FILE_LIMIT = 64 << 10


# Where a descriptor opened with O_PATH can be opened again for reading or writing (Linux): a name is looked at
# without opening what it names, and only a regular file or directory is then opened, through that descriptor.
_O_PATH = getattr(os, "O_PATH", 0)
_REOPEN = "/proc/self/fd/"
_CREATED_MEANWHILE_TRIES = 8


class SpecialFileError(OSError):
    """A FIFO, device or socket where a regular file or directory was to be opened; it was not opened."""

    def __init__(self, status: os.stat_result) -> None:
        super().__init__(errno.ENXIO, f"{_kind_of(status.st_mode)}, not a regular file or directory")
        self.status = status


def open_plain(name: str | Path, flags: int, mode: int = 0o644, *, dir_fd: int | None = None) -> tuple[int, int]:
    """`os.open(name, flags, mode, dir_fd=dir_fd)` and the file's type (`stat.S_IFMT`), for a regular file or
    directory only.

    A FIFO, device or socket is a `SpecialFileError` and is never opened: a FIFO's open would wake its writer,
    a device's open runs its driver. On Linux the name is opened with O_PATH (which opens nothing), its type read
    from that descriptor, and only then opened again through it, so a file swapped in between changes nothing.
    Elsewhere it is looked at, opened without waiting and looked at again (a device swapped in between has been
    opened). With O_CREAT, `flags`
    must hold O_NOFOLLOW: a name made meanwhile is looked at again, never followed.
    """
    if flags & os.O_CREAT and flags & os.O_DIRECTORY:  # open(2) refuses the pair before it looks (Linux 6.4)
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(name))
    if flags & os.O_CREAT and os.fspath(name).endswith("/"):  # only a directory is so named, and O_CREAT makes none
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(name))
    if not _can_reopen():
        return _open_then_look(name, flags, mode, dir_fd)
    for _ in range(_CREATED_MEANWHILE_TRIES):
        try:
            probe = os.open(name, _O_PATH | os.O_CLOEXEC | flags & (os.O_NOFOLLOW | os.O_DIRECTORY), dir_fd=dir_fd)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
            with suppress(FileExistsError):  # new, so a regular file; one made meanwhile is looked at again
                return os.open(name, flags | os.O_EXCL, mode, dir_fd=dir_fd), stat.S_IFREG
            continue
        try:
            return _reopen(probe, name, flags)
        finally:
            os.close(probe)
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(name))


def open_lock_file(path: str | Path, mode: int = 0o600) -> int:
    """A descriptor of the lock file at `path` for `fcntl.flock`, made if missing. Anything but a regular file
    there is an OSError naming `path`: a symlink is never followed to a file someone else chose, a FIFO, device or
    socket never opened (`open_plain`)."""
    try:
        return open_plain(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)[0]
    except OSError as error:
        link = error.errno == errno.ELOOP
        why = "a symbolic link, which a lock file is never opened through" if link else error.strerror
        raise OSError(error.errno, why, str(path)) from None


@functools.cache
def _can_reopen() -> bool:
    return bool(_O_PATH) and os.path.isdir(_REOPEN)


def _reopen(probe: int, name: str | Path, flags: int) -> tuple[int, int]:
    status = os.fstat(probe)
    if flags & os.O_CREAT and flags & os.O_EXCL:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(name))
    if stat.S_ISLNK(status.st_mode):  # opened as itself: only O_NOFOLLOW does that, and open(2) says ELOOP
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(name))
    if flags & os.O_CREAT and stat.S_ISDIR(status.st_mode):  # open(2) creates no directory, and opens none so
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(name))
    _refuse_special(status)
    reopened = flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)  # the magic link is a link
    return os.open(f"{_REOPEN}{probe}", reopened), stat.S_IFMT(status.st_mode)


def _refuse_special(status: os.stat_result) -> None:
    if not (stat.S_ISREG(status.st_mode) or stat.S_ISDIR(status.st_mode) or stat.S_ISLNK(status.st_mode)):
        raise SpecialFileError(status)


def _open_then_look(name: str | Path, flags: int, mode: int, dir_fd: int | None) -> tuple[int, int]:
    with suppress(FileNotFoundError):  # looked at first, then again through the descriptor (swapped meanwhile)
        _refuse_special(os.stat(name, dir_fd=dir_fd, follow_symlinks=not flags & os.O_NOFOLLOW))
    descriptor = os.open(name, flags | os.O_NONBLOCK | os.O_NOCTTY, mode, dir_fd=dir_fd)
    status = os.fstat(descriptor)
    try:
        _refuse_special(status)
    except SpecialFileError:
        os.close(descriptor)
        raise
    if not flags & os.O_NONBLOCK:
        os.set_blocking(descriptor, True)
    return descriptor, stat.S_IFMT(status.st_mode)


def read_input_bytes(path: Path, *, what: str, limit: int = INPUT_FILE_LIMIT, own_state: bool = False) -> bytes:
    """A file the user named, whole; anything but a regular file of at most `limit` bytes is an InvalidInput.

    A FIFO, device or directory at the path is refused at once (it is opened without blocking), and a file
    that grows past `limit` is never read whole. With `own_state` (ngixi's trust, policy, rollback state and
    keys), a file with other names (hard links) is refused too: one of them could lie in a folder a guest is
    granted, where no check of paths or directories finds it; but for a file anyone may read and this process may
    not write (`_public_and_fixed`), as an OS image's or package store's files are (ostree's, Nix's: linked).
    """
    try:
        descriptor, kind = open_plain(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except SpecialFileError as error:
        kind = stat.S_IFMT(error.status.st_mode)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read {what}: {error.strerror}{advice(error)}") from None
    if kind != stat.S_IFREG:
        if kind == stat.S_IFDIR:
            os.close(descriptor)
        raise InvalidInput(f"{path}: {_kind_of(kind)}, not a regular file; name the file of {what}")
    status = os.fstat(descriptor)
    if own_state and status.st_nlink > 1 and not _public_and_fixed(status):
        os.close(descriptor)
        raise OtherNames(_other_names(path, what, status.st_nlink))
    try:  # a read sets aside as many bytes as asked for: ask for the size, then for what it grew by
        data = _read_at_most(descriptor, min(status.st_size, limit) + 1)
        if len(data) > status.st_size:
            data += _read_at_most(descriptor, limit + 1 - len(data))
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read {what}: {error.strerror}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise InvalidInput(f"{path}: over {limit} bytes, too large for {what}")
    return data


_ADVICE = {
    errno.ENOENT: "name an existing file",
    errno.ENOTDIR: "name an existing file",
    errno.EACCES: "let this user read it, or name another",
    errno.ELOOP: "its symbolic links loop; name the file itself",
}


def advice(error: OSError) -> str:
    """What to do about a file that could not be opened, where the error says."""
    what_to_do = _ADVICE.get(error.errno or 0)
    return f"; {what_to_do}" if what_to_do else ""


def _public_and_fixed(status: os.stat_result) -> bool:
    """Whether a file is no secret (anyone may read it) and no name of it lets this process change it: it is not
    root, and the file's mode lets neither its group nor others write it, nor this user as its owner (a guest has
    no call that changes a mode)."""
    mode, user = status.st_mode, os.geteuid()
    owner_writes = status.st_uid == user and mode & stat.S_IWUSR
    return bool(mode & stat.S_IROTH) and user != 0 and not owner_writes and not mode & (stat.S_IWGRP | stat.S_IWOTH)


class OtherNames(InvalidInput):
    """ngixi's own state with other names (hard links): `read_input_bytes` with `own_state`."""


def _other_names(path: Path, what: str, links: int) -> str:
    return (
        f"{path}: {what} has {links - 1} other name(s) (hard links), and is not used: one in a folder a guest is "
        f"granted would let it read or change {what}; remove the others (`find / -xdev -samefile {path}` lists "
        "them) or put a copy in its place"
    )


def _read_at_most(descriptor: int, count: int) -> bytes:
    """Up to `count` bytes, to the end of the file: `os.read`, without a buffered file object's own costs."""
    chunks = []
    while count > 0 and (chunk := os.read(descriptor, count)):
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def write_by(descriptor: int, data: bytes, deadline: float) -> None:
    """Writes all of `data` to a descriptor this process shares (its stdout, a terminal), waiting for its reader at
    most until `deadline` (time.monotonic; math.inf waits as long as it takes), else TimeoutError. The descriptor
    stays blocking, as the shell sharing it expects: each write, made once the reader has room, is at most
    PIPE_BUF bytes, which a pipe with room takes whole."""
    writable = select.poll()
    writable.register(descriptor, select.POLLOUT)
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0 or not writable.poll(None if math.isinf(left) else math.ceil(left * 1000)):
            raise TimeoutError
        view = view[os.write(descriptor, view[: select.PIPE_BUF]) :]


def read_by(descriptor: int, limit: int, deadline: float) -> bytes:
    """At most `limit + 1` bytes from a descriptor this process shares (its stdin), up to its end, waiting for its
    writer at most until `deadline` (time.monotonic), else TimeoutError: a pipe that never ends holds nothing."""
    readable = select.poll()
    readable.register(descriptor, select.POLLIN)
    data = bytearray()
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0 or not readable.poll(None if math.isinf(left) else math.ceil(left * 1000)):
            raise TimeoutError
        chunk = os.read(descriptor, min(limit + 1 - len(data), 1 << 16))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _kind_of(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a device")


def read_input_text(path: Path, *, what: str, limit: int = INPUT_FILE_LIMIT, own_state: bool = False) -> str:
    """`read_input_bytes`, decoded as UTF-8; other bytes are an InvalidInput naming the file."""
    try:
        return read_input_bytes(path, what=what, limit=limit, own_state=own_state).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: {what} is not UTF-8 text: {error}") from None


def read_toml_file(path: Path, *, what: str, own_state: bool = False) -> dict[str, Any]:
    """A TOML file's tables; an unreadable or malformed file is an InvalidInput naming it."""
    return toml_tables(read_toml_text(path, what=what, own_state=own_state), source=str(path))


def read_toml_text(path: Path, *, what: str, own_state: bool = False) -> str:
    """A TOML file's text, unparsed (`toml_tables`); an unreadable file is an InvalidInput naming it
    (`own_state`: as `read_input_bytes`)."""
    return read_input_text(path, what=what, own_state=own_state)


def toml_tables(text: str, *, source: str) -> dict[str, Any]:
    """The tables of TOML text read from `source` (named in the message of malformed text)."""
    try:
        return tomli.loads(text)
    except (tomli.TOMLDecodeError, RecursionError) as error:
        raise InvalidInput(toml_problem(source, error, text)) from None


def toml_problem(source: str, error: Exception, text: str) -> str:
    """The one line for TOML text tomli refused: a byte order mark (an editor's UTF-8 "with BOM"), which TOML does
    not allow, said as such rather than as an invalid statement at line 1."""
    if text.startswith("\ufeff"):
        return f"{source}: not valid TOML: it starts with a byte order mark (U+FEFF); save it as UTF-8 without one"
    return f"{source}: not valid TOML: {error}"


def resolved(path: Path) -> Path:
    """`path` made absolute with its symbolic links followed, as Path.resolve; a loop among them is an InvalidInput
    naming the path (Path.resolve raises RuntimeError for one before Python 3.13, and from 3.13 returns a path)."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InvalidInput(f"{path}: {_ADVICE[errno.ELOOP]}") from None
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise InvalidInput(f"{path}: {_ADVICE[errno.ELOOP]}") from None


# Nothing there to open, as Path.is_file sees it: missing, under a file, or a symbolic link that loops.
_NO_FILE_THERE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


@contextmanager
def open_regular(path: Path) -> Iterator[IO[bytes] | None]:
    """The file at `path` open for reading if it is a regular file (a symlink to one counts), else None.

    Anything else is never opened (`open_plain`).
    """
    try:
        descriptor, kind = open_plain(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        if not isinstance(error, SpecialFileError) and error.errno not in _NO_FILE_THERE:
            raise
        kind = 0
    if kind != stat.S_IFREG:
        if kind:
            os.close(descriptor)
        yield None
        return
    with os.fdopen(descriptor, "rb") as stream:
        yield stream


def sha256_of(path: Path) -> str | None:
    """The file's sha256 (hex), or None if it cannot be read or is not a regular file."""
    import hashlib  # not at module level: a run loads no second OpenSSL (spec/digests.py)

    digest = hashlib.sha256()
    try:
        with open_regular(path) as stream:
            if stream is None:
                return None
            while chunk := stream.read(_DIGEST_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
