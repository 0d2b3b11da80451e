"""Reads a bundle, verifying the signature first and every member's digest before use.

The reading rules are in docs/bundle-format.md; each refusal names its own reason.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from .bundle_format import (
    INDEX_NAME,
    MAX_BUNDLE_BYTES,
    MAX_INDEX_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_NAME,
    BundleIndex,
    Member,
    parse_index,
)
from .errors import InvalidInput, VerificationError
from .rollback import RollbackGuard
from .verify import TrustedKey, TrustStore, check_scope, verify_index

_END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE


@dataclass(frozen=True)
class VerifiedBundle:
    source: str
    index: BundleIndex
    signer: TrustedKey
    contents: dict[str, bytes]
    _deferred: dict[str, int] = field(default_factory=dict, repr=False)  # path → offset in the archive

    def data(self, member: Member) -> bytes:
        """A member's bytes; an artifact `read_bundle` left unread is read and checked here, before use."""
        if member.path not in self.contents:
            stored = _read_at(Path(self.source), self._deferred[member.path], member.stored_size, member.path)
            self.contents[member.path] = _checked(member, stored, self.source, full=False)
        return self.contents[member.path]


_SPECIAL_KINDS: tuple[tuple[Callable[[tarfile.TarInfo], bool], str], ...] = (
    (tarfile.TarInfo.issym, "a symbolic link"),
    (tarfile.TarInfo.islnk, "a hard link"),
    (lambda info: info.ischr() or info.isblk(), "a device"),
    (tarfile.TarInfo.isfifo, "a FIFO"),
    (tarfile.TarInfo.isdir, "a directory"),
    (lambda info: not info.isreg() or info.issparse(), "not a regular file"),
)


def _entry_problem(info: tarfile.TarInfo) -> str | None:
    """Why a tar entry can never be a bundle member, whatever its name."""
    if info.name.startswith("/"):
        return "has an absolute path"
    if ".." in PurePosixPath(info.name).parts:
        return "leaves the bundle ('..' in its path)"
    kind = next((kind for test, kind in _SPECIAL_KINDS if test(info)), None)
    if kind is not None:
        target = f" (to {info.linkname!r})" if info.linkname else ""
        tar_type = info.type.decode("ascii", "replace")
        return f"is {kind}{target}, tar type {tar_type!r}; bundles hold regular files only"
    if info.pax_headers:
        return "carries pax extended headers; bundles are plain USTAR archives"
    return None


class _Entries:
    """The archive's entries in order, each checked for type, path and repetition as it arrives."""

    def __init__(self, tar: tarfile.TarFile, stream: IO[bytes], size: int, source: str) -> None:
        self.tar, self.stream, self.size, self.source = tar, stream, size, source
        self.seen: set[str] = set()

    def fail(self, message: str) -> VerificationError:
        return VerificationError(f"{self.source}: {message}")

    def next(self) -> tarfile.TarInfo | None:
        info = self.tar.next()
        if info is None:
            return None
        problem = _entry_problem(info)
        if problem is not None:
            raise self.fail(f"member {info.name!r} {problem}")
        if info.name in self.seen:
            raise self.fail(f"member {info.name!r} appears twice")
        self.seen.add(info.name)
        return info

    def expect(self, name: str, listed: frozenset[str]) -> tarfile.TarInfo:
        info = self.next()
        if info is None:
            raise self.fail(self._end_problem() or f"member {name} is missing")
        if info.name not in listed:
            raise self.fail(f"unknown member {info.name!r} where {name} belongs")
        if info.name != name:
            raise self.fail(f"member {info.name} is out of order: {name} comes first")
        return info

    def expect_capped(self, name: str, limit: int) -> tarfile.TarInfo:
        info = self.expect(name, frozenset({INDEX_NAME, SIGNATURE_NAME}))
        if info.size > limit:
            raise self.fail(f"member {name} is {info.size} bytes, over its limit of {limit}")
        return info

    def read(self, info: tarfile.TarInfo) -> bytes:
        stream = self.tar.extractfile(info)
        try:
            data = stream.read() if stream is not None else b""
        except tarfile.ReadError:
            data = b""
        if len(data) != info.size:
            raise self.fail(f"member {info.name} is truncated: the file ends inside it")
        return data

    def finish(self) -> None:
        extra = self.next()
        if extra is not None:
            raise self.fail(f"unexpected extra member {extra.name!r}: the index does not list it")
        problem = self._end_problem()
        if problem is not None:
            raise self.fail(problem)

    def _end_problem(self) -> str | None:
        """What follows the last header tarfile could read: it stops silently at a damaged one."""
        end = self.tar.offset
        remaining = self.size - end
        self.stream.seek(end)
        if remaining >= tarfile.BLOCKSIZE and self.stream.read(tarfile.BLOCKSIZE).strip(b"\0"):
            return f"the archive has a damaged header at byte {end}"
        if remaining < _END_OF_ARCHIVE:
            return f"the archive is truncated at byte {self.size} (its end-of-archive marker is missing)"
        if remaining > _END_OF_ARCHIVE + tarfile.RECORDSIZE or self.stream.read().strip(b"\0"):
            return f"the archive has unexpected bytes after its end-of-archive marker at byte {end}"
        return None


