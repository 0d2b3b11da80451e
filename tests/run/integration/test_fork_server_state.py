"""The fork server never sees a guest or its calls, and what a tenant changes in its own copy of the server's
memory (its warm-up's caches included) reaches no tenant forked later."""

from __future__ import annotations

from pathlib import Path

from ngixi_runtime.loading.zygote import zygote_pids
from tests.conftest import KeyFiles
from tests.run.integration.test_tenant_fork import bundle, isolated, pid_of

__all__ = ["bundle"]  # the fixture


def reads_and_writes(pid: int) -> tuple[int, int]:
    """The read and write system calls `pid` has made (/proc/<pid>/io)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


def test_calls_never_reach_the_fork_server_and_a_later_fork_starts_afresh(bundle: Path, keys: KeyFiles) -> None:
    with isolated(bundle, keys, tenant="first") as first:
        servers = set(zygote_pids())
        assert servers
        before = {server: reads_and_writes(server) for server in servers}
        assert [first.call("next").values for _ in range(50)][-1] == (50,)
        assert first.call("add", (2, 3), input=None).values == (5,)
        assert {server: reads_and_writes(server) for server in servers} == before
        with isolated(bundle, keys, tenant="later") as later:
            assert later.call("next").values == (1,)
            assert pid_of(later) != pid_of(first)
