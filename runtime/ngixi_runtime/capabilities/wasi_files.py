"""WASI preview 1 files and directories over a guest's preopens, independent of the engine (the fs capability).

Each preopen is its own root: paths are resolved one component at a time from the preopen's
directory descriptor, with `O_NOFOLLOW` at every step, so neither `..` nor a symlink can reach
outside it (a symlink is followed only while it stays beneath the preopen). A `ro` preopen
refuses every call that would change a file or a directory with ROFS.

Methods take the guest memory and the raw import arguments, return nothing on success and
raise `AbiFault` (or `OSError`, which the host function maps to a WASI errno) otherwise.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ngixi_runtime.capabilities.base import Mount
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.abi import (
    ALL_RIGHTS,
    FDFLAG_APPEND,
    FILETYPE_CHARACTER_DEVICE,
    FILETYPE_DIRECTORY,
    FILETYPE_REGULAR_FILE,
    LOOKUP_SYMLINK_FOLLOW,
    OFLAG_CREAT,
    OFLAG_DIRECTORY,
    OFLAG_EXCL,
    OFLAG_TRUNC,
    RIGHT_FD_READ,
    RIGHT_FD_READDIR,
    WRITE_RIGHTS,
    AbiFault,
    Errno,
    GuestMemory,
    capacity,
    fdstat,
    gather,
    read_utf8,
    scatter,
    write_u32,
    write_u64,
)

MAX_OPEN_FILES = 128
MAX_SYMLINKS = 32
MAX_PATH = 4096  # bytes, as PATH_MAX on Linux
MAX_READ = MAX_WRITE = 16 << 20  # bytes one call moves; a larger request is a short read or write
FIRST_PREOPEN_FD = 3

_FILETYPES = (
    (stat.S_ISBLK, 1),
    (stat.S_ISCHR, FILETYPE_CHARACTER_DEVICE),
    (stat.S_ISDIR, FILETYPE_DIRECTORY),
    (stat.S_ISREG, FILETYPE_REGULAR_FILE),
    (stat.S_ISSOCK, 6),
    (stat.S_ISLNK, 7),
)
_WHENCE = {0: os.SEEK_SET, 1: os.SEEK_CUR, 2: os.SEEK_END}
_HOST_ERRNO = {
    errno.EACCES: Errno.ACCES,
    errno.EBADF: Errno.BADF,
    errno.EBUSY: Errno.BUSY,
    errno.EDQUOT: Errno.DQUOT,
    errno.EEXIST: Errno.EXIST,
    errno.EFBIG: Errno.FBIG,
    errno.EINVAL: Errno.INVAL,
    errno.EISDIR: Errno.ISDIR,
    errno.ELOOP: Errno.LOOP,
    errno.EMFILE: Errno.MFILE,
    errno.ENAMETOOLONG: Errno.NAMETOOLONG,
    errno.ENOENT: Errno.NOENT,
    errno.ENOSPC: Errno.NOSPC,
    errno.ENOTDIR: Errno.NOTDIR,
    errno.ENOTEMPTY: Errno.NOTEMPTY,
    errno.ENXIO: Errno.NXIO,
    errno.EPERM: Errno.PERM,
    errno.EROFS: Errno.ROFS,
    errno.ESPIPE: Errno.SPIPE,
    errno.EXDEV: Errno.XDEV,
}
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def wasi_errno(error: OSError) -> int:
    return _HOST_ERRNO.get(error.errno or 0, Errno.IO)


@dataclass
class Descriptor:
    host_fd: int
    mount: Mount
    is_directory: bool
    rights: int
    inheriting: int
    append: bool = False
    preopen: bool = False


class WasiFilesystem:
    """The open descriptors of one guest instance: its preopens (fds 3, 4, … in manifest order) and files."""

    def __init__(self) -> None:
        self._table: dict[int, Descriptor] = {}

    @classmethod
    def over(cls, mounts: Sequence[Mount], *, guest: str) -> WasiFilesystem:
        """Opens each mount, checked and resolved under the sandbox root, as a preopen."""
        filesystem = cls()
        try:
            for mount in mounts:
                filesystem._add(
                    Descriptor(
                        os.open(mount.host_path, _DIRECTORY_FLAGS), mount, True, ALL_RIGHTS, ALL_RIGHTS, preopen=True
                    )
                )
        except OSError as error:
            filesystem.close()
            raise InvalidInput(f"{guest}: cannot open the preopen {error.filename}: {error.strerror}") from None
        return filesystem

    def close(self) -> None:
        for descriptor in self._table.values():
            os.close(descriptor.host_fd)
        self._table.clear()

    # --- descriptors -----------------------------------------------------------------------

    def _get(self, fd: int) -> Descriptor:
        descriptor = self._table.get(fd)
        if descriptor is None:
            raise AbiFault(Errno.BADF)
        return descriptor

    def _directory(self, fd: int) -> Descriptor:
        descriptor = self._get(fd)
        if not descriptor.is_directory:
            raise AbiFault(Errno.NOTDIR)
        return descriptor

    def _writable_directory(self, fd: int) -> Descriptor:
        descriptor = self._directory(fd)
        if descriptor.mount.mode == "ro":
            raise AbiFault(Errno.ROFS)
        return descriptor

    def _add(self, descriptor: Descriptor) -> int:
        if len(self._table) >= MAX_OPEN_FILES:
            os.close(descriptor.host_fd)
            raise AbiFault(Errno.MFILE)
        fd = next(n for n in range(FIRST_PREOPEN_FD, FIRST_PREOPEN_FD + MAX_OPEN_FILES + 1) if n not in self._table)
        self._table[fd] = descriptor
        return fd

    def owns(self, fd: int) -> bool:
        return fd in self._table

    @property
    def mounts(self) -> list[Mount]:
        """The preopens, checked and resolved under the sandbox root, in manifest order."""
        return [d.mount for d in self._table.values() if d.preopen]

    # --- preopens --------------------------------------------------------------------------

    def fd_prestat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        descriptor = self._get(fd)
        if not descriptor.preopen:
            raise AbiFault(Errno.BADF)
        memory.write(out, struct.pack("<B3xI", 0, len(descriptor.mount.guest_path.encode())))

    def fd_prestat_dir_name(self, memory: GuestMemory, fd: int, buffer: int, length: int) -> None:
        descriptor = self._get(fd)
        if not descriptor.preopen:
            raise AbiFault(Errno.BADF)
        name = descriptor.mount.guest_path.encode()
        if length < len(name):
            raise AbiFault(Errno.NAMETOOLONG)
        memory.write(buffer, name)

    # --- opening ---------------------------------------------------------------------------

    def path_open(
        self,
        memory: GuestMemory,
        fd: int,
        lookup: int,
        path: int,
        path_length: int,
        oflags: int,
        rights: int,
        inheriting: int,
        fdflags: int,
        opened: int,
    ) -> None:
        parent = self._directory(fd)
        writes = bool(rights & WRITE_RIGHTS or oflags & (OFLAG_CREAT | OFLAG_TRUNC) or fdflags & FDFLAG_APPEND)
        if writes and parent.mount.mode == "ro":
            raise AbiFault(Errno.ROFS)
        flags = _open_flags(oflags, fdflags, readable=bool(rights & (RIGHT_FD_READ | RIGHT_FD_READDIR)), writes=writes)
        with _beneath(
            parent.host_fd, _path(memory, path, path_length), follow=bool(lookup & LOOKUP_SYMLINK_FOLLOW)
        ) as (
            directory,
            name,
        ):
            host_fd = _open_file(name, flags, directory, may_be_directory=not oflags & (OFLAG_CREAT | OFLAG_TRUNC))
        is_directory = stat.S_ISDIR(os.fstat(host_fd).st_mode)
        descriptor = Descriptor(
            host_fd, parent.mount, is_directory, rights, inheriting, append=bool(fdflags & FDFLAG_APPEND)
        )
        write_u32(memory, opened, self._add(descriptor))

    def fd_close(self, memory: GuestMemory, fd: int) -> None:
        os.close(self._get(fd).host_fd)
        del self._table[fd]

    # --- data ------------------------------------------------------------------------------

    def fd_read(self, memory: GuestMemory, fd: int, iovs: int, count: int, done: int) -> None:
        data = os.read(self._get(fd).host_fd, _readable(memory, iovs, count))
        write_u32(memory, done, scatter(memory, iovs, count, data))

    def fd_pread(self, memory: GuestMemory, fd: int, iovs: int, count: int, offset: int, done: int) -> None:
        data = os.pread(self._get(fd).host_fd, _readable(memory, iovs, count), offset)
        write_u32(memory, done, scatter(memory, iovs, count, data))

    def fd_write(self, memory: GuestMemory, fd: int, iovs: int, count: int, done: int) -> None:
        descriptor = self._get(fd)
        self._refuse_on_ro(descriptor)
        write_u32(memory, done, os.write(descriptor.host_fd, gather(memory, iovs, count, MAX_WRITE)))

    def fd_pwrite(self, memory: GuestMemory, fd: int, iovs: int, count: int, offset: int, done: int) -> None:
        descriptor = self._get(fd)
        self._refuse_on_ro(descriptor)
        write_u32(memory, done, os.pwrite(descriptor.host_fd, gather(memory, iovs, count, MAX_WRITE), offset))

    def fd_seek(self, memory: GuestMemory, fd: int, offset: int, whence: int, out: int) -> None:
        if whence not in _WHENCE:
            raise AbiFault(Errno.INVAL)
        write_u64(memory, out, os.lseek(self._get(fd).host_fd, offset, _WHENCE[whence]))

    def fd_tell(self, memory: GuestMemory, fd: int, out: int) -> None:
        write_u64(memory, out, os.lseek(self._get(fd).host_fd, 0, os.SEEK_CUR))

    def fd_sync(self, memory: GuestMemory, fd: int) -> None:
        os.fsync(self._get(fd).host_fd)

    def fd_datasync(self, memory: GuestMemory, fd: int) -> None:
        getattr(os, "fdatasync", os.fsync)(self._get(fd).host_fd)

    def fd_filestat_set_size(self, memory: GuestMemory, fd: int, size: int) -> None:
        descriptor = self._get(fd)
        self._refuse_on_ro(descriptor)
        os.ftruncate(descriptor.host_fd, size)

    @staticmethod
    def _refuse_on_ro(descriptor: Descriptor) -> None:
        if descriptor.mount.mode == "ro":
            raise AbiFault(Errno.ROFS)

    # --- metadata --------------------------------------------------------------------------

    def fd_fdstat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        descriptor = self._get(fd)
        filetype = FILETYPE_DIRECTORY if descriptor.is_directory else _filetype(os.fstat(descriptor.host_fd).st_mode)
        flags = FDFLAG_APPEND if descriptor.append else 0
        memory.write(out, fdstat(filetype, flags, descriptor.rights, descriptor.inheriting))

    def fd_filestat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        memory.write(out, _filestat(os.fstat(self._get(fd).host_fd)))

    def path_filestat_get(self, memory: GuestMemory, fd: int, lookup: int, path: int, length: int, out: int) -> None:
        parent = self._directory(fd)
        follow = bool(lookup & LOOKUP_SYMLINK_FOLLOW)
        with _beneath(parent.host_fd, _path(memory, path, length), follow=follow) as (directory, name):
            memory.write(out, _filestat(os.stat(name, dir_fd=directory, follow_symlinks=False)))

    def fd_readdir(self, memory: GuestMemory, fd: int, buffer: int, length: int, cookie: int, used: int) -> None:
        descriptor = self._directory(fd)
        if cookie < 0:
            raise AbiFault(Errno.INVAL)
        names = [".", "..", *sorted(os.listdir(descriptor.host_fd))]
        entries = bytearray()
        for index in range(cookie, len(names)):
            if len(entries) >= length:  # a full buffer tells the guest to ask again from a later cookie
                break
            entries += _dirent(descriptor.host_fd, names[index], index + 1)
        memory.write(buffer, bytes(entries[:length]))
        write_u32(memory, used, min(len(entries), length))

    # --- directories -----------------------------------------------------------------------

    def path_create_directory(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd)
        with _beneath(parent.host_fd, _path(memory, path, length), follow=False) as (directory, name):
            os.mkdir(name, 0o755, dir_fd=directory)

    def path_remove_directory(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd)
        with _beneath(parent.host_fd, _path(memory, path, length), follow=False) as (directory, name):
            os.rmdir(name, dir_fd=directory)

    def path_unlink_file(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd)
        with _beneath(parent.host_fd, _path(memory, path, length), follow=False) as (directory, name):
            os.unlink(name, dir_fd=directory)

    def path_rename(
        self, memory: GuestMemory, fd: int, old: int, old_length: int, new_fd: int, new: int, new_length: int
    ) -> None:
        source, target = self._writable_directory(fd), self._writable_directory(new_fd)
        with (
            _beneath(source.host_fd, _path(memory, old, old_length), follow=False) as (old_directory, old_name),
            _beneath(target.host_fd, _path(memory, new, new_length), follow=False) as (new_directory, new_name),
        ):
            os.rename(old_name, new_name, src_dir_fd=old_directory, dst_dir_fd=new_directory)


def _readable(memory: GuestMemory, iovs: int, count: int) -> int:
    """How much one read may take: what the iovecs hold, and no more than the guest's memory or `MAX_READ`."""
    return min(capacity(memory, iovs, count), memory.size_bytes, MAX_READ)


