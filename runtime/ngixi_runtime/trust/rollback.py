"""Rollback protection: the highest bundle sequence accepted per guest and channel, kept on disk.

The state belongs to the operator's trust domain: one file per trust file (by its absolute path, links kept),
under the state directory's rollback/, so two trust files never share sequences even for guests with
the same name. The dev channel of a project's own dev trust file (.ngixi/trust.toml, which its builds
write) is not guarded: those bundles are the checkout's own builds, numbered by commit time, which
goes back whenever an older commit is checked out.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import (
    environment_path,
    home_directory,
    make_directories,
    not_a_directory,
    open_lock_file,
    read_input_bytes,
    resolved,
    write_atomic,
)
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.bundle_format import BundleIndex
from ngixi_runtime.spec.digests import sha256_hex
from ngixi_runtime.spec.project import DEV_TRUST_NAME, STATE_DIR, is_project_root
from ngixi_runtime.trust.choice import state_override
from ngixi_runtime.trust.local_paths import unsafe_because

STATE_VARIABLE = "NGIXI_STATE_DIR"
STATE_SUBDIR = "rollback"
_STATE_FORMAT = 2
_CHOOSE_ANOTHER = f"set {STATE_VARIABLE} (or --state-dir) to a writable directory"
# The dev channel of a project's own dev trust file is not guarded (see the module's docstring).
_DEV_CHANNEL = "dev"

Sequences = dict[str, dict[str, int]]

# What a state file's name keeps of its trust file's (any other character becomes "_").
_READABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$NGIXI_STATE_DIR (an absolute path), else $XDG_STATE_HOME/ngixi, else ~/.local/state/ngixi."""
    from_environment = environment_path(STATE_VARIABLE, environ)
    if from_environment is not None:
        return from_environment
    xdg = environ.get("XDG_STATE_HOME", "")
    if Path(xdg).is_absolute():
        return Path(xdg) / "ngixi"
    instead = f"${STATE_VARIABLE} or $XDG_STATE_HOME"
    return home_directory(environ, "the state directory", instead) / ".local" / "state" / "ngixi"


def trust_domain(trust_file: Path) -> Path:
    """The trust file's absolute path, symbolic links kept: a link whose target a deployment swaps (a new
    version of the file) still names the same trust domain, so its accepted sequences stay."""
    return Path(os.path.abspath(trust_file))


def state_file_for(trust_file: Path, state_dir: Path) -> Path:
    """Where the rollback state of the trust domain `trust_file` defines is kept: one file per trust file."""
    resolved = trust_domain(trust_file)
    readable = "".join(c if c in _READABLE else "_" for c in f"{resolved.parent.name}-{resolved.stem}")[:64]
    return state_dir / STATE_SUBDIR / f"{readable}-{sha256_hex(os.fsencode(resolved))[:16]}.json"


