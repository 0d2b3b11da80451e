"""The `fs` capability: WASI preview 1 files under the manifest's preopened directories.

[capabilities.fs]
preopens = [{ guest = "/data", host = "data", mode = "rw" }]   # host: relative to the tenant's sandbox; may be []
max_bytes = 1073741824   # what the files under the rw preopens may hold together (wasi_quota.py)
max_files = 10000        # how many names (files, directories, links) they may hold

Without preopens, the guest still has its descriptor functions (C's start-up code imports fd_close and
fd_seek) over stdin, stdout and stderr.

Host paths are checked when the manifest is read and again, resolved, when a guest opens; the
files themselves are wasi_files.py. Component guests get the same preopens from Wasmtime's WASI.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ngixi_runtime.capabilities.base import (
    FD_CLOSE,
    FD_FDSTAT_GET,
    FD_SEEK,
    FD_WRITE,
    MODES,
    OUTPUT_WASI_P2,
    Bounds,
    Capability,
    Mode,
    Mount,
    at_most,
    bounded,
    ceiling_bound,
    descriptor_methods,
    listing,
    optional_array,
    state_method,
    wasi_import,
)
from ngixi_runtime.capabilities.context import DEFAULT_OPEN_FILES, HostContext, Sandbox
from ngixi_runtime.capabilities.wasi_files import Console, WasiFilesystem, wasi_errno
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import make_directories
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import PATH_BYTES, Problems, array, string, too_long, type_name

_PREOPEN_KEYS = ("guest", "host", "mode")
_PREOPEN_EXAMPLE = '{ guest = "/data", host = "data", mode = "rw" }'


class Preopen(NamedTuple):
    guest: str  # absolute, normalized path the guest sees
    host: str  # normalized path relative to the tenant's sandbox root ("." is the root itself)
    mode: Mode


FILE_BYTES = Bounds(1 << 30, 0, 1 << 50)
FILE_NAMES = Bounds(10_000, 0, 1_000_000)


class FsOptions(NamedTuple):
    preopens: tuple[Preopen, ...]  # none is a grant of its functions alone (C's startup imports fd_close, fd_seek)
    max_bytes: int = FILE_BYTES.default  # what the files under the rw preopens may hold together
    max_files: int = FILE_NAMES.default  # how many names they may hold

    @property
    def needs_sandbox(self) -> bool:
        return bool(self.preopens)

    @property
    def writes(self) -> bool:
        """Whether a preopen is rw: only then does the disk quota bound anything."""
        return any(preopen.mode == "rw" for preopen in self.preopens)


# --- options ---------------------------------------------------------------------------------------


def host_path_problem(host: str) -> str | None:
    """Why a preopen's host path could leave the sandbox root or is too long, or None when neither."""
    if why := too_long(host, PATH_BYTES) or _holds_nul(host):
        return why
    if host.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", host):
        return "is absolute; give a path relative to the tenant's sandbox root"
    if ".." in re.split(r"[/\\]", host):
        return 'leaves the sandbox root; ".." is not allowed'
    if not host:
        return 'is empty; use "." for the sandbox root itself'
    return None


def _holds_nul(path: str) -> str | None:
    """Why a path no file system can hold is refused (a NUL ends a C string), or None."""
    return "holds a NUL character, which no path can hold" if "\0" in path else None


def normalized_host_path(host: str) -> str:
    """A host path checked by `host_path_problem`, with `/` separators and no `.` or repeated parts."""
    return posixpath.normpath(host.replace("\\", "/"))


def guest_path_problem(guest: str) -> str | None:
    """Why a guest path is not an absolute, normalized path of at most `PATH_BYTES`, or None when it is."""
    if why := too_long(guest, PATH_BYTES) or _holds_nul(guest):
        return why
    if not guest.startswith("/") or guest.startswith("//") or posixpath.normpath(guest) != guest:
        return 'must be an absolute, normalized guest path like "/data"'
    return None


def within(path: str, directory: str) -> bool:
    """Whether normalized `path` is `directory` or lies under it (both relative, or both absolute)."""
    return directory in (".", path) or path.startswith(directory.rstrip("/") + "/")


