"""A tenant child's CPU budget: each call may use its timeout on top of the CPU time used before it."""

from __future__ import annotations

import resource
import time

import pytest

from ngixi_runtime.loading import tenant_child


@pytest.mark.parametrize("hard", [resource.RLIM_INFINITY, 50])
def test_the_cpu_limit_follows_the_time_used_and_is_set_only_when_it_changes(
    monkeypatch: pytest.MonkeyPatch, hard: int
) -> None:
    used = [0.2]
    limits: list[tuple[int, int]] = []
    monkeypatch.setattr(time, "process_time", lambda: used[0])
    monkeypatch.setattr(resource, "getrlimit", lambda _: (hard, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limit: limits.append(limit))
    budget = tenant_child._CpuBudget(timeout_ms=2500)
    for now in (0.2, 0.21, 0.5, 0.51, 7.9, 60.0):
        used[0] = now
        budget.renew()
    assert limits == [(4, hard), (5, hard), (12, hard), (64 if hard == resource.RLIM_INFINITY else hard, hard)]
    assert all(soft >= 2.5 + now for (soft, _), now in zip(limits[:3], (0.2, 0.51, 7.9), strict=True))
