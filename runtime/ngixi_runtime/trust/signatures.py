"""Trust files and minisign signature checks over a bundle's index."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import read_toml_text, toml_tables
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.bundle_format import CHANNELS, BundleIndex, trusted_comment
from ngixi_runtime.spec.digests import blake2b_512
from ngixi_runtime.spec.schema import suggestion
from ngixi_runtime.trust.local_paths import refuse_if_anyone_may_change
from ngixi_runtime.trust.minisign_format import FormatError, Signature, public_key_from_base64, signature_from_bytes


class MinisignKey(Protocol):
    """A minisign public key: this package's (`minisign_format.PublicKey`) or py-minisign's `PublicKey`."""

    def to_base64(self) -> bytes: ...


class TrustedKey(NamedTuple):
    key_id: str
    public_key: MinisignKey
    guests: tuple[str, ...]
    channels: tuple[str, ...]
    native_code: bool = False  # whether its bundles' AOT artifacts (machine code) may run here

    def may_sign(self, guest: str, channel: str) -> bool:
        return channel in self.channels and any(fnmatch.fnmatchcase(guest, p) for p in self.guests)

    def to_table(self) -> dict[str, Any]:
        """The key as a trust file's `[[keys]]` table lists it (`trusted_key_from_table` reads it back)."""
        return {
            "id": self.key_id,
            "public_key": self.public_key.to_base64().decode("ascii"),
            "guests": list(self.guests),
            "channels": list(self.channels),
            "native_code": self.native_code,
        }


class TrustStore(NamedTuple):
    source: str
    keys: tuple[TrustedKey, ...]
    # Why the keys may sign less than the file says on channels other than dev (a project's dev trust file
    # found, not named), for messages.
    scope_note: str = ""

    def find(self, key_id: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)


def key_id_of(public_key: MinisignKey) -> str:
    """minisign's spelling of a key id: upper-case hex, as minisign prints it."""
    return _key_id_text(public_key_from_base64(public_key.to_base64()).key_id)


def _ed25519_key_of(encoded: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key_from_base64(encoded).ed25519)


def _key_id_text(raw: bytes) -> str:
    """minisign prints the 8-byte little-endian key id as a number (`%PRIX64`): no leading zeros."""
    return f"{int.from_bytes(raw, 'little'):X}"


def _string_list(raw: dict[str, object], key: str, field: str, source: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{source}: {field}: must be a non-empty array of strings")
    return tuple(str(v) for v in value)


_ENTRY_KEYS = ("id", "public_key", "guests", "channels", "native_code", "comment")


def _parse_key(raw: object, field: str, source: str) -> TrustedKey:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source}: {field}: must be a table")
    unknown = sorted(set(raw) - set(_ENTRY_KEYS))
    if unknown:
        hint = suggestion(unknown[0], _ENTRY_KEYS, "a key entry holds")
        raise InvalidInput(f"{source}: {field}: unknown keys {unknown}; {hint}")
    missing = [name for name in ("id", "public_key", "guests", "channels") if name not in raw]
    if missing:
        raise InvalidInput(
            f"{source}: {field}: missing {', '.join(missing)} (a key entry holds {', '.join(_ENTRY_KEYS)})"
        )
    if not isinstance(raw.get("comment", ""), str):
        raise InvalidInput(f"{source}: {field}.comment: must be a string")
    try:
        public_key = public_key_from_base64(str(raw.get("public_key", "")))
    except FormatError as error:
        raise InvalidInput(f"{source}: {field}.public_key: not a minisign public key ({error})") from None
    key_id = key_id_of(public_key)
    if raw.get("id") != key_id:
        raise InvalidInput(f"{source}: {field}.id: must be {key_id}, the id inside public_key")
    return TrustedKey(
        key_id,
        public_key,
        _guest_patterns(raw, f"{field}.guests", source),
        _channels(raw, f"{field}.channels", source),
        _native_code(raw, f"{field}.native_code", source),
    )


_GUEST_PATTERN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-*?[]!")


def _guest_patterns(raw: dict[str, object], field: str, source: str) -> tuple[str, ...]:
    """Guest names or fnmatch patterns, each able to match a guest name (a typo such as "Hello" never could)."""
    patterns = _string_list(raw, "guests", field, source)
    for index, pattern in enumerate(patterns):
        if not pattern or not set(pattern) <= _GUEST_PATTERN_CHARACTERS:
            raise InvalidInput(
                f"{source}: {field}[{index}]: {pattern!r} can match no guest name: guest names are lowercase letters, "
                "digits and '-'; a pattern adds * ? and [...]"
            )
    return patterns


