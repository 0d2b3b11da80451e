"""A tenant child's malloc settings: a call's buffers come from the heap and stay mapped for the next call."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any

import pytest

from ngixi_runtime.files import toml_tables
from ngixi_runtime.guest.manifest import Manifest, manifest_from_table
from ngixi_runtime.loading import tenant_child
from tests.conftest import HELLO_MANIFEST

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def manifest(input_bytes: int, output_bytes: int) -> Manifest:
    table: dict[str, Any] = toml_tables(HELLO_MANIFEST, source="manifest.toml")
    table.setdefault("limits", {}).update(input_bytes=input_bytes, output_bytes=output_bytes)
    return manifest_from_table(table, source="manifest.toml", stem="hello")


@pytest.fixture(autouse=True)
def _looked_up_afresh() -> Iterator[None]:
    """Each test's stand-in C library is looked up anew, and the real one after the tests."""
    tenant_child.c_mallopt.cache_clear()
    yield
    tenant_child.c_mallopt.cache_clear()


class Libc:
    def __init__(self) -> None:
        self.settings: dict[int, int] = {}

    def mallopt(self, parameter: int, value: int) -> int:
        self.settings[parameter] = value
        return 1


@pytest.mark.parametrize(
    ("input_bytes", "output_bytes", "threshold"),
    [(1 << 20, 1 << 20, 2 << 20), (0, 0, 128 << 10), (1 << 30, 1 << 30, 32 << 20), (100, 200, 128 << 10)],
)
def test_the_mmap_threshold_is_the_call_data_within_glibc_bounds_and_twice_that_stays_mapped(
    monkeypatch: pytest.MonkeyPatch, input_bytes: int, output_bytes: int, threshold: int
) -> None:
    libc = Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda _: libc)
    tenant_child._keep_call_buffers(manifest(input_bytes, output_bytes))
    assert libc.settings == {M_MMAP_THRESHOLD: threshold, M_TRIM_THRESHOLD: 2 * threshold}


def test_a_c_library_without_mallopt_keeps_its_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes, "CDLL", lambda _: object())
    tenant_child._keep_call_buffers(manifest(1 << 20, 1 << 20))  # no error, nothing set


def test_the_c_library_is_looked_up_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once, so that a fork server's lookup (zygote_server._warm_up) serves every tenant it forks."""
    opened: list[object] = []

    def cdll(name: object) -> Libc:
        opened.append(name)
        return Libc()

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    for _ in range(3):
        tenant_child._keep_call_buffers(manifest(1 << 20, 1 << 20))
    assert opened == [None]