def _path(memory: GuestMemory, pointer: int, length: int) -> str:
    if length > MAX_PATH:
        raise AbiFault(Errno.NAMETOOLONG)
    path = read_utf8(memory, pointer, length, fault=Errno.ILSEQ)
    if "\0" in path:
        raise AbiFault(Errno.INVAL)
    if not path:
        raise AbiFault(Errno.NOENT)
    if path.startswith("/"):
        raise AbiFault(Errno.NOTCAPABLE)
    return path


@contextmanager
def _beneath(root_fd: int, path: str, *, follow: bool) -> Iterator[tuple[int, str]]:
    """The directory descriptor holding `path`'s last component, and that component ("." for the root)."""
    stack = [os.dup(root_fd)]
    try:
        name = _walk(stack, path, follow)
        yield stack[-1], name
    finally:
        for fd in stack:
            os.close(fd)


def _walk(stack: list[int], path: str, follow: bool) -> str:
    pending = deque(path.split("/"))
    links = 0
    while pending:
        name = pending.popleft()
        last = not pending
        if name == "..":
            if len(stack) == 1:
                raise AbiFault(Errno.NOTCAPABLE)
            os.close(stack.pop())
        if name in ("", ".", ".."):
            if last:
                return "."
            continue
        target = _link_target(stack[-1], name) if follow or not last else None
        if target is not None:
            links += 1
            if links > MAX_SYMLINKS:
                raise AbiFault(Errno.LOOP)
            if target.startswith("/"):
                raise AbiFault(Errno.NOTCAPABLE)
            pending.extendleft(reversed(target.split("/")))
            continue
        if last:
            return name
        stack.append(os.open(name, _DIRECTORY_FLAGS, dir_fd=stack[-1]))
    return "."


