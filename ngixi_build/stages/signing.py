"""Signing keys (minisign format), the development key, and signatures over bundle indexes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import minisign

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import KEY_FILE_LIMIT, read_input_bytes, read_toml_file, write_atomic
from ngixi_runtime.trust.editing import NewTrust, render_keys
from ngixi_runtime.trust.project_trust import register_dev_key
from ngixi_runtime.trust.signatures import key_id_of

log = logging.getLogger(__name__)

PASSWORD_VARIABLE = "NGIXI_SIGNING_KEY_PASSWORD"
RELEASE_KEY_VARIABLE = "NGIXI_SIGNING_KEY"
DEV_TRUST_COMMENT = "development key of this checkout; never trust it in production"


@dataclass(frozen=True)
class SigningKey:
    secret: minisign.SecretKey
    public: minisign.PublicKey

    @property
    def key_id(self) -> str:
        return key_id_of(self.public)

    @property
    def public_base64(self) -> str:
        return str(self.public.to_base64().decode())


@dataclass(frozen=True)
class TrustEntry:
    key: SigningKey
    guests: tuple[str, ...]
    channels: tuple[str, ...]
    comment: str
    native_code: bool = False  # the loader runs this key's AOT artifacts, which are machine code


def _public_key_file(key: SigningKey) -> bytes:
    """minisign's public key file, with the key id spelled as minisign prints it."""
    return f"untrusted comment: minisign public key {key.key_id}\n{key.public_base64}\n".encode()


def generate_key_pair(*, secret_path: Path, public_path: Path, comment: str) -> SigningKey:
    """Writes a new unencrypted minisign key pair; never over an existing file, even one another process (a
    second keygen, a parallel build's first dev key) makes meanwhile: a secret key replaced is lost."""
    for path in (secret_path, public_path):
        if os.path.lexists(path):
            raise _taken(path)
    pair = minisign.KeyPair.generate()
    key = SigningKey(pair.secret_key, pair.public_key)
    pair.secret_key.untrusted_comment = f"minisign secret key {key.key_id} ({comment})"
    try:
        write_atomic(secret_path, bytes(pair.secret_key) + b"\n", mode=0o600, new=True)
    except FileExistsError:
        raise _taken(secret_path) from None
    try:
        write_atomic(public_path, _public_key_file(key), new=True)
    except BaseException as error:  # Ctrl-C or a failed write: no secret key without its public half
        secret_path.unlink(missing_ok=True)
        raise _taken(public_path) if isinstance(error, FileExistsError) else error from None
    return key


def _taken(path: Path) -> InvalidInput:
    return InvalidInput(f"{path}: already exists; move it away or choose another path")


def load_signing_key(path: Path) -> SigningKey:
    """Reads a minisign secret key; an encrypted one needs its password in NGIXI_SIGNING_KEY_PASSWORD."""
    data = read_input_bytes(path, what="the signing key", limit=KEY_FILE_LIMIT)
    try:
        secret = minisign.SecretKey.from_bytes(data)
    except (minisign.Error, ValueError) as error:
        raise InvalidInput(f"{path}: not a minisign secret key ({error})") from None
    if secret.is_encrypted():
        password = os.environ.get(PASSWORD_VARIABLE)
        if password is None:
            raise InvalidInput(f"{path}: the key is encrypted; put its password in {PASSWORD_VARIABLE}")
        try:
            secret.decrypt(password)
        except minisign.Error:
            raise InvalidInput(f"{path}: wrong password in {PASSWORD_VARIABLE}") from None
    return SigningKey(secret, secret.get_public_key())


