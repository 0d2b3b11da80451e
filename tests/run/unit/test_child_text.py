"""What a dead tenant process last wrote reaches the operator's one error line escaped."""

from __future__ import annotations

import io
from types import SimpleNamespace

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


def test_a_dead_childs_last_words_are_one_escaped_line() -> None:
    tenant = object.__new__(IsolatedTenant)
    tenant.manifest = SimpleNamespace(guest=SimpleNamespace(name="noisy"))  # type: ignore[assignment]
    child = object.__new__(isolated._Child)
    child.process = _DeadProcess()  # type: ignore[assignment]
    child.errors = io.BytesIO(b"panicked\nngixi: error: forged\x1b]0;title\x07\r\xe2\x80\xae")
    failure = tenant._died(child, "shout")
    assert str(failure) == (
        "noisy: shout: the tenant process died (exit status 1): "
        "panicked\\nngixi: error: forged\\x1b]0;title\\x07\\r\\u202e"
    )
