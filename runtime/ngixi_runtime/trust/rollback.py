"""Rollback protection: the highest bundle sequence accepted per guest and channel, kept on disk."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.spec.bundle_format import BundleIndex

log = logging.getLogger(__name__)

STATE_VARIABLE = "NGIXI_STATE_DIR"
STATE_FILE = "sequences.json"
_STATE_FORMAT = 1
_CHOOSE_ANOTHER = f"set {STATE_VARIABLE} (or --state-dir) to a writable directory"

Sequences = dict[str, dict[str, int]]


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$NGIXI_STATE_DIR, else $XDG_STATE_HOME/ngixi, else ~/.local/state/ngixi."""
    if environ.get(STATE_VARIABLE):
        return Path(environ[STATE_VARIABLE])
    xdg = environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "ngixi"


@dataclass(frozen=True)
class RollbackGuard:
    """Refuses a bundle whose sequence is below the highest one accepted for its guest and channel."""

    state_dir: Path
    allow_downgrade: bool = False

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def check(self, index: BundleIndex, *, source: str) -> None:
        """Refuses a lower sequence (or warns, when downgrades are allowed), before any member is read."""
        highest = self._lower_than(_read_state(self.state_file), index, source)
        if highest is not None:
            log.warning("%s: accepting %s below %s (--allow-downgrade)", source, _describe(index), highest)

    def record(self, index: BundleIndex, *, source: str) -> None:
        """Checks again under the lock, then stores the sequence if it is the highest yet."""
        with self._locked(source):
            sequences = _read_state(self.state_file)
            self._lower_than(sequences, index, source)
            channels = sequences.setdefault(index.guest, {})
            if index.sequence > channels.get(index.channel, -1):
                channels[index.channel] = index.sequence
                document = {"format": _STATE_FORMAT, "highest": sequences}
                write_atomic(self.state_file, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())

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
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.state_dir / f"{STATE_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise InvalidInput(
                f"{self.state_dir}: cannot record the sequence of {source}: {error.strerror}; {_CHOOSE_ANOTHER}"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _describe(index: BundleIndex) -> str:
    return f"sequence {index.sequence} of guest {index.guest!r} on channel {index.channel!r}"


def _read_state(path: Path) -> Sequences:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the rollback state: {error.strerror}; {_CHOOSE_ANOTHER}") from None
    except UnicodeDecodeError as error:
        raise _damaged(path, "(file)", f"not UTF-8 ({error})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _damaged(path, "(file)", f"not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != _STATE_FORMAT:
        raise _damaged(path, "format", f"must be {_STATE_FORMAT}")
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
        f"{path}: {field}: {message}; this file records the highest bundle sequences accepted — "
        "repair it, or remove it to forget them (and lose rollback protection until they are seen again)"
    )
