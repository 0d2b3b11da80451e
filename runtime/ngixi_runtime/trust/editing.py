"""Editing trust files (`ngixi trust add/list/remove`, `ngixi keygen --trust`).

Every edit keeps the rest of the file as written (comments included), is checked by the loader's own
parser (`trust_from_text`) before it replaces the file, and replaces it atomically, holding the
file's directory locked against concurrent edits.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import minisign
import tomli

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import (
    KEY_FILE_LIMIT,
    atomic_output,
    make_directories,
    not_a_directory,
    open_plain,
    read_input_bytes,
    read_input_text,
)
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.trust.minisign_format import is_secret_key, public_key_from_base64
from ngixi_runtime.trust.signatures import (
    TrustStore,
    key_id_of,
    load_trust,
    read_trust_table,
    trust_from_table,
    trust_from_text,
)

_KEYS_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*keys[ \t]*\]\][ \t]*(#.*)?$", re.MULTILINE)


class NewTrust(NamedTuple):
    """What `add_key` trusts a public key with."""

    guests: tuple[str, ...]  # names or patterns (fnmatch)
    channels: tuple[str, ...]
    native_code: bool = False
    comment: str = ""


def read_public_key(path: Path) -> minisign.PublicKey:
    """A minisign public key file (as `minisign -G` or `ngixi keygen` writes it)."""
    data = read_input_bytes(path, what="the public key", limit=KEY_FILE_LIMIT)
    try:
        key = minisign.PublicKey.from_bytes(data)
        public_key_from_base64(key.to_base64())  # as the loader reads it (FormatError: a ValueError)
    except (minisign.Error, ValueError) as error:
        if is_secret_key(data):
            raise InvalidInput(
                f"{path}: a minisign SECRET key: give its public half (the .pub file), and keep the secret key "
                "off the hosts that only verify"
            ) from None
        raise InvalidInput(f"{path}: not a minisign public key file ({error})") from None
    return key


def add_key(trust_file: Path, public_key: minisign.PublicKey, trust: NewTrust) -> str:
    """Appends a [[keys]] table for `public_key` to the trust file (made if missing); returns the key id."""
    with _editing(trust_file) as edited:
        return _add(edited, public_key, trust)


def check_new_trust(trust_file: Path, trust: NewTrust) -> None:
    """Refuses what `add_key` would refuse for any key (guest patterns, channels; an existing trust file the
    loader refuses), before a key is made."""
    _trusted(_key_block(minisign.KeyPair.generate().public_key, trust), trust_file)
    if trust_file.exists():
        load_trust(trust_file)


def remove_key(trust_file: Path, key_id: str) -> str:
    """Removes the [[keys]] table of `key_id` (its hex digits in either case, as minisign prints them or not),
    keeping the rest of the file as it was; returns the id as the file lists it."""
    listed = key_id.upper()
    with _editing(trust_file) as edited:
        _remove(edited, listed)
    return listed


@contextmanager
def _editing(link_or_file: Path) -> Iterator[Path]:
    """Yields the file to edit, the one a symbolic link names (the link stays), holding its directory
    locked so that concurrent edits never lose one another. The directory is opened as the one the edit writes
    in (through a link above it, as the write goes) and as a directory only: a FIFO or device swapped in for it
    is never opened (`files.open_plain`), the descriptor never passed on to a program ngixi starts."""
    try:
        trust_file = link_or_file.resolve() if link_or_file.is_symlink() else link_or_file
    except (RuntimeError, OSError):  # a loop, before Python 3.13
        trust_file = link_or_file
    if trust_file.is_symlink():  # a loop: Python 3.13 and newer resolve it to one of its links
        raise InvalidInput(f"{link_or_file}: a symbolic link that never ends in a file (a loop); name the trust file")
    try:
        make_directories(trust_file.parent, 0o755)  # others may read a trust file, never change it
        descriptor, _ = open_plain(trust_file.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        problem = not_a_directory(trust_file.parent)
        why = f"it {problem}" if problem else error.strerror
        raise InvalidInput(f"{trust_file.parent}: cannot edit trust files there: {why}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield trust_file
    finally:
        os.close(descriptor)


def _add(trust_file: Path, public_key: minisign.PublicKey, trust: NewTrust) -> str:
    key_id = key_id_of(public_key)
    text = _current_text(trust_file)
    if text:
        known = _trusted(text, trust_file)
        if known.find(key_id) is not None:
            raise InvalidInput(
                f"{trust_file}: key {key_id} is already trusted there; to change what it may sign, "
                f"`ngixi trust remove {key_id} --trust {trust_file}` and add it again"
            )
    block = _key_block(public_key, trust)
    _replace(trust_file, (text.rstrip("\n") + "\n\n" if text.strip() else "") + block, edited=text)
    return key_id


def _remove(trust_file: Path, key_id: str) -> None:
    text = _current_text(trust_file)
    if not text:
        raise InvalidInput(f"{trust_file}: no such trust file")
    known = _trusted(text, trust_file)
    if known.find(key_id) is None:
        listed = ", ".join(k.key_id for k in known.keys)
        raise InvalidInput(
            f"{trust_file}: no key {key_id!r} there (it trusts: {listed}); `ngixi trust list` shows them"
        )
    if len(known.keys) == 1:
        raise InvalidInput(
            f"{trust_file}: key {key_id} is the only key there, and a trust file lists at least one: "
            "remove the file instead"
        )
    _replace(trust_file, _without_block(text, key_id, trust_file), edited=text)


def listed_keys(trust_file: Path) -> list[dict[str, Any]]:
    """The trust file's keys as the loader reads them, with each one's comment."""
    raw, text = read_trust_table(trust_file)
    store = trust_from_table(raw, source=str(trust_file), text=text)
    return [
        {
            "id": key.key_id,
            "guests": list(key.guests),
            "channels": list(key.channels),
            "native_code": key.native_code,
            "comment": str(table.get("comment", "")),
        }
        for key, table in zip(store.keys, raw["keys"], strict=True)
    ]


def _current_text(trust_file: Path) -> str:
    if not trust_file.exists():
        return ""
    return read_input_text(trust_file, what="the trust file", own_state=True)


def _trusted(text: str, trust_file: Path) -> TrustStore:
    """The loader's reading of a trust file's text: its parser, its messages."""
    return trust_from_text(text, source=str(trust_file))


def _replace(trust_file: Path, text: str, *, edited: str) -> None:
    """Puts `text` in place of `edited`, what the file held when it was read, unless it has changed since: an
    operator's edit by hand (one that revokes a key) made meanwhile is kept, not overwritten with the old keys."""
    _trusted(text, trust_file)  # never write what the loader would refuse
    try:
        mode = stat.S_IMODE(trust_file.stat().st_mode)  # who may read it stays as the operator set it
    except FileNotFoundError:
        mode = 0o644
    with atomic_output(trust_file, mode=mode) as stream:
        stream.write(text.encode())
        if _current_text(trust_file) != edited:  # the last look before it is replaced: a hand edit takes no lock
            raise InvalidInput(
                f"{trust_file}: it changed while ngixi edited it (an edit by hand?); nothing was written: "
                "run the command again"
            )


