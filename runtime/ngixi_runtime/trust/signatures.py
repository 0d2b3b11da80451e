"""Trust files and minisign signature checks over a bundle's index."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import minisign
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import read_toml_file
from ngixi_runtime.spec.bundle_format import BundleIndex, trusted_comment


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: minisign.PublicKey
    guests: tuple[str, ...]
    channels: tuple[str, ...]

    def may_sign(self, guest: str, channel: str) -> bool:
        return channel in self.channels and any(fnmatch.fnmatchcase(guest, p) for p in self.guests)


@dataclass(frozen=True)
class TrustStore:
    source: str
    keys: tuple[TrustedKey, ...]

    def find(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def key_id_of(public_key: minisign.PublicKey) -> str:
    """minisign's spelling of a key id: upper-case hex, as minisign prints it."""
    return _key_id_text(public_key._keynum_pk.key_id)


def _key_id_text(raw: bytes) -> str:
    """minisign prints the 8-byte little-endian key id as a number (`%PRIX64`): no leading zeros."""
    return f"{int.from_bytes(raw, 'little'):X}"


def _string_list(raw: dict[str, object], key: str, field: str, source: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{source}: {field}: must be a non-empty array of strings")
    return tuple(str(v) for v in value)


def _parse_key(raw: object, field: str, source: str) -> TrustedKey:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source}: {field}: must be a table")
    unknown = set(raw) - {"id", "public_key", "guests", "channels", "comment"}
    if unknown:
        raise InvalidInput(f"{source}: {field}: unknown keys {sorted(unknown)}")
    try:
        public_key = minisign.PublicKey.from_base64(str(raw.get("public_key", "")))
    except minisign.Error as error:
        raise InvalidInput(f"{source}: {field}.public_key: not a minisign public key ({error})") from None
    key_id = key_id_of(public_key)
    if raw.get("id") != key_id:
        raise InvalidInput(f"{source}: {field}.id: must be {key_id}, the id inside public_key")
    return TrustedKey(
        key_id,
        public_key,
        _string_list(raw, "guests", f"{field}.guests", source),
        _string_list(raw, "channels", f"{field}.channels", source),
    )


def load_trust(path: Path) -> TrustStore:
    """Reads a trust file: `[[keys]]` with id, public_key, guests (patterns) and channels."""
    raw = read_toml_file(path, what="the trust file")
    keys = raw.get("keys", [])
    if not isinstance(keys, list) or not keys:
        raise InvalidInput(f"{path}: keys: list at least one [[keys]] table")
    return TrustStore(str(path), tuple(_parse_key(k, f"keys[{i}]", str(path)) for i, k in enumerate(keys)))


def signer_of(signature_bytes: bytes, trust: TrustStore, *, source: str) -> tuple[TrustedKey, minisign.Signature]:
    """The trusted key that made this signature, before anything it signs is read."""
    try:
        signature = minisign.Signature.from_bytes(signature_bytes)
    except (minisign.Error, ValueError) as error:
        raise VerificationError(f"{source}: the signature is not minisign's format ({error})") from None
    if not signature.is_prehashed():
        raise VerificationError(f"{source}: the signature is not prehashed (minisign -H); refusing it")
    key_id = _key_id_text(signature._key_id)
    key = trust.find(key_id)
    if key is None:
        raise VerificationError(f"{source}: signed by key {key_id}, which {trust.source} does not trust")
    return key, signature


def verify_index(
    index_bytes: bytes, signature_bytes: bytes, trust: TrustStore, *, source: str, comment_signature: bool = True
) -> tuple[TrustedKey, str]:
    """Checks minisign's two signatures: over the (prehashed) index, and over that signature and its trusted
    comment; returns the key that made them, and the trusted comment.

    With `comment_signature=False` only the index's is checked: enough for a caller that, like a load,
    uses nothing of the comment but compares it with the one derived from the signed index (`check_scope`).
    Ed25519 comes from libsodium (PyNaCl) rather than py-minisign's OpenSSL: it verifies in half the
    time, and a load waits for these checks.
    """
    key, signature = signer_of(signature_bytes, trust, source=source)
    public = VerifyKey(key.public_key._keynum_pk.public_key)
    if not _holds(public, signature._signature, hashlib.blake2b(index_bytes).digest()):
        raise VerificationError(f"{source}: the index signature does not verify with key {key.key_id}")
    if not comment_signature:
        return key, signature.trusted_comment
    if not _holds(public, signature._global_signature, signature._signature + signature.trusted_comment.encode()):
        raise VerificationError(
            f"{source}: the signature's trusted comment was altered (its global signature does not verify)"
        )
    return key, signature.trusted_comment


def _holds(public: VerifyKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(message, signature)
    except BadSignatureError:
        return False
    return True


def check_scope(index: BundleIndex, key: TrustedKey, comment: str, *, source: str) -> None:
    """The signed index must match its (verified) trusted comment, and the key must be allowed to sign it."""
    if comment != trusted_comment(index):
        raise VerificationError(f"{source}: the signature's trusted comment {comment!r} does not match the index")
    if not key.may_sign(index.guest, index.channel):
        raise VerificationError(
            f"{source}: key {key.key_id} may not sign guest {index.guest!r} on channel {index.channel!r}"
        )