def _preopen(value: object, field: str, problems: Problems) -> Preopen | None:
    if not isinstance(value, dict):
        problems.add(field, f"must be a table like {_PREOPEN_EXAMPLE}, not {type_name(value)}")
        return None
    problems.unknown_keys(value, _PREOPEN_KEYS, field)
    guest = string(value, "guest", f"{field}.guest", problems)
    host = string(value, "host", f"{field}.host", problems)
    mode = string(value, "mode", f"{field}.mode", problems, default="ro")
    count = len(problems.lines)
    if guest and (why := guest_path_problem(guest)):
        problems.add(f"{field}.guest", f'"{guest}" {why}')
    if isinstance(value.get("host"), str) and (why := host_path_problem(host)):
        problems.add(f"{field}.host", f'"{host}" {why}')
    if mode and mode not in MODES:
        problems.add(f"{field}.mode", f'"{mode}" must be "ro" (read-only) or "rw" (read-write)')
    if len(problems.lines) > count or not (guest and host):
        return None
    return Preopen(guest, normalized_host_path(host), cast(Mode, mode))


def reachable_for_writing(ro: str, mounts: list[tuple[str, Mode]]) -> bool:
    """Whether a read-only host directory lies in a read-write one (so the guest could write it there)."""
    return any(mode == "rw" and within(ro, directory) for directory, mode in mounts)


def parse_fs(raw: Mapping[str, Any], field: str, problems: Problems) -> FsOptions:
    problems.unknown_keys(raw, ("preopens", "max_bytes", "max_files"), field)
    count = len(problems.lines)
    preopens = array(
        raw,
        "preopens",
        f"{field}.preopens",
        problems,
        item=_preopen,
        identity=lambda p: p.guest,
    )
    mounts = [(p.host, p.mode) for p in preopens]
    indexes_are_exact = len(problems.lines) == count
    for index, preopen in enumerate(preopens):
        if indexes_are_exact and preopen.mode == "ro" and reachable_for_writing(preopen.host, mounts):
            problems.add(
                f"{field}.preopens[{index}].host",
                f'"{preopen.host}" is read-only, but a rw preopen reaches it; move it out or make both ro',
            )
    max_bytes = bounded(raw, "max_bytes", field, problems, FILE_BYTES)
    return FsOptions(preopens, max_bytes, bounded(raw, "max_files", field, problems, FILE_NAMES))


# --- the policy's ceiling --------------------------------------------------------------------------


class FsCeiling(NamedTuple):
    host_roots: tuple[str, ...] | None  # preopen host paths must lie within one of these
    guest_roots: tuple[str, ...] | None  # preopen guest paths must lie within one of these
    writable: bool  # whether a preopen may be "rw"
    max_bytes: int | None = None
    max_files: int | None = None

    def exceeded(self, options: FsOptions, field: str) -> list[str]:
        found = []
        for index, preopen in enumerate(options.preopens):
            at = f"{field}.preopens[{index}]"
            found += _outside(f"{at}.host", preopen.host, self.host_roots, "host_roots")
            found += _outside(f"{at}.guest", preopen.guest, self.guest_roots, "guest_roots")
            if preopen.mode == "rw" and not self.writable:
                found.append(f'{at}.mode: "rw" is not allowed: the policy allows only read-only mounts')
        if not options.writes:
            return found
        found += at_most(f"{field}.max_bytes", options.max_bytes, self.max_bytes, default=FILE_BYTES.default)
        return found + at_most(f"{field}.max_files", options.max_files, self.max_files, default=FILE_NAMES.default)

    def unheld_by_a_component(self, options: FsOptions, field: str) -> list[str]:
        """The disk quota ceilings, which a component guest's rw preopens are not held to: its files are Wasmtime's
        WASI, which keeps no quota. A ceiling the host cannot hold refuses the guest rather than pass it silently."""
        ceilings = [key for key in ("max_bytes", "max_files") if getattr(self, key) is not None]
        if not ceilings or not options.writes:
            return []
        return [
            f"{field}.preopens: the policy sets {' and '.join(ceilings)}, which a component guest's rw preopens are not"
            " held to (its files are Wasmtime's WASI, which keeps no disk quota); make them ro, or run it under a"
            " policy without these ceilings and its sandbox on a file system with its own limit"
        ]


