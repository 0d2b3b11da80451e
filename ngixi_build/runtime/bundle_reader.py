"""Reads a bundle, verifying the signature first and every member's digest before use."""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
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
from .verify import TrustedKey, TrustStore, check_scope, verify_index


@dataclass(frozen=True)
class VerifiedBundle:
    source: str
    index: BundleIndex
    signer: TrustedKey
    contents: dict[str, bytes]

    def data(self, member: Member) -> bytes:
        return self.contents[member.path]


def _next_member(tar: tarfile.TarFile, expected: str, max_size: int, source: str) -> tarfile.TarInfo:
    info = tar.next()
    if info is None:
        raise VerificationError(f"{source}: member {expected} is missing")
    if info.name != expected:
        raise VerificationError(f"{source}: found member {info.name!r} where {expected} belongs")
    if not info.isreg():
        raise VerificationError(f"{source}: member {info.name} is not a regular file")
    if info.size > max_size:
        raise VerificationError(f"{source}: member {info.name} is {info.size} bytes, over the {max_size} limit")
    return info


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo, source: str) -> bytes:
    stream = tar.extractfile(info)
    data = stream.read() if stream is not None else b""
    if len(data) != info.size:
        raise VerificationError(f"{source}: member {info.name} is truncated")
    return data


def _read_members(tar: tarfile.TarFile, index: BundleIndex, source: str) -> dict[str, bytes]:
    contents = {}
    for member in index.members:
        info = _next_member(tar, member.path, member.size, source)
        if info.size != member.size:
            raise VerificationError(
                f"{source}: member {member.path} is {info.size} bytes, the index says {member.size}"
            )
        data = _read(tar, info, source)
        if hashlib.sha256(data).hexdigest() != member.sha256:
            raise VerificationError(f"{source}: member {member.path} does not match its digest in the index")
        contents[member.path] = data
    extra = tar.next()
    if extra is not None:
        raise VerificationError(f"{source}: unexpected extra member {extra.name!r}")
    return contents


def _verify_stream(stream: IO[bytes], trust: TrustStore, source: str) -> VerifiedBundle:
    with tarfile.open(fileobj=stream, mode="r:") as tar:
        index_bytes = _read(tar, _next_member(tar, INDEX_NAME, MAX_INDEX_BYTES, source), source)
        signature = _read(tar, _next_member(tar, SIGNATURE_NAME, MAX_SIGNATURE_BYTES, source), source)
        signer = verify_index(index_bytes, signature, trust, source=source)
        index = parse_index(index_bytes, source=source)
        check_scope(index, signer, signature, source=source)
        return VerifiedBundle(source, index, signer, _read_members(tar, index, source))


def read_bundle(path: Path, trust: TrustStore) -> VerifiedBundle:
    """Opens and fully verifies a bundle; nothing unverified reaches the caller."""
    source = str(path)
    try:
        with path.open("rb") as stream:
            size = path.stat().st_size
            if size > MAX_BUNDLE_BYTES:
                raise VerificationError(f"{source}: {size} bytes is over the {MAX_BUNDLE_BYTES} bundle limit")
            return _verify_stream(stream, trust, source)
    except OSError as error:
        raise InvalidInput(f"{source}: cannot read the bundle: {error.strerror}") from None
    except (tarfile.TarError, EOFError) as error:
        raise VerificationError(f"{source}: not a valid bundle archive ({error})") from None
