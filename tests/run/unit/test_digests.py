"""spec/digests.py gives hashlib's digests, byte for byte."""

from __future__ import annotations

import hashlib
import os

import pytest

from ngixi_runtime.spec.digests import blake2b_512, sha256_hex

SAMPLE = bytes(range(256)) * 1025


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"abc",
        SAMPLE,
        os.urandom((8 << 20) + 3),  # past any one-shot buffer
        memoryview(SAMPLE),
        memoryview(SAMPLE)[7:],  # a slice: not at its buffer's start
        bytearray(SAMPLE),
        memoryview(b""),
    ],
)
def test_the_digests_are_hashlibs(data: bytes) -> None:
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert blake2b_512(data) == hashlib.blake2b(data).digest()
