"""How much a guest may keep in its sandbox's `files/` (but what `ro` preopens hold): `max_bytes` in its files
and its symbolic links' targets, `max_files` names (fs).

Measured when the preopens are opened (a walk that never follows a symlink, each file's bytes counted
once however many names it has, and no deeper than a path may reach), then kept up to date by every
WASI function that grows or shrinks a file or adds or removes a name. A change past either limit is
refused with DQUOT before it is made, so neither one call nor many calls nor many loads of the guest
can fill the host's disk.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from ngixi_runtime.capabilities.context import MAX_PATH_DEPTH
from ngixi_runtime.capabilities.wasi_paths import DIRECTORY_FLAGS
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, Errno

UNBOUNDED = 1 << 62  # a quota no file system reaches


class Mounts(NamedTuple):
    """Directories (device, inode) a walk of a whole sandbox treats apart (`DiskQuota.measured`)."""

    unnamed: frozenset[tuple[int, int]]  # every preopen's own directory: a name the guest did not make
    unread: frozenset[tuple[int, int]]  # the read-only ones: what they hold is the operator's, not the guest's


class DiskQuota:
    """What the guest holds now (`used_bytes`, `used_names`), and at most."""

    __slots__ = ("max_bytes", "max_names", "used_bytes", "used_names")

    def __init__(self, max_bytes: int, max_names: int, used_bytes: int = 0, used_names: int = 0) -> None:
        self.max_bytes = max_bytes
        self.max_names = max_names
        self.used_bytes = used_bytes
        self.used_names = used_names

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

    @contextmanager
    def growing(self, size: int, end: int) -> Iterator[None]:
        """Refuses a file of `size` bytes growing to `end` past the limit, else counts what it grows by while
        the change is made (and no longer if making it fails)."""
        grown = max(0, end - size)
        if self.used_bytes + grown > self.max_bytes:
            raise AbiFault(Errno.DQUOT)
        self.used_bytes += grown
        try:
            yield
        except BaseException:
            self.shrink(grown)
            raise

    def shrink(self, freed: int) -> None:
        """Counts `freed` bytes gone; a negative amount (a file that grew) frees nothing: `growing` counts growth."""
        self.used_bytes = max(0, self.used_bytes - max(0, freed))

    def room_for_name(self) -> None:
        """Refuses a new name past the limit (count it with `named` once it is made)."""
        if self.used_names >= self.max_names:
            raise AbiFault(Errno.DQUOT)

    def named(self) -> None:
        self.used_names += 1

    def unnamed(self) -> None:
        self.used_names = max(0, self.used_names - 1)


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
