"""Reads a bundle, verifying the signature first and every member's digest before use.

The reading rules are in docs/bundle-format.md; each refusal names its own reason. The archive
is read by position (`os.pread`), with its USTAR headers parsed here: a bundle is a plain USTAR
archive whose layout the signed index fixes, and `tarfile` costs more than the rest of a check.
"""

from __future__ import annotations

import _thread
import functools
import os
import stat
import struct
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from itertools import zip_longest
from pathlib import Path

import blake3
import tomli

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import advice
from ngixi_runtime.guest.manifest import Manifest, manifest_from_table
from ngixi_runtime.kept import Kept
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.bundle_format import (
    FORMAT_VERSION,
    INDEX_NAME,
    MANIFEST_NAME,
    MAX_BUNDLE_BYTES,
    MAX_INDEX_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_SIGNATURE_BYTES,
    OLD_INDEX_NAMES,
    SIGNATURE_NAME,
    WASM_NAME,
    BundleIndex,
    Member,
    is_artifact_path,
    parse_index,
)
from ngixi_runtime.spec.digests import sha256_hex
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import TrustedKey, TrustStore, check_scope, verify_index

_BLOCK = 512
_RECORD = 20 * _BLOCK
_END_OF_ARCHIVE = 2 * _BLOCK
_USTAR_MAGIC = b"ustar\x0000"
_REGULAR = (b"0", b"\0")
_PAX = (b"x", b"g")
# The entries every bundle starts with, in this order; only artifacts follow them.
_FIXED_ORDER = (INDEX_NAME, SIGNATURE_NAME, MANIFEST_NAME, WASM_NAME)
_SIZE_LIMITS = {INDEX_NAME: MAX_INDEX_BYTES, SIGNATURE_NAME: MAX_SIGNATURE_BYTES}
_MAX_ENTRIES = 2 + MAX_MEMBERS
# As many zero bytes as may end an archive: `_ZEROS.startswith(data)` says data is zeros alone, at memcmp's speed.
_ZEROS = bytes(_END_OF_ARCHIVE + _RECORD + 1)
# What is read ahead once the index is verified: members of at most this size, on a thread if worth one.
_HASH_AHEAD_LIMIT = 64 * 1024 * 1024
_WORTH_A_THREAD = 64 * 1024  # a smaller member is read and hashed sooner than handed over
_SPECIAL_KINDS = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a device",
    b"4": "a device",
    b"5": "a directory",
    b"6": "a FIFO",
}


class _Entry(NamedTuple):
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


class _Digests(NamedTuple):
    """A member's bytes and their digests; `sha256` only where the read asked for it (a full read)."""

    data: bytes
    blake3: str
    sha256: str | None

    @classmethod
    def of(cls, data: bytes, *, with_sha256: bool) -> _Digests:
        return cls(data, blake3.blake3(data).hexdigest(), sha256_hex(data) if with_sha256 else None)


class _Extent:
    """A member's range of the bundle, read and hashed once, each in one call, by whichever thread claims it first.

    One call each, because `os.pread`, blake3 and cryptography's SHA-256 release the GIL for their whole length: a
    thread that had to take the GIL back between chunks would wait for the loading thread to let go
    of it, which may be never. It reads through a descriptor of its own (a `dup` of the bundle's, so
    the same open file), which is closed once the range is read or dropped.
    """

    def __init__(self, descriptor: int, offset: int, size: int, *, with_sha256: bool) -> None:
        self._descriptor = os.dup(descriptor)
        self._offset, self._size = offset, size
        self._with_sha256 = with_sha256
        self._claimed = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()
        self._found: _Digests | Exception | None = None

    def claim(self) -> bool:
        """Reads and hashes the bytes unless another thread has claimed them (or they were dropped); False if so."""
        if not self._claimed.acquire(blocking=False):
            return False
        try:
            data = _read_and_close(self._descriptor, self._size, self._offset)
            self._found = _Digests.of(data, with_sha256=self._with_sha256)
        except Exception as error:  # raised where the result is asked for, not on the hashing thread
            self._found = error
        finally:
            self._done.release()
        return True

    def drop(self) -> None:
        """Closes the range's descriptor unless a thread has claimed it, which then closes it itself."""
        if self._claimed.acquire(blocking=False):
            os.close(self._descriptor)
            self._found = InvalidInput("the read was cancelled")
            self._done.release()

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
    """Members of a verified index read and hashed ahead, the large ones on a thread, the last first.

    A member the thread has not claimed when it is needed is read and hashed by the caller. The results
    are only ever compared with digests from the signed index. `cancel` stops the reading.
    """

    def __init__(self, extents: dict[str, _Extent], on_a_thread: list[_Extent]) -> None:
        self._extents = extents
        self._finished = _thread.allocate_lock()  # held while the thread runs
        if on_a_thread:
            _hash_on_a_thread(on_a_thread[::-1], self._finished)

    def take(self, path: str) -> _Digests | None:
        """The member's bytes and digests, or None if it is not read ahead (or was taken already)."""
        extent = self._extents.pop(path, None)
        return None if extent is None else extent.result()

    def cancel(self) -> None:
        """Drops every member the thread has not begun and waits for the one it is on: nothing reads on."""
        for extent in self._extents.values():
            extent.drop()
        with self._finished:
            pass


