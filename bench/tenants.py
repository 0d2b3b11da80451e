"""Calls per second for a small export in-process vs isolated, and the cost of spawning tenants.

Run: .venv/bin/python -m bench.tenants [--calls N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ngixi_runtime.loading.tenants import TenantPool, open_tenant
from tests.integration import copy_project, run


def calls_per_second(bundle: Path, trust: Path, *, isolated: bool, calls: int) -> float:
    with open_tenant(bundle, trust_file=trust, isolated=isolated) as tenant:
        tenant.call("add", (1, 2))
        start = time.perf_counter()
        for n in range(calls):
            tenant.call("add", (n, 1))
        return calls / (time.perf_counter() - start)


def spawn_seconds(bundle: Path, trust: Path, tenants: int, state: Path) -> float:
    start = time.perf_counter()
    with TenantPool(trust_file=trust, state_dir=state) as pool:  # its rollback state, not the user's
        for n in range(tenants):
            pool.add(f"t{n}", bundle)
        elapsed = time.perf_counter() - start
        results = pool.call_many([(f"t{n}", "add", (n, 1)) for n in range(tenants)])
        assert all(not isinstance(r, Exception) for r in results)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch) / "project")
        run(project, "doit", "bundle:hello")
        bundle, trust = project / "artifacts/bundles/hello-0.1.0.ngx", project / ".ngixi/trust.toml"
        for isolated in (False, True):
            rate = calls_per_second(bundle, trust, isolated=isolated, calls=options.calls)
            print(f"{'isolated' if isolated else 'in-process':>10}: {rate:9.0f} calls/s for add(i32, i32)")
        for tenants in (1, 4, 16):
            seconds = spawn_seconds(bundle, trust, tenants, Path(scratch) / "state")
            print(f"spawn {tenants:2d} isolated tenants: {seconds:6.2f} s ({seconds / tenants * 1000:.0f} ms each)")


if __name__ == "__main__":
    main()
