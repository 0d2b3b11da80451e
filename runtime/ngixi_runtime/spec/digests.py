"""The run side's SHA-256 and BLAKE2b-512 digests, through cryptography, which it imports anyway to verify
signatures: importing hashlib would load a second OpenSSL (`_hashlib`) into every `ngixi run`. Like hashlib,
cryptography hashes without holding the GIL."""

from __future__ import annotations

from cryptography.hazmat.primitives.hashes import SHA256, BLAKE2b, Hash, HashAlgorithm


def _digest(algorithm: HashAlgorithm, data: bytes) -> bytes:
    hashing = Hash(algorithm)
    hashing.update(data)
    return hashing.finalize()


def sha256_hex(data: bytes) -> str:
    """`hashlib.sha256(data).hexdigest()`."""
    return _digest(SHA256(), data).hex()


def blake2b_512(data: bytes) -> bytes:
    """`hashlib.blake2b(data).digest()`: unkeyed, 64 bytes (minisign's prehash)."""
    return _digest(BLAKE2b(64), data)
