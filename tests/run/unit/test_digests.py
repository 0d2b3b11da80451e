"""spec/digests.py gives hashlib's digests, byte for byte."""

from __future__ import annotations

import hashlib

import pytest

from ngixi_runtime.spec.digests import blake2b_512, sha256_hex


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 1025])
def test_the_digests_are_hashlibs(data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert blake2b_512(data) == hashlib.blake2b(data).digest()