def render_keys(keys: Sequence[tuple[minisign.PublicKey, NewTrust]]) -> str:
    """A trust file listing these keys, as `add_key` writes each."""
    return "\n".join(_key_block(public_key, trust) for public_key, trust in keys)


def _key_block(public_key: minisign.PublicKey, trust: NewTrust) -> str:
    lines = [
        "[[keys]]",
        f"id = {_string(key_id_of(public_key))}",
        f"public_key = {_string(public_key.to_base64().decode())}",
        f"guests = [{', '.join(map(_string, trust.guests))}]",
        f"channels = [{', '.join(map(_string, trust.channels))}]",
        f"native_code = {'true' if trust.native_code else 'false'}",
        *([f"comment = {_string(trust.comment)}"] if trust.comment else []),
    ]
    return "\n".join(lines) + "\n"


def _string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, given raw non-ASCII (no surrogate escapes) and DEL."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _without_block(text: str, key_id: str, trust_file: Path) -> str:
    """The text without the [[keys]] table of `key_id`, from its header to the next table header: the first such
    cut after which the file holds every other table exactly as before. A `[[keys]]` line inside a multi-line
    comment is no header, and cutting there (with a closing quote after it) changed how the rest of the file
    reads: another key took the removed one's text as its own fields, its guests and native code with them."""
    expected = [table for table in tomli.loads(text)["keys"] if table.get("id") != key_id]
    next_table = re.compile(r"^[ \t]*\[", re.MULTILINE)
    for header in _KEYS_HEADER.finditer(text):
        start = header.start()
        following = next_table.search(text, header.end() + 1)
        end = following.start() if following else len(text)
        remaining = text[:start] + text[end:]
        if _table_id(text[start:end]) == key_id and _tables(remaining) == {"keys": expected}:
            return remaining
    raise InvalidInput(
        f"{trust_file}: key {key_id} is not written as a [[keys]] table this command can remove; edit the file"
    )


def _table_id(block: str) -> object:
    """The id of the one [[keys]] table `block` holds (None if it is no such table)."""
    tables = _tables(block)
    return tables["keys"][0].get("id") if tables is not None else None


def _tables(text: str) -> dict[str, Any] | None:
    try:
        return tomli.loads(text)
    except (tomli.TOMLDecodeError, RecursionError):
        return None
