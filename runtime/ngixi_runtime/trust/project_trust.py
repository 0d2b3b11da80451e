"""What a project's dev trust file found from the working directory (or --project) may grant.

The operator did not name it, so a directory someone else prepared (an unpacked tarball, a clone, a shared
directory) must not make them trust a key. It is used only when no one but this user (or root) can change it
(`local_paths.unsafe_because`), and then only for the dev channel. Its keys' native_code counts only for the
dev keys this user's own builds made (`register_dev_key`, recorded in the user's `dev_keys_file`):
a dev trust file that came with the directory never runs machine code.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import (
    OtherNames,
    home_directory,
    make_directories,
    open_lock_file,
    read_input_bytes,
    write_atomic,
)
from ngixi_runtime.trust.local_paths import refuse_unsafe_project_trust, unsafe_because
from ngixi_runtime.trust.signatures import (
    TrustStore,
    load_trust,
    read_trust_table,
    refuse_repeated_ids,
    trust_from_table,
)

DEV_CHANNEL = "dev"
# The public keys of the dev keys this user's builds made, one a line, the latest last.
DEV_KEYS_NAME = "dev-keys"
_KEPT_DEV_KEYS = 1000
_SECRET_BYTES = 32
_MADE_MEANWHILE_TRIES, _MADE_MEANWHILE_WAIT = 3, 0.01  # seconds


def dev_keys_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where this user's builds record their dev keys: $XDG_STATE_HOME/ngixi, else ~/.local/state/ngixi.

    Per user, not per trust domain: $NGIXI_STATE_DIR (rollback state) does not move it.
    """
    xdg = environ.get("XDG_STATE_HOME", "")
    if Path(xdg).is_absolute():
        return Path(xdg) / "ngixi" / DEV_KEYS_NAME
    return home_directory(environ, "this user's keys", "$XDG_STATE_HOME") / ".local" / "state" / "ngixi" / DEV_KEYS_NAME


class SecretUnkept(Exception):
    """Why a key of this user's cannot be kept (`kept_secret`): `path` and the problem there."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def kept_secret(name: str, environ: Mapping[str, str] = os.environ) -> bytes:
    """This user's secret key `name`, beside the record of their dev keys: made on first use (random, 0600),
    refused where others could read or change it (`SecretUnkept`). What is keyed with it (a toolchain's install
    stamp, a host AOT cache entry) is told from what anyone else, or another machine, made."""
    try:
        path = dev_keys_file(environ).parent / name
    except (RuntimeError, InvalidInput) as error:  # no home directory
        raise SecretUnkept(Path("~/.local/state/ngixi", name), f"cannot be kept: {error}") from None
    try:
        if not os.path.lexists(path):  # a look first: it is read far more often than made
            write_atomic(path, os.urandom(_SECRET_BYTES).hex().encode(), mode=0o600, new=True)
    except FileExistsError:
        pass
    except OSError as error:
        raise SecretUnkept(path, f"cannot be kept there: {error}") from None
    try:
        problem = unsafe_because(path) or (os.stat(path).st_mode & 0o077 and "others may read it")
    except OSError as error:  # a link to nowhere where the key would be
        raise SecretUnkept(path, f"cannot be kept there: {error}") from None
    if problem:
        raise SecretUnkept(path, f"is not used: {problem} (remove it)")
    try:
        secret = _read_secret(path)
    except InvalidInput as error:
        raise SecretUnkept(path, f"is not used: {error}") from None
    if len(secret) < _SECRET_BYTES:  # made with twice as many (hexadecimal): an empty or cut key keys nothing
        raise SecretUnkept(path, f"is not used: it holds {len(secret)} bytes, under {_SECRET_BYTES} (remove it)")
    return secret


def _read_secret(path: Path) -> bytes:
    """The key at `path`; while another process makes it (`write_atomic(new=True)` links it into place, then
    removes its temporary name) it has two names for a moment, which a reader waits out."""
    for _ in range(_MADE_MEANWHILE_TRIES):
        try:
            return read_input_bytes(path, what="a key of this user's", limit=256, own_state=True)
        except OtherNames:
            time.sleep(_MADE_MEANWHILE_WAIT)
    return read_input_bytes(path, what="a key of this user's", limit=256, own_state=True)


def registered_dev_keys(path: Path | None = None) -> tuple[str, ...]:
    """The dev public keys this user's builds registered; none when the record is missing or others could write it."""
    try:
        path = path or dev_keys_file()
        if unsafe_because(path) is not None:
            return ()
        # A FIFO there waited for ever; a hard link is refused (as the user's other state, `read_input_bytes`).
        text = read_input_bytes(path, what="the dev key record", own_state=True).decode("ascii")
    except (OSError, InvalidInput, RuntimeError, UnicodeDecodeError):  # RuntimeError: no home directory
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def register_dev_key(public_key: str, path: Path | None = None) -> None:
    """Records a dev key this user's build made, so that its bundles' artifacts may run from the project's
    dev trust file; only the latest keys are kept. An OSError is the caller's: a build that cannot record it
    still builds."""
    path = path or dev_keys_file()
    if registered_dev_keys(path)[-1:] == (public_key,):
        return
    make_directories(path.parent, 0o700)
    lock = open_lock_file(f"{path}.lock")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # builds running at once each keep their key
        others = [key for key in registered_dev_keys(path) if key != public_key]
        kept = [*others[-(_KEPT_DEV_KEYS - 1) :], public_key]
        write_atomic(path, ("\n".join(kept) + "\n").encode("ascii"), mode=0o600)
    finally:
        os.close(lock)