def _hash_on_a_thread(extents: list[_Extent], finished: _thread.LockType) -> None:
    """Starts reading and hashing the ranges, in order, on a new thread, and waits until the thread has begun.

    `finished` is held until the thread ends. Waiting hands the new thread the GIL, which it needs only
    to begin each range. Without the wait it would get it only when this thread next blocks, which on a
    loading path may be after the digest is needed.
    """
    begun = _thread.allocate_lock()
    begun.acquire()
    finished.acquire()
    # Not threading.Thread, whose start() also waits, for much longer.
    _thread.start_new_thread(_claim_once_begun, (extents, begun, finished))
    begun.acquire()


def _claim_once_begun(extents: list[_Extent], begun: _thread.LockType, finished: _thread.LockType) -> None:
    begun.release()
    try:
        for extent in extents:
            extent.claim()
    finally:
        finished.release()


class VerifiedBundle:
    """A verified bundle: its index, signer and manifest, and the bytes of the members read so far (a code member
    read later is checked against the signed index first)."""

    __slots__ = (
        "_ahead",
        "_deferred",
        "_descriptor",
        "contents",
        "index",
        "index_bytes",
        "manifest",
        "signer",
        "source",
    )

    def __init__(
        self,
        source: str,
        index: BundleIndex,
        signer: TrustedKey,
        manifest: Manifest,  # from the signed index's copy, checked against the index
        contents: dict[str, bytes],
        *,
        index_bytes: bytes = b"",  # the signed index's bytes, which `reopen_verified` holds the file to
        deferred: dict[str, int] | None = None,  # path → offset of its data
        ahead: _ReadAhead | None = None,
        descriptor: int | None = None,  # the caller's open bundle, for deferred reads
    ) -> None:
        self.source = source
        self.index = index
        self.signer = signer
        self.manifest = manifest
        self.contents = contents
        self.index_bytes = index_bytes
        self._deferred = {} if deferred is None else deferred
        self._ahead = ahead
        self._descriptor = descriptor

    def __repr__(self) -> str:
        return f"VerifiedBundle(source={self.source!r}, index={self.index!r}, signer={self.signer!r})"

    def without_descriptor(self) -> VerifiedBundle:
        """This bundle, reading deferred members by opening its source again."""
        return VerifiedBundle(
            self.source,
            self.index,
            self.signer,
            self.manifest,
            self.contents,
            index_bytes=self.index_bytes,
            deferred=self._deferred,
            ahead=self._ahead,
        )

    def data(self, member: Member) -> bytes:
        """A member's bytes; a code member `read_bundle` deferred is read and checked here, before use."""
        if member.path not in self.contents:
            found = self._read_deferred(member)
            _check_read(found, member, self.source)
            self.contents[member.path] = found.data
        return self.contents[member.path]

    def _read_deferred(self, member: Member) -> _Digests:
        with _read_errors(self.source):
            found = None if self._ahead is None else self._ahead.take(member.path)
        if found is not None:
            return found
        opened = _opened(Path(self.source)) if self._descriptor is None else _reading(self._descriptor, self.source)
        with opened as descriptor:
            return _Digests.of(os.pread(descriptor, member.size, self._deferred[member.path]), with_sha256=False)