def _read_at(path: Path, offset: int, size: int, name: str) -> bytes:
    with _opened(path) as stream:
        stream.seek(offset)
        data = stream.read(size)
    if len(data) != size:
        raise VerificationError(f"{path}: member {name} is truncated: the file ends inside it")
    return data


def _check_digest(data: bytes, sha256: str, what: str, source: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise VerificationError(f"{source}: member {what} does not match its digest in the signed index")


def _checked(member: Member, stored: bytes, source: str, *, full: bool) -> bytes:
    """The member's bytes, inflated only after the stored bytes matched their signed digest.

    Inflating verified bytes is deterministic, so the digest of the result is checked again
    only on a `full` read (read_bundle's default), not on the loader's path.
    """
    if member.stored is None:
        _check_digest(stored, member.sha256, member.path, source)
        return stored
    _check_digest(stored, member.stored.sha256, f"{member.path} (stored)", source)
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(stored, member.size + 1)  # the cap: a bomb stops one byte over
    except zlib.error as error:
        raise VerificationError(f"{source}: member {member.path} does not decompress ({error})") from None
    if len(data) != member.size or not decompressor.eof or decompressor.unconsumed_tail or decompressor.unused_data:
        raise VerificationError(f"{source}: member {member.path} does not decompress to the {member.size} bytes")
    if full:
        _check_digest(data, member.sha256, member.path, source)
    return data


def _read_members(
    entries: _Entries, index: BundleIndex, check_artifacts: bool
) -> tuple[dict[str, bytes], dict[str, int]]:
    listed = frozenset(m.path for m in index.members)
    contents, deferred = {}, {}
    for member in index.members:
        info = entries.expect(member.path, listed)
        if info.size != member.stored_size:
            raise entries.fail(f"member {member.path} is {info.size} bytes, the index says {member.stored_size}")
        if member.kind == "artifact" and not check_artifacts:
            deferred[member.path] = info.offset_data
        else:
            contents[member.path] = _checked(member, entries.read(info), entries.source, full=True)
    entries.finish()
    return contents, deferred


def _verify_stream(
    stream: IO[bytes],
    size: int,
    trust: TrustStore,
    *,
    rollback: RollbackGuard | None,
    source: str,
    check_artifacts: bool,
) -> VerifiedBundle:
    with tarfile.open(fileobj=stream, mode="r:") as tar:
        entries = _Entries(tar, stream, size, source)
        index_bytes = entries.read(entries.expect_capped(INDEX_NAME, MAX_INDEX_BYTES))
        signature = entries.read(entries.expect_capped(SIGNATURE_NAME, MAX_SIGNATURE_BYTES))
        signer = verify_index(index_bytes, signature, trust, source=source)
        index = parse_index(index_bytes, source=source)
        check_scope(index, signer, signature, source=source)
        if rollback is not None:
            rollback.check(index, source=source)
        contents, deferred = _read_members(entries, index, check_artifacts)
        if rollback is not None:
            rollback.record(index, source=source)
        return VerifiedBundle(source, index, signer, contents, deferred)


def read_bundle(
    path: Path, trust: TrustStore, *, rollback: RollbackGuard | None = None, check_artifacts: bool = True
) -> VerifiedBundle:
    """Opens and verifies a bundle; nothing unverified reaches the caller.

    With `rollback`, a sequence below the highest accepted for the guest and channel is refused,
    and an accepted bundle's sequence is recorded. With `check_artifacts=False` (the loader,
    which uses at most one artifact) artifacts are read and checked when `VerifiedBundle.data`
    first returns them, not here.
    """
    with _opened(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > MAX_BUNDLE_BYTES:
            raise VerificationError(f"{path}: {size} bytes is over the {MAX_BUNDLE_BYTES} bundle limit")
        return _verify_stream(stream, size, trust, rollback=rollback, source=str(path), check_artifacts=check_artifacts)


@contextmanager
def _opened(path: Path) -> Iterator[IO[bytes]]:
    """The bundle file open for reading; OS and archive errors become clear NgixiErrors."""
    try:
        with path.open("rb") as stream:
            yield stream
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the bundle: {error.strerror}") from None
    except (tarfile.TarError, EOFError) as error:
        raise VerificationError(f"{path}: not a valid bundle archive ({error})") from None
