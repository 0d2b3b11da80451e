"""What another local user, or a directory someone else prepared, must not decide: checks of files the loader
finds rather than is given.

A file is safe to trust when it and every directory above it belong to this user or root and no one else may
change them: not writable by group or others, except a directory with the sticky bit (such as /tmp), whose
entries only their owners may rename. A group that is this user's own (a user-private group with no other
members, as under umask 002) counts as this user; a POSIX ACL that lets another user or group write does not
(`setfacl -m u:NAME:rwx` shows only as group-write bits, its mask).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import SpecialFileError, make_directories, open_plain
from ngixi_runtime.spec.sandbox_layout import KV_STORE, KV_STORE_ENDINGS

_SANDBOX_STATE = tuple(f"{KV_STORE}{ending}" for ending in KV_STORE_ENDINGS)
# In a guest's sandbox, beside files/ and its kv database: the public key whose bundles' state it holds.
SANDBOX_SIGNER = "signer"
_SIGNER_BYTES = 128  # a minisign public key is 56 characters of base64
# Linux's access ACL: a 4-byte version, then (tag, permissions, id) entries; the tags and the write bit of acl.h.
_ACCESS_ACL = "system.posix_acl_access"
_ACL_HEADER = 4
_ACL_ENTRY = struct.Struct("<HHI")
_ACL_USER, _ACL_GROUP, _ACL_WRITE = 0x02, 0x08, 0x02
_NO_ACL = (errno.ENODATA, errno.EOPNOTSUPP)
_MAX_LINKS = 40  # as Linux's MAXSYMLINKS: resolving stops there


def unsafe_because(path: Path) -> str | None:
    """Why someone other than this user (or root) could change `path` or swap it, or None when no one can: the
    directories above the path as written count too, since whoever may write one of those could point a symbolic
    link in it elsewhere, and so does every symbolic link on the way: its owner may point it elsewhere whenever
    they like (in a sticky directory such as /tmp, nothing else stops them). Of a path not made yet, the
    directories above it that exist."""
    foreign = _foreign_link(path)
    if foreign is not None:
        return foreign
    for each in _path_and_above(path):
        try:
            status = os.stat(each)
        except FileNotFoundError:
            continue
        except OSError as error:
            return f"{each} cannot be checked: {error.strerror}"
        problem = _problem(each, status)
        if problem is not None:
            return problem
    return None


def _path_and_above(path: Path) -> dict[Path, None]:
    """`path` resolved and the directories above it, both as resolved and as written (in that order, once each)."""
    real = Path(os.path.realpath(path))
    return dict.fromkeys((real, *real.parents, *Path(os.path.abspath(path)).parents))


def refuse_if_anyone_may_change(path: Path, what: str) -> None:
    """Refuses a file the operator named (`what`: its role) that every user of the machine may change or swap: it,
    or a directory above it that is not sticky, may be written by any user. Its owner and group are the operator's
    choice (a group may edit /etc/ngixi); any user is no one's."""
    for each in _path_and_above(path):
        try:
            mode = os.stat(each).st_mode
        except OSError:  # missing or unreadable: reading the file says so
            continue
        if _any_user_may_write(mode, sticky_protects=True):
            raise InvalidInput(
                f"{path}: not used as {what}: {each} may be written by any user, who would choose what runs here; "
                f"remove that (chmod o-w {each})"
            )


def refuse_unsafe_project_trust(trust: Path) -> None:
    """Refuses a project's dev trust file found, not named, that anyone but this user (or root) could change."""
    problem = unsafe_because(trust)
    if problem is not None:
        raise InvalidInput(
            f"{trust}: not used as the trust file: {problem}; a project's dev trust file is used without --trust "
            "only when no one but you can change it (fix its owner or mode), else pass --trust FILE"
        )


def _foreign_link(path: Path) -> str | None:
    """A symbolic link that resolving `path` follows (its own or one in a link's target) and that belongs to a
    user other than this one or root, who may point it elsewhere; None when there is none, or where resolving
    stops (a missing name, a loop: os.path.realpath's checks then say what they find)."""
    user = os.geteuid()
    current, pending, hops = Path("/"), list(reversed(Path(os.path.abspath(path)).parts[1:])), 0
    while pending and hops <= _MAX_LINKS:
        part = pending.pop()
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        try:
            status = os.lstat(candidate)
        except OSError:
            return None
        if not stat.S_ISLNK(status.st_mode):
            current = candidate
            continue
        if status.st_uid not in (user, 0):
            return f"{candidate} is a symbolic link of user id {status.st_uid}, who may point it elsewhere"
        target = Path(os.readlink(candidate))
        current = Path("/") if target.is_absolute() else current
        pending.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
        hops += 1
    return None