def _check_read(found: _Digests, member: Member, source: str) -> None:
    if len(found.data) != member.size:
        raise VerificationError(f"{source}: member {member.path} is truncated: the file ends inside it")
    if found.blake3 != member.blake3 or found.sha256 not in (None, member.sha256):
        raise VerificationError(f"{source}: member {member.path} does not match its digest in the signed index")


def _octal(field: bytes) -> int:
    """A header's number: octal digits alone, as tar writes them (int() would also take a sign, underscores or a
    0o prefix, so that a size of -1 passed the scan); ValueError for anything else."""
    digits = field.strip(b"\0 ")
    if digits.translate(None, b"01234567"):
        raise ValueError(f"not an octal number: {field!r}")
    return int(digits or b"0", 8)


def _checksum_holds(block: bytes) -> bool:
    """The header's checksum: its bytes summed with the checksum field as spaces, unsigned or signed."""
    recorded = _octal(block[148:156])
    if recorded == sum(block[:148]) + 8 * 0x20 + sum(block[156:]):
        return True
    signed: tuple[int, ...] = struct.unpack_from("148b", block) + struct.unpack_from("356b", block, 156)
    return recorded == sum(signed) + 8 * 0x20


@functools.lru_cache(maxsize=512)
def _header(block: bytes, offset: int) -> tuple[_Entry, bytes] | str:
    """The entry whose header is `block`, at `offset`, and its type; or why the header is refused. Kept per exact
    block and offset, on which alone it depends: a host that loads the same bundle again parses it once."""
    try:
        valid = _checksum_holds(block)
        size = _octal(block[124:136])
    except ValueError:
        valid = False
    if not valid:
        if offset == 0:
            return "not a valid bundle archive (no tar header at its start)"
        return f"the archive has a damaged header at byte {offset}"
    if block[257:265] != _USTAR_MAGIC:
        return f"the tar header at byte {offset} is not POSIX USTAR; bundles are plain USTAR archives"
    prefix, name, kind = _text(block[345:500]), _text(block[0:100]), block[156:157]
    name = f"{prefix}/{name}" if prefix else name
    if kind == b"5" or (kind in _REGULAR and name.endswith("/")):
        kind, name = b"5", name.rstrip("/")
    return _Entry(name, offset, size, _text(block[157:257])), kind


@functools.lru_cache(maxsize=512)
def _refusals(name: str, kind: bytes, linkname: str, size: int, position: int) -> tuple[str | None, str | None]:
    """Why an entry cannot be the member at `position`: what unfits it whatever came before (its kind, its path,
    an old format's index), and what misplaces it there (the order of members, its size). Kept per exact
    entry and position, on which alone they depend."""
    problem = _entry_problem(name, kind, linkname)
    if problem is not None:
        return f"member {name!r} {problem}", None
    if position == 0 and name in OLD_INDEX_NAMES:
        return (
            f"a format {OLD_INDEX_NAMES[name]} bundle (its index is {name}); this loader reads "
            f"format {FORMAT_VERSION} (index {INDEX_NAME}): rebuild the bundle with this ngixi-build"
        ), None
    misplaced = _placement_problem(name, position)
    if misplaced is not None:
        return None, misplaced
    limit = _SIZE_LIMITS.get(name, MAX_MEMBER_BYTES)
    if size > limit:
        return None, f"member {name} is {size} bytes, over its limit of {limit}"
    return None, None


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


def _placement_problem(name: str, position: int) -> str | None:
    """Why an entry's name cannot be the member at its position: the format fixes the first four, then artifacts."""
    if position >= _MAX_ENTRIES:
        return f"the archive holds more than {MAX_MEMBERS} members after the signature"
    if position >= len(_FIXED_ORDER):
        if is_artifact_path(name):
            return None
        return f"unexpected extra member {name!r}: only artifacts (aot/<triple>.wasmer or .cwasm) follow {WASM_NAME}"
    expected = _FIXED_ORDER[position]
    if name == expected:
        return None
    if name in _FIXED_ORDER or is_artifact_path(name):
        return f"member {name} is out of order: {expected} comes first"
    return f"unknown member {name!r} where {expected} belongs"


