"""The host ABI shared by every host function: guest memory access, WASI errno, flags and records, Ngixi statuses.

docs/host-abi.md describes the same contract for other guests and hosts; a test keeps the two in step.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import Protocol


class GuestMemory(Protocol):
    def read(self, pointer: int, length: int) -> bytes: ...

    def write(self, pointer: int, data: bytes) -> None: ...

    @property
    def size_bytes(self) -> int: ...


# WASI preview 1's errno enum, in witx order (a member's value is its position). The host passes a host
# errno under its WASI name (E2BIG as 2BIG, reached as Errno["2BIG"]); wasi_files.wasi_errno maps them.
Errno = enum.IntEnum(
    "Errno",
    "SUCCESS 2BIG ACCES ADDRINUSE ADDRNOTAVAIL AFNOSUPPORT AGAIN ALREADY BADF BADMSG BUSY CANCELED CHILD"
    " CONNABORTED CONNREFUSED CONNRESET DEADLK DESTADDRREQ DOM DQUOT EXIST FAULT FBIG HOSTUNREACH IDRM ILSEQ"
    " INPROGRESS INTR INVAL IO ISCONN ISDIR LOOP MFILE MLINK MSGSIZE MULTIHOP NAMETOOLONG NETDOWN NETRESET"
    " NETUNREACH NFILE NOBUFS NODEV NOENT NOEXEC NOLCK NOLINK NOMEM NOMSG NOPROTOOPT NOSPC NOSYS NOTCONN"
    " NOTDIR NOTEMPTY NOTRECOVERABLE NOTSOCK NOTSUP NOTTY NXIO OVERFLOW OWNERDEAD PERM PIPE PROTO"
    " PROTONOSUPPORT PROTOTYPE RANGE ROFS SPIPE SRCH STALE TIMEDOUT TXTBSY XDEV NOTCAPABLE",
    start=0,
)


# WASI rights, oflags, fdflags and file types the host functions use.
RIGHT_FD_DATASYNC = 1 << 0
RIGHT_FD_READ = 1 << 1
RIGHT_FD_SEEK = 1 << 2
RIGHT_FD_FDSTAT_SET_FLAGS = 1 << 3
RIGHT_FD_SYNC = 1 << 4
RIGHT_FD_TELL = 1 << 5
RIGHT_FD_WRITE = 1 << 6
RIGHT_FD_ADVISE = 1 << 7
RIGHT_FD_ALLOCATE = 1 << 8
RIGHT_PATH_CREATE_DIRECTORY = 1 << 9
RIGHT_PATH_CREATE_FILE = 1 << 10
RIGHT_PATH_LINK_SOURCE = 1 << 11
RIGHT_PATH_LINK_TARGET = 1 << 12
RIGHT_PATH_OPEN = 1 << 13
RIGHT_FD_READDIR = 1 << 14
RIGHT_PATH_READLINK = 1 << 15
RIGHT_PATH_RENAME_SOURCE = 1 << 16
RIGHT_PATH_RENAME_TARGET = 1 << 17
RIGHT_PATH_FILESTAT_GET = 1 << 18
RIGHT_PATH_FILESTAT_SET_SIZE = 1 << 19
RIGHT_PATH_FILESTAT_SET_TIMES = 1 << 20
RIGHT_FD_FILESTAT_GET = 1 << 21
RIGHT_FD_FILESTAT_SET_SIZE = 1 << 22
RIGHT_FD_FILESTAT_SET_TIMES = 1 << 23
RIGHT_PATH_SYMLINK = 1 << 24
RIGHT_PATH_REMOVE_DIRECTORY = 1 << 25
RIGHT_PATH_UNLINK_FILE = 1 << 26
RIGHT_POLL_FD_READWRITE = 1 << 27
WRITE_RIGHTS = RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE
# What a regular file's descriptor may hold, and a directory's (as Wasmtime's WASI preview 1 gives them).
FILE_RIGHTS = (
    RIGHT_FD_DATASYNC
    | RIGHT_FD_READ
    | RIGHT_FD_SEEK
    | RIGHT_FD_FDSTAT_SET_FLAGS
    | RIGHT_FD_SYNC
    | RIGHT_FD_TELL
    | RIGHT_FD_WRITE
    | RIGHT_FD_ADVISE
    | RIGHT_FD_ALLOCATE
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_SIZE
    | RIGHT_FD_FILESTAT_SET_TIMES
    | RIGHT_POLL_FD_READWRITE
)
DIRECTORY_RIGHTS = (
    RIGHT_PATH_CREATE_DIRECTORY
    | RIGHT_PATH_CREATE_FILE
    | RIGHT_PATH_LINK_SOURCE
    | RIGHT_PATH_LINK_TARGET
    | RIGHT_PATH_OPEN
    | RIGHT_FD_READDIR
    | RIGHT_PATH_READLINK
    | RIGHT_PATH_RENAME_SOURCE
    | RIGHT_PATH_RENAME_TARGET
    | RIGHT_PATH_FILESTAT_GET
    | RIGHT_PATH_FILESTAT_SET_SIZE
    | RIGHT_PATH_FILESTAT_SET_TIMES
    | RIGHT_FD_FILESTAT_GET
    | RIGHT_FD_FILESTAT_SET_TIMES
    | RIGHT_PATH_SYMLINK
    | RIGHT_PATH_REMOVE_DIRECTORY
    | RIGHT_PATH_UNLINK_FILE
)
RIGHTS = (1 << 30) - 1  # every right witx defines, sock_shutdown and sock_accept (bits 28, 29) the last
OFLAG_CREAT, OFLAG_DIRECTORY, OFLAG_EXCL, OFLAG_TRUNC = 1, 2, 4, 8
FDFLAG_APPEND, FDFLAG_DSYNC, FDFLAG_NONBLOCK, FDFLAG_RSYNC, FDFLAG_SYNC = 1, 2, 4, 8, 16
LOOKUP_SYMLINK_FOLLOW = 1
FILETYPE_UNKNOWN, FILETYPE_BLOCK_DEVICE, FILETYPE_CHARACTER_DEVICE, FILETYPE_DIRECTORY = 0, 1, 2, 3
FILETYPE_REGULAR_FILE, FILETYPE_SYMBOLIC_LINK = 4, 7  # 5, 6: socket types, which no descriptor or file has here
# stdin, stdout and stderr are streams the host captures, never a terminal: typed as Wasmtime's WASI types
# non-terminal stdio, so that a guest's isatty() (wasi-libc: a character device that cannot seek) answers no.
FILETYPE_STREAM = FILETYPE_UNKNOWN
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


def fdstat(filetype: int, flags: int, rights: int, inheriting: int) -> bytes:
    """A WASI `fdstat` record."""
    return struct.pack("<BxH4xQQ", filetype, flags, rights, inheriting)


class Status(enum.IntEnum):
    """What the `ngixi.*` imports (http, kv) return; 0 is success."""

    OK = 0
    DENIED = 1
    ADDRESS_REFUSED = 2
    METHOD_NOT_ALLOWED = 3
    INVALID = 4
    TOO_LARGE = 5
    TIMEOUT = 6
    UNREACHABLE = 7
    TOO_MANY_REDIRECTS = 8
    NOT_FOUND = 9
    QUOTA_EXCEEDED = 10
    BUFFER_TOO_SMALL = 11
    HOST_FAILURE = 12


# What a guest has left to take a host call's TIMEOUT and return, when the call's own limits.timeout_ms cut that host
# call short: once per call, from the moment the host answers, so a loaded host does not stop the guest first.
RETURN_RESERVE_SECONDS = 0.25

MAX_IOVECS = 1024  # IOV_MAX on Linux


class AbiFault(Exception):
    """Raised inside a host function to return a code to the guest (an `Errno` or a `Status`)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def read_u32(memory: GuestMemory, pointer: int) -> int:
    value: int = struct.unpack("<I", memory.read(pointer, 4))[0]
    return value


