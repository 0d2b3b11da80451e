"""What a dead tenant process last wrote reaches the operator's one error line escaped."""

from __future__ import annotations

import io
import os
from types import SimpleNamespace

import pytest

from ngixi_runtime.loading import isolated
from ngixi_runtime.loading.isolated import IsolatedTenant


class _DeadProcess:
    status_known = True

    def wait(self) -> int:
        return 1

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def _dead_child(errors: io.BytesIO) -> tuple[IsolatedTenant, isolated._Child]:
    """The tenant of guest `noisy`, and its child process, dead with `errors` as what it wrote to stderr."""
    tenant = object.__new__(IsolatedTenant)
    tenant.manifest = SimpleNamespace(guest=SimpleNamespace(name="noisy"))  # type: ignore[assignment]
    child = object.__new__(isolated._Child)
    child.process = _DeadProcess()  # type: ignore[assignment]
    child.errors = errors
    return tenant, child


def test_a_dead_childs_last_words_are_one_escaped_line() -> None:
    tenant, child = _dead_child(io.BytesIO(b"panicked\nngixi: error: forged\x1b]0;title\x07\r\xe2\x80\xae"))
    failure = tenant._died(child, "shout")
    assert str(failure) == (
        "noisy: shout: the tenant process died (exit status 1): "
        "panicked\\nngixi: error: forged\\x1b]0;title\\x07\\r\\u202e"
    )


class _CountedReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_only_the_end_of_a_dead_childs_error_file_is_read() -> None:
    """The whole file was read into the host's memory to quote its last 500 bytes, gigabytes if the child wrote them."""
    errors = _CountedReads(b"x" * 4_000_000 + b"the end")
    tenant, child = _dead_child(errors)
    assert str(tenant._died(child, "shout")).endswith("xxx" + "the end")
    assert errors.bytes_read == 500


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "temporary file"])
def test_a_childs_error_file_has_no_name_and_reads_back(monkeypatch: pytest.MonkeyPatch, memfd: bool) -> None:
    if not memfd:
        monkeypatch.delattr(os, "memfd_create", raising=False)
    elif not hasattr(os, "memfd_create"):
        pytest.skip("this system has no memfd")
    with isolated._error_file() as errors:
        assert not os.get_inheritable(errors.fileno())
        target = os.readlink(f"/proc/self/fd/{errors.fileno()}")
        assert target.startswith("/memfd:") if memfd else target.endswith("(deleted)")
        os.write(errors.fileno(), b"panicked")  # as the child does, on the descriptor
        errors.seek(0)
        assert errors.read() == b"panicked"
