"""bench/data_abi.py's Extism peers echo exactly what they are given, at every size the bench measures."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("extism")

from bench.data_abi import EXTISM_COPYING, EXTISM_ZERO_COPY, SIZES, extism_echo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("wat", [EXTISM_COPYING, EXTISM_ZERO_COPY], ids=["PDK-style", "zero-copy"])
def test_the_extism_echo_plugins_return_their_input(wat: str) -> None:
    with extism_echo(wat) as echo:
        for size in (*SIZES, 7, 65_539):  # and sizes that leave a tail shorter than a word
            data = os.urandom(size)
            assert echo(data) == data, size