def _problem(path: Path, status: os.stat_result, *, sticky_protects: bool = True) -> str | None:
    """Why another user could change `path` (`status`): not this user's or root's, or writable by others; unless
    `sticky_protects` is False, a sticky directory's entries are safe whoever may write it (their owners alone may
    rename them)."""
    user = os.geteuid()
    if status.st_uid not in (user, 0):
        return f"{path} belongs to user id {status.st_uid}, not to this user ({user}) or root"
    if _any_user_may_write(status.st_mode, sticky_protects=sticky_protects):
        return f"{path} may be written by any user"
    if status.st_mode & stat.S_IWGRP and not (sticky_protects and status.st_mode & stat.S_ISVTX):
        if not _own_group(status.st_gid):
            return f"{path} may be written by the members of group id {status.st_gid}"
        return _acl_writer(path)  # the group bits of a file with an ACL are its mask: for named users and groups too
    return None


def _any_user_may_write(mode: int, *, sticky_protects: bool) -> bool:
    """Whether any user may write what has `mode`, or rename its entries (a directory's, unless it is sticky and
    `sticky_protects`: then their owners alone may)."""
    sticky_directory = stat.S_ISDIR(mode) and mode & stat.S_ISVTX
    return bool(mode & stat.S_IWOTH) and not (sticky_protects and sticky_directory)


def _acl_writer(path: Path) -> str | None:
    """Why `path`'s access ACL lets a user other than this one (or root), or a group not this user's own, write it."""
    if not hasattr(os, "getxattr"):  # Linux's: macOS keeps its ACLs otherwise, and they are not read here
        return None
    try:
        acl = os.getxattr(path, _ACCESS_ACL)  # as os.stat: a symlink above a path is checked as its target
    except OSError as error:
        return None if error.errno in _NO_ACL else f"{path}: its ACL cannot be checked: {error.strerror}"
    for offset in range(_ACL_HEADER, len(acl) - _ACL_ENTRY.size + 1, _ACL_ENTRY.size):
        tag, permissions, identity = _ACL_ENTRY.unpack_from(acl, offset)
        if not permissions & _ACL_WRITE:
            continue
        if tag == _ACL_USER and identity not in (os.geteuid(), 0):
            return f"{path} may be written by user id {identity} (its ACL)"
        if tag == _ACL_GROUP and not _own_group(identity):
            return f"{path} may be written by the members of group id {identity} (its ACL)"
    return None