class _Archive:
    """The archive's entries: every header parsed and checked before any member's bytes are read."""

    def __init__(self, descriptor: int, size: int, source: str) -> None:
        self.descriptor, self.size, self.source = descriptor, size, source

    def fail(self, message: str) -> VerificationError:
        return VerificationError(f"{self.source}: {message}")

    def read(self, entry: _Entry) -> bytes:
        data = os.pread(self.descriptor, entry.size, entry.data)
        if len(data) != entry.size:
            raise self.fail(f"member {entry.name} is truncated: the file ends inside it")
        return data

    def scan(self) -> list[_Entry]:
        """Every entry, from its headers alone, each refused unless it can be the member at its position;
        then the end of the archive. At least the index and its signature."""
        entries: list[_Entry] = []
        seen: set[str] = set()
        offset = 0
        while (found := self._parse_header(offset)) is not None:
            entry = self._checked(*found, position=len(entries), seen=seen)
            entries.append(entry)
            seen.add(entry.name)
            offset = entry.end
        problem = self._end_problem(offset)
        if problem is not None:
            raise self.fail(problem)
        if len(entries) < 2:
            raise self.fail(f"member {_FIXED_ORDER[len(entries)]} is missing")
        return entries

    def _checked(self, entry: _Entry, kind: bytes, *, position: int, seen: set[str]) -> _Entry:
        if kind in _PAX:
            described = self._parse_header(entry.end)
            name = entry.name if described is None else described[0].name
            raise self.fail(f"member {name!r} carries pax extended headers; bundles are plain USTAR archives")
        unfit, misplaced = _refusals(entry.name, kind, entry.linkname, entry.size, position)
        if unfit is not None:
            raise self.fail(unfit)
        if entry.name in seen:
            raise self.fail(f"member {entry.name!r} appears twice")
        if misplaced is not None:
            raise self.fail(misplaced)
        if entry.data + entry.size > self.size:
            raise self.fail(f"member {entry.name} is truncated: the file ends inside it")
        return entry

    def _parse_header(self, offset: int) -> tuple[_Entry, bytes] | None:
        """The entry whose header starts at `offset` and its type, or None at the end marker."""
        block = os.pread(self.descriptor, _BLOCK, offset)
        if len(block) < _BLOCK or _ZEROS.startswith(block):
            return None
        found = _header(block, offset)
        if isinstance(found, str):
            raise self.fail(found)
        return found

    def _end_problem(self, end: int) -> str | None:
        """What follows the last header: only the end-of-archive marker and zero padding may."""
        remaining = self.size - end
        if remaining < _END_OF_ARCHIVE:
            return f"the archive is truncated at byte {self.size} (its end-of-archive marker is missing)"
        tail = os.pread(self.descriptor, _END_OF_ARCHIVE + _RECORD + 1, end)
        if remaining > _END_OF_ARCHIVE + _RECORD or not _ZEROS.startswith(tail):
            return f"the archive has unexpected bytes after its end-of-archive marker at byte {end}"
        return None

    def match(self, entries: list[_Entry], index: BundleIndex) -> dict[str, _Entry]:
        """The entries after the signature by name, held to the signed index: its members, in its order, its sizes."""
        listed = frozenset(m.path for m in index.members)
        for member, entry in zip_longest(index.members, entries):
            if entry is None:
                raise self.fail(f"member {member.path} is missing")
            if member is None:
                raise self.fail(f"unexpected extra member {entry.name!r}: the index does not list it")
            if entry.name != member.path:
                if entry.name in listed:
                    raise self.fail(f"member {entry.name} is out of order: {member.path} comes first")
                raise self.fail(f"unknown member {entry.name!r} where {member.path} belongs")
            if entry.size != member.size:
                raise self.fail(f"member {member.path} is {entry.size} bytes, the index says {member.size}")
        return {entry.name: entry for entry in entries}

    def hash_ahead(self, members: dict[str, _Entry], prefetch: Collection[str] | None) -> _ReadAhead:
        """Reads and hashes the `members` named in `prefetch` (all if None), the large ones on a thread.

        Called only once the index is verified, with the entries it lists. The bytes are read from this
        open file, so that they come from the same file as the index even if the path is replaced
        meanwhile. A full read (`prefetch` None) also takes each member's SHA-256.
        """
        with_sha256 = prefetch is None
        wanted = {
            name: entry
            for name, entry in members.items()
            if (prefetch is None or name in prefetch) and entry.size <= _HASH_AHEAD_LIMIT
        }
        extents = {
            name: _Extent(self.descriptor, entry.data, entry.size, with_sha256=with_sha256)
            for name, entry in wanted.items()
        }
        on_a_thread = [extents[name] for name, entry in wanted.items() if entry.size >= _WORTH_A_THREAD]
        for name, entry in wanted.items():
            if entry.size < _WORTH_A_THREAD:
                extents[name].claim()
        return _ReadAhead(extents, on_a_thread)


