"""The host-owned AOT cache: machine code this host compiled from verified .wasm files, for the next load.

A bundle's own artifacts run only when its signer is trusted with native code; any other bundle's
.wasm is compiled here and kept, so its second load deserializes like an AOT load. An entry is
filled only from this host's compilation, never from bundle bytes. It is machine code, so it lives
in a directory only this user may write, and its digest is checked before it is deserialized. Its record
carries a keyed digest (HMAC) made with a key of this user's (`project_trust.kept_secret`): an entry another
program wrote there, or one copied in from elsewhere, is never loaded, even with matching digests; it is compiled
again and replaced. The entries together take at most `cache_limit()` bytes: storing one removes the least
recently used (a load refreshes an entry's modification time) until they fit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from pathlib import Path

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from ngixi_runtime.engines.base import EngineId
from ngixi_runtime.files import SpecialFileError, atomic_output, make_directories, open_plain
from ngixi_runtime.loading.aot_cache_dir import (
    CACHE_VARIABLE,
    LIMIT_VARIABLE,
    CacheUnavailable,
    cache_limit,
    default_cache_dir,
)
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.digests import sha256_hex
from ngixi_runtime.trust.local_paths import unsafe_because
from ngixi_runtime.trust.project_trust import SecretUnkept, kept_secret

# Where the cache lives is part of this module's API, kept apart for a tenant's parent (aot_cache_dir.py).
__all__ = [
    "CACHE_VARIABLE",
    "LIMIT_VARIABLE",
    "AotCache",
    "CacheKey",
    "CacheUnavailable",
    "EntryNotKept",
    "EntryRefused",
    "default_cache_dir",
]
_FORMAT = "ngixi-aot 4"
_KEY_NAME = "aot-cache.key"
_OTHERS_MAY_WRITE = stat.S_IWGRP | stat.S_IWOTH
_RECORD_LIMIT = 4096  # an entry's first line, its record, is far shorter
_ENTRY_SUFFIX = ".aot"
_DIGEST_LENGTH = 64  # an entry's name: the SHA-256 of its key, in hexadecimal
_ABANDONED_AFTER_S = 600  # a temporary file older than this is no store's that is still writing


class EntryRefused(Exception):
    """An entry that does not hold what its record says (damaged or swapped); it is compiled again."""


class EntryNotKept(Exception):
    """Code the cache does not keep: larger than all its entries may be together."""


class CacheKey(NamedTuple):
    """Everything the compiled code depends on: the same key is the same machine code."""

    # The digest every load of the .wasm checks (a load reading only what it runs checks no other): an entry
    # compiled from one .wasm serves no index that gives another .wasm's SHA-256 to bytes of its own.
    wasm_blake3: str
    # The public key that signed the .wasm compiled: a hit reads no .wasm, so an index of another key's giving its
    # own bytes that digest would run code its signer never shipped (another key's guest, compiled here).
    signer: str
    kind: str  # "module" or "component"
    engine: EngineId
    settings: str  # the engine settings the code is compiled for (e.g. fuel metering)
    triple: str
    cpu_features: tuple[str, ...]

    def record(self) -> dict[str, object]:
        fields = self._asdict()
        return {"format": _FORMAT, **fields, "engine": self.engine._asdict(), "cpu_features": sorted(self.cpu_features)}

    @property
    def name(self) -> str:
        return sha256_hex(json.dumps(self.record(), sort_keys=True).encode())


class AotCache(NamedTuple):
    directory: Path
    key: bytes  # this user's: only entries this user's loads made carry its keyed digest
    limit: int  # the bytes its entries may take together

    @classmethod
    def opened(cls, directory: Path | None = None) -> AotCache:
        """The cache in `directory` (default: `default_cache_dir`), made if missing; refused if others may write it
        or a directory above it (`local_paths.unsafe_because`), where they could swap it for one of their own."""
        directory = directory or default_cache_dir()
        limit = cache_limit()
        if not directory.is_dir():  # checked before it is made: nothing made where another user's link leads
            _refuse_if(directory, unsafe_because(directory))
        try:
            make_directories(directory, 0o700)
            status = directory.stat()
        except OSError as error:
            raise CacheUnavailable(
                f"{directory}: {error.strerror}; set {CACHE_VARIABLE} to a directory of yours"
            ) from None
        _refuse_if(
            directory, "others than this user may write it" if _others_may_write(status) else unsafe_because(directory)
        )
        try:
            return cls(directory, kept_secret(_KEY_NAME), limit)
        except SecretUnkept as unkept:
            raise CacheUnavailable(
                f"{unkept}; the key that marks this user's entries is needed to use them (set XDG_STATE_HOME "
                "to a directory of yours)"
            ) from None

    def entry_path(self, key: CacheKey) -> Path:
        return self.directory / f"{key.name}{_ENTRY_SUFFIX}"

    def load(self, key: CacheKey) -> bytes | None:
        """The entry's machine code, or None when it is missing; `EntryRefused` when it is not what was stored."""
        path = self.entry_path(key)
        try:
            descriptor, _ = open_plain(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except SpecialFileError:  # never opened: a FIFO's open would wake its writer, a device's run its driver
            raise EntryRefused("it is not a regular file") from None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise EntryRefused("it is a symbolic link") from None
            raise CacheUnavailable(f"{path}: {error.strerror}") from None
        try:
            code = _checked_code(descriptor, key, self.key)
            _mark_used(descriptor)
            return code
        except OSError as error:
            raise CacheUnavailable(f"{path}: {error.strerror}") from None
        finally:
            os.close(descriptor)

    def store(self, key: CacheKey, code: bytes) -> None:
        """Keeps `code`, this host's compilation for `key`, as one file: its record line, then the code; then
        removes the least recently used entries until all fit within the limit."""
        record = _record(key, code)
        record["mac"] = _mac(record, self.key).finalize().hex()
        line = json.dumps(record, sort_keys=True).encode() + b"\n"
        if len(line) + len(code) > self.limit:
            raise EntryNotKept(
                f"its {_mib(len(line) + len(code))} is more than the cache may hold, {_mib(self.limit)} "
                f"(${LIMIT_VARIABLE})"
            )
        try:
            with atomic_output(self.entry_path(key), mode=0o600) as stream:
                stream.write(line)
                stream.write(code)
        except OSError as error:
            raise CacheUnavailable(f"{self.directory}: cannot write an entry: {error.strerror}") from None
        self._make_room(keeping=self.entry_path(key))

    def _make_room(self, keeping: Path) -> None:
        """Removes the least recently used entries but `keeping` until the rest fit within the limit, and every
        temporary file a store abandoned (killed while it wrote)."""
        now = time.time()
        entries = []
        for item, status in _cache_files(self.directory):
            if item.name.endswith(_ENTRY_SUFFIX):
                entries.append((status.st_mtime, status.st_size, item.path))
            elif now - status.st_mtime > _ABANDONED_AFTER_S:
                _remove(item.path)
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit:
                return
            if path != str(keeping):
                _remove(path)
                total -= size


def _cache_files(directory: Path) -> list[tuple[os.DirEntry[str], os.stat_result]]:
    """The regular files in `directory` that the cache names: its entries and the temporary files of stores."""
    found = []
    with os.scandir(directory) as listing:
        for item in listing:
            with contextlib.suppress(OSError):  # removed by another process meanwhile
                if _is_cache_file(item.name) and item.is_file(follow_symlinks=False):
                    found.append((item, item.stat(follow_symlinks=False)))
    return found


def _is_cache_file(name: str) -> bool:
    """An entry's name (`<sha256>.aot`), or that of a store's temporary file (`.<sha256>.aot.<random>.tmp`)."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1 : 1 + _DIGEST_LENGTH + len(_ENTRY_SUFFIX)]
    digest, suffix = name[:_DIGEST_LENGTH], name[_DIGEST_LENGTH:]
    return suffix == _ENTRY_SUFFIX and len(digest) == _DIGEST_LENGTH and all(c in "0123456789abcdef" for c in digest)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):  # removed by another process meanwhile, or not this user's to remove: left
        os.unlink(path)


def _mark_used(descriptor: int) -> None:
    """Sets the entry's modification time to now: the cache removes the least recently used first."""
    with contextlib.suppress(OSError):  # a cache on a read-only filesystem is still read
        os.utime(descriptor)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _refuse_if(directory: Path, problem: str | None) -> None:
    if problem is not None:
        raise CacheUnavailable(
            f"{directory}: {problem}, and its entries are machine code this host runs; let no one else write it "
            f"or a directory above it, or set {CACHE_VARIABLE} to a directory of yours"
        )


def _others_may_write(status: os.stat_result) -> bool:
    return status.st_uid != os.geteuid() or bool(status.st_mode & _OTHERS_MAY_WRITE)


def _record(key: CacheKey, code: bytes) -> dict[str, object]:
    """An entry's record but its keyed digest: its cache key, its code's size and digest."""
    return {**key.record(), "size": len(code), "blake3": blake3.blake3(code).hexdigest()}


def _mac(record: dict[str, object], mac_key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 of the record, with cryptography's (loaded to verify anyway; hashlib is not, in a run)."""
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(json.dumps(record, sort_keys=True).encode())
    return mac


def _checked_code(descriptor: int, key: CacheKey, mac_key: bytes) -> bytes:
    """The code after the entry's record line, read on its own (a slice would copy it), if the record holds."""
    status = os.fstat(descriptor)
    if _others_may_write(status):
        raise EntryRefused("others than this user may write it")
    if not stat.S_ISREG(status.st_mode):
        raise EntryRefused("it is not a regular file")
    header, newline, _ = os.pread(descriptor, _RECORD_LIMIT, 0).partition(b"\n")
    try:
        record = json.loads(header) if newline else None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        record = None
    size = record.get("size") if isinstance(record, dict) else None
    if not isinstance(size, int) or status.st_size != len(header) + 1 + size:
        raise EntryRefused("its record is damaged or does not give its code's size")
    code = os.pread(descriptor, size, len(header) + 1)
    mac = record.pop("mac", None) if isinstance(record, dict) else None
    expected = _record(key, code)
    if record != expected:
        raise EntryRefused("its code does not match the digest and key of its record")
    try:
        _mac(expected, mac_key).verify(bytes.fromhex(mac) if isinstance(mac, str) else b"")  # in constant time
    except (InvalidSignature, ValueError):  # ValueError: not hexadecimal
        raise EntryRefused("this user's loads did not make it: its keyed digest does not match") from None
    return code
