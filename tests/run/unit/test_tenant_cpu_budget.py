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
    clock, used = [0.0], [0.2]
    limits: list[tuple[int, int]] = []
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "process_time", lambda: used[0])
    monkeypatch.setattr(resource, "getrlimit", lambda _: (hard, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limit: limits.append(limit))
    budget = tenant_child._CpuBudget(timeout_ms=2500, processors=1)
    for now in (0.2, 0.21, 0.5, 0.51, 7.9, 60.0):
        clock[0] += 100  # time enough for the CPU time to have grown that much
        used[0] = now
        budget.renew()
    assert limits == [(4, hard), (5, hard), (12, hard), (64 if hard == resource.RLIM_INFINITY else hard, hard)]
    assert all(soft >= 2.5 + now for (soft, _), now in zip(limits[:3], (0.2, 0.51, 7.9), strict=True))


def test_the_cpu_time_is_read_only_once_the_wall_clock_says_it_may_have_reached_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, used, reads = [0.0], [0.2], [0]
    limits: list[tuple[int, int]] = []

    def process_time() -> float:
        reads[0] += 1
        return used[0]

    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(time, "process_time", process_time)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limit: limits.append(limit))
    budget = tenant_child._CpuBudget(timeout_ms=2500, processors=2)
    budget.renew()  # 0.2 s used: the limit is 4 s, right until 0.5 s are used, at least 0.15 s of wall time later
    assert (reads[0], limits) == (1, [(4, resource.RLIM_INFINITY)])
    # Two processors may use 0.3 s of CPU time in 0.15 s of wall time, but not in less.
    for clock[0], used[0] in ((0.1, 0.4), (0.149, 0.49)):
        budget.renew()
    assert reads[0] == 1
    clock[0], used[0] = 0.15, 0.5
    budget.renew()  # read again: the limit still holds (3 s left), right until the next read
    assert (reads[0], limits) == (2, [(4, resource.RLIM_INFINITY)])
    used[0] = 0.51
    budget.renew()  # no wall time has passed since a read that left nothing spare: read again, and set
    assert (reads[0], limits[-1]) == (3, (5, resource.RLIM_INFINITY))