def _read_members(
    archive: _Archive, index: BundleIndex, members: dict[str, _Entry], ahead: _ReadAhead
) -> dict[str, bytes]:
    """Every member's bytes, checked against both digests, and manifest.toml against the index's copy."""
    contents = {}
    for member in index.members:
        found = ahead.take(member.path)
        if found is None:
            found = _Digests.of(archive.read(members[member.path]), with_sha256=True)
        _check_read(found, member, archive.source)
        contents[member.path] = found.data
    _check_manifest_copy(contents[MANIFEST_NAME], index, archive.source)
    return contents


def _check_manifest_copy(manifest: bytes, index: BundleIndex, source: str) -> None:
    """A full read also holds the index's copy of the manifest to manifest.toml's bytes."""
    try:
        same = _same_values(tomli.loads(manifest.decode("utf-8")), index.manifest)
    except (UnicodeDecodeError, tomli.TOMLDecodeError, RecursionError):
        same = False
    if not same:
        raise VerificationError(f"{source}: member {MANIFEST_NAME} differs from the manifest in the signed index")


def _same_values(shown: object, signed: object) -> bool:
    """Equal values of the same types: Python's == holds `true` equal to 1 and `1.0` to 1, which a reviewer reading
    manifest.toml would not."""
    if type(shown) is not type(signed):
        return False
    if isinstance(shown, dict) and isinstance(signed, dict):
        return shown.keys() == signed.keys() and all(_same_values(shown[key], signed[key]) for key in shown)
    if isinstance(shown, list) and isinstance(signed, list):
        return len(shown) == len(signed) and all(map(_same_values, shown, signed))
    return shown == signed


def _kept_manifest(index_bytes: bytes, index: BundleIndex, source: str) -> Manifest:
    """`_checked_manifest`, once per exact index bytes and source in a process (it depends on them alone); each
    load gets its own copy of the one mutable part, the table of capabilities (whose options are frozen)."""
    known = _MANIFESTS.get((index_bytes, source))
    if known is None:
        known = _MANIFESTS.keep((index_bytes, source), _checked_manifest(index, source))
    return known._replace(capabilities=dict(known.capabilities))


_MANIFESTS: Kept[tuple[bytes, str], Manifest] = Kept(64)


def _checked_manifest(index: BundleIndex, source: str) -> Manifest:
    """The guest's manifest, from its copy in the signed index, which must name the index's guest and version."""
    where = f"{source}!{MANIFEST_NAME}"
    try:
        manifest = manifest_from_table(index.manifest, source=where, stem=index.guest)
    except InvalidInput as error:
        raise VerificationError(str(error)) from None
    if manifest.guest.version != index.version:
        raise VerificationError(
            f"{where}: guest.version: {manifest.guest.version} differs from the signed index's {index.version}"
        )
    return manifest


def _verify_archive(
    archive: _Archive,
    trust: TrustStore,
    *,
    rollback: RollbackGuard | None,
    defer_members: bool,
    prefetch: Collection[str],
) -> VerifiedBundle:
    source = archive.source
    entries = archive.scan()
    index_bytes, signature = archive.read(entries[0]), archive.read(entries[1])
    signer, comment = verify_index(index_bytes, signature, trust, source=source, comment_signature=not defer_members)
    index = parse_index(index_bytes, source=source)
    check_scope(index, signer, comment, trust, source=source)
    if rollback is not None:
        rollback.check(index, source=source)
    return _verified(
        archive, index_bytes, index, signer, entries, rollback=rollback, defer_members=defer_members, prefetch=prefetch
    )