def _outside(field: str, path: str, roots: tuple[str, ...] | None, key: str) -> list[str]:
    if roots is None or any(within(path, root) for root in roots):
        return []
    return [f'{field}: "{path}" is outside the policy\'s {key} ({listing(roots)})']


def _root_reader(
    example: str, problem_of: Callable[[str], str | None], normalized: Callable[[str], str]
) -> Callable[[object, str, Problems], str | None]:
    """Reads one of a policy's roots: a path like `example` in which `problem_of` finds nothing, `normalized`."""

    def root(value: object, field: str, problems: Problems) -> str | None:
        if not isinstance(value, str):
            problems.add(field, f'must be a string like "{example}", not {type_name(value)}')
            return None
        if why := problem_of(value):
            problems.add(field, f'"{value}" {why}')
            return None
        return normalized(value)

    return root


_host_root = _root_reader("data", host_path_problem, normalized_host_path)
_guest_root = _root_reader("/data", guest_path_problem, str)


def parse_fs_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> FsCeiling:
    problems.unknown_keys(raw, ("host_roots", "guest_roots", "writable", "max_bytes", "max_files"), field)
    writable = raw.get("writable", True)
    if not isinstance(writable, bool):
        problems.add(f"{field}.writable", f"must be true or false, not {type_name(writable)}")
    return FsCeiling(
        host_roots=optional_array(raw, "host_roots", field, problems, _host_root),
        guest_roots=optional_array(raw, "guest_roots", field, problems, _guest_root),
        writable=writable is not False,
        max_bytes=ceiling_bound(raw, "max_bytes", field, problems, FILE_BYTES),
        max_files=ceiling_bound(raw, "max_files", field, problems, FILE_NAMES),
    )


# --- the preopens under the sandbox ----------------------------------------------------------------


def open_filesystem(
    options: FsOptions,
    sandbox: Path,
    *,
    guest: str,
    console: Console | None = None,
    stdin: bytes | None = None,
    open_files: int = DEFAULT_OPEN_FILES,
    state_paths: Sequence[str] = (),
    host_roots: Sequence[str] | None = None,
    call_ends_at: Callable[[], float] = lambda: math.inf,
) -> WasiFilesystem:
    """Opens every preopen under `sandbox` (created when missing); refuses any that leaves it, that holds one of
    `state_paths` (ngixi's own state, `Sandbox.state_paths`), or that resolves outside `host_roots` (the policy's).

    With a `console`, the guest's stdout and stderr (fds 1 and 2) write to it; with `stdin`, fd 0 reads it.
    """
    try:
        make_directories(sandbox, 0o700)  # private as the guest's sandbox is: whatever the umask
        root = sandbox.resolve(strict=True)
    except OSError as error:
        raise InvalidInput(f"{guest}: cannot use {sandbox} as the sandbox root: {error.strerror}") from None
    mounts = [
        _mount_point(root, preopen.host, preopen.guest, preopen.mode, f"{guest}: capabilities.fs.preopens[{i}]")
        for i, preopen in enumerate(options.preopens)
    ]
    _refuse_writable_read_only(mounts, guest)
    if host_roots is not None:
        _refuse_outside_roots(mounts, root, host_roots, guest)
    _refuse_state_holders(mounts, state_paths, guest)
    quota = (options.max_bytes, options.max_files)
    return WasiFilesystem.over(
        mounts,
        guest=guest,
        root=root,
        console=console,
        stdin=stdin,
        quota=quota,
        open_files=open_files,
        call_ends_at=call_ends_at,
    )


def _mount_point(root: Path, host: str, guest_path: str, mode: Mode, field: str) -> Mount:
    wanted = root / host
    real = Path(os.path.realpath(wanted))
    if real != root and root not in real.parents:
        raise InvalidInput(f'{field}.host: "{host}" resolves to {real}, outside the sandbox {root}; remove the symlink')
    try:
        make_directories(real, 0o700)
    except OSError as error:
        raise InvalidInput(
            f'{field}.host: "{host}" cannot be made a directory under {root}: {error.strerror}'
        ) from None
    return Mount(guest_path, mode, real)