def release_signing_key(explicit: Path | None = None) -> SigningKey:
    """The release key: `explicit`, else the path in NGIXI_SIGNING_KEY. It never creates one."""
    where = f"{explicit}"
    if explicit is None:
        named = os.environ.get(RELEASE_KEY_VARIABLE, "")
        if not named:
            raise InvalidInput(
                f"{RELEASE_KEY_VARIABLE} is not set: point it at a minisign secret key (`ngixi keygen` makes one); "
                "releases are never signed with the development key, and no key is ever created"
            )
        explicit, where = Path(named), f"${RELEASE_KEY_VARIABLE} ({named})"
    if not explicit.is_file():
        raise InvalidInput(f"{where}: no release signing key there; it is never created: give an existing key")
    return load_signing_key(explicit)


def sign(data: bytes, key: SigningKey, *, trusted_comment: str) -> bytes:
    """A prehashed (`ED`) minisign signature, the form `minisign -V` verifies by default."""
    signature = key.secret.sign(
        data,
        prehash=True,
        untrusted_comment=f"signature from ngixi key {key.key_id}",
        trusted_comment=trusted_comment,
    )
    return bytes(signature) + b"\n"


def _trust_table(entry: TrustEntry) -> dict[str, object]:
    return {
        "id": entry.key.key_id,
        "public_key": entry.key.public_base64,
        "guests": list(entry.guests),
        "channels": list(entry.channels),
        "native_code": entry.native_code,
        "comment": entry.comment,
    }


def render_trust_file(entries: list[TrustEntry]) -> bytes:
    """A trust file for these entries, written as `ngixi trust add` writes one."""
    return render_keys(
        [(e.key.public, NewTrust(e.guests, e.channels, e.native_code, e.comment)) for e in entries]
    ).encode()


def _written_before_native_code(trust_file: Path, entry: TrustEntry) -> bool:
    """Whether the trust file is exactly what this function wrote before trust entries had native_code."""
    try:
        written = read_toml_file(trust_file, what="the dev trust file")
    except InvalidInput:
        return False  # not ours to repair: the loader will name what is wrong with it
    before = {name: value for name, value in _trust_table(entry).items() if name != "native_code"}
    return written == {"keys": [before]}


def _register_dev_key(key: SigningKey) -> None:
    """Lets the project's dev trust file, when `ngixi run` finds it, run this key's artifacts as machine code."""
    try:
        register_dev_key(key.public_base64)
    except (OSError, RuntimeError) as error:  # RuntimeError: no home directory to record it in
        log.warning("cannot record the dev key %s for `ngixi run`'s native code: %s", key.key_id, error)


def ensure_dev_key(*, keys_dir: Path, trust_file: Path) -> tuple[SigningKey, bool]:
    """The project's development key, created on first use with a trust file for local runs; only a key created
    here is recorded as this user's (`register_dev_key`), whose artifacts a found dev trust file lets run.

    A public key or trust file missing beside an existing secret key (a build killed while
    creating them) is written again from the secret key. A dev trust file written before trust
    entries had native_code, and not edited since, gets native_code = true.
    """
    secret_path, public_path = keys_dir / "dev.key", keys_dir / "dev.pub"
    created = not secret_path.exists()
    if created:
        try:
            key = generate_key_pair(secret_path=secret_path, public_path=public_path, comment="ngixi dev key")
        except InvalidInput:
            if not os.path.lexists(secret_path):
                raise  # a public half without its secret: the user's to sort out
            created = False  # another build made the key meanwhile: use theirs
    if not created:
        key = load_signing_key(secret_path)
    if not public_path.exists():
        write_atomic(public_path, _public_key_file(key))
    # Its artifacts are compiled on this machine by its own developer: they may run here as machine code.
    entry = TrustEntry(key, ("*",), ("dev",), DEV_TRUST_COMMENT, native_code=True)
    if not trust_file.exists() or _written_before_native_code(trust_file, entry):
        write_atomic(trust_file, render_trust_file([entry]))
    if created:  # never a key that came with the project: its author could sign anything with it
        _register_dev_key(key)
        log.warning(
            "created a development signing key %s in %s (dev channel only, never commit it); trust file: %s",
            key.key_id,
            secret_path,
            trust_file,
        )
    return key, created