def _channels(raw: dict[str, object], field: str, source: str) -> tuple[str, ...]:
    channels = _string_list(raw, "channels", field, source)
    for index, channel in enumerate(channels):
        if channel not in CHANNELS:
            raise InvalidInput(f"{source}: {field}[{index}]: {channel!r} is not a channel; the channels are {CHANNELS}")
    return channels


def _native_code(raw: dict[str, object], field: str, source: str) -> bool:
    value = raw.get("native_code", False)
    if not isinstance(value, bool):
        raise InvalidInput(
            f"{source}: {field}: must be true or false (true lets this key's bundles run their own machine code)"
        )
    return value


def load_trust(path: Path) -> TrustStore:
    """Reads a trust file: `[[keys]]` with id, public_key, guests (patterns), channels and native_code; refused when
    any user may change it."""
    refuse_if_anyone_may_change(path, "the trust file")
    return trust_from_text(read_toml_text(path, what="the trust file", own_state=True), source=str(path))


@functools.lru_cache(maxsize=32)
def trust_from_text(text: str, *, source: str) -> TrustStore:
    """The trusted keys a trust file's text lists; parsed once per exact text and source in a process (a host
    that loads again and again), which the immutable `TrustStore` may be shared for."""
    return trust_from_table(_trust_tables(text, source), source=source, text=text)


def read_trust_table(path: Path) -> tuple[dict[str, Any], str]:
    """A trust file's TOML tables, unchecked, and its text: for `trust_from_table`."""
    text = read_toml_text(path, what="the trust file", own_state=True)
    return _trust_tables(text, str(path)), text


def _trust_tables(text: str, source: str) -> dict[str, Any]:
    """The TOML tables of a trust file's text; a minisign key file given as one (`--trust release.pub`) is named
    as such rather than as TOML it is not."""
    if text.startswith(("untrusted comment:", "\ufeffuntrusted comment:")):
        raise InvalidInput(
            f"{source}: a minisign key file, not a trust file: trust a public key by adding it to one "
            f"(`ngixi trust add {source} --guest NAME --channel CHANNEL --trust FILE`) and pass that --trust FILE"
        )
    return toml_tables(text, source=source)


def trust_from_table(raw: Mapping[str, Any], *, source: str, text: str = "") -> TrustStore:
    """The trusted keys a trust file's tables list; `source` names the file in messages, its `text` (when given)
    the lines of entries in them."""
    unknown = sorted(set(raw) - {"keys"})
    if unknown:  # a misspelt `[[key]]` beside the file's keys trusted nothing, silently
        raise InvalidInput(
            f"{source}: unknown keys {unknown}; {suggestion(unknown[0], ['keys'], 'a trust file holds')}"
        )
    keys = raw.get("keys", [])
    if not isinstance(keys, list) or not keys:
        raise InvalidInput(f"{source}: keys: list at least one [[keys]] table")
    parsed = tuple(_parse_key(k, f"keys[{i}]", source) for i, k in enumerate(keys))
    refuse_repeated_ids([key.key_id for key in parsed], source, text)
    return TrustStore(source, parsed)


def refuse_repeated_ids(ids: Sequence[object], source: str, text: str) -> None:
    """One key id in two entries (`ids`: each `[[keys]]` entry's, in the file's order): a signature names its key
    by id alone, so only the first entry would ever be found, and the second (its guests, channels, native code)
    would be shadowed by it, or shadow a later one."""
    first: dict[str, int] = {}
    for index, key_id in enumerate(ids):
        if not isinstance(key_id, str):
            continue  # not an id: parsing the entry says so
        earlier = first.setdefault(key_id, index)
        if earlier != index:
            where = _entry_lines(text, len(ids))
            raise InvalidInput(
                f"{source}: keys[{earlier}]{where.get(earlier, '')} and keys[{index}]{where.get(index, '')} both "
                f"trust key {key_id}, and a signature is matched by key id alone; keep one entry for it (list "
                "all its guests and channels there) and delete the other"
            )


def _entry_lines(text: str, count: int) -> dict[int, str]:
    """` (line N)` of each `[[keys]]` header, by entry; nothing when the entries are not all written so."""
    lines = [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*keys\s*\]\]", line)]
    return {index: f" (line {line})" for index, line in enumerate(lines)} if len(lines) == count else {}


def trusted_key_from_table(raw: Mapping[str, Any], *, source: str) -> TrustedKey:
    """One key as `TrustedKey.to_table` gives it; `source` names where it came from in messages."""
    return _parse_key(dict(raw), "key", source)


# A signature file's fields (an immutable `Signature`) depend on its bytes alone: parsed once per exact bytes.
_signature_fields = functools.lru_cache(maxsize=256)(signature_from_bytes)


