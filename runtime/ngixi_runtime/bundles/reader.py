"""Reads a bundle, verifying the signature first and every member's digest before use.

The reading rules are in docs/bundle-format.md; each refusal names its own reason. The archive
is read by position (`os.pread`), with its USTAR headers parsed here: a bundle is a plain USTAR
archive whose layout the signed index fixes, and `tarfile` costs more than the rest of a check.
"""

from __future__ import annotations

import _thread
import hashlib
import os
import stat
import struct
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import blake3
import tomli

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.spec.bundle_format import (
    FORMAT_VERSION,
    INDEX_NAME,
    MANIFEST_NAME,
    MAX_BUNDLE_BYTES,
    MAX_INDEX_BYTES,
    MAX_SIGNATURE_BYTES,
    OLD_INDEX_NAMES,
    SIGNATURE_NAME,
    BundleIndex,
    Member,
    parse_index,
)
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import TrustedKey, TrustStore, check_scope, verify_index

_BLOCK = 512
_RECORD = 20 * _BLOCK
_END_OF_ARCHIVE = 2 * _BLOCK
_USTAR_MAGIC = b"ustar\x0000"
_REGULAR = (b"0", b"\0")
_PAX = (b"x", b"g")
# What may be looked at and read before the signature is checked: headers, and bytes per entry.
_HASH_AHEAD_ENTRIES = 64
_HASH_AHEAD_LIMIT = 64 * 1024 * 1024
_WORTH_A_THREAD = 64 * 1024  # a smaller range is read and hashed sooner than handed over
_SPECIAL_KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a device",
    b"4": "a device",
    b"5": "a directory",
    b"6": "a FIFO",
}