def signed_start(descriptor: int, received: int, trust: TrustStore, *, source: str) -> bool:
    """Whether the first `received` bytes of a bundle still arriving at `descriptor` (a layer `ngixi pull` inflates or
    downloads) hold its index and signature, verified with `trust` and within its scope: False while they have not
    all arrived (call again with more); a `VerificationError` where `read_bundle` would refuse them. An unsigned
    bundle is so refused after its first 70 KiB at most, not once the whole of it (up to 1 GiB) has arrived; the
    bundle, once whole, is still to be read by `read_bundle`."""
    archive = _Archive(descriptor, MAX_BUNDLE_BYTES, source)  # sizes held to their limits, not to what has arrived
    entries: list[_Entry] = []
    for position in range(2):
        offset = entries[-1].end if entries else 0
        if received < offset + _BLOCK:
            return False
        found = archive._parse_header(offset)
        if found is None:
            raise archive.fail(f"member {_FIXED_ORDER[position]} is missing")
        entries.append(archive._checked(*found, position=position, seen={entry.name for entry in entries}))
    if received < entries[1].data + entries[1].size:
        return False
    index_bytes, signature = archive.read(entries[0]), archive.read(entries[1])
    signer, comment = verify_index(index_bytes, signature, trust, source=source)
    check_scope(parse_index(index_bytes, source=source), signer, comment, trust, source=source)
    return True


def _verified(
    archive: _Archive,
    index_bytes: bytes,
    index: BundleIndex,
    signer: TrustedKey,
    entries: list[_Entry],
    *,
    rollback: RollbackGuard | None,
    defer_members: bool,
    prefetch: Collection[str],
) -> VerifiedBundle:
    """The bundle of a verified index: its entries held to the index, its members read (or deferred) and checked."""
    source = archive.source
    members = archive.match(entries[2:], index)
    ahead = archive.hash_ahead(members, prefetch if defer_members else None)
    try:
        manifest = _kept_manifest(index_bytes, index, source)
        contents = {} if defer_members else _read_members(archive, index, members, ahead)
        if rollback is not None:
            rollback.record(index, source=source)
    except BaseException:
        ahead.cancel()
        raise
    deferred = {path: entry.data for path, entry in members.items()} if defer_members else {}
    return VerifiedBundle(
        source,
        index,
        signer,
        manifest,
        contents,
        index_bytes=index_bytes,
        deferred=deferred,
        ahead=ahead,
        descriptor=archive.descriptor,
    )


def read_bundle(
    path: Path,
    trust: TrustStore,
    *,
    rollback: RollbackGuard | None = None,
    defer_members: bool = False,
    prefetch: Collection[str] = (),
    descriptor: int | None = None,
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
    """
    opened = _opened(path) if descriptor is None else _reading(descriptor, str(path))
    with opened as bundle:
        archive = _archive(bundle, str(path))
        verified = _verify_archive(archive, trust, rollback=rollback, defer_members=defer_members, prefetch=prefetch)
    return verified if descriptor is not None else verified.without_descriptor()


def reopen_verified(
    descriptor: int, source: str, index_bytes: bytes, signer: TrustedKey, *, prefetch: Collection[str] = ()
) -> VerifiedBundle:
    """A bundle another process verified (`read_bundle` with `descriptor`), read again from the same open file by a
    process that process trusts and started (a tenant's child), as `read_bundle(defer_members=True)` reads it.

    `index_bytes` and `signer` are the verified bundle's (`VerifiedBundle.index_bytes`, `signer`): the file's
    index must have exactly those bytes, or the bundle is refused as changed since it was verified. Their
    signature, trust scope and rollback state were checked on those bytes and are not checked again; every
    member is still held to that index's digests as it is read, so a file changed in place never runs.
    """
    with _reading(descriptor, source):
        archive = _archive(descriptor, source)
        entries = archive.scan()
        if archive.read(entries[0]) != index_bytes:
            raise VerificationError(f"{source}: the bundle changed since it was verified (its signed index differs)")
        index = parse_index(index_bytes, source=source)
        return _verified(
            archive, index_bytes, index, signer, entries, rollback=None, defer_members=True, prefetch=prefetch
        )


def _archive(descriptor: int, source: str) -> _Archive:
    size = os.fstat(descriptor).st_size
    if size > MAX_BUNDLE_BYTES:
        raise VerificationError(f"{source}: {size} bytes is over the {MAX_BUNDLE_BYTES} bundle limit")
    return _Archive(descriptor, size, source)


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
        raise InvalidInput(f"{path}: cannot read the bundle: {error.strerror}{advice(error)}") from None


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