def signer_of(signature_bytes: bytes, trust: TrustStore, *, source: str) -> tuple[TrustedKey, Signature]:
    """The trusted key that made this signature, before anything it signs is read."""
    try:
        signature = _signature_fields(signature_bytes)
    except FormatError as error:
        raise VerificationError(f"{source}: the signature is not minisign's format ({error})") from None
    if not signature.is_prehashed:
        raise VerificationError(f"{source}: the signature is not prehashed (minisign -H); refusing it")
    key_id = _key_id_text(signature.key_id)
    key = trust.find(key_id)
    if key is None:
        raise VerificationError(
            f"{source}: signed by key {key_id}, which {trust.source} does not trust; {_how_to_trust(trust)}"
        )
    return key, signature


def _how_to_trust(trust: TrustStore) -> str:
    """What an operator does about a signature by a key the trust file does not list (never listed, or removed)."""
    if trust.scope_note:
        return trust.scope_note
    return (
        "if you trust its signer, add their public key (the .pub file, from them): `ngixi trust add KEY.pub "
        f"--guest NAME --channel CHANNEL --trust {trust.source}`"
    )


def verify_index(
    index_bytes: bytes, signature_bytes: bytes, trust: TrustStore, *, source: str, comment_signature: bool = True
) -> tuple[TrustedKey, str]:
    """Checks minisign's two signatures: over the (prehashed) index, and over that signature and its trusted
    comment; returns the key that made them, and the trusted comment.

    With `comment_signature=False` only the index's is checked: enough for a caller that, like a load,
    uses nothing of the comment but compares it with the one derived from the signed index (`check_scope`).
    The checks are made here rather than by py-minisign's `PublicKey.verify`, which always makes both
    and cannot tell which failed.
    """
    key, fields = signer_of(signature_bytes, trust, source=source)
    public = key.public_key.to_base64()
    if not _holds(public, fields.signature, blake2b_512(index_bytes)):
        raise VerificationError(f"{source}: the index signature does not verify with key {key.key_id}")
    if not comment_signature:
        return key, fields.trusted_comment
    if not _holds(public, fields.global_signature, fields.signature + fields.trusted_comment.encode()):
        raise VerificationError(
            f"{source}: the signature's trusted comment was altered (its global signature does not verify)"
        )
    return key, fields.trusted_comment


@functools.lru_cache(maxsize=256)
def _holds(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether `signature` of `message` verifies with the minisign key line `public_key`. The verdict depends on
    these exact bytes alone, so it is kept for them: a host that loads the same bundle again verifies it once."""
    try:
        _ed25519_key_of(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def check_scope(index: BundleIndex, key: TrustedKey, comment: str, trust: TrustStore, *, source: str) -> None:
    """The signed index must match its (verified) trusted comment, and the key must be allowed to sign it."""
    if comment != trusted_comment(index):
        raise VerificationError(f"{source}: the signature's trusted comment {comment!r} does not match the index")
    _check_may_sign(index, key, trust, source=source)


def _check_may_sign(index: BundleIndex, key: TrustedKey, trust: TrustStore, *, source: str) -> None:
    if not key.may_sign(index.guest, index.channel):
        raise VerificationError(
            f"{source}: key {key.key_id} may not sign guest {index.guest!r} on channel {index.channel!r}; "
            f"{_how_to_widen(key, index.channel, trust)}"
        )


def still_trusted(index: BundleIndex, signer: TrustedKey, trust: TrustStore, *, source: str) -> TrustedKey:
    """The key that signed an index verified earlier, as `trust` (the trust file read again) trusts it now: refused
    when it is no longer listed (or its id names another public key) or may no longer sign the index's guest and
    channel; trusted with native code only if it was at the first check and still is. Its signature over those
    bytes held with that public key, so it is not checked again."""
    key = trust.find(signer.key_id)
    if key is None or key.public_key.to_base64() != signer.public_key.to_base64():
        raise VerificationError(
            f"{source}: signed by key {signer.key_id}, which {trust.source} no longer trusts (it was trusted when the "
            f"bundle was opened); {_how_to_trust(trust)}"
        )
    _check_may_sign(index, key, trust, source=source)
    return key._replace(native_code=key.native_code and signer.native_code)


def _how_to_widen(key: TrustedKey, channel: str, trust: TrustStore) -> str:
    """What an operator does about a trusted key's bundle of a guest or channel its entry does not list."""
    if trust.scope_note and channel != "dev":
        return trust.scope_note
    return (
        f"{trust.source} trusts it for guests {', '.join(key.guests)} on channels {', '.join(key.channels)} only. "
        f"If its signer should sign this too, `ngixi trust remove {key.key_id} --trust {trust.source}` and "
        "`ngixi trust add` its public key again with every --guest and --channel it may sign"
    )