def is_dev_trust_file(trust_file: Path, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this is a project's own dev trust file, the one its builds write: `.ngixi/trust.toml` in a project's
    root (a pyproject.toml with [tool.ngixi] beside it), or `trust.toml` in the project state directory
    $NGIXI_PROJECT_STATE names. Not any file so named: one in a directory that is no project is guarded."""
    path = resolved(trust_file)
    if path.name != DEV_TRUST_NAME:
        return False
    override = state_override(environ)
    if override is not None and path.parent == resolved(override):
        return True
    try:
        return path.parent.name == STATE_DIR and is_project_root(path.parent.parent)
    except InvalidInput:  # a broken project file: not a project's, so guarded
        return False


class RollbackGuard(NamedTuple):
    """Refuses a bundle whose sequence is below the highest one accepted for its guest and channel
    in this trust domain; `for_trust_file` makes the guard of a trust file."""

    state_file: Path
    trust_file: str  # the absolute path of the trust file whose domain this is, recorded in the state
    allow_downgrade: bool = False
    unguarded_channels: frozenset[str] = frozenset()

    @classmethod
    def for_trust_file(
        cls, trust_file: Path, *, state_dir: Path | None = None, allow_downgrade: bool = False
    ) -> RollbackGuard:
        """The guard of `trust_file`'s domain, its state under `state_dir` (default: `default_state_dir()`)."""
        unguarded = frozenset({_DEV_CHANNEL}) if is_dev_trust_file(trust_file) else frozenset()
        if state_dir is None:
            state_dir = default_state_dir()
            named = f"${STATE_VARIABLE} ({state_dir})" if os.environ.get(STATE_VARIABLE) else str(state_dir)
        else:
            named = str(state_dir)
        state_file = state_file_for(trust_file, _usable_directory(state_dir.absolute(), named))
        return cls(state_file, str(trust_domain(trust_file)), allow_downgrade, unguarded)

    def check(self, index: BundleIndex, *, source: str) -> None:
        """Refuses a lower sequence (or warns, when downgrades are allowed), before any member is read."""
        if index.channel in self.unguarded_channels:
            return
        highest = self._lower_than(self._read(), index, source)
        if highest is not None:
            import logging  # here: only a downgrade --allow-downgrade lets through logs

            logging.getLogger(__name__).warning(
                "%s: accepting %s below %s (--allow-downgrade)", source, _describe(index), highest
            )

    def record(self, index: BundleIndex, *, source: str) -> None:
        """Checks again under the lock, then stores the sequence if it is the highest yet."""
        if index.channel in self.unguarded_channels:
            return
        with self._locked(source):
            sequences = self._read()
            self._lower_than(sequences, index, source)
            channels = sequences.setdefault(index.guest, {})
            if index.sequence > channels.get(index.channel, -1):
                channels[index.channel] = index.sequence
                self._write(sequences, source)

    def _write(self, sequences: Sequences, source: str) -> None:
        """Replaces the state atomically; where it is a symbolic link (state kept elsewhere), the file it names."""
        document = {"format": _STATE_FORMAT, "trust_file": self.trust_file, "highest": sequences}
        try:
            write_atomic(self.state_file.resolve(), (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
        except OSError as error:
            raise InvalidInput(
                f"{self.state_file}: cannot record the sequence of {source}: {error.strerror}; {_CHOOSE_ANOTHER}"
            ) from None

    def _read(self) -> Sequences:
        return _read_state(self.state_file, self.trust_file)

    def _lower_than(self, sequences: Sequences, index: BundleIndex, source: str) -> int | None:
        """The higher sequence already accepted, if any; refused unless downgrades are allowed."""
        highest = sequences.get(index.guest, {}).get(index.channel)
        if highest is None or index.sequence >= highest:
            return None
        if not self.allow_downgrade:
            raise VerificationError(
                f"{source}: {_describe(index)} is lower than {highest}, already accepted (see {self.state_file}); "
                "this looks like a rollback: pass --allow-downgrade to accept it anyway"
            )
        return highest

    @contextmanager
    def _locked(self, source: str) -> Iterator[None]:
        lock = f"{self.state_file}.lock"
        try:
            make_directories(self.state_file.parent, 0o700)
            descriptor = open_lock_file(lock, 0o644)
        except OSError as error:
            where = error.filename or self.state_file.parent
            raise InvalidInput(
                f"{where}: cannot record the sequence of {source}: {error.strerror}; {_CHOOSE_ANOTHER}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _usable_directory(state_dir: Path, named: str) -> Path:
    """`state_dir`, refused if it or the nearest of its parents that exists is not a directory: a bundle on an
    unguarded channel would never write there, and so would not tell. `named`: how the message names it."""
    what = not_a_directory(state_dir)
    if what is not None:
        raise InvalidInput(f"{named}: the rollback state directory {what}; {_CHOOSE_ANOTHER}")
    return state_dir


def _describe(index: BundleIndex) -> str:
    return f"sequence {index.sequence} of guest {index.guest!r} on channel {index.channel!r}"


def _read_state(path: Path, trust_file: str) -> Sequences:
    """The sequences `path` holds, checked before it is read: a FIFO, a device or a link to one waited or read
    without end, where it is refused in one line."""
    if not path.exists():
        if path.is_symlink():  # state kept elsewhere, and that is gone: never a fresh start
            raise _damaged(path, "(file)", f"a symbolic link to {os.readlink(path)}, which is missing")
        _check_owner(path.parent)  # one who could remove the state could forget its sequences
        return {}
    _check_owner(path)
    try:
        data = read_input_bytes(path, what="the rollback state", own_state=True)
    except InvalidInput as error:
        raise InvalidInput(f"{error}; {_CHOOSE_ANOTHER}") from None
    try:
        return _parsed_state(path, data.decode("utf-8"), trust_file)
    except UnicodeDecodeError as error:
        raise _damaged(path, "(file)", f"not UTF-8 ({error})") from None


def _check_owner(path: Path) -> None:
    """Whoever may change the rollback state (or, before it is made, a directory above it) may lower the sequences
    it protects."""
    problem = unsafe_because(path)
    if problem is not None:
        raise InvalidInput(f"{path}: not used for the rollback state: {problem}; {_CHOOSE_ANOTHER}")


def _parsed_state(path: Path, text: str, trust_file: str) -> Sequences:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _damaged(path, "(file)", f"not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != _STATE_FORMAT:
        raise _damaged(path, "format", f"must be {_STATE_FORMAT}")
    if document.get("trust_file") != trust_file:
        raise _damaged(path, "trust_file", f"must be {trust_file}, the trust file whose accepted sequences it holds")
    highest = document.get("highest")
    if not isinstance(highest, dict):
        raise _damaged(path, "highest", "must be a table of guests")
    for guest, channels in highest.items():
        if not isinstance(channels, dict) or not all(_is_sequence(s) for s in channels.values()):
            raise _damaged(path, f"highest.{guest}", "must map channels to whole numbers")
    return highest


def _is_sequence(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _damaged(path: Path, field: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"{path}: {field}: {message}; this file records the highest bundle sequences accepted under one trust "
        "file — repair it, or remove it to forget them (and lose rollback protection until they are seen again)"
    )
