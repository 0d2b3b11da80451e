"""WASI preview 1 descriptors, files and directories over a guest's preopens, independent of the engine (fs).

One table holds every descriptor of an instance: stdin, stdout and stderr (0-2, the output captured
by the host within the guest's quota), the preopens (3, 4, … in manifest order) and what the guest
opens. Each descriptor holds the rights its file's type and its access mode give (a file opened without
writing cannot be written: BADF, as a POSIX descriptor not open for it answers), less what
`fd_fdstat_set_rights` removed from it or its directory (NOTCAPABLE), and every function checks them. The other
rights `path_open` asks for narrow nothing: Wasmtime's WASI ignores them, and wasi-libc, Rust's std and
Wasmtime's own test programs ask for reading or writing alone before they seek, stat or poll.

Paths are resolved by wasi_paths.py, so neither `..`, nor a symlink (made by the guest or not), nor a
hard link can reach outside a preopen. A `ro` preopen refuses with PERM every call that would change a
file or a directory under it, whatever descriptor the guest reaches it by.

Methods take the guest memory and the raw import arguments, return nothing on success and raise
`AbiFault` (or `OSError`, which the host function maps to a WASI errno) otherwise.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import stat
import struct
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

from ngixi_runtime.capabilities.base import Mount
from ngixi_runtime.capabilities.context import DEFAULT_OPEN_FILES, StdinState
from ngixi_runtime.capabilities.wasi_paths import (
    DIRECTORY_FLAGS,
    ESCAPE,
    Target,
    beneath,
    link_target,
    open_directory_beneath,
)
from ngixi_runtime.capabilities.wasi_quota import (
    UNBOUNDED,
    DiskQuota,
    Mounts,
    SharedDiskQuota,
    holds_bytes,
)
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.files import open_plain
from ngixi_runtime.spec.abi import (
    DIRECTORY_RIGHTS,
    FDFLAG_APPEND,
    FDFLAG_DSYNC,
    FDFLAG_NONBLOCK,
    FDFLAG_RSYNC,
    FDFLAG_SYNC,
    FILE_RIGHTS,
    FILETYPE_BLOCK_DEVICE,
    FILETYPE_CHARACTER_DEVICE,
    FILETYPE_DIRECTORY,
    FILETYPE_REGULAR_FILE,
    FILETYPE_STREAM,
    FILETYPE_SYMBOLIC_LINK,
    FILETYPE_UNKNOWN,
    LOOKUP_SYMLINK_FOLLOW,
    OFLAG_CREAT,
    OFLAG_DIRECTORY,
    OFLAG_EXCL,
    OFLAG_TRUNC,
    RIGHT_FD_ADVISE,
    RIGHT_FD_DATASYNC,
    RIGHT_FD_FDSTAT_SET_FLAGS,
    RIGHT_FD_FILESTAT_GET,
    RIGHT_FD_FILESTAT_SET_SIZE,
    RIGHT_FD_FILESTAT_SET_TIMES,
    RIGHT_FD_READ,
    RIGHT_FD_READDIR,
    RIGHT_FD_SEEK,
    RIGHT_FD_SYNC,
    RIGHT_FD_TELL,
    RIGHT_FD_WRITE,
    RIGHT_PATH_CREATE_DIRECTORY,
    RIGHT_PATH_CREATE_FILE,
    RIGHT_PATH_FILESTAT_GET,
    RIGHT_PATH_FILESTAT_SET_SIZE,
    RIGHT_PATH_FILESTAT_SET_TIMES,
    RIGHT_PATH_LINK_SOURCE,
    RIGHT_PATH_LINK_TARGET,
    RIGHT_PATH_OPEN,
    RIGHT_PATH_READLINK,
    RIGHT_PATH_REMOVE_DIRECTORY,
    RIGHT_PATH_RENAME_SOURCE,
    RIGHT_PATH_RENAME_TARGET,
    RIGHT_PATH_SYMLINK,
    RIGHT_PATH_UNLINK_FILE,
    RIGHT_POLL_FD_READWRITE,
    RIGHTS,
    U64,
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

MAX_PATH = 4096  # bytes, as PATH_MAX on Linux, which counts a path's terminating NUL: 4,095 bytes fit
MAX_READ = MAX_WRITE = 16 << 20  # bytes one call moves; a larger request is a short read or write
# Entries fd_readdir reads between two looks at the call's deadline: a directory of a million names (an operator's
# ro preopen, or a guest's own under a max_files that allows them) took seconds to read, past its timeout_ms.
_ENTRIES_PER_LOOK = 1024
# What fd_readdir's listings kept for their later cookies may hold in all, per instance: a guest holding many
# directories open (limits.open_files) must not make the host hold a listing for each.
LISTINGS_BYTES = 4 << 20
_ENTRY_OVERHEAD = 48  # a listing's entry is a bytes object, and a pointer to it
FIRST_PREOPEN_FD = 3
STDIN, STDOUT, STDERR = 0, 1, 2

_FILETYPES = (
    (stat.S_ISBLK, FILETYPE_BLOCK_DEVICE),
    (stat.S_ISCHR, FILETYPE_CHARACTER_DEVICE),
    (stat.S_ISDIR, FILETYPE_DIRECTORY),
    (stat.S_ISREG, FILETYPE_REGULAR_FILE),
    (stat.S_ISLNK, FILETYPE_SYMBOLIC_LINK),
)  # a socket file is UNKNOWN (as a FIFO): whether it is a stream or a datagram socket is not in its inode
_WHENCE = {0: os.SEEK_SET, 1: os.SEEK_CUR, 2: os.SEEK_END}
# Each host errno WASI has a name for, under that name (ENOTSUP and EOPNOTSUPP are one number on Linux).
_HOST_ERRNO = {getattr(errno, f"E{code.name}"): code for code in Errno if hasattr(errno, f"E{code.name}")}
_HOST_FDFLAGS = ((FDFLAG_APPEND, os.O_APPEND), (FDFLAG_NONBLOCK, os.O_NONBLOCK))
_SYNC_FDFLAGS = FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC
_FDFLAGS = FDFLAG_APPEND | FDFLAG_NONBLOCK | _SYNC_FDFLAGS
_STDIN_RIGHTS = RIGHT_FD_READ | RIGHT_FD_FDSTAT_SET_FLAGS | RIGHT_FD_FILESTAT_GET | RIGHT_POLL_FD_READWRITE
_OUTPUT_RIGHTS = RIGHT_FD_WRITE | RIGHT_FD_FDSTAT_SET_FLAGS | RIGHT_FD_FILESTAT_GET | RIGHT_POLL_FD_READWRITE
# fst_flags of the set_times functions
_ATIM, _ATIM_NOW, _MTIM, _MTIM_NOW = 1, 2, 4, 8
_ADVICE_COUNT = 6  # normal, sequential, random, willneed, dontneed, noreuse
_SEEK_RIGHTS = RIGHT_FD_SEEK | RIGHT_FD_TELL
_READ_RIGHTS = RIGHT_FD_READ | RIGHT_FD_READDIR
# What a change under a `ro` preopen answers: PERM, as Wasmtime's WASI (its DirPerms and FilePerms) answers and
# its own preview 1 test programs expect, so that core and component guests agree; the witx leaves it open.
READ_ONLY = Errno.PERM


def wasi_errno(error: OSError) -> int:
    return _HOST_ERRNO.get(error.errno or 0, Errno.IO)


class Console(Protocol):
    """Where stdout and stderr go: the instance's captured output, within its quota (the host context)."""

    def stdio_room(self) -> int: ...

    def capture_stdio(self, fd: int, data: bytes) -> bool: ...


