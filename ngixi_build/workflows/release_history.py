"""The project's record of its releases (`release-history.toml`, committed): which guest versions each
release shipped, as which bundle digest and sequence.

It is what keeps a guest version's content fixed and its sequences rising: a release reads the record
in the working tree merged with the copy at every git ref (branch, tag, remote), so a release made
from an older commit still sees the newer ones.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ngixi_build.project import git_output
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import read_input_text, toml_tables, write_atomic

HISTORY_FILE = "release-history.toml"
_FORMAT = 1
_HEADER = (
    "# Written by `doit release`: the guest versions each release shipped, as which bundle and sequence.\n"
    "# Commit it: releases check new ones against it (a released guest version never changes content,\n"
    "# a guest's sequences only rise). Do not edit it by hand.\n"
)
_GUEST_KEYS = ("name", "version", "channel", "sequence", "digest")
_RELEASE_KEYS = ("version", "commit", "dirty", "guests")


class HistoryConflict(NgixiError):
    """Two copies of the release record disagree about a release or a guest version."""


@dataclass(frozen=True)
class ReleasedGuest:
    name: str
    version: str
    channel: str
    sequence: int
    digest: str  # "sha256:<hex>" of the bundle file


@dataclass(frozen=True)
class ReleaseRecord:
    version: str
    commit: str  # the git commit it was made from ("" outside git)
    dirty: bool  # made from a tree with uncommitted or untracked changes
    guests: tuple[ReleasedGuest, ...]

    def same_content(self, other: ReleaseRecord) -> bool:
        return sorted(self.guests, key=lambda g: g.name) == sorted(other.guests, key=lambda g: g.name)


@dataclass(frozen=True)
class Released:
    """A guest version already released: the first release that shipped it, and how."""

    release: str
    guest: ReleasedGuest


@dataclass(frozen=True)
class History:
    releases: tuple[ReleaseRecord, ...] = ()
    # every guest any committed version of the record ever named, so that a record edited or deleted
    # since never brings a sequence back down
    ever_released: tuple[ReleasedGuest, ...] = ()

    def release(self, version: str) -> ReleaseRecord | None:
        return next((r for r in self.releases if r.version == version), None)

    def released(self, name: str, version: str, channel: str) -> Released | None:
        for record in self.releases:
            for guest in record.guests:
                if (guest.name, guest.version, guest.channel) == (name, version, channel):
                    return Released(record.version, guest)
        return None

    def next_sequence(self, name: str, channel: str) -> int:
        """One above every sequence this guest has had on this channel (1 for its first release)."""
        guests = [*(g for r in self.releases for g in r.guests), *self.ever_released]
        used = [g.sequence for g in guests if (g.name, g.channel) == (name, channel)]
        return max(used, default=0) + 1

    def adding(self, record: ReleaseRecord) -> History:
        return merged([("the record", self), ("this release", History((record,)))])

    def shared_sequences(self) -> list[str]:
        """Each sequence the record gives to two versions of one guest and channel (releases made apart,
        from clones that did not see each other's record): hosts cannot order those two."""
        seen: dict[tuple[str, str, int], tuple[str, str]] = {}
        found = []
        for record in self.releases:
            for guest in record.guests:
                first = seen.setdefault((guest.name, guest.channel, guest.sequence), (guest.version, record.version))
                if first[0] != guest.version:
                    found.append(
                        f"{guest.name} {first[0]} (release {first[1]}) and {guest.name} {guest.version} (release "
                        f"{record.version}) both have sequence {guest.sequence} on channel {guest.channel}"
                    )
        return found


def read_history(root: Path) -> History:
    """The record in the working tree merged with its copy at every git ref of the repository."""
    path = root / HISTORY_FILE
    texts = [(str(path), read_input_text(path, what="the release record"))] if path.exists() else []
    texts += [(f"{HISTORY_FILE} at {ref}", text) for ref, text in _committed_copies(root)]
    history = merged([(source, parse_history(text, source=source)) for source, text in texts])
    return History(history.releases, _ever_released(root))


def _ever_released(root: Path) -> tuple[ReleasedGuest, ...]:
    """The guests of every version of the record any commit reachable from a ref ever had; versions
    that do not parse are skipped (no release could have been made from them)."""
    found: list[ReleasedGuest] = []
    for commit, text in _committed_versions(root):
        try:
            found += (g for r in parse_history(text, source=commit).releases for g in r.guests)
        except InvalidInput:
            continue
    return tuple(dict.fromkeys(found))


def write_history(root: Path, history: History) -> Path:
    path = root / HISTORY_FILE
    document = {
        "format": _FORMAT,
        "releases": [
            {**asdict(r), "guests": [asdict(g) for g in sorted(r.guests, key=lambda g: g.name)]}
            for r in sorted(history.releases, key=_release_order)
        ],
    }
    write_atomic(path, (_HEADER + "\n" + tomli_w.dumps(document)).encode())
    return path


def _release_order(record: ReleaseRecord) -> tuple[int, str]:
    return max((g.sequence for g in record.guests), default=0), record.version


def merged(copies: Iterable[tuple[str, History]]) -> History:
    """The union of several (source, copy) pairs; refused where they disagree, naming both."""
    releases: dict[str, tuple[ReleaseRecord, str]] = {}
    for source, copy in copies:
        for record in copy.releases:
            known = releases.get(record.version)
            if known is None:
                releases[record.version] = (record, source)
            elif not known[0].same_content(record):
                raise HistoryConflict(
                    f"{source}: release {record.version} differs from the one in {known[1]}; "
                    "reconcile the two records (a release version names one set of guest versions)"
                )
    history = History(tuple(record for record, _ in releases.values()))
    _check_guest_versions(history)
    return history


def _check_guest_versions(history: History) -> None:
    seen: dict[tuple[str, str, str], tuple[ReleasedGuest, str]] = {}
    for record in history.releases:
        for guest in record.guests:
            key = (guest.name, guest.version, guest.channel)
            first = seen.setdefault(key, (guest, record.version))
            if first[0] != guest:
                raise HistoryConflict(
                    f"{HISTORY_FILE}: {guest.name} {guest.version} is recorded as {first[0].digest} (sequence "
                    f"{first[0].sequence}) in release {first[1]} and as {guest.digest} (sequence {guest.sequence}) "
                    f"in release {record.version}; a released guest version has one content: reconcile the records"
                )


def parse_history(text: str, *, source: str) -> History:
    try:
        raw = toml_tables(text, source=source)
    except InvalidInput as error:
        raise InvalidInput(f"{error}; restore it from git") from None
    if raw.get("format") != _FORMAT:
        raise _damaged(source, "format", f"must be {_FORMAT}")
    releases = raw.get("releases", [])
    if not isinstance(releases, list):
        raise _damaged(source, "releases", "must be an array of tables")
    return History(tuple(_record(r, f"releases[{i}]", source) for i, r in enumerate(releases)))


def _record(raw: object, field: str, source: str) -> ReleaseRecord:
    table = _table(raw, _RELEASE_KEYS, field, source)
    guests = table.get("guests")
    if not isinstance(guests, list) or not guests:
        raise _damaged(source, f"{field}.guests", "must be a non-empty array of tables")
    commit, dirty = table.get("commit", ""), table.get("dirty")
    if not isinstance(commit, str) or not isinstance(dirty, bool):
        raise _damaged(source, field, "commit must be a string and dirty true or false")
    return ReleaseRecord(
        _text(table, "version", field, source),
        commit,
        dirty,
        tuple(_guest(g, f"{field}.guests[{i}]", source) for i, g in enumerate(guests)),
    )


def _guest(raw: object, field: str, source: str) -> ReleasedGuest:
    table = _table(raw, _GUEST_KEYS, field, source)
    sequence = table.get("sequence")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise _damaged(source, f"{field}.sequence", "must be a whole number from 1")
    digest = _text(table, "digest", field, source)
    if not digest.startswith("sha256:") or len(digest) != len("sha256:") + 64:
        raise _damaged(source, f"{field}.digest", "must be sha256:<64 hex digits>")
    return ReleasedGuest(
        _text(table, "name", field, source),
        _text(table, "version", field, source),
        _text(table, "channel", field, source),
        sequence,
        digest,
    )


def _table(raw: object, keys: tuple[str, ...], field: str, source: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _damaged(source, field, "must be a table")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise _damaged(source, f"{field}.{unknown[0]}", f"unknown key; allowed: {', '.join(keys)}")
    return raw


def _text(table: Mapping[str, Any], key: str, field: str, source: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise _damaged(source, f"{field}.{key}", "must be a non-empty string")
    return value


def _damaged(source: str, field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{source}: {field}: {message}; this record is written by `doit release`: restore it from git")


def _committed_copies(root: Path) -> list[tuple[str, str]]:
    """(ref, text) of the record at every ref that has one; nothing outside a git repository."""
    return _blobs_at(root, (git_output(root, "for-each-ref", "--format=%(refname)") or "").split())


def _committed_versions(root: Path) -> list[tuple[str, str]]:
    """(commit, text) of every version of the record that commits reachable from any ref wrote."""
    commits = git_output(root, "log", "--all", "--format=%H", "--", HISTORY_FILE)
    return _blobs_at(root, (commits or "").split())


def _blobs_at(root: Path, names: list[str]) -> list[tuple[str, str]]:
    """(name, text) of the record at each commit-ish that has one."""
    if not names:
        return []
    prefix = git_output(root, "rev-parse", "--show-prefix") or ""
    request = "".join(f"{ref}:{prefix}{HISTORY_FILE}\n" for ref in names).encode()
    output = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=root, input=request, capture_output=True, check=True
    ).stdout
    found = _batch_texts(output, len(names))
    return [(ref, text) for index, ref in enumerate(names) if (text := found[index]) is not None]


def _batch_texts(output: bytes, count: int) -> list[str | None]:
    """`git cat-file --batch`'s answers in order: each blob's text, None where the path is missing."""
    texts: list[str | None] = []
    position = 0
    for _ in range(count):
        end = output.index(b"\n", position)
        header = output[position:end].split()
        position = end + 1
        if header[-1] == b"missing" or len(header) != 3:
            texts.append(None)
            continue
        size = int(header[2])
        texts.append(output[position : position + size].decode("utf-8", errors="replace"))
        position += size + 1
    return texts