def _link_target(directory: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


def _open_flags(oflags: int, fdflags: int, *, readable: bool, writes: bool) -> int:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_RDWR if readable and writes else os.O_WRONLY if writes else os.O_RDONLY
    for bit, host in (
        (OFLAG_CREAT, os.O_CREAT),
        (OFLAG_DIRECTORY, os.O_DIRECTORY),
        (OFLAG_EXCL, os.O_EXCL),
        (OFLAG_TRUNC, os.O_TRUNC),
    ):
        if oflags & bit:
            flags |= host
    return flags | (os.O_APPEND if fdflags & FDFLAG_APPEND else 0)


def _open_file(name: str, flags: int, directory: int, *, may_be_directory: bool) -> int:
    try:
        return os.open(name, flags, 0o644, dir_fd=directory)
    except IsADirectoryError:
        # Guests often ask for write rights on everything; a directory is still opened, read-only.
        if not may_be_directory:
            raise
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=directory)


def _filetype(mode: int) -> int:
    return next((kind for test, kind in _FILETYPES if test(mode)), 0)


def _filestat(info: os.stat_result) -> bytes:
    return struct.pack(
        "<QQB7xQQQQQ",
        info.st_dev,
        info.st_ino,
        _filetype(info.st_mode),
        info.st_nlink,
        info.st_size,
        info.st_atime_ns,
        info.st_mtime_ns,
        info.st_ctime_ns,
    )


def _dirent(directory: int, name: str, next_cookie: int) -> bytes:
    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
    encoded = name.encode()
    return struct.pack("<QQIB3x", next_cookie, info.st_ino, len(encoded), _filetype(info.st_mode)) + encoded
