"""minisign's public key and signature formats (https://jedisct1.github.io/minisign/), read for verification.

A key line is base64 of the algorithm `Ed`, an 8-byte key id and the 32-byte Ed25519 key. A signature file is
four lines: an untrusted comment; base64 of the algorithm (`ED`: over the BLAKE2b-512 hash of the file, `Ed`:
legacy, over the file itself), the key id and the 64-byte signature; the trusted comment; base64 of the
64-byte global signature over the signature and the trusted comment. Read with the same rules as py-minisign
(strict base64, exact lengths, the comment prefixes), which still signs; docs/dependencies.md says why the
loader does not import it.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from ngixi_runtime.files import open_regular
from ngixi_runtime.records import NamedTuple

PURE = b"Ed"
PREHASHED = b"ED"
_ALGORITHM_BYTES = 2
_KEY_ID_BYTES = 8
_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
UNTRUSTED_PREFIX = "untrusted comment: "
TRUSTED_PREFIX = "trusted comment: "


class FormatError(ValueError):
    """Bytes that are not minisign's key or signature format; the message says what is wrong."""


class PublicKey(NamedTuple):
    key_id: bytes
    ed25519: bytes

    def to_base64(self) -> bytes:
        """The key line, as minisign and py-minisign's `PublicKey.to_base64` write it."""
        return base64.standard_b64encode(PURE + self.key_id + self.ed25519)


class Signature(NamedTuple):
    algorithm: bytes  # PREHASHED or PURE
    key_id: bytes
    signature: bytes  # over the signed file, or its BLAKE2b-512 hash when prehashed
    trusted_comment: str
    global_signature: bytes  # over `signature` and the trusted comment

    @property
    def is_prehashed(self) -> bool:
        return self.algorithm == PREHASHED


def public_key_from_base64(text: str | bytes) -> PublicKey:
    """A public key from its base64 line (a trust file's `public_key`, a .pub file's second line)."""
    raw = _decoded(text, _ALGORITHM_BYTES + _KEY_ID_BYTES + _KEY_BYTES)
    if raw[:_ALGORITHM_BYTES] != PURE:
        raise FormatError("unsupported signature algorithm")
    if _is_weak(raw[-_KEY_BYTES:]):
        raise FormatError(
            "its Ed25519 key is a point of small order, or not spelt canonically, against which signatures anyone can "
            "make verify; minisign refuses it too: ask its owner for a key made by minisign -G or ngixi keygen"
        )
    return PublicKey(raw[_ALGORITHM_BYTES:-_KEY_BYTES], raw[-_KEY_BYTES:])


# Ed25519's field prime, and the y coordinates of its points of small order (libsodium's `ge25519_has_small_order`
# list, which minisign's verification refuses): the identity, the points of order 2 and 4, and the two of order 8.
_FIELD_PRIME = 2**255 - 19
_ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y = frozenset({0, 1, _FIELD_PRIME - 1, _ORDER_8_Y, _FIELD_PRIME - _ORDER_8_Y})


def _is_weak(ed25519: bytes) -> bool:
    """Whether an encoded Ed25519 public key has small order or a y at or above the prime: OpenSSL verifies against
    such a key R = identity, S = 0 (or a few tries more) over any message, so whoever could reach the trust file's
    bundles could sign them."""
    y = int.from_bytes(ed25519, "little") & ((1 << 255) - 1)  # the top bit is x's sign
    return y >= _FIELD_PRIME or y in _SMALL_ORDER_Y


def signature_from_bytes(data: bytes) -> Signature:
    """A signature file's four lines."""
    lines = data.splitlines()
    if len(lines) != 4:
        raise FormatError("invalid number of lines")
    untrusted, signed_line, trusted, global_line = lines
    global_signature = _decoded(global_line, _SIGNATURE_BYTES)
    signed = _decoded(signed_line, _ALGORITHM_BYTES + _KEY_ID_BYTES + _SIGNATURE_BYTES)
    algorithm = signed[:_ALGORITHM_BYTES]
    if algorithm not in (PURE, PREHASHED):
        raise FormatError("unsupported signature algorithm")
    _comment(untrusted, UNTRUSTED_PREFIX)
    return Signature(
        algorithm,
        signed[_ALGORITHM_BYTES : _ALGORITHM_BYTES + _KEY_ID_BYTES],
        signed[-_SIGNATURE_BYTES:],
        _comment(trusted, TRUSTED_PREFIX),
        global_signature,
    )


def _decoded(text: str | bytes, length: int) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise FormatError("invalid base64 encoding") from None
    if len(raw) != length:
        raise FormatError("invalid encoded length")
    return raw


def _comment(line: bytes, prefix: str) -> str:
    try:
        comment = line.decode()
    except UnicodeDecodeError:
        raise FormatError("invalid comment encoding") from None
    if not comment.startswith(prefix):
        raise FormatError("invalid comment prefix")
    return comment[len(prefix) :]


# What of a file tells whether it is a secret key: its first two lines.
_SECRET_KEY_HEAD = 1024


def is_secret_key_file(path: Path) -> bool:
    """Whether the file is a minisign secret key (`is_secret_key`); anything but a regular file is not."""
    try:
        with open_regular(path) as stream:
            return stream is not None and is_secret_key(stream.read(_SECRET_KEY_HEAD))
    except OSError:
        return False


def is_secret_key(data: bytes) -> bool:
    """Whether a key file's bytes are a minisign secret key (encrypted or not), by its layout: a comment line,
    then the base64 of the "Ed" algorithm, a KDF id and the "B2" checksum algorithm."""
    lines = data[:_SECRET_KEY_HEAD].splitlines()
    if len(lines) < 2 or not lines[0].startswith(b"untrusted comment:"):
        return False
    try:
        decoded = base64.b64decode(lines[1], validate=True)
    except ValueError:
        return False
    return decoded[:2] == b"Ed" and decoded[4:6] == b"B2"