def _refuse_writable_read_only(mounts: list[Mount], guest: str) -> None:
    """Validation checked the manifest's paths; symlinks under the sandbox can still nest them."""
    real = [(str(m.host_path), m.mode) for m in mounts]
    for index, mount in enumerate(mounts):
        if mount.mode == "ro" and reachable_for_writing(str(mount.host_path), real):
            raise InvalidInput(
                f"{guest}: capabilities.fs.preopens[{index}].host: {mount.host_path} is read-only, "
                "but a rw preopen reaches it through a symlink; remove the link"
            )


def _refuse_outside_roots(mounts: list[Mount], root: Path, host_roots: Sequence[str], guest: str) -> None:
    """The policy's host_roots were checked against the manifest's paths; a symbolic link under the sandbox (one
    the guest made in a rw preopen, say) can still lead a preopen elsewhere in it."""
    allowed = [os.path.realpath(root / host_root) for host_root in host_roots]
    for index, mount in enumerate(mounts):
        if not any(within(str(mount.host_path), directory) for directory in allowed):
            raise InvalidInput(
                f"{guest}: capabilities.fs.preopens[{index}].host: resolves to {mount.host_path}, outside the "
                f"policy's host_roots ({listing(host_roots)}) under {root}, through a symbolic link; remove "
                "the link"
            )


def _refuse_state_holders(mounts: list[Mount], state_paths: Sequence[str], guest: str) -> None:
    """A preopen holding ngixi's own state: read, it gives a guest this user's keys; written, its trust file,
    rollback state, AOT cache entries or dev-keys record, and with them its own or another guest's rights. A
    preopen is known by its path and by what it is (a bind mount shows a directory at a second path), and so is
    every mount inside it (a state directory or file bind-mounted further down). A hard link to a state file is
    refused where the file is read (`files.read_input_bytes`' own_state)."""
    if not state_paths or not mounts:
        return
    holders = {held: _directories_holding(held) for held in state_paths}
    inner = _mount_points()
    for index, mount in enumerate(mounts):
        top = str(mount.host_path)
        inside = [Path(point) for point in inner if point != top and within(point, top)]
        for place in (mount.host_path, *inside):
            identity = _identity(place)
            held = next((held for held, (paths, ids) in holders.items() if place in paths or identity in ids), None)
            if held is not None:
                where = "" if place == mount.host_path else f" (mounted at {place})"
                raise InvalidInput(
                    f"{guest}: capabilities.fs.preopens[{index}].host: {mount.host_path} holds {held}{where}, ngixi's "
                    "own state, which a guest must not read or change; choose a --sandbox apart from it, or keep that "
                    "state elsewhere"
                )


_MOUNTINFO = "/proc/self/mountinfo"
_ESCAPED = re.compile(rb"\\([0-7]{3})")  # mountinfo writes space, tab, newline and backslash as \ooo


def _mount_points() -> list[str]:
    """Where this process sees a file system or bind mount (Linux's /proc/self/mountinfo; none elsewhere)."""
    try:
        with open(_MOUNTINFO, "rb") as listing:
            lines = listing.read().splitlines()
    except OSError:
        return []
    fields = [line.split(b" ", 5) for line in lines]
    return [os.fsdecode(_ESCAPED.sub(_unescaped, each[4])) for each in fields if len(each) > 4]


def _unescaped(octal: re.Match[bytes]) -> bytes:
    return bytes([int(octal[1], 8)])


def _directories_holding(held: str) -> tuple[frozenset[Path], frozenset[tuple[int, int] | None]]:
    """The state path and the directories above it, resolved, and the identities of those that exist."""
    real = Path(os.path.realpath(held))
    paths = frozenset((real, *real.parents))
    return paths, frozenset(_identity(path) for path in paths) - {None}


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _open_state(options: FsOptions, context: HostContext, sandbox: Sandbox | None) -> WasiFilesystem:
    # fs's table answers for fds 0-2 too: 1 and 2 only when stdio is granted; 0 reads the caller's input when stdin
    # is, else none (end of file), as Wasmtime's WASI (a component guest's too) gives a program no input: CPython
    # opens all three as it starts, and a 0 not open stopped it there.
    console = context if "stdio" in context.grants else None
    stdin = context.stdin  # empty unless granted (linking.caller_stdin)
    if not options.preopens:
        return WasiFilesystem.over([], guest=context.guest, console=console, stdin=stdin, open_files=context.open_files)
    assert sandbox is not None  # needs_sandbox: opening the context refused a missing one
    return open_filesystem(
        options,
        sandbox.files,
        guest=context.guest,
        console=console,
        stdin=stdin,
        open_files=context.open_files,
        state_paths=sandbox.state_paths or (),
        host_roots=sandbox.host_roots,
        call_ends_at=lambda: context.call_ends_at,
    )


