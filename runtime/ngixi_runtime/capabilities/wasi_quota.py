"""How much a guest may keep in its sandbox's `files/` (but what `ro` preopens hold): `max_bytes` in its files
and its symbolic links' targets, `max_files` names (fs).

Measured when the preopens are opened (a walk that never follows a symlink, each file's bytes counted
once however many names it has, and no deeper than a path may reach), then kept up to date by every
WASI function that grows or shrinks a file or adds or removes a name. A change past either limit is
refused with DQUOT before it is made, so neither one call nor many calls nor many loads of the guest
can fill the host's disk.

Instances of one guest running at once over one sandbox (a tenant's instances in several processes, two `ngixi run`
of it, in-process instances) share one count (`SharedDiskQuota`): each measured the sandbox at its own load and
then counted only its own changes, so N instances held N times the quota. A count sealed exact (no change was
being made when its instance ended) is read by the next load rather than measured (`SharedDiskQuota.over`): the walk
took as long as the names the guest made, at every load.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import struct
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path

from ngixi_runtime.capabilities.context import MAX_PATH_DEPTH
from ngixi_runtime.capabilities.wasi_paths import DIRECTORY_FLAGS
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import open_lock_file, open_plain
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, Errno
from ngixi_runtime.spec.sandbox_layout import QUOTA_LEDGER_ENDING

UNBOUNDED = 1 << 62  # a quota no file system reaches
_LEDGER = struct.Struct("<QQ")  # a shared count: the bytes, the names
# After the count, the ledger says whether it is exact: its seal (`SharedDiskQuota._seal`, the count stamped with the
# layout it was measured over) once a change is made and counted. The growth a change counts before it is made
# (`_kept`) leaves the seal another count's, so an instance killed then leaves no count sealed; nor does one that
# may have left it off (UNSURE until it is measured). A ledger without a seal (an older version's) is measured.
_STAMP_SIZE = 16
_UNSURE = b"\xff" * _STAMP_SIZE
_KEPT = struct.Struct(f"<QQ{_STAMP_SIZE}s")  # the count and its seal
_AS_THEY_ARE = nullcontext()


class Mounts(NamedTuple):
    """Directories (device, inode) a walk of a whole sandbox treats apart (`DiskQuota.measured`)."""

    unnamed: frozenset[tuple[int, int]]  # every preopen's own directory: a name the guest did not make
    unread: frozenset[tuple[int, int]]  # the read-only ones: what they hold is the operator's, not the guest's


class DiskQuota:
    """What the guest holds now (`used_bytes`, `used_names`), and at most."""

    __slots__ = ("exact", "max_bytes", "max_names", "used_bytes", "used_names")

    def __init__(self, max_bytes: int, max_names: int, used_bytes: int = 0, used_names: int = 0) -> None:
        self.max_bytes = max_bytes
        self.max_names = max_names
        self.used_bytes = used_bytes
        self.used_names = used_names
        # False once this instance may have left the count off what the disk holds: a change stopped by something
        # other than its own failure, or a removed file's bytes left counted (another instance holds it open)
        self.exact = True

    @classmethod
    def measured(
        cls, directories: list[int], max_bytes: int, max_names: int, *, mounts: Mounts | None = None
    ) -> DiskQuota:
        """The quota with what the directories (open descriptors, none inside another) hold now; `mounts`: the
        directories (device and inode) whose own names are not counted, and those whose contents are not either.

        The walk stops past `max_names`, or below `MAX_PATH_DEPTH` directories (deeper than any path the guest
        may give, but a guest can build it one directory descriptor at a time): the quota is then taken
        as full, and the guest may add nothing until it removes what it holds.
        """
        quota = cls(max_bytes, max_names)
        seen: set[tuple[int, int]] = set()
        apart = mounts or Mounts(frozenset(), frozenset())
        for directory in directories:
            if not quota._walk(directory, seen, apart):  # not measured whole: taken as full
                quota.used_names, quota.used_bytes = max(quota.used_names, max_names), max(quota.used_bytes, max_bytes)
                break
        return quota

    def _walk(self, root: int, seen: set[tuple[int, int]], mounts: Mounts) -> bool:
        """Counts the names and file bytes under `root`; False once past `max_names` or `MAX_PATH_DEPTH`.

        Depth first, holding one descriptor per level (a directory's names are read whole when it is
        entered), without recursion: neither a deep tree nor a wide one runs the host out of either.
        """
        levels = [(os.dup(root), deque(os.listdir(root)))]
        try:
            while levels:
                directory, names = levels[-1]
                if not names:
                    os.close(levels.pop()[0])
                    continue
                name = names.popleft()
                try:
                    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                except FileNotFoundError:  # removed meanwhile (by another instance of the tenant)
                    continue
                place = (info.st_dev, info.st_ino)
                if stat.S_ISDIR(info.st_mode) and place in mounts.unread:
                    continue
                if not (stat.S_ISDIR(info.st_mode) and place in mounts.unnamed):
                    self.used_names += 1
                if self.used_names > self.max_names:
                    return False
                if stat.S_ISDIR(info.st_mode):
                    if len(levels) > MAX_PATH_DEPTH:
                        return False
                    inner = _directory_still(name, directory)
                    if inner is None:
                        continue
                    levels.append((inner, deque()))
                    levels[-1][1].extend(os.listdir(inner))
                elif holds_bytes(info) and place not in seen:
                    seen.add(place)
                    self.used_bytes += info.st_size
            return True
        finally:
            for directory, _ in levels:
                os.close(directory)

    def _current(self) -> AbstractContextManager[object]:
        """`used_bytes` and `used_names` as they are now, to read and change (one instance's own: as they are)."""
        return _AS_THEY_ARE

    def changing(self) -> AbstractContextManager[object]:
        """Holds the count while a change is looked at, made and counted (the file's size read, the file written),
        so that no other instance's change comes between."""
        return self._current()

    def held(self, file: int) -> None:
        """Marks a regular file this instance opened as held open while it is (`removing` then frees nothing)."""

    @contextmanager
    def removing(self, directory: int, name: str, found: os.stat_result) -> Iterator[bool]:
        """While `name` in `directory` (the file `found`, its last name) is removed: whether its bytes leave the disk
        with it, which they do unless another instance holds it open."""
        yield True

    def last_holder(self, file: int) -> bool:
        """Whether the open file `file`, which has no name left, is held open by no other instance."""
        return True

    @contextmanager
    def growing(self, size: int, end: int) -> Iterator[None]:
        """Refuses a file of `size` bytes growing to `end` past the limit, else counts what it grows by while
        the change is made (and no longer if making it fails)."""
        grown = max(0, end - size)
        with self._current():
            if self.used_bytes + grown > self.max_bytes:
                raise AbiFault(Errno.DQUOT)
            self.used_bytes += grown
            self._kept()
        try:
            yield
        except BaseException as error:
            self._taken_back(error)
            self.shrink(grown)
            raise

    def shrink(self, freed: int) -> None:
        """Counts `freed` bytes gone; a negative amount (a file that grew) frees nothing: `growing` counts growth."""
        with self._current():
            self.used_bytes = max(0, self.used_bytes - max(0, freed))

    @contextmanager
    def naming(self) -> Iterator[None]:
        """Refuses a new name past the limit, else counts it while it is made (and no longer if making it fails)."""
        with self._current():
            if self.used_names >= self.max_names:
                raise AbiFault(Errno.DQUOT)
            self.used_names += 1
            self._kept()
        try:
            yield
        except BaseException as error:
            self._taken_back(error)
            self.unnamed()
            raise

    def _taken_back(self, error: BaseException) -> None:
        """A change counted and then stopped: by its own failure (nothing made), or by anything else (a signal, a
        timeout), which may have come once it was made."""
        if not isinstance(error, (OSError, AbiFault)):
            self.exact = False

    def unnamed(self) -> None:
        with self._current():
            self.used_names = max(0, self.used_names - 1)

    def _kept(self) -> None:
        """Keeps the count as it is now where other instances read it (one instance's own: nowhere else)."""

    def close(self) -> None:
        """Lets go of what the count is kept in (nothing, for one instance's own)."""


class SharedDiskQuota(DiskQuota):
    """The count every instance of a guest using one sandbox shares: a ledger file beside its files directory
    (`QUOTA_LEDGER_ENDING`), read and changed under an exclusive lock at each change.

    Each instance holds a shared lock on the files directory while it runs; one that finds no other instance
    there (its exclusive lock granted) reads the ledger if its count is sealed over the same layout and no folder
    the layout names changed since it was written, else measures the sandbox and writes the ledger: a count left
    too high by an instance killed during a change (counted before it is made) is measured again once every
    instance has ended.
    """

    __slots__ = ("_began", "_depth", "_found", "_in_use", "_ledger", "_read", "_stamp")

    def __init__(self, max_bytes: int, max_names: int, in_use: int, ledger: int, stamp: bytes) -> None:
        super().__init__(max_bytes, max_names)
        self._in_use = in_use  # the files directory, locked shared while this instance runs
        self._ledger = ledger
        self._stamp = stamp  # the layout's (`layout_stamp`)
        self._depth = 0  # `_current`s entered: the outermost reads the ledger and writes it back
        self._read: tuple[int, int] = (0, 0)  # the count in the ledger now
        self._began: tuple[int, int] = (0, 0)  # the count the outermost read
        self._found = _UNSURE  # the seal in the ledger now

    @classmethod
    def over(
        cls, files: Path, max_bytes: int, max_names: int, measure: Callable[[], DiskQuota], folders: list[Path]
    ) -> SharedDiskQuota:
        """The count of the sandbox `files`: the ledger's while other instances run, or when it is sealed over this
        layout and none of the `folders` (the sandbox's and the preopens', as `layout_stamp`) changed since it was
        written; else what `measure()` finds."""
        if not files.name:
            raise InvalidInput(f"cannot keep the disk quota's count beside {files}: give the guest a sandbox below it")
        in_use = os.open(files, DIRECTORY_FLAGS)
        ledger = -1
        try:
            ledger = _open_ledger(files.with_name(files.name + QUOTA_LEDGER_ENDING))
            folder_states = [os.stat(folder, follow_symlinks=False) for folder in folders]
            quota = cls(max_bytes, max_names, in_use, ledger, layout_stamp(max_bytes, max_names, folder_states))
            try:
                _lock(in_use, fcntl.LOCK_EX | fcntl.LOCK_NB, files)
            except BlockingIOError:  # other instances run (or one measures): the ledger holds what they all hold
                _lock(in_use, fcntl.LOCK_SH, files)
                return quota
            if not quota._trusted(folder_states):  # alone: no change is made meanwhile
                measured = measure()
                with quota._current():
                    quota.used_bytes, quota.used_names = measured.used_bytes, measured.used_names
                    quota._found = quota._seal(quota._began)  # measured: exact
            _lock(in_use, fcntl.LOCK_SH, files)
            return quota
        except BaseException:
            os.close(in_use)
            if ledger >= 0:
                os.close(ledger)
            raise

    def _trusted(self, folders: list[os.stat_result]) -> bool:
        """Whether the ledger's count is sealed over this layout, and written since any of the folders changed."""
        written = os.fstat(self._ledger).st_ctime_ns  # before the ledger is written again, as reading it does
        with self._current():
            exact = self._found == self._seal(self._began)
            return exact and all(folder.st_ctime_ns <= written for folder in folders)

    def _current(self) -> AbstractContextManager[object]:
        return self  # entered again within itself (a change's steps), it reads and writes the ledger only outermost

    def __enter__(self) -> SharedDiskQuota:
        self._depth += 1
        if self._depth > 1:
            return self
        locked = False
        try:
            fcntl.flock(self._ledger, fcntl.LOCK_EX)
            locked = True
            kept = os.pread(self._ledger, _KEPT.size, 0)
            self._found = kept[_LEDGER.size :] if len(kept) == _KEPT.size else _UNSURE
        except BaseException:
            self._depth = 0
            if locked:
                fcntl.flock(self._ledger, fcntl.LOCK_UN)
            raise
        # a ledger cut short is no count: full, so the guest may only remove until every instance has ended
        used = _LEDGER.unpack(kept[: _LEDGER.size]) if len(kept) >= _LEDGER.size else (self.max_bytes, self.max_names)
        self.used_bytes, self.used_names = used
        self._read = self._began = used
        return self

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        try:  # what the change counted, made or not (a failed change counted nothing, or took it back)
            counted = (self.used_bytes, self.used_names)
            if not self.exact:
                seal = _UNSURE
            elif counted == self._read == self._began:  # nothing counted: sealed as it was, or not
                seal = self._found
            elif self._found == self._seal(self._began):  # exact when the change began: exact again now
                seal = self._seal(counted)
            else:
                seal = self._found  # not sealed until measured
            if (counted, seal) != (self._read, self._found):
                os.pwrite(self._ledger, _KEPT.pack(*counted, seal), 0)
                self._read, self._found = counted, seal
        finally:
            fcntl.flock(self._ledger, fcntl.LOCK_UN)

    def _seal(self, counted: tuple[int, int]) -> bytes:
        """The seal of the count `counted` measured, and kept since, over this layout."""
        return hashlib.blake2b(_LEDGER.pack(*counted), key=self._stamp, digest_size=_STAMP_SIZE).digest()

    def _kept(self) -> None:
        """Writes the count to the ledger if it changed: also before a change it counts is made (`growing`,
        `naming`), so that an instance killed while making it (a timeout's SIGKILL) leaves the count too high,
        which denies only that guest until it is measured again, never too low."""
        counted = (self.used_bytes, self.used_names)
        if counted != self._read:
            os.pwrite(self._ledger, _LEDGER.pack(*counted), 0)
            self._read = counted

    # A file an instance holds open carries its shared lock (`held`); one being removed, another's exclusive lock taken
    # while the count is held (`removing`), so each sees the other: a file another instance removed while this one
    # opened it is NOENT, and one another instance holds open frees nothing when removed (its bytes stay on disk).

    def held(self, file: int) -> None:
        with self._current():
            with suppress(BlockingIOError):  # another program's lock: a removal then frees nothing (`removing`)
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            if os.fstat(file).st_nlink == 0:  # removed (and its bytes freed) since this instance opened it
                raise AbiFault(Errno.NOENT)

    @contextmanager
    def removing(self, directory: int, name: str, found: os.stat_result) -> Iterator[bool]:
        with self._current():
            if not stat.S_ISREG(found.st_mode):  # a link or a directory: never held open as a file
                yield True
                return
            frees, claim = _claimed(directory, name, found)
            try:
                yield frees
            finally:
                if claim >= 0:
                    os.close(claim)

    def last_holder(self, file: int) -> bool:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self._ledger < 0:
            return
        try:
            if not self.exact:  # UNSURE from now on
                with self._current():
                    pass
        finally:
            os.close(self._ledger)
            os.close(self._in_use)
            self._ledger = self._in_use = -1


def layout_stamp(max_bytes: int, max_names: int, folders: list[os.stat_result]) -> bytes:
    """What a count is exact over: the limits (a walk stops past max_names) and the folders (the sandbox's, each
    preopen's, in the order the walk treats them apart: a preopen made `ro` counts nothing)."""
    shown = repr((max_bytes, max_names, [(folder.st_dev, folder.st_ino) for folder in folders]))
    return hashlib.blake2b(shown.encode(), digest_size=_STAMP_SIZE).digest()


def _claimed(directory: int, name: str, found: os.stat_result) -> tuple[bool, int]:
    """Whether removing the regular file `found`, named `name` in `directory`, frees its bytes, and the descriptor
    that holds it locked exclusively until it is removed (-1: none): no when another instance holds it open (or the
    name is no longer that file)."""
    claim = -1
    for access in (os.O_RDONLY, os.O_WRONLY):
        try:
            claim = open_plain(name, access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)[0]
            break
        except PermissionError:
            continue
        except OSError:  # gone, or no longer a regular file
            return False, -1
    if claim < 0:  # neither readable nor writable by this user: no instance could have opened it either
        return True, -1
    try:
        opened = os.fstat(claim)
        if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
            raise BlockingIOError
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(claim)
        return False, -1
    return True, claim


def _lock(descriptor: int, how: int, path: Path) -> None:
    """`flock`s the files directory `path`; a file system that keeps no such locks refuses the load in one line."""
    try:
        fcntl.flock(descriptor, how)
    except BlockingIOError:
        raise
    except OSError as error:
        raise InvalidInput(f"cannot keep the disk quota's count of {path}: its locks: {error.strerror}") from None


def _open_ledger(path: Path) -> int:
    """The ledger at `path`, made if missing: refused unless it is a file of this user's alone, with no other name
    (another program could otherwise change the count of the guest's quota)."""
    try:
        ledger = open_lock_file(path)
    except OSError as error:
        raise InvalidInput(f"cannot keep the disk quota's count at {path}: {error.strerror}; remove it") from None
    found = os.fstat(ledger)
    if found.st_uid != os.geteuid() or found.st_mode & 0o022 or found.st_nlink != 1:
        os.close(ledger)
        raise InvalidInput(
            f"{path}: the disk quota's count must be a file of this user's that no one else may write, with no other "
            "name; remove it"
        )
    return ledger


def holds_bytes(info: os.stat_result) -> bool:
    """Whether a name's `st_size` is bytes the guest keeps on disk: a file's data, or a symbolic link's target."""
    return stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)


def _directory_still(name: str, parent: int) -> int | None:
    """The directory `name` open, or None if it was removed or replaced meanwhile (by a file, or by a symlink, which
    is never followed: O_DIRECTORY with O_NOFOLLOW refuses it with ENOTDIR)."""
    try:
        return os.open(name, DIRECTORY_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