_PROC_FD = Path("/proc/self/fd")


class Descriptor:
    """One open descriptor. `host_fd` is -1 for stdin, stdout and stderr, whose `stream` says which they are."""

    __slots__ = (
        "dropped",
        "filetype",
        "flags",
        "host_fd",
        "inheriting",
        "mount",
        "preopen",
        "rights",
        "stream",
    )

    def __init__(
        self,
        host_fd: int,
        mount: Mount | None,
        filetype: int,
        rights: int,
        inheriting: int,
        flags: int = 0,
        preopen: bool = False,
        stream: int | None = None,
        dropped: int = 0,
    ) -> None:
        self.host_fd = host_fd
        self.mount = mount
        self.filetype = filetype
        self.rights = rights
        self.inheriting = inheriting
        self.flags = flags
        self.preopen = preopen
        self.stream = stream
        self.dropped = dropped  # rights fd_fdstat_set_rights removed, here or from the directory it came from

    @property
    def is_directory(self) -> bool:
        return self.filetype == FILETYPE_DIRECTORY

    @property
    def read_only(self) -> bool:
        return self.mount is not None and self.mount.mode == "ro"


class WasiFilesystem:
    """The descriptors of one guest instance: stdio (0-2), its preopens (3, 4, … in manifest order) and files."""

    def __init__(
        self,
        console: Console | None = None,
        stdin: bytes = b"",
        *,
        guest: str = "guest",
        open_files: int = DEFAULT_OPEN_FILES,
        call_ends_at: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self._guest = guest
        self._call_ends_at = call_ends_at  # when the guest's current call reaches its limits.timeout_ms
        self._table: dict[int, Descriptor] = {}
        self._open_files = open_files
        self._console = console
        self._stdin = StdinState(stdin)
        self._quota = DiskQuota(UNBOUNDED, UNBOUNDED)  # what the rw preopens may hold (set by `over`)
        self._removed_open: set[tuple[int, int]] = set()  # files with no name left whose bytes a descriptor holds
        self._roots: set[tuple[int, int]] = set()  # each preopen's directory (st_dev, st_ino)
        # A rw preopen inside a ro one, whose files the guest may open through either: each file it opens is held
        # (`_held`), not only those of rw preopens (an operator's program locking a file the guest only reads could
        # otherwise wait on the guest).
        self._writable_within_read_only = False
        # fd_readdir's listing of each directory descriptor, read at cookie 0 and read on from its later cookies, with
        # its size; the least recently read ones beyond LISTINGS_BYTES in all are let go (`_listed`).
        self._listings: dict[Descriptor, tuple[list[bytes], int]] = {}
        self._listed_bytes = 0

    @classmethod
    def over(
        cls,
        mounts: Sequence[Mount],
        *,
        guest: str,
        root: Path | None = None,
        console: Console | None = None,
        stdin: bytes | None = None,
        quota: tuple[int, int] | None = None,
        open_files: int = DEFAULT_OPEN_FILES,
        call_ends_at: Callable[[], float] = lambda: math.inf,
    ) -> WasiFilesystem:
        """Opens each mount (checked and resolved under the sandbox `root`) as a preopen, beneath `root`.

        With a `console`, stdout and stderr (fds 1 and 2) write to it; with `stdin`, fd 0 reads it. With a
        `quota` (max_bytes, max_files), the `rw` mounts may hold no more (wasi_quota.py).
        """
        filesystem = cls(console, stdin or b"", guest=guest, open_files=open_files, call_ends_at=call_ends_at)
        if stdin is not None:
            filesystem._table[STDIN] = Descriptor(-1, None, FILETYPE_STREAM, _STDIN_RIGHTS, 0, stream=STDIN)
        if console is not None:
            for fd in (STDOUT, STDERR):
                filesystem._table[fd] = Descriptor(-1, None, FILETYPE_STREAM, _OUTPUT_RIGHTS, 0, stream=fd)
        try:
            for mount in mounts:
                host_fd = _open_mount(mount, root)
                opened = os.fstat(host_fd)
                filesystem._roots.add((opened.st_dev, opened.st_ino))
                descriptor = Descriptor(
                    host_fd, mount, FILETYPE_DIRECTORY, DIRECTORY_RIGHTS, DIRECTORY_RIGHTS | FILE_RIGHTS, preopen=True
                )
                filesystem._add(descriptor)
            if quota is not None:
                filesystem._quota = filesystem._measured(root, quota)
        except OSError as error:
            filesystem.close()
            raise InvalidInput(f"{guest}: cannot open the preopen {error.filename}: {error.strerror}") from None
        except InvalidInput as error:  # the quota's shared count cannot be kept
            filesystem.close()
            raise InvalidInput(f"{guest}: {error}") from None
        except AbiFault:  # MFILE
            filesystem.close()
            raise InvalidInput(
                f"{guest}: limits.open_files = {open_files} does not hold its {len(mounts)} preopens and stdio: "
                "raise it"
            ) from None
        return filesystem

    def _measured(self, root: Path | None, quota: tuple[int, int]) -> DiskQuota:
        """What the guest holds: the whole sandbox `root` but the ro preopens' contents, which the guest cannot
        change and an operator may fill (a rw preopen inside one is measured by itself). Folders an earlier version
        mounted count too, or each version naming new ones would get max_bytes more of the disk."""
        preopens = [d for d in self._table.values() if d.preopen and d.mount is not None]
        read_only = {d.mount.host_path: d.host_fd for d in preopens if d.mount is not None and d.mount.mode == "ro"}
        writable = {d.mount.host_path: d.host_fd for d in preopens if d.mount is not None and d.mount.mode == "rw"}
        if root is None or not writable:  # nothing to hold, or nothing it could change
            return DiskQuota(*quota)
        places = [(found.st_dev, found.st_ino) for found in map(os.fstat, [*read_only.values(), *writable.values()])]
        mounts = Mounts(unnamed=frozenset(places), unread=frozenset(places[: len(read_only)]))
        inside_read_only = _outermost(writable, within=set(read_only))
        self._writable_within_read_only = bool(inside_read_only)

        def measure() -> DiskQuota:
            root_fd = os.open(root, DIRECTORY_FLAGS)
            try:
                found = os.fstat(root_fd)
                whole = [] if (found.st_dev, found.st_ino) in mounts.unread else [root_fd]
                return DiskQuota.measured(whole + inside_read_only, *quota, mounts=mounts)
            finally:
                os.close(root_fd)

        return SharedDiskQuota.over(root, *quota, measure, [root, *read_only, *writable])

    def close(self) -> None:
        if self._removed_open:  # their bytes stay counted until the sandbox is measured again
            self._quota.exact = False
        for descriptor in self._table.values():
            _release(descriptor)
        self._table.clear()
        self._listings.clear()
        self._quota.close()

    # --- descriptors -----------------------------------------------------------------------

    def _get(self, fd: int, rights: int = 0) -> Descriptor:
        descriptor = self._table.get(fd)
        if descriptor is None:
            raise AbiFault(Errno.BADF)
        missing = rights & ~descriptor.rights
        if missing:
            raise AbiFault(Errno.NOTCAPABLE if missing & descriptor.dropped else Errno.BADF)
        return descriptor

    def _directory(self, fd: int, rights: int = 0) -> Descriptor:
        descriptor = self._get(fd)
        if not descriptor.is_directory:
            raise AbiFault(Errno.NOTDIR)
        return self._get(fd, rights)

    def _writable_directory(self, fd: int, rights: int) -> Descriptor:
        _refuse_on_ro(self._directory(fd))
        return self._directory(fd, rights)

    def _changing(self, fd: int, rights: int) -> Descriptor:
        """A descriptor to change a file through: PERM under a `ro` preopen whatever its rights, then `rights`."""
        _refuse_on_ro(self._get(fd))
        return self._get(fd, rights)

    def _seekable(self, fd: int, rights: int) -> Descriptor:
        """A descriptor to seek or read/write at an offset: one not open for reading or writing as asked is BADF
        (stdin written, as Wasmtime answers), then a stream SPIPE (as a pipe answers), then the seek rights."""
        _refuse_on_stream(self._get(fd, rights & ~_SEEK_RIGHTS))
        return self._get(fd, rights)

    def _add(self, descriptor: Descriptor) -> int:
        if len(self._table) >= self._open_files:
            _release(descriptor)
            raise AbiFault(Errno.MFILE)
        fd = next(n for n in range(FIRST_PREOPEN_FD, FIRST_PREOPEN_FD + self._open_files + 1) if n not in self._table)
        self._table[fd] = descriptor
        return fd

    def ready(self, fd: int, writing: bool) -> tuple[int, int]:
        """poll_oneoff's answer for a descriptor: (errno, bytes available to read or to write). A file is ready
        either way, whatever it was opened for (as Wasmtime's); a stream only its own way, and a closed descriptor
        or a directory never: BADF, which fails the whole call, as a descriptor fd_fdstat_set_rights took
        POLL_FD_READWRITE from does (NOTCAPABLE)."""
        descriptor = self._get(fd, RIGHT_POLL_FD_READWRITE)
        if descriptor.filetype != FILETYPE_REGULAR_FILE:
            self._get(fd, RIGHT_FD_WRITE if writing else RIGHT_FD_READ)
        if descriptor.host_fd < 0:
            return self._stream_ready(descriptor, writing)
        if writing:  # the most one fd_write moves
            return Errno.SUCCESS, MAX_WRITE
        try:
            info = os.fstat(descriptor.host_fd)
            return Errno.SUCCESS, max(0, info.st_size - os.lseek(descriptor.host_fd, 0, os.SEEK_CUR))
        except OSError as error:
            return wasi_errno(error), 0

    def _stream_ready(self, stdio: Descriptor, writing: bool) -> tuple[int, int]:
        """`ready` for stdio: stdin's bytes left to read, stdout's or stderr's room left under the output quota."""
        if writing:
            return Errno.SUCCESS, self._console.stdio_room() if self._console is not None else 0
        return Errno.SUCCESS, self._stdin.left

    @property
    def mounts(self) -> list[Mount]:
        """The preopens in manifest order, each named by the descriptor opened and checked here (/proc/self/fd/N).

        Whoever opens them again by path (Wasmtime's WASI, for component guests) then gets the directory that
        was checked, even if another instance of the tenant has since swapped its name for a symlink out of
        the sandbox; without /proc, the path checked and resolved under the sandbox root.
        """
        pinned = _PROC_FD.is_dir()
        return [
            d.mount._replace(host_path=_PROC_FD / str(d.host_fd)) if pinned else d.mount
            for d in self._table.values()
            if d.preopen and d.mount is not None
        ]

    # --- preopens --------------------------------------------------------------------------

    def _preopen(self, fd: int) -> Mount:
        descriptor = self._get(fd)
        if not descriptor.preopen or descriptor.mount is None:
            raise AbiFault(Errno.BADF)
        return descriptor.mount

    def fd_prestat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        memory.write(out, struct.pack("<B3xI", 0, len(self._preopen(fd).guest_path.encode())))

    def fd_prestat_dir_name(self, memory: GuestMemory, fd: int, buffer: int, length: int) -> None:
        if not self._get(fd).preopen:  # as Wasmtime's WASI answers (fd_prestat_get's is BADF in both)
            raise AbiFault(Errno.NOTDIR)
        name = self._preopen(fd).guest_path.encode()
        if length < len(name):
            raise AbiFault(Errno.NAMETOOLONG)
        memory.write(buffer, name)

    # --- opening, closing, renumbering -----------------------------------------------------

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
        # A ro preopen refuses what would write a file (FD_WRITE, CREAT, TRUNC); a file asked for APPEND or another
        # write right without FD_WRITE opens there to read, as in Wasmtime's WASI (core and component guests alike)
        if rights & RIGHT_FD_WRITE or oflags & (OFLAG_CREAT | OFLAG_TRUNC):
            _refuse_on_ro(self._directory(fd))
        parent = self._directory(fd, RIGHT_PATH_OPEN | _oflag_rights(oflags))
        # What the new descriptor may hand down is its parent's, whatever `inheriting` asks: Wasmtime's WASI
        # ignores it, and Zig's std asks a directory for inheriting rights without reading or writing files,
        # then opens files through it to write them. Only fd_fdstat_set_rights narrows what a directory hands down.
        asked = rights & parent.inheriting
        if fdflags & ~_FDFLAGS or oflags & ~(OFLAG_CREAT | OFLAG_DIRECTORY | OFLAG_EXCL | OFLAG_TRUNC):
            raise AbiFault(Errno.INVAL)
        _defined_rights(rights, inheriting)
        if fdflags & _SYNC_FDFLAGS:  # not supported, as Wasmtime's WASI answers (before it looks at the oflags)
            raise AbiFault(Errno.NOTSUP)
        # open(2) creates no directory (INVAL, as Linux's), and EXCL without CREAT is undefined in POSIX: INVAL, as
        # Wasmtime's WASI answers, where Linux would ignore it
        if oflags & OFLAG_DIRECTORY and oflags & (OFLAG_CREAT | OFLAG_EXCL):
            raise AbiFault(Errno.INVAL)
        # O_CREAT|O_EXCL never follows a final symlink: the name exists, whatever it points to (POSIX open)
        exclusive = oflags & (OFLAG_CREAT | OFLAG_EXCL) == OFLAG_CREAT | OFLAG_EXCL
        follow = bool(lookup & LOOKUP_SYMLINK_FOLLOW) and not exclusive
        # O_CREAT looks at the name itself: `link/` is ISDIR, as for any name with a slash, wherever the link points
        creates = bool(oflags & OFLAG_CREAT)
        with (
            self._quota.changing() if oflags & (OFLAG_CREAT | OFLAG_TRUNC) else nullcontext(),
            beneath(parent.host_fd, _path(memory, path, path_length), follow=follow, name_itself=creates) as target,
        ):
            before = _existing(target) if oflags & (OFLAG_CREAT | OFLAG_TRUNC) else None
            with self._quota.naming() if before is None and oflags & OFLAG_CREAT else nullcontext():
                host_fd, mode, rights, fdflags = _open_file_or_directory(
                    target, oflags, fdflags, asked, appending_writes=not parent.read_only
                )
            if before is not None and oflags & OFLAG_TRUNC and stat.S_ISREG(before.st_mode):
                self._quota.shrink(before.st_size)
            if stat.S_ISREG(mode) and (not parent.read_only or self._writable_within_read_only):
                self._held(host_fd)  # while the count is held: no other instance removes a file it just made
        filetype = _filetype(mode)
        allowed = DIRECTORY_RIGHTS if filetype == FILETYPE_DIRECTORY else FILE_RIGHTS
        descriptor = Descriptor(
            host_fd,
            parent.mount,
            filetype,
            rights & allowed & parent.inheriting,
            parent.inheriting,
            0 if filetype == FILETYPE_DIRECTORY else fdflags & _FDFLAGS,  # none, as fd_fdstat_set_flags sets none
            dropped=allowed & ~parent.inheriting,
        )
        write_u32(memory, opened, self._add(descriptor))

    def fd_close(self, memory: GuestMemory, fd: int) -> None:
        self._get(fd)
        self._closed(self._table.pop(fd))

    def fd_renumber(self, memory: GuestMemory, fd: int, to: int) -> None:
        descriptor, replaced = self._get(fd), self._get(to)
        if fd == to:
            return
        self._table[to] = descriptor
        del self._table[fd]
        self._closed(replaced)

    def _closed(self, descriptor: Descriptor) -> None:
        """Closes a descriptor taken out of the table; the last one of a file removed while open frees its bytes
        (they leave the disk)."""
        file = os.fstat(descriptor.host_fd) if descriptor.host_fd >= 0 and self._removed_open else None
        removed = file is not None and (file.st_dev, file.st_ino) in self._removed_open
        last = removed and self._quota.last_holder(descriptor.host_fd)  # no other instance holds it open
        _release(descriptor)
        self._forget_listing(descriptor)
        if file is None or not removed or self._holds(file):
            return
        self._removed_open.discard((file.st_dev, file.st_ino))
        if last:
            self._quota.shrink(file.st_size)
        else:  # another instance holds it: counted until the sandbox is measured again
            self._quota.exact = False

    # --- data ------------------------------------------------------------------------------

    def fd_read(self, memory: GuestMemory, fd: int, iovs: int, count: int, done: int) -> None:
        descriptor = self._get(fd, RIGHT_FD_READ)
        size = _readable(memory, iovs, count)
        data = self._stdin.read(size) if descriptor.host_fd < 0 else os.read(descriptor.host_fd, size)
        write_u32(memory, done, scatter(memory, iovs, count, data))

    def fd_pread(self, memory: GuestMemory, fd: int, iovs: int, count: int, offset: int, done: int) -> None:
        descriptor = self._seekable(fd, RIGHT_FD_READ | RIGHT_FD_SEEK)
        data = os.pread(descriptor.host_fd, _readable(memory, iovs, count), _offset(offset))
        write_u32(memory, done, scatter(memory, iovs, count, data))

    def fd_write(self, memory: GuestMemory, fd: int, iovs: int, count: int, done: int) -> None:
        descriptor = self._changing(fd, RIGHT_FD_WRITE)
        if descriptor.stream is not None:
            write_u32(memory, done, self._to_console(descriptor.stream, memory, iovs, count))
            return
        write_u32(memory, done, self._write(descriptor, gather(memory, iovs, count, MAX_WRITE), None))

    def _to_console(self, stream: int, memory: GuestMemory, iovs: int, count: int) -> int:
        if self._console is None or stream == STDIN:
            raise AbiFault(Errno.BADF)
        # One byte over the quota is enough for capture_stdio to refuse it.
        data = gather(memory, iovs, count, self._console.stdio_room() + 1)
        if not self._console.capture_stdio(stream, data):
            raise AbiFault(Errno.PIPE)
        return len(data)

    def fd_pwrite(self, memory: GuestMemory, fd: int, iovs: int, count: int, offset: int, done: int) -> None:
        _refuse_on_stream(self._changing(fd, RIGHT_FD_WRITE))
        descriptor = self._get(fd, RIGHT_FD_SEEK)
        data = gather(memory, iovs, count, MAX_WRITE)
        write_u32(memory, done, self._write(descriptor, data, _offset(offset)))

    def _write(self, descriptor: Descriptor, data: bytes, offset: int | None) -> int:
        """Writes `data` to a file at `offset` (None: where the descriptor is), within the disk quota."""
        with self._quota.changing():
            size = os.fstat(descriptor.host_fd).st_size
            if descriptor.flags & FDFLAG_APPEND:  # Linux's pwrite appends too, at any offset
                start = size
            else:
                start = os.lseek(descriptor.host_fd, 0, os.SEEK_CUR) if offset is None else offset
            with self._quota.growing(size, start + len(data)):
                written = (
                    os.write(descriptor.host_fd, data)
                    if offset is None
                    else os.pwrite(descriptor.host_fd, data, offset)
                )
            # what was counted, not written
            self._quota.shrink(max(size, start + len(data)) - max(size, start + written))
        return written

    def fd_seek(self, memory: GuestMemory, fd: int, offset: int, whence: int, out: int) -> None:
        needed = RIGHT_FD_TELL if offset == 0 and whence == 1 else _SEEK_RIGHTS
        descriptor = self._seekable(fd, needed)
        if whence not in _WHENCE:
            raise AbiFault(Errno.INVAL)
        write_u64(memory, out, os.lseek(descriptor.host_fd, offset, _WHENCE[whence]))

    def fd_tell(self, memory: GuestMemory, fd: int, out: int) -> None:
        descriptor = self._seekable(fd, RIGHT_FD_TELL)
        write_u64(memory, out, os.lseek(descriptor.host_fd, 0, os.SEEK_CUR))

    def fd_sync(self, memory: GuestMemory, fd: int) -> None:
        descriptor = self._get(fd, RIGHT_FD_SYNC)
        os.fsync(descriptor.host_fd)

    def fd_datasync(self, memory: GuestMemory, fd: int) -> None:
        descriptor = self._get(fd, RIGHT_FD_DATASYNC)
        getattr(os, "fdatasync", os.fsync)(descriptor.host_fd)

    def fd_filestat_set_size(self, memory: GuestMemory, fd: int, size: int) -> None:
        descriptor = self._changing(fd, 0)
        if descriptor.filetype == FILETYPE_REGULAR_FILE and not (descriptor.rights | descriptor.dropped) & WRITE_RIGHTS:
            raise AbiFault(Errno.INVAL)  # ftruncate(2) of a file not open for writing, as Wasmtime answers
        self._get(fd, RIGHT_FD_FILESTAT_SET_SIZE)
        with self._quota.changing():
            new_size, old_size = _offset(size), os.fstat(descriptor.host_fd).st_size
            with self._quota.growing(old_size, new_size):
                os.ftruncate(descriptor.host_fd, new_size)
            self._quota.shrink(old_size - new_size)

    def fd_allocate(self, memory: GuestMemory, fd: int, offset: int, length: int) -> None:
        """NOTSUP for every file, under a ro preopen too, as Wasmtime's WASI answers and its own test programs expect
        (BADF for others)."""
        if self._get(fd).filetype != FILETYPE_REGULAR_FILE:
            raise AbiFault(Errno.BADF)
        raise AbiFault(Errno.NOTSUP)

    def fd_advise(self, memory: GuestMemory, fd: int, offset: int, length: int, advice: int) -> None:
        self._get(fd, RIGHT_FD_ADVISE)
        if not 0 <= advice < _ADVICE_COUNT:
            raise AbiFault(Errno.INVAL)
        _offset(offset)
        _offset(length)

    # --- metadata --------------------------------------------------------------------------

    def fd_fdstat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        descriptor = self._get(fd)
        memory.write(out, fdstat(descriptor.filetype, descriptor.flags, descriptor.rights, descriptor.inheriting))

    def fd_fdstat_set_flags(self, memory: GuestMemory, fd: int, flags: int) -> None:
        descriptor = self._get(fd, RIGHT_FD_FDSTAT_SET_FLAGS)
        if flags & ~_FDFLAGS:
            raise AbiFault(Errno.INVAL)
        if flags & _SYNC_FDFLAGS:  # as Wasmtime's WASI: Linux cannot change O_SYNC/O_DSYNC on an open file
            raise AbiFault(Errno.INVAL)
        if descriptor.host_fd >= 0:
            host = fcntl.fcntl(descriptor.host_fd, fcntl.F_GETFL)
            for bit, host_bit in _HOST_FDFLAGS:
                host = host | host_bit if flags & bit else host & ~host_bit
            fcntl.fcntl(descriptor.host_fd, fcntl.F_SETFL, host)
        descriptor.flags = flags

    def fd_fdstat_set_rights(self, memory: GuestMemory, fd: int, rights: int, inheriting: int) -> None:
        descriptor = self._get(fd)
        _defined_rights(rights, inheriting)
        if rights & ~descriptor.rights or inheriting & ~descriptor.inheriting:
            raise AbiFault(Errno.NOTCAPABLE)
        descriptor.dropped |= descriptor.rights & ~rights
        descriptor.rights, descriptor.inheriting = rights, inheriting

    def fd_filestat_get(self, memory: GuestMemory, fd: int, out: int) -> None:
        descriptor = self._get(fd, RIGHT_FD_FILESTAT_GET)
        if descriptor.host_fd < 0:
            memory.write(out, struct.pack("<QQB7xQQQQQ", 0, 0, descriptor.filetype, 0, 0, 0, 0, 0))
            return
        memory.write(out, _filestat(os.fstat(descriptor.host_fd)))

    def fd_filestat_set_times(self, memory: GuestMemory, fd: int, atime: int, mtime: int, flags: int) -> None:
        descriptor = self._changing(fd, RIGHT_FD_FILESTAT_SET_TIMES)
        times = _new_times(atime, mtime, flags)
        os.utime(descriptor.host_fd, ns=_times(os.fstat(descriptor.host_fd), *times))

    def path_filestat_get(self, memory: GuestMemory, fd: int, lookup: int, path: int, length: int, out: int) -> None:
        parent = self._directory(fd, RIGHT_PATH_FILESTAT_GET)
        follow = bool(lookup & LOOKUP_SYMLINK_FOLLOW)
        with beneath(parent.host_fd, _path(memory, path, length), follow=follow) as target:
            memory.write(out, _filestat(_lstat(target)))

    def path_filestat_set_times(
        self, memory: GuestMemory, fd: int, lookup: int, path: int, length: int, atime: int, mtime: int, flags: int
    ) -> None:
        parent = self._writable_directory(fd, RIGHT_PATH_FILESTAT_SET_TIMES)
        times = _new_times(atime, mtime, flags)
        follow = bool(lookup & LOOKUP_SYMLINK_FOLLOW)
        with beneath(parent.host_fd, _path(memory, path, length), follow=follow) as target:
            # utimensat(2) of two UTIME_OMITs looks no further, as Wasmtime's WASI answers unless it follows a link
            if times == (None, None) and not (follow or target.trailing_slash):
                return
            info = _lstat(target)
            os.utime(target.name, ns=_times(info, *times), dir_fd=target.directory, follow_symlinks=False)

    def fd_readdir(self, memory: GuestMemory, fd: int, buffer: int, length: int, cookie: int, used: int) -> None:
        descriptor = self._directory(fd, RIGHT_FD_READDIR)
        cookie &= U64
        kept = self._listings.pop(descriptor, None)  # put back last: the most recently read
        if cookie == 0 or kept is None:
            self._listed_bytes -= 0 if kept is None else kept[1]
            listing = self._entries(descriptor.host_fd)
            kept = (listing, sum(map(len, listing)) + _ENTRY_OVERHEAD * len(listing))
            self._listed_bytes += kept[1]
        self._listings[descriptor] = kept
        self._let_go_of_listings()
        entries = bytearray()
        for entry in kept[0][cookie:]:
            if len(entries) >= length:  # a full buffer tells the guest to ask again from a later cookie
                break
            entries += entry
        memory.write(buffer, bytes(entries[:length]))
        write_u32(memory, used, min(len(entries), length))

    def _entries(self, directory: int) -> list[bytes]:
        """Every dirent of a directory, "." and ".." first, each with the cookie of the one after it; the call ends
        as timed out once its deadline has passed, as the entries are read.

        A preopen's own ".." is the preopen again (its inode), as Wasmtime's WASI answers: the directory above it is
        the host's, whose inode the guest has no business knowing.
        """
        itself = os.fstat(directory)
        above = itself if (itself.st_dev, itself.st_ino) in self._roots else os.stat("..", dir_fd=directory)
        found = [(".", itself.st_ino, FILETYPE_DIRECTORY), ("..", above.st_ino, FILETYPE_DIRECTORY)]
        with os.scandir(directory) as listing:
            for count, entry in enumerate(listing):
                if count % _ENTRIES_PER_LOOK == 0 and time.monotonic() >= self._call_ends_at():
                    raise GuestError(
                        f"{self._guest}: reached its limits.timeout_ms while reading a directory in fd_readdir",
                        outcome="timeout",
                    )
                found.append((entry.name, entry.inode(), _entry_type(entry)))
        found[2:] = sorted(found[2:])
        return [_dirent(name, inode, kind, index + 1) for index, (name, inode, kind) in enumerate(found)]

    def _let_go_of_listings(self) -> None:
        """Lets go of the least recently read listings while they hold more than LISTINGS_BYTES, but the last one
        read: one let go is read again from the directory at its next cookie, as Wasmtime's WASI reads each time."""
        while self._listed_bytes > LISTINGS_BYTES and len(self._listings) > 1:
            self._forget_listing(next(iter(self._listings)))

    def _forget_listing(self, descriptor: Descriptor) -> None:
        kept = self._listings.pop(descriptor, None)
        if kept is not None:
            self._listed_bytes -= kept[1]

    # --- directories and links -------------------------------------------------------------

    def path_create_directory(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd, RIGHT_PATH_CREATE_DIRECTORY)
        with (
            self._quota.changing(),
            beneath(parent.host_fd, _path(memory, path, length), follow=False, name_itself=True) as target,
        ):
            _not_through_a_link(target, Errno.EXIST)
            with self._naming(target):
                os.mkdir(target.name, 0o700, dir_fd=target.directory)  # the guest's alone, whatever the umask

    def path_remove_directory(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd, RIGHT_PATH_REMOVE_DIRECTORY)
        with (
            self._quota.changing(),
            beneath(parent.host_fd, _path(memory, path, length), follow=False, name_itself=True) as target,
        ):
            _not_through_a_link(target)
            os.rmdir(target.name, dir_fd=target.directory)
            self._quota.unnamed()

    def path_unlink_file(self, memory: GuestMemory, fd: int, path: int, length: int) -> None:
        parent = self._writable_directory(fd, RIGHT_PATH_UNLINK_FILE)
        with (
            self._quota.changing(),
            beneath(parent.host_fd, _path(memory, path, length), follow=False, name_itself=True) as target,
        ):
            _not_through_a_link(target)
            removed = _lstat(target)
            with self._quota.removing(target.directory, target.name, removed) as frees:
                os.unlink(target.name, dir_fd=target.directory)
            self._unnamed(removed, frees)

    def path_rename(
        self, memory: GuestMemory, fd: int, old: int, old_length: int, new_fd: int, new: int, new_length: int
    ) -> None:
        source = self._writable_directory(fd, RIGHT_PATH_RENAME_SOURCE)
        destination = self._writable_directory(new_fd, RIGHT_PATH_RENAME_TARGET)
        with (
            self._quota.changing(),
            beneath(source.host_fd, _path(memory, old, old_length), follow=False, name_itself=True) as old_target,
            beneath(destination.host_fd, _path(memory, new, new_length), follow=False, name_itself=True) as new_target,
        ):
            if "." in (old_target.name, new_target.name):  # rename(2) of or onto `.` or `..`: BUSY before lookups
                raise AbiFault(Errno.BUSY)
            _not_through_a_link(old_target)
            moved = _lstat(old_target)
            _not_through_a_link(new_target)
            slashed = old_target.trailing_slash or new_target.trailing_slash
            if slashed and not stat.S_ISDIR(moved.st_mode):
                raise AbiFault(Errno.NOTDIR)
            replaced = _existing(new_target)
            if replaced is None or (replaced.st_dev, replaced.st_ino) == (moved.st_dev, moved.st_ino):
                os.rename(
                    old_target.name, new_target.name, src_dir_fd=old_target.directory, dst_dir_fd=new_target.directory
                )
                return
            with self._quota.removing(new_target.directory, new_target.name, replaced) as frees:
                os.rename(
                    old_target.name, new_target.name, src_dir_fd=old_target.directory, dst_dir_fd=new_target.directory
                )
            self._unnamed(replaced, frees)

    def path_symlink(self, memory: GuestMemory, old: int, old_length: int, fd: int, new: int, new_length: int) -> None:
        parent = self._writable_directory(fd, RIGHT_PATH_SYMLINK)
        contents = _path(memory, old, old_length)
        with (
            self._quota.changing(),
            beneath(parent.host_fd, _path(memory, new, new_length), follow=False, name_itself=True) as target,
        ):
            _new_name(target)
            with self._naming(target), self._quota.growing(0, len(os.fsencode(contents))):
                os.symlink(contents, target.name, dir_fd=target.directory)

    def path_link(
        self,
        memory: GuestMemory,
        old_fd: int,
        lookup: int,
        old: int,
        old_length: int,
        new_fd: int,
        new: int,
        new_length: int,
    ) -> None:
        source = self._writable_directory(old_fd, RIGHT_PATH_LINK_SOURCE)  # a ro file must not become writable
        destination = self._writable_directory(new_fd, RIGHT_PATH_LINK_TARGET)
        follow = bool(lookup & LOOKUP_SYMLINK_FOLLOW)
        with (
            self._quota.changing(),
            beneath(source.host_fd, _path(memory, old, old_length), follow=follow) as old_target,
            beneath(destination.host_fd, _path(memory, new, new_length), follow=False, name_itself=True) as new_target,
        ):
            _lstat(old_target)  # a missing source is NOENT before anything is said of the new name, as link(2)
            _new_name(new_target)
            with self._naming(new_target):
                os.link(
                    old_target.name,
                    new_target.name,
                    src_dir_fd=old_target.directory,
                    dst_dir_fd=new_target.directory,
                    follow_symlinks=False,
                )

    def _naming(self, target: Target) -> AbstractContextManager[object]:
        """Counts the new name `target` while it is made (DQUOT past the quota); a name that exists is left to the
        call, which answers EXIST as mkdir(2), symlink(2) and link(2) do, whatever the quota."""
        return self._quota.naming() if _existing(target) is None else nullcontext()

    def _unnamed(self, removed: os.stat_result, frees: bool) -> None:
        """Counts a name gone, and its file's bytes when that was its last name: now, or when the last descriptor
        here that holds it open closes (`_closed`); never while another instance holds it open (not `frees`), whose
        bytes stay counted until no instance runs and the next one measures the sandbox."""
        self._quota.unnamed()
        if not holds_bytes(removed) or removed.st_nlink != 1:
            return
        if self._holds(removed):
            self._removed_open.add((removed.st_dev, removed.st_ino))
        elif frees:
            self._quota.shrink(removed.st_size)
        else:  # counted until the sandbox is measured again
            self._quota.exact = False

    def _held(self, host_fd: int) -> None:
        """Marks a regular file just opened as held by this instance (`DiskQuota.held`); NOENT, and closed, if another
        instance removed it meanwhile."""
        try:
            self._quota.held(host_fd)
        except AbiFault:
            os.close(host_fd)
            raise

    def _holds(self, file: os.stat_result) -> bool:
        """Whether a descriptor of this instance has the file open (its bytes stay on disk until it is closed)."""
        for descriptor in self._table.values():
            if descriptor.host_fd >= 0 and not descriptor.is_directory:
                info = os.fstat(descriptor.host_fd)
                if (info.st_dev, info.st_ino) == (file.st_dev, file.st_ino):
                    return True
        return False

    def path_readlink(
        self, memory: GuestMemory, fd: int, path: int, length: int, buffer: int, buffer_length: int, used: int
    ) -> None:
        parent = self._directory(fd, RIGHT_PATH_READLINK)
        with beneath(parent.host_fd, _path(memory, path, length), follow=False) as target:
            if target.trailing_slash:  # as readlink(2): a name with a slash after it means a directory, no link
                _existing_directory_if_slashed(target)
                raise AbiFault(Errno.INVAL)
            contents = os.fsencode(os.readlink(target.name, dir_fd=target.directory))
        contents = contents[:buffer_length]
        memory.write(buffer, contents)
        write_u32(memory, used, len(contents))

    # --- sockets: none is ever handed to a guest ------------------------------------------

    def sock_accept(self, memory: GuestMemory, fd: int, flags: int, out: int) -> None:
        self._no_socket(fd)

    def sock_recv(self, memory: GuestMemory, fd: int, iovs: int, count: int, flags: int, size: int, out: int) -> None:
        self._no_socket(fd)

    def sock_send(self, memory: GuestMemory, fd: int, iovs: int, count: int, flags: int, size: int) -> None:
        self._no_socket(fd)

    def sock_shutdown(self, memory: GuestMemory, fd: int, how: int) -> None:
        self._no_socket(fd)

    def _no_socket(self, fd: int) -> None:
        self._get(fd)
        raise AbiFault(Errno.NOTSOCK)


# --- helpers -----------------------------------------------------------------------------------


def _outermost(places: dict[Path, int], *, within: set[Path]) -> list[int]:
    """The descriptors of `places` in one of the folders `within` that lie in no other one of them (each directory
    measured once)."""
    places = {path: fd for path, fd in places.items() if any(w == path or w in path.parents for w in within)}
    return [fd for place, fd in places.items() if not any(other in place.parents for other in places)]


def _open_mount(mount: Mount, root: Path | None) -> int:
    assert root is not None, "preopens are opened beneath the sandbox root"
    root_fd = os.open(root, DIRECTORY_FLAGS & ~os.O_NOFOLLOW)
    try:
        return open_directory_beneath(root_fd, mount.host_path.relative_to(root).as_posix())
    except AbiFault:
        raise OSError(errno.EXDEV, "it leaves the sandbox through a symlink", str(mount.host_path)) from None
    finally:
        os.close(root_fd)


def _release(descriptor: Descriptor) -> None:
    if descriptor.host_fd >= 0:
        os.close(descriptor.host_fd)


def _refuse_on_ro(descriptor: Descriptor) -> None:
    if descriptor.read_only:
        raise AbiFault(READ_ONLY)


def _refuse_on_stream(descriptor: Descriptor) -> None:
    if descriptor.host_fd < 0:
        raise AbiFault(Errno.SPIPE)


def _access_rights(rights: int, oflags: int, fdflags: int) -> int:
    """What `path_open`'s `rights` give a new descriptor: every right but reading and writing, which follow its
    access mode as open(2)'s do. It writes if FD_WRITE, TRUNC or APPEND asks, and reads unless FD_WRITE is asked
    without FD_READ, as Wasmtime's WASI opens (O_RDONLY|O_TRUNC is undefined in POSIX): no other right (FD_READDIR,
    FD_ALLOCATE, FD_FILESTAT_SET_SIZE) makes a file readable or writable, nor a directory fail to open (ISDIR)."""
    writes = bool(rights & RIGHT_FD_WRITE or oflags & OFLAG_TRUNC or fdflags & FDFLAG_APPEND)
    reads = bool(rights & RIGHT_FD_READ or not rights & RIGHT_FD_WRITE)
    return ~((0 if reads else _READ_RIGHTS) | (0 if writes else WRITE_RIGHTS)) & (FILE_RIGHTS | DIRECTORY_RIGHTS)


def _defined_rights(*rights: int) -> None:
    """INVAL for a right witx does not define (Wasmtime traps the guest), as for any other undefined flag bit."""
    if any(value & U64 & ~RIGHTS for value in rights):
        raise AbiFault(Errno.INVAL)


def _oflag_rights(oflags: int) -> int:
    rights = RIGHT_PATH_CREATE_FILE if oflags & OFLAG_CREAT else 0
    return rights | (RIGHT_PATH_FILESTAT_SET_SIZE if oflags & OFLAG_TRUNC else 0)


def _offset(value: int) -> int:
    """A file offset, size or timestamp from a u64 argument; one beyond what the host can hold is INVAL."""
    value &= U64
    if value > (1 << 63) - 1:
        raise AbiFault(Errno.INVAL)
    return value


def _readable(memory: GuestMemory, iovs: int, count: int) -> int:
    """How much one read may take: what the iovecs hold, and no more than the guest's memory or `MAX_READ`."""
    return min(capacity(memory, iovs, count), memory.size_bytes, MAX_READ)


def _path(memory: GuestMemory, pointer: int, length: int) -> str:
    if length >= MAX_PATH:
        raise AbiFault(Errno.NAMETOOLONG)
    path = read_utf8(memory, pointer, length, fault=Errno.ILSEQ)
    if "\0" in path:
        raise AbiFault(Errno.INVAL)
    if not path:
        raise AbiFault(Errno.NOENT)
    if path.startswith("/"):
        raise AbiFault(ESCAPE)
    return path


def _open_file_or_directory(
    target: Target, oflags: int, fdflags: int, asked: int, *, appending_writes: bool
) -> tuple[int, int, int, int]:
    """`_open_file` with the rights `asked` give: the host descriptor, its file's mode, its rights and fdflags. A
    directory asked for APPEND without writing (FD_WRITE, CREAT, TRUNC) opens to read, as open(2) opens it
    O_RDONLY|O_APPEND and Wasmtime's WASI opens it, where writing a directory is ISDIR; so does a file when APPEND
    does not open for writing (`appending_writes` false: under a ro preopen), keeping APPEND as open(2) does."""
    rights = _access_rights(asked, oflags, fdflags if appending_writes else fdflags & ~FDFLAG_APPEND)
    try:
        return (*_open_file(target, oflags, fdflags, rights), rights, fdflags)
    except (IsADirectoryError, AbiFault) as error:
        appends_only = fdflags & FDFLAG_APPEND and not (asked & RIGHT_FD_WRITE or oflags & (OFLAG_CREAT | OFLAG_TRUNC))
        if not appends_only or getattr(error, "code", Errno.ISDIR) != Errno.ISDIR:
            raise
    fdflags &= ~FDFLAG_APPEND
    rights = _access_rights(asked, oflags, fdflags)
    return (*_open_file(target, oflags | OFLAG_DIRECTORY, fdflags, rights), rights, fdflags)


def _open_file(target: Target, oflags: int, fdflags: int, rights: int) -> tuple[int, int]:
    """The new host descriptor and its file's mode: a regular file or a directory, never a special file."""
    reads, writes = bool(rights & RIGHT_FD_READ), bool(rights & RIGHT_FD_WRITE)
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    flags |= os.O_RDWR if reads and writes else os.O_WRONLY if writes else os.O_RDONLY
    for bit, host in (
        (OFLAG_CREAT, os.O_CREAT),
        (OFLAG_DIRECTORY, os.O_DIRECTORY),
        (OFLAG_EXCL, os.O_EXCL),
        (OFLAG_TRUNC, os.O_TRUNC),
    ):
        if oflags & bit:
            flags |= host
    if fdflags & FDFLAG_APPEND:
        flags |= os.O_APPEND
    if target.trailing_slash:
        if oflags & OFLAG_CREAT:  # open(2): a name ending in a slash can only be a directory, which O_CREAT never makes
            raise AbiFault(Errno.ISDIR)
        flags |= os.O_DIRECTORY
    if flags & os.O_DIRECTORY and writes:
        raise AbiFault(Errno.ISDIR if _is_directory(target) else Errno.NOTDIR)
    try:
        # A FIFO, device or socket is never opened (a FIFO's writer would wake, a device's driver run) and would
        # block the host in read or write past the call's deadline: NXIO, as open(2) answers for a socket.
        host_fd, mode = open_plain(target.name, flags, 0o600, dir_fd=target.directory)  # a new file: the guest's alone
    except OSError as error:
        if error.errno == errno.ELOOP and not flags & os.O_CREAT and link_target(target.directory, target.name):
            raise AbiFault(Errno.NOTDIR if flags & os.O_DIRECTORY else Errno.LOOP) from None
        raise
    if not fdflags & FDFLAG_NONBLOCK:  # as asked: a file system may honour it (FUSE can)
        os.set_blocking(host_fd, True)
    return host_fd, mode


def _existing(target: Target) -> os.stat_result | None:
    """The name's own status (a symlink's, not its target's), or None when there is no such name."""
    try:
        return os.stat(target.name, dir_fd=target.directory, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_directory(target: Target) -> bool:
    return stat.S_ISDIR(_lstat(target).st_mode)


def _lstat(target: Target) -> os.stat_result:
    info = os.stat(target.name, dir_fd=target.directory, follow_symlinks=False)
    if target.trailing_slash and not stat.S_ISDIR(info.st_mode):
        raise AbiFault(Errno.NOTDIR)
    return info


def _existing_directory_if_slashed(target: Target) -> None:
    """A name written with a trailing slash must be a directory."""
    if target.trailing_slash:
        _lstat(target)


def _not_through_a_link(target: Target, answer: Errno = Errno.NOTDIR) -> None:
    """`link/` names the symlink itself to a call that makes, removes or moves a name, never what it points to
    (even out of the preopen or in a loop): unlink(2), rmdir(2) and rename(2) answer NOTDIR for a symlink, mkdir(2)
    EXIST."""
    if target.slashed_link:
        raise AbiFault(answer)


def _new_name(target: Target) -> None:
    """A name to create a link at, written with a trailing slash: EXIST when the name is there, whatever it is (a
    symlink itself, never followed), else NOENT (only a directory could be meant), as symlink(2) and link(2) answer."""
    if target.trailing_slash:
        raise AbiFault(Errno.NOENT if _existing(target) is None else Errno.EXIST)


def _new_times(atime: int, mtime: int, flags: int) -> tuple[int | None, int | None]:
    """The times to set from set_times' arguments (None: keep), or INVAL for contradicting flags."""
    if flags & ~(_ATIM | _ATIM_NOW | _MTIM | _MTIM_NOW) or (
        flags & (_ATIM | _ATIM_NOW) == _ATIM | _ATIM_NOW or flags & (_MTIM | _MTIM_NOW) == _MTIM | _MTIM_NOW
    ):
        raise AbiFault(Errno.INVAL)
    now = time.time_ns()
    access = now if flags & _ATIM_NOW else atime & U64 if flags & _ATIM else None  # any u64: the kernel clamps
    modification = now if flags & _MTIM_NOW else mtime & U64 if flags & _MTIM else None
    return access, modification


def _times(info: os.stat_result, access: int | None, modification: int | None) -> tuple[int, int]:
    return (
        info.st_atime_ns if access is None else access,
        info.st_mtime_ns if modification is None else modification,
    )


def _filetype(mode: int) -> int:
    return next((kind for test, kind in _FILETYPES if test(mode)), FILETYPE_UNKNOWN)


def _filestat(info: os.stat_result) -> bytes:
    return struct.pack(
        "<QQB7xQQQQQ",
        info.st_dev,
        info.st_ino,
        _filetype(info.st_mode),
        info.st_nlink,
        info.st_size,
        _timestamp(info.st_atime_ns),
        _timestamp(info.st_mtime_ns),
        _timestamp(info.st_ctime_ns),
    )


def _timestamp(nanoseconds: int) -> int:
    """A host file time as a WASI timestamp (u64 nanoseconds since 1970): one before 1970 is 0, as Wasmtime's
    WASI says, and one past 2554 the largest."""
    return min(max(nanoseconds, 0), U64)


def _entry_type(entry: os.DirEntry[str]) -> int:
    """From the directory entry's own type where the file system gives one, else from lstat."""
    try:
        if entry.is_symlink():
            return FILETYPE_SYMBOLIC_LINK
        if entry.is_dir(follow_symlinks=False):
            return FILETYPE_DIRECTORY
        if entry.is_file(follow_symlinks=False):
            return FILETYPE_REGULAR_FILE
        return _filetype(entry.stat(follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return FILETYPE_UNKNOWN


def _dirent(name: str, inode: int, kind: int, next_cookie: int) -> bytes:
    encoded = os.fsencode(name)  # the name's bytes, even when they are not UTF-8
    return struct.pack("<QQIB3x", next_cookie, inode, len(encoded), kind) + encoded