def project_trust_table(raw: Mapping[str, Any], *, source: Path) -> dict[str, Any]:
    """A project's dev trust file's tables as an implicit choice grants them: each key for the dev channel
    only (a key with no dev channel is left out), with native_code only for a dev key this user registered."""
    registered = frozenset(registered_dev_keys())
    keys = raw.get("keys")
    if not isinstance(keys, list) or not keys:
        return dict(raw)  # trust_from_table says what is wrong
    kept = [scoped for scoped in (_dev_scope(key, registered) for key in keys) if scoped is not None]
    if not kept:
        raise InvalidInput(
            f"{source}: found from the working directory (or --project), a project's dev trust file trusts keys "
            f"for the {DEV_CHANNEL} channel only, and it lists none for it: pass --trust {source} to use it"
        )
    return {**raw, "keys": kept}


def _dev_scope(key: object, registered: frozenset[str]) -> object | None:
    if not isinstance(key, dict):
        return key
    channels = key.get("channels")
    if isinstance(channels, list) and DEV_CHANNEL not in channels:
        return None
    scoped = {**key, "channels": [DEV_CHANNEL]} if isinstance(channels, list) else dict(key)
    if key.get("native_code") is True and str(key.get("public_key", "")).strip() not in registered:
        scoped["native_code"] = False
    return scoped


def chosen_trust(path: Path, *, found: bool) -> TrustStore:
    """The keys the trust file at `path` trusts; with `found` (a project's dev trust file the operator did not
    name, see `choice.is_implicit_choice`) as `project_trust_table` scopes them."""
    if not found:
        return load_trust(path)
    refuse_unsafe_project_trust(path)  # again at each use: a running tenant's restart reads it long after it was found
    raw, text = read_trust_table(path)
    entries = raw.get("keys")
    if isinstance(entries, list):  # the whole file's entries, numbered as written: scoping leaves some out
        refuse_repeated_ids(
            [entry.get("id") if isinstance(entry, dict) else None for entry in entries], str(path), text
        )
    scoped = project_trust_table(raw, source=path)
    note = (
        f"the trust file {path} was found from the working directory (or --project), and a project's dev trust "
        f"file found so trusts keys for the {DEV_CHANNEL} channel only, whatever it lists: pass --trust FILE "
        "(this file, or the operator's) to verify other channels"
    )
    return trust_from_table(scoped, source=str(path), text=text)._replace(scope_note=note)
