"""How much a guest may keep under its `rw` preopens: `max_bytes` in its files, `max_files` names (fs).

Measured when the preopens are opened (a walk that never follows a symlink, each file's bytes counted
once however many names it has), then kept up to date by every WASI function that grows or shrinks a
file or adds or removes a name. A change past either limit is refused with DQUOT before it is made, so
neither one call nor many calls nor many loads of the guest can fill the host's disk.
"""

from __future__ import annotations

import os
import stat

from ngixi_runtime.spec.abi import AbiFault, Errno

UNBOUNDED = 1 << 62  # a quota no file system reaches


class DiskQuota:
    """What the `rw` preopens hold now (`used_bytes`, `used_names`), and at most."""

    __slots__ = ("max_bytes", "max_names", "used_bytes", "used_names")

    def __init__(self, max_bytes: int, max_names: int, used_bytes: int = 0, used_names: int = 0) -> None:
        self.max_bytes = max_bytes
        self.max_names = max_names
        self.used_bytes = used_bytes
        self.used_names = used_names

    @classmethod
    def measured(cls, directories: list[int], max_bytes: int, max_names: int) -> DiskQuota:
        """The quota with what the directories (open descriptors, none inside another) hold now.

        The walk stops past `max_names`: the guest may then add nothing until it removes names.
        """
        quota = cls(max_bytes, max_names)
        seen: set[tuple[int, int]] = set()
        for directory in directories:
            for _, folders, files, folder in os.fwalk(".", dir_fd=directory, follow_symlinks=False):
                for name in (*folders, *files):
                    quota.used_names += 1
                    if quota.used_names > max_names:
                        return quota
                    try:
                        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
                    except FileNotFoundError:  # removed meanwhile
                        continue
                    if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                        seen.add((info.st_dev, info.st_ino))
                        quota.used_bytes += info.st_size
        return quota

    def grow(self, size: int, end: int) -> None:
        """Refuses a file of `size` bytes growing to `end` past the limit; counts what it grows by."""
        if end > size:
            if self.used_bytes + end - size > self.max_bytes:
                raise AbiFault(Errno.DQUOT)
            self.used_bytes += end - size

    def shrink(self, freed: int) -> None:
        self.used_bytes = max(0, self.used_bytes - freed)

    def room_for_name(self) -> None:
        """Refuses a new name past the limit (count it with `named` once it is made)."""
        if self.used_names >= self.max_names:
            raise AbiFault(Errno.DQUOT)

    def named(self) -> None:
        self.used_names += 1

    def unnamed(self) -> None:
        self.used_names = max(0, self.used_names - 1)
