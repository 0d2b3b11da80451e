"""Atomic file output: write to a temporary file beside the target, then rename it into place."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

import tomli

from ngixi_runtime.errors import InvalidInput

# What our writers leave if killed mid-write, beside the file they were making: `.<name>.<mkstemp's 8
# random characters>.tmp` (atomic_output, release staging directories) or `.<stem>.<8>.wasm` (compile).
_TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|wasm)$")


_SYNC = ContextVar("fsync before rename", default=True)


def is_temporary_name(name: str) -> bool:
    return _TEMPORARY_NAME.match(name) is not None


@contextmanager
def without_fsync() -> Iterator[None]:
    """Atomic writes in this block skip fsync: still whole or absent, but maybe lost in a power cut.

    For outputs that are rebuilt at will and verified when read (watch mode's dev builds).
    """
    token = _SYNC.set(False)
    try:
        yield
    finally:
        _SYNC.reset(token)


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yields a file that replaces `path` only if the block completes; else nothing changes."""
    import tempfile  # here: it imports shutil and random, which a run that writes nothing never needs

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            if _SYNC.get():
                os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    with atomic_output(path, mode=mode) as stream:
        stream.write(data)


def sha256_of(path: Path) -> str | None:
    """The file's sha256 (hex), or None if it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def read_toml_file(path: Path, *, what: str) -> dict[str, Any]:
    """A TOML file's tables; an unreadable or malformed file is an InvalidInput naming it."""
    return toml_tables(read_toml_text(path, what=what), source=str(path))


def read_toml_text(path: Path, *, what: str) -> str:
    """A TOML file's text, unparsed (`toml_tables`); an unreadable file is an InvalidInput naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not valid TOML: {error}") from None


def toml_tables(text: str, *, source: str) -> dict[str, Any]:
    """The tables of TOML text read from `source` (named in the message of malformed text)."""
    try:
        return tomli.loads(text)
    except (tomli.TOMLDecodeError, RecursionError) as error:
        raise InvalidInput(f"{source}: not valid TOML: {error}") from None