def _own_group(gid: int) -> bool:
    """Whether `gid` is this user's private group: their primary group, with no other members."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid())
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        return False
    return gid == user.pw_gid and members <= {user.pw_name}


def redirected_below(base: Path, inner: Path) -> str | None:
    """Why the sandbox `inner` under `base` would lead elsewhere, or None: a symbolic link on the way down from
    `base` (exclusive), at `inner/files`, its signer record or a kv database file, any of those that another user
    could change, or a kv database file with another name (a hard link, which another guest's files could share).
    Paths that do not exist yet are made later."""
    relative = inner.relative_to(base)
    current = base
    candidates = []
    for part in relative.parts:
        current = current / part
        candidates.append(current)
    candidates += [inner / "files", inner / SANDBOX_SIGNER, *(inner / name for name in _SANDBOX_STATE)]
    link = next((path for path in candidates if path.is_symlink()), None)
    if link is not None:
        return f"{link} is a symbolic link"
    records = {inner / SANDBOX_SIGNER, *(inner / name for name in _SANDBOX_STATE)}
    misplaced = next(filter(None, (_wrong_kind(path, directory=path not in records) for path in candidates)), None)
    if misplaced is not None:
        return misplaced
    foreign = next(filter(None, map(_not_only_ours, candidates)), None)
    if foreign is not None:
        return foreign
    shared = next((inner / name for name in _SANDBOX_STATE if _links(inner / name) > 1), None)
    return None if shared is None else f"{shared} has other names (hard links)"


def enclosing_sandbox(directory: Path) -> Path | None:
    """The sandbox of another guest whose `files/` is or holds `directory` (resolved), or None: a sandbox is known
    by its signer record beside its `files/`. That guest's preopens lie in its `files/`, so it could change whatever
    a sandbox there holds (another guest's files, kv data and signer record). A guest named "files" in a sandboxes
    directory laid out per channel is such a sandbox of another layout's guest (DIR/release/hello/files)."""
    real = Path(os.path.realpath(directory))
    for above in (real, *real.parents):
        if above.name == "files" and os.path.isfile(above.parent / SANDBOX_SIGNER):
            return above.parent
    return None


def sandbox_within(directory: Path) -> Path | None:
    """A sandbox that `directory` (a guest's `files/`, not yet claimed by its signer record) holds, at any depth, or
    None: one known by its signer record beside its kv store or its `files/`. Made before the guest claimed its own,
    it escaped `enclosing_sandbox`, which is asked when the inner one is made; the guest would reach it through its
    preopens. Symbolic links are not followed (a preopen through one is checked where it leads)."""
    for place, folders, names in os.walk(directory):
        state = SANDBOX_SIGNER in names and (KV_STORE in names or "files" in folders)
        if state and os.path.isfile(os.path.join(place, SANDBOX_SIGNER)):
            return Path(place)
    return None


def _not_only_ours(path: Path) -> str | None:
    """Why another user could change what `path` holds, if it exists; sticky or not: they could make the entries
    not made yet."""
    try:
        return _problem(path, os.lstat(path), sticky_protects=False)
    except FileNotFoundError:
        return None


def _wrong_kind(path: Path, *, directory: bool) -> str | None:
    """Why `path`, if it exists, is not what a sandbox keeps there (a directory, else a regular file): a directory
    named kv.sqlite3 was reported as a hard link (its link count), a FIFO would be opened."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if directory:
        return None if stat.S_ISDIR(mode) else f"{path} is not a directory"
    return None if stat.S_ISREG(mode) else f"{path} is not a regular file"


def _links(path: Path) -> int:
    try:
        return os.lstat(path).st_nlink
    except FileNotFoundError:
        return 0


def sandbox_signer(directory: Path, public_key: str, key_id: str) -> str:
    """The public key (minisign's base64, which holds its id) whose bundles' state the guest's sandbox `directory`
    holds: the one recorded there, else `public_key`, recorded now (by the first of concurrent loads: the record is
    linked into place, never replaced). A sandbox made here is private to this user (mode 0700): its files and kv
    data are the guest's.

    A record of a key id alone (written before records named the public key) goes to the key of that id that uses
    it first, as a sandbox made before records existed went to the first key: an id is any 8 bytes its key's maker
    chose, so it cannot tell two keys apart. Loads that check the record at once wait for each other
    (`_held_exclusively`), so that one key alone takes it over."""
    make_directories(directory, 0o700)
    record = directory / SANDBOX_SIGNER
    with _held_exclusively(directory):
        recorded = _recorded_signer(record)
        if recorded == key_id:
            _write_record(directory, record, public_key, replacing=True)
        elif recorded is None:
            _write_record(directory, record, public_key, replacing=False)
        return _recorded_signer(record) or "(none)"


@contextlib.contextmanager
def _held_exclusively(directory: Path) -> Iterator[None]:
    """An exclusive `flock` of the sandbox directory while its signer record is read and written; where the file
    system keeps no such locks, none (a record of a key id alone could then be taken over by two loads at once)."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _write_record(directory: Path, record: Path, public_key: str, *, replacing: bool) -> None:
    import tempfile  # here: only a guest that keeps state in its sandbox records its signer

    descriptor, proposed = tempfile.mkstemp(prefix=f".{SANDBOX_SIGNER}.", dir=directory)
    try:
        os.write(descriptor, public_key.encode())
        os.close(descriptor)
        if replacing:
            os.replace(proposed, record)
            return
        with contextlib.suppress(FileExistsError):
            os.link(proposed, record)
    finally:
        with contextlib.suppress(FileNotFoundError):  # renamed into place
            os.unlink(proposed)


def _recorded_signer(record: Path) -> str | None:
    """What the signer record holds, None when there is none."""
    try:
        descriptor, kind = open_plain(record, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except SpecialFileError:
        return "(not a regular file)"
    try:
        if kind != stat.S_IFREG:
            return "(not a regular file)"
        return os.read(descriptor, _SIGNER_BYTES).decode(errors="replace").strip()
    finally:
        os.close(descriptor)