def write_u32(memory: GuestMemory, pointer: int, value: int) -> None:
    memory.write(pointer, struct.pack("<I", value))


def write_u64(memory: GuestMemory, pointer: int, value: int) -> None:
    memory.write(pointer, struct.pack("<Q", value))


def read_utf8(memory: GuestMemory, pointer: int, length: int, fault: int = Status.INVALID) -> str:
    """A UTF-8 string the guest passed as (pointer, length); invalid UTF-8 returns `fault` to the guest."""
    try:
        return memory.read(pointer, length).decode("utf-8")
    except UnicodeDecodeError:
        raise AbiFault(fault) from None


def iovecs(memory: GuestMemory, pointer: int, count: int) -> Iterator[tuple[int, int]]:
    """The (buffer, length) pairs of a WASI iovec array; more than `MAX_IOVECS` is INVAL, as on Linux."""
    if not 0 <= count <= MAX_IOVECS:
        raise AbiFault(Errno.INVAL)
    return struct.iter_unpack("<II", memory.read(pointer, 8 * count))


def gather(memory: GuestMemory, pointer: int, count: int, limit: int) -> bytes:
    """The iovecs' bytes in order, at most `limit` of them: only those are copied, so iovecs that repeat one
    region cannot make the host hold more than `limit` (a write of fewer bytes than asked is the caller's to
    report, as a short write)."""
    parts, left = [], limit
    for buffer, length in iovecs(memory, pointer, count):
        if left <= 0:
            break
        parts.append(memory.read(buffer, min(length, left)))
        left -= len(parts[-1])
    return b"".join(parts)


def scatter(memory: GuestMemory, pointer: int, count: int, data: bytes) -> int:
    """Fills the iovecs in order with `data`; returns how many bytes were placed."""
    placed = 0
    for buffer, length in iovecs(memory, pointer, count):
        if placed == len(data):
            break
        chunk = data[placed : placed + length]
        memory.write(buffer, chunk)
        placed += len(chunk)
    return placed


def capacity(memory: GuestMemory, pointer: int, count: int) -> int:
    return sum(length for _, length in iovecs(memory, pointer, count))


def copy_out(memory: GuestMemory, data: bytes, buffer: int, buffer_size: int, length_pointer: int) -> None:
    """Writes `data`'s length, and `data` itself when it fits; else raises BUFFER_TOO_SMALL."""
    write_u32(memory, length_pointer, len(data))
    if len(data) > buffer_size:
        raise AbiFault(Status.BUFFER_TOO_SMALL)
    memory.write(buffer, data)