@dataclass(frozen=True)
class _Entry:
    name: str
    header: int  # offset of its header in the archive
    size: int
    linkname: str

    @property
    def data(self) -> int:
        return self.header + _BLOCK

    @property
    def end(self) -> int:
        return self.data + -(-self.size // _BLOCK) * _BLOCK


@dataclass(frozen=True)
class _Digests:
    """A member's bytes and their digests; `sha256` only where the read asked for it (a full read)."""

    data: bytes
    blake3: str
    sha256: str | None

    @classmethod
    def of(cls, data: bytes, *, with_sha256: bool) -> _Digests:
        return cls(data, blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest() if with_sha256 else None)


class _Extent:
    """A range of the bundle, read and hashed once, each in one call, by whichever thread claims it first.

    One call each, because `os.pread`, blake3 and hashlib release the GIL for their whole length: a
    thread that had to take the GIL back between chunks would wait for the loading thread to let go
    of it, which may be never. An extent made `at` a position reads it through a descriptor of its
    own (a `dup` of the bundle's, so the same open file), which it closes once read.
    """

    def __init__(self, read: Callable[[], bytes], *, with_sha256: bool) -> None:
        self._read = read
        self._with_sha256 = with_sha256
        self._claimed = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()
        self._found: _Digests | Exception | None = None

    @classmethod
    def holding(cls, data: bytes, *, with_sha256: bool) -> _Extent:
        return cls(lambda: data, with_sha256=with_sha256)

    @classmethod
    def at(cls, descriptor: int, offset: int, size: int, *, with_sha256: bool) -> _Extent:
        return cls(partial(_read_and_close, os.dup(descriptor), size, offset), with_sha256=with_sha256)

    def claim(self) -> bool:
        """Reads and hashes the bytes unless another thread has claimed them; False if it has."""
        if not self._claimed.acquire(blocking=False):
            return False
        try:
            self._found = _Digests.of(self._read(), with_sha256=self._with_sha256)
        except Exception as error:  # raised where the result is asked for, not on the hashing thread
            self._found = error
        finally:
            self._done.release()
        return True

    def result(self) -> _Digests:
        if not self.claim():
            with self._done:  # the other thread is on it: wait, without the GIL
                pass
        if isinstance(self._found, Exception):
            raise self._found
        assert self._found is not None
        return self._found


def _read_and_close(descriptor: int, size: int, offset: int) -> bytes:
    try:
        return os.pread(descriptor, size, offset)
    finally:
        os.close(descriptor)


class _ReadAhead:
    """Ranges of the bundle file (offset, size) read and hashed ahead, the large ones on a thread.

    The thread takes them from the last, which the loader needs last. A range the thread has not
    claimed when it is needed (a small one, or one the thread has not reached) is read and hashed
    by the caller. The results are only ever compared with digests from the signed index.
    """

    def __init__(self, extents: dict[tuple[int, int], _Extent], on_a_thread: list[_Extent]) -> None:
        self._extents = extents
        if on_a_thread:
            _hash_on_a_thread(on_a_thread[::-1])

    def covers(self, offset: int, size: int) -> bool:
        return (offset, size) in self._extents

    def result(self, offset: int, size: int) -> _Digests | None:
        """The range's bytes and digests, or None if it is not among the ranges."""
        extent = self._extents.get((offset, size))
        return None if extent is None else extent.result()


def _hash_on_a_thread(extents: list[_Extent]) -> None:
    """Starts reading and hashing the ranges, in order, on a new thread, and waits until the thread has begun.

    Waiting hands the new thread the GIL, which it needs only to begin each range. Without the
    wait it would get it only when this thread next blocks, which on a loading path may be after
    the digest is needed.
    """
    begun = _thread.allocate_lock()
    begun.acquire()
    # Not threading.Thread, whose start() also waits, for much longer.
    _thread.start_new_thread(_claim_once_begun, (extents, begun))
    begun.acquire()


def _claim_once_begun(extents: list[_Extent], begun: _thread.LockType) -> None:
    begun.release()
    for extent in extents:
        extent.claim()


@dataclass(frozen=True)
class VerifiedBundle:
    source: str
    index: BundleIndex
    signer: TrustedKey
    contents: dict[str, bytes]
    index_sha256: str = ""  # of the signed index's bytes: what a reader given `index_sha256=` must find
    _deferred: dict[str, int] = field(default_factory=dict, repr=False)  # path → offset of its data
    _pending: dict[str, _ReadAhead] = field(default_factory=dict, repr=False)
    _descriptor: int | None = field(default=None, repr=False)  # the caller's open bundle, for deferred reads

    def data(self, member: Member) -> bytes:
        """A member's bytes; a code member `read_bundle` deferred is read and checked here, before use."""
        if member.path not in self.contents:
            found = self._read_deferred(member)
            _check_read(found, member, self.source)
            self.contents[member.path] = found.data
        return self.contents[member.path]

    def _read_deferred(self, member: Member) -> _Digests:
        offset = self._deferred[member.path]
        pending = self._pending.pop(member.path, None)
        if pending is None:
            opened = _opened(Path(self.source)) if self._descriptor is None else _reading(self._descriptor, self.source)
            with opened as descriptor:
                return _Digests.of(os.pread(descriptor, member.size, offset), with_sha256=False)
        with _read_errors(self.source):
            found = pending.result(offset, member.size)
        assert found is not None
        return found


def _check_read(found: _Digests, member: Member, source: str) -> None:
    if len(found.data) != member.size:
        raise VerificationError(f"{source}: member {member.path} is truncated: the file ends inside it")
    if found.blake3 != member.blake3 or found.sha256 not in (None, member.sha256):
        raise VerificationError(f"{source}: member {member.path} does not match its digest in the signed index")


def _octal(field: bytes) -> int:
    return int(field.strip(b"\0 ") or b"0", 8)


def _checksum_holds(block: bytes) -> bool:
    """The header's checksum: its bytes summed with the checksum field as spaces, unsigned or signed."""
    recorded = _octal(block[148:156])
    if recorded == sum(block[:148]) + 8 * 0x20 + sum(block[156:]):
        return True
    signed: tuple[int, ...] = struct.unpack_from("148b", block) + struct.unpack_from("356b", block, 156)
    return recorded == sum(signed) + 8 * 0x20


def _entry_problem(name: str, kind: bytes, linkname: str) -> str | None:
    """Why a tar entry can never be a bundle member, whatever its name."""
    if name.startswith("/"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "leaves the bundle ('..' in its path)"
    if kind in _REGULAR:
        return None
    target = f" (to {linkname!r})" if linkname else ""
    what = _SPECIAL_KINDS.get(kind, "not a regular file")
    return f"is {what}{target}, tar type {kind.decode('ascii', 'replace')!r}; bundles hold regular files only"


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class _Archive:
    """The archive's entries in order, each header parsed and checked for type, path and repetition."""

    def __init__(self, descriptor: int, size: int, source: str) -> None:
        self.descriptor, self.size, self.source = descriptor, size, source
        self.position = 0
        self.seen: set[str] = set()
        self.headers: dict[int, tuple[_Entry, bytes] | None] = {}  # by offset: hash_ahead reads them first

    def fail(self, message: str) -> VerificationError:
        return VerificationError(f"{self.source}: {message}")

    def read(self, entry: _Entry) -> bytes:
        data = os.pread(self.descriptor, entry.size, entry.data)
        if len(data) != entry.size:
            raise self.fail(f"member {entry.name} is truncated: the file ends inside it")
        return data

    def hash_ahead(self, prefetch: Collection[str] | None) -> _ReadAhead:
        """Finds the `prefetch` entries (all entries if None) by their headers alone, and starts
        reading and hashing them, the large ones on a thread.

        This runs before the signature is checked; nothing is refused or trusted here: the
        entries are checked again as they are reached, and the digests against the signed index.
        The bytes are read from this open file, so that they come from the same file as the
        index even if the path is replaced meanwhile. A full read (`prefetch` None) also takes
        each member's SHA-256.
        """
        with_sha256 = prefetch is None
        extents, on_a_thread, offset = {}, [], self.position
        for _ in range(_HASH_AHEAD_ENTRIES):
            try:
                found = self._header(offset)
            except VerificationError:
                break
            if found is None:
                break
            entry = found[0]
            if (prefetch is None or entry.name in prefetch) and entry.size <= _HASH_AHEAD_LIMIT:
                if entry.size >= _WORTH_A_THREAD:
                    extent = _Extent.at(self.descriptor, entry.data, entry.size, with_sha256=with_sha256)
                    on_a_thread.append(extent)
                else:
                    data = os.pread(self.descriptor, entry.size, entry.data)
                    extent = _Extent.holding(data, with_sha256=with_sha256)
                extents[entry.data, entry.size] = extent
            offset = entry.end
        return _ReadAhead(extents, on_a_thread)

    def _header(self, offset: int) -> tuple[_Entry, bytes] | None:
        """The entry whose header starts at `offset` and its type, or None at the end marker."""
        if offset not in self.headers:
            self.headers[offset] = self._parse_header(offset)
        return self.headers[offset]

    def _parse_header(self, offset: int) -> tuple[_Entry, bytes] | None:
        block = os.pread(self.descriptor, _BLOCK, offset)
        if len(block) < _BLOCK or not block.strip(b"\0"):
            return None
        try:
            valid = _checksum_holds(block)
            size = _octal(block[124:136])
        except ValueError:
            valid = False
        if not valid:
            if offset == 0:
                raise self.fail("not a valid bundle archive (no tar header at its start)")
            raise self.fail(f"the archive has a damaged header at byte {offset}")
        if block[257:265] != _USTAR_MAGIC:
            raise self.fail(f"the tar header at byte {offset} is not POSIX USTAR; bundles are plain USTAR archives")
        prefix, name, kind = _text(block[345:500]), _text(block[0:100]), block[156:157]
        name = f"{prefix}/{name}" if prefix else name
        if kind == b"5" or (kind in _REGULAR and name.endswith("/")):
            kind, name = b"5", name.rstrip("/")
        return _Entry(name, offset, size, _text(block[157:257])), kind

    def next(self) -> _Entry | None:
        found = self._header(self.position)
        if found is None:
            return None
        entry, kind = found
        if kind in _PAX:
            described = self._header(entry.end)
            name = entry.name if described is None else described[0].name
            raise self.fail(f"member {name!r} carries pax extended headers; bundles are plain USTAR archives")
        problem = _entry_problem(entry.name, kind, entry.linkname)
        if problem is not None:
            raise self.fail(f"member {entry.name!r} {problem}")
        if entry.name in self.seen:
            raise self.fail(f"member {entry.name!r} appears twice")
        self.seen.add(entry.name)
        self.position = entry.end
        return entry

    def expect(self, name: str, listed: frozenset[str]) -> _Entry:
        entry = self.next()
        if entry is None:
            raise self.fail(self._end_problem() or f"member {name} is missing")
        if entry.header == 0 and entry.name in OLD_INDEX_NAMES:
            raise self.fail(
                f"a format {OLD_INDEX_NAMES[entry.name]} bundle (its index is {entry.name}); this loader reads "
                f"format {FORMAT_VERSION} (index {INDEX_NAME}): rebuild the bundle with this ngixi-build"
            )
        if entry.name not in listed:
            raise self.fail(f"unknown member {entry.name!r} where {name} belongs")
        if entry.name != name:
            raise self.fail(f"member {entry.name} is out of order: {name} comes first")
        return entry

    def expect_capped(self, name: str, limit: int) -> _Entry:
        entry = self.expect(name, frozenset({INDEX_NAME, SIGNATURE_NAME}))
        if entry.size > limit:
            raise self.fail(f"member {name} is {entry.size} bytes, over its limit of {limit}")
        return entry

    def finish(self) -> None:
        extra = self.next()
        if extra is not None:
            raise self.fail(f"unexpected extra member {extra.name!r}: the index does not list it")
        problem = self._end_problem()
        if problem is not None:
            raise self.fail(problem)

    def _end_problem(self) -> str | None:
        """What follows the last header: only the end-of-archive marker and zero padding may."""
        end = self.position
        remaining = self.size - end
        if remaining < _END_OF_ARCHIVE:
            return f"the archive is truncated at byte {self.size} (its end-of-archive marker is missing)"
        tail = os.pread(self.descriptor, _END_OF_ARCHIVE + _RECORD + 1, end)
        if remaining > _END_OF_ARCHIVE + _RECORD or tail.strip(b"\0"):
            return f"the archive has unexpected bytes after its end-of-archive marker at byte {end}"
        return None


def _read_members(
    archive: _Archive, index: BundleIndex, defer_members: bool, ahead: _ReadAhead
) -> tuple[dict[str, bytes], dict[str, int]]:
    listed = frozenset(m.path for m in index.members)
    contents, deferred = {}, {}
    for member in index.members:
        entry = archive.expect(member.path, listed)
        if entry.size != member.size:
            raise archive.fail(f"member {member.path} is {entry.size} bytes, the index says {member.size}")
        if defer_members:
            deferred[member.path] = entry.data
            continue
        found = ahead.result(entry.data, entry.size)
        if found is None:
            found = _Digests.of(archive.read(entry), with_sha256=True)
        _check_read(found, member, archive.source)
        contents[member.path] = found.data
    archive.finish()
    return contents, deferred


def _check_manifest_copy(manifest: bytes, index: BundleIndex, source: str) -> None:
    """A full read also holds the index's copy of the manifest to manifest.toml's bytes."""
    try:
        same = tomli.loads(manifest.decode("utf-8")) == index.manifest
    except (UnicodeDecodeError, tomli.TOMLDecodeError):
        same = False
    if not same:
        raise VerificationError(f"{source}: member {MANIFEST_NAME} differs from the manifest in the signed index")


def _verify_archive(
    archive: _Archive,
    trust: TrustStore,
    *,
    rollback: RollbackGuard | None,
    defer_members: bool,
    prefetch: Collection[str],
    index_sha256: str | None,
) -> VerifiedBundle:
    source = archive.source
    index_bytes = archive.read(archive.expect_capped(INDEX_NAME, MAX_INDEX_BYTES))
    found_sha256 = hashlib.sha256(index_bytes).hexdigest()
    if index_sha256 is not None and found_sha256 != index_sha256:
        raise VerificationError(f"{source}: the bundle changed since it was verified (its signed index differs)")
    signature = archive.read(archive.expect_capped(SIGNATURE_NAME, MAX_SIGNATURE_BYTES))
    ahead = archive.hash_ahead(prefetch if defer_members else None)
    signer, comment = verify_index(index_bytes, signature, trust, source=source, comment_signature=not defer_members)
    index = parse_index(index_bytes, source=source)
    check_scope(index, signer, comment, source=source)
    if rollback is not None:
        rollback.check(index, source=source)
    contents, deferred = _read_members(archive, index, defer_members, ahead)
    if not defer_members:
        _check_manifest_copy(contents[MANIFEST_NAME], index, source)
    if rollback is not None:
        rollback.record(index, source=source)
    pending = {path: ahead for path, offset in deferred.items() if ahead.covers(offset, index.by_path(path).size)}
    return VerifiedBundle(source, index, signer, contents, found_sha256, deferred, pending, archive.descriptor)


def read_bundle(
    path: Path,
    trust: TrustStore,
    *,
    rollback: RollbackGuard | None = None,
    defer_members: bool = False,
    prefetch: Collection[str] = (),
    descriptor: int | None = None,
    index_sha256: str | None = None,
) -> VerifiedBundle:
    """Opens and verifies a bundle; nothing unverified reaches the caller.

    With `rollback`, a sequence below the highest accepted for the guest and channel is refused,
    and an accepted bundle's sequence is recorded. With `defer_members=True` (the loader, which
    takes the manifest from the signed index and uses one artifact or else the .wasm) the members
    are checked when `VerifiedBundle.data` first returns them, not here; those named in `prefetch`
    (see `loader.likely_artifacts`) are read here and hashed on a thread meanwhile. A full read
    hashes every member that way, and also checks their SHA-256 and that manifest.toml holds the
    index's copy of the manifest.

    With `descriptor`, the bundle is read from that open file, which the caller keeps open while the
    result is used, and `path` only names it; a later rename or removal at the path changes nothing.
    With `index_sha256`, a bundle whose signed index has other bytes (say, one verified earlier
    and changed since) is refused.
    """
    opened = _opened(path) if descriptor is None else _reading(descriptor, str(path))
    with opened as bundle:
        size = os.fstat(bundle).st_size
        if size > MAX_BUNDLE_BYTES:
            raise VerificationError(f"{path}: {size} bytes is over the {MAX_BUNDLE_BYTES} bundle limit")
        archive = _Archive(bundle, size, str(path))
        verified = _verify_archive(
            archive, trust, rollback=rollback, defer_members=defer_members, prefetch=prefetch, index_sha256=index_sha256
        )
    return verified if descriptor is not None else replace(verified, _descriptor=None)


def open_bundle_file(path: Path) -> int:
    """Opens a bundle for `read_bundle(path, ..., descriptor=...)`; the caller closes the descriptor.

    Only a regular file is a bundle: a FIFO or device at the path is refused at once, not waited on.
    """
    with _read_errors(path):
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise InvalidInput(f"{path}: not a regular file; a bundle is a .ngx file")
    return descriptor


@contextmanager
def _read_errors(path: Path | str) -> Iterator[None]:
    """OS errors while reading the bundle become clear NgixiErrors."""
    try:
        yield
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the bundle: {error.strerror}") from None


@contextmanager
def _opened(path: Path) -> Iterator[int]:
    """The bundle file open for reading by position."""
    descriptor = open_bundle_file(path)
    with _read_errors(path):
        try:
            yield descriptor
        finally:
            os.close(descriptor)


@contextmanager
def _reading(descriptor: int, source: str) -> Iterator[int]:
    """A bundle the caller has open (and closes), read by position."""
    with _read_errors(source):
        yield descriptor
