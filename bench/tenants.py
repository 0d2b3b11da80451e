"""Isolated tenants: spawn to first call against Extism, memory (PSS) and spawn time of 1 to 256 tenants.

- spawn to first call: `open_tenant(hello)` + `add(2, 3)` + close, isolated, on Wasmer and Wasmtime,
  against Extism's `Plugin(manifest)` on the same .wasm (its `env.abort` and `ngixi.log` imports given
  as host functions) with Extism's compilation cache off (`EXTISM_CACHE_CONFIG=""`, which Extism's
  runtime reads at every `Plugin` as "no cache"). The fork server's own start, paid once per host
  process and child environment, is printed apart. Beside each engine's spawn: its child's minor page
  faults from fork to first call returned (/proc/<pid>/stat), the copy-on-write copies and first touches
  of code, and the CPU time its threads used meanwhile (/proc/<pid>/task/*/schedstat).
- memory: the PSS (/proc/<pid>/smaps_rollup) of 1, 16, 64 and 256 `hello` tenants, their fork
  server and its spare summed, and the time to spawn them, against the goals (2 GiB; 256 x Extism's spawn).
- whole process: `ngixi run hello add 2 3` (isolated) against `python -c pass`.
- calls per second in-process and isolated.

Run: .venv/bin/python -m bench.tenants [--rounds N] [--calls N] [--counts 1,16,64,256]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from importlib.metadata import version
from pathlib import Path

import extism

from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote import zygote_pids
from tests.integration import copy_project, installed_toolchain, run

GIB = 1 << 30
# Descriptors a host holds per isolated tenant: bundle, requests, replies, stderr file, status pipe, pidfd.
_DESCRIPTORS_PER_TENANT = 6


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def spawn_and_call(bundle: Path, trust: Path, engine: str) -> None:
    with open_tenant(bundle, trust_file=trust, engine=engine) as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)


def first_call_costs(bundle: Path, trust: Path, engine: str, rounds: int) -> tuple[float, float]:
    """The median minor page faults of a tenant's child from its fork to its first call returned (copy-on-write
    of the fork server's pages, and the first touch of the code it runs), and the median CPU time (ms) its threads
    used meanwhile (/proc/<pid>/task/*/schedstat), which the load moves less than a wall time."""
    faults, cpu = [], []
    for _ in range(rounds):
        with open_tenant(bundle, trust_file=trust, engine=engine) as tenant:
            tenant.call("add", (2, 3))
            assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
            faults.append(int(Path(f"/proc/{tenant.pid}/stat").read_text().rpartition(")")[2].split()[7]))
            tasks = Path(f"/proc/{tenant.pid}/task").glob("*/schedstat")
            cpu.append(sum(int(task.read_text().split()[0]) for task in tasks) / 1e6)
    return statistics.median(faults), statistics.median(cpu)


def extism_imports() -> list[object]:
    """Host functions for the hello guest's imports (`env.abort`, `ngixi.log`), which do nothing."""
    i32 = extism.ValType.I32
    return [
        extism.host_fn(name="abort", namespace="env", signature=([i32] * 4, []))(_ignore),
        extism.host_fn(name="log", namespace="ngixi", signature=([i32] * 3, []))(_ignore),
    ]


def _ignore(*_: object) -> None:
    pass


def extism_plugin(wasm: bytes, imports: list[object]) -> None:
    """Extism's `Plugin(manifest)` on `wasm`, then closed."""
    with extism.Plugin({"wasm": [{"data": wasm}]}, wasi=False, functions=imports):
        pass


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def children_of(pid: int) -> list[int]:
    """A fork server's children: its tenants and the spare it forks ahead of the next spawn."""
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def tenants_memory(bundle: Path, trust: Path, count: int) -> tuple[float, int]:
    """Seconds to spawn `count` tenants (each answering its first call) and the PSS of the fork server and all its
    children (the tenants, and its spare)."""
    with ExitStack() as stack:
        start = time.perf_counter()
        for _ in range(count):
            tenant = stack.enter_context(open_tenant(bundle, trust_file=trust))
            assert isinstance(tenant, IsolatedTenant)
            tenant.call("add", (1, 2))
        seconds = time.perf_counter() - start
        servers = zygote_pids()
        return seconds, pss_kib(servers + [child for server in servers for child in children_of(server)])


def calls_per_second(bundle: Path, trust: Path, *, isolated: bool, calls: int) -> float:
    with open_tenant(bundle, trust_file=trust, isolated=isolated) as tenant:
        tenant.call("add", (1, 2))
        start = time.perf_counter()
        for n in range(calls):
            tenant.call("add", (n, 1))
        return calls / (time.perf_counter() - start)


def whole_process_ms(command: list[str], rounds: int, cwd: Path) -> float:
    return median_ms(lambda: subprocess.run(command, cwd=cwd, check=True, capture_output=True), rounds)


def _raise_descriptor_limit(tenants: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = tenants * _DESCRIPTORS_PER_TENANT + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--counts", default="1,16,64,256")
    options = parser.parse_args()
    counts = [int(count) for count in options.counts.split(",")]
    _raise_descriptor_limit(max(counts))
    os.environ["EXTISM_CACHE_CONFIG"] = ""  # Extism's runtime: an empty value turns its cache off
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch) / "project", toolchain_from=installed_toolchain())
        run(project, "doit", "bundle:hello")
        bundle, trust = project / "artifacts/bundles/hello-0.1.0.ngx", project / ".ngixi/trust.toml"
        with tarfile.open(bundle) as archive:
            member = archive.extractfile("guest.wasm")
            assert member is not None
            wasm = member.read()
        print(f"extism {version('extism')} (extism-sys {version('extism-sys')}), {os.cpu_count()} cores")
        start = time.perf_counter()
        spawn_and_call(bundle, trust, "wasmer")
        print(f"first spawn, starting the fork server too: {(time.perf_counter() - start) * 1000:.1f} ms ({_load()})")
        extism_ms = median_ms(partial(extism_plugin, wasm, extism_imports()), options.rounds)
        print(f"extism Plugin(manifest), cache off: {extism_ms:.2f} ms ({_load()})")
        for engine in ("wasmer", "wasmtime"):
            spawn_and_call(bundle, trust, engine)
            ms = median_ms(partial(spawn_and_call, bundle, trust, engine), options.rounds)
            ratio = ms / extism_ms
            print(f"spawn to first call, isolated {engine}: {ms:.2f} ms = {ratio:.2f}x extism (goal 1x; {_load()})")
            faults, cpu_ms = first_call_costs(bundle, trust, engine, options.rounds)
            print(f"  its child from fork to first call: {faults:.0f} minor page faults, {cpu_ms:.2f} ms CPU (medians)")
        for count in counts:
            seconds, kib = tenants_memory(bundle, trust, count)
            at_256 = kib * 1024 / (2 * GIB) * 256 / count
            print(
                f"{count:3d} tenants: PSS {kib / 1024:7.1f} MiB ({kib / 1024 / count:5.1f} MiB each; "
                f"{at_256:5.2f}x the 2 GiB goal at 256), spawned in {seconds * 1000:7.0f} ms "
                f"({seconds * 1000 / count / extism_ms:5.2f}x the goal of {count} x extism's spawn; {_load()})"
            )
        python_ms = whole_process_ms([sys.executable, "-c", "pass"], options.rounds, project)
        ngixi = [str(Path(sys.executable).parent / "ngixi"), "run", "--trust", str(trust), str(bundle), "add", "2", "3"]
        ngixi_ms = whole_process_ms(ngixi, options.rounds, project)
        print(
            f"whole process: ngixi run hello add 2 3 (isolated) {ngixi_ms:.0f} ms, python -c pass {python_ms:.0f} ms: "
            f"{ngixi_ms / python_ms:.1f}x (goal 4x; {_load()})"
        )
        for isolated in (False, True):
            rate = calls_per_second(bundle, trust, isolated=isolated, calls=options.calls)
            print(f"{'isolated' if isolated else 'in-process':>10}: {rate:9.0f} calls/s for add(i32, i32)")


if __name__ == "__main__":
    main()