# --- the capability --------------------------------------------------------------------------------


def _wasi_errno(ctx: HostContext, error: OSError) -> int:
    return wasi_errno(error)


_IMPORTS = (
    wasi_import("fd_prestat_get", "i32 i32"),
    wasi_import("fd_prestat_dir_name", "i32 i32 i32"),
    wasi_import("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32"),
    wasi_import("fd_read", "i32 i32 i32 i32"),
    wasi_import("fd_pread", "i32 i32 i32 i64 i32"),
    FD_WRITE,
    wasi_import("fd_pwrite", "i32 i32 i32 i64 i32"),
    FD_SEEK,
    wasi_import("fd_tell", "i32 i32"),
    FD_CLOSE,
    wasi_import("fd_sync", "i32"),
    wasi_import("fd_datasync", "i32"),
    FD_FDSTAT_GET,
    wasi_import("fd_filestat_get", "i32 i32"),
    wasi_import("fd_filestat_set_size", "i32 i64"),
    wasi_import("fd_readdir", "i32 i32 i32 i64 i32"),
    wasi_import("path_filestat_get", "i32 i32 i32 i32 i32"),
    wasi_import("path_create_directory", "i32 i32 i32"),
    wasi_import("path_remove_directory", "i32 i32 i32"),
    wasi_import("path_unlink_file", "i32 i32 i32"),
    wasi_import("path_rename", "i32 i32 i32 i32 i32 i32"),
    wasi_import("fd_renumber", "i32 i32"),
    wasi_import("fd_advise", "i32 i64 i64 i32"),
    wasi_import("fd_allocate", "i32 i64 i64"),
    wasi_import("fd_fdstat_set_flags", "i32 i32"),
    wasi_import("fd_fdstat_set_rights", "i32 i64 i64"),
    wasi_import("fd_filestat_set_times", "i32 i64 i64 i32"),
    wasi_import("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32"),
    wasi_import("path_link", "i32 i32 i32 i32 i32 i32 i32"),
    wasi_import("path_readlink", "i32 i32 i32 i32 i32 i32"),
    wasi_import("path_symlink", "i32 i32 i32 i32 i32"),
    wasi_import("sock_accept", "i32 i32 i32"),
    wasi_import("sock_recv", "i32 i32 i32 i32 i32 i32"),
    wasi_import("sock_send", "i32 i32 i32 i32 i32"),
    wasi_import("sock_shutdown", "i32 i32"),
)
# Beyond the functions behind stdout: reading, and changing files and directories.
_FILES_WASI_P2 = {
    "wasi:io/streams": frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"}),
    "wasi:filesystem/types": descriptor_methods(
        "advise",
        "create-directory-at",
        "link-at",
        "readlink-at",
        "set-times",
        "set-times-at",
        "symlink-at",
        "metadata-hash",
        "metadata-hash-at",
        "open-at",
        "read",
        "read-directory",
        "read-via-stream",
        "remove-directory-at",
        "rename-at",
        "set-size",
        "stat-at",
        "sync",
        "sync-data",
        "unlink-file-at",
        "write",
    )
    | {"[method]directory-entry-stream.read-directory-entry"},
}

CAPABILITY = Capability(
    "fs",
    "WASI preview 1 files under the manifest's preopened directories",
    # Each import is the WasiFilesystem method of the same name.
    {i: state_method("fs", getattr(WasiFilesystem, i.name), _wasi_errno) for i in _IMPORTS},
    parse_options=parse_fs,
    parse_ceiling=parse_fs_ceiling,
    open_state=_open_state,
    needs_sandbox=True,
    descriptor_table=True,
    wasi_p2={
        interface: OUTPUT_WASI_P2.get(interface, frozenset()) | _FILES_WASI_P2.get(interface, frozenset())
        for interface in {*OUTPUT_WASI_P2, *_FILES_WASI_P2}
    },
)
