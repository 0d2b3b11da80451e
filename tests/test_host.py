"""Tenants with real guests built by the pipeline: hostile guests are contained, calls measured."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from ngixi_build.runtime.errors import PolicyError
from ngixi_build.runtime.host import CallFailed, IsolatedTenant, TenantPool, open_tenant
from ngixi_build.runtime.policy import load_policy
from tests.integration import copy_project, run

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE = [
    ("spin", (), "timeout", "hostile: spin exceeded its 2000 ms timeout (limits.timeout_ms)"),
    ("hog", (), "memory", "hostile: hog ran out of memory at its limit of 32 pages (limits.memory_pages)"),
    ("recurse", (100_000_000,), "trap", "hostile: recurse trapped: call stack exhausted"),
    ("trap", (), "trap", "hostile: trap trapped: unreachable"),
    ("flood", (), "quota", "hostile: log output exceeded its quota of 10000 bytes"),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("host") / "project")
    shutil.copytree(FIXTURES / "guests" / "hostile", root / "guests" / "hostile")
    shutil.copy(FIXTURES / "hostile.toml", root / "manifests" / "hostile.toml")
    run(root, "doit", "bundle:hostile", "bundle:hello")
    return root


def bundle(project: Path, guest: str) -> Path:
    return project / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"


def trust(project: Path) -> Path:
    return project / ".ngixi" / "trust.toml"


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize(("export", "args", "outcome", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_guest_is_contained_and_the_tenant_serves_the_next_call(
    project: Path, export: str, args: tuple[int, ...], outcome: str, message: str
) -> None:
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        with pytest.raises(CallFailed) as caught:
            tenant.call(export, args)
        assert caught.value.outcome == outcome
        assert str(caught.value).startswith(message)
        assert caught.value.result.metrics.outcome == outcome
        assert tenant.call("add", (2, 3)).values == (5,)


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize("export", ["recurse", "trap", "flood"])
def test_in_process_tenant_contains_traps_and_quotas(project: Path, export: str) -> None:
    args = (100_000_000,) if export == "recurse" else ()
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project), isolated=False) as tenant:
        with pytest.raises(CallFailed):
            tenant.call(export, args)
        assert tenant.call("add", (2, 3)).values == (5,)


def test_a_crashed_tenant_process_is_reported_and_replaced(project: Path) -> None:
    with open_tenant(bundle(project, "hostile"), trust_file=trust(project)) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        pid = tenant.pid
        threading.Timer(0.2, os.kill, (pid, signal.SIGABRT)).start()
        with pytest.raises(CallFailed, match="the tenant process died \\(signal SIGABRT\\)") as caught:
            tenant.call("spin", ())
        assert caught.value.outcome == "crash"
        assert tenant.call("add", (1, 2)).values == (3,)
        assert tenant.pid != pid


@pytest.mark.usefixtures("engine_name")
def test_every_call_is_measured(project: Path) -> None:
    with open_tenant(bundle(project, "hello"), trust_file=trust(project)) as tenant:
        result = tenant.call("greet", ())
    metrics = result.metrics
    assert metrics.outcome == "ok" and metrics.host_calls == {"log": 1}
    assert metrics.output_bytes == len("hello from the hello guest")
    assert metrics.memory_pages >= 1 and metrics.duration_ms > 0


def test_policy_refuses_an_over_asking_bundle_with_the_list(project: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[limits]\nmemory_pages = 8\ntimeout_ms = 100\n[capabilities]\nallow = ["stdio"]\n')
    with pytest.raises(PolicyError) as caught:
        open_tenant(bundle(project, "hostile"), trust_file=trust(project), policy=load_policy(policy))
    assert str(caught.value).splitlines()[1:] == [
        "  limits.memory_pages: asks for 32, the policy allows at most 8",
        "  limits.timeout_ms: asks for 2000, the policy allows at most 100",
        "  capabilities.log: not allowed by the policy (it allows: stdio)",
    ]


def test_pool_runs_tenants_concurrently_and_isolates_failures(project: Path) -> None:
    with TenantPool(trust_file=trust(project)) as pool:
        for name in ("a", "b", "c"):
            pool.add(name, bundle(project, "hello"))
        pool.add("bad", bundle(project, "hostile"))
        start = time.monotonic()
        results = pool.call_many([("bad", "spin", ()), ("a", "add", (1, 1)), ("b", "add", (2, 2)), ("c", "greet", ())])
        assert isinstance(results[0], CallFailed) and results[0].outcome == "timeout"
        assert [r.values for r in results[1:]] == [(2,), (4,), ()]  # type: ignore[union-attr]
        assert time.monotonic() - start < 5
        assert pool.call("bad", "add", (3, 4)).values == (7,)


def test_cli_runs_isolated_by_default_and_reports_json(project: Path) -> None:
    result = run(project, "ngixi", "run", "--json", str(bundle(project, "hostile")), "trap", check=False)
    assert result.returncode == 5
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["metrics"]["outcome"] == "trap"
    assert "hostile: trap trapped: unreachable" in result.stderr and "Traceback" not in result.stderr
    timeout = run(project, "ngixi", "run", str(bundle(project, "hostile")), "spin", check=False)
    assert timeout.returncode == 5 and "exceeded its 2000 ms timeout" in timeout.stderr
