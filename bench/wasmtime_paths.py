"""Calls into Wasmtime guests through `engines/wasmtime_fastpath.py` against wasmtime-py's public `Func.__call__`.

Builds the sample guests' bundles with the real toolchain in a temporary copy of the project, opens
each on Wasmtime once per variant (with the fast path, and with it turned off as on a wasmtime-py
it was not tested on; host functions go through wasmtime-py's public `Linker.define_func` in
both), then times rounds of calls, alternating the variants so that drift on the machine hits all
alike, in CPU time of this process. Prints µs per call (median and fastest round) and each
variant's cost against the first, from the medians.

Run: .venv/bin/python -m bench.wasmtime_paths [--rounds N] [--scale X]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.guest.manifest import Number
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.integration import copy_project, installed_toolchain, run


@dataclass(frozen=True)
class Case:
    guest: str
    export: str
    args: tuple[Number, ...]
    what: str
    calls: int  # per round


CASES = [
    Case("hello", "add", (2, 3), "no host call", 2000),
    Case("counter", "increment", (), "kv_get + kv_set (SQLite, one transaction each)", 200),
    Case("notes", "write_note", (), "path_open + fd_write + fd_close", 200),
    Case("notes", "read_note", (), "path_open + fd_read + fd_close + fd_write to stdout", 200),
]


# The first variant is the baseline the others are compared with.
VARIANTS: dict[str, list[tuple[Any, str, Any]]] = {
    "fast path": [],
    "public API": [(wasmtime_fastpath, "ACTIVE", False)],
}


@contextmanager
def variant(patches: list[tuple[Any, str, Any]]) -> Iterator[None]:
    with ExitStack() as stack:
        for owner, name, replacement in patches:
            stack.enter_context(mock.patch.object(owner, name, replacement))
        yield


def call_round(guest: Guest, case: Case, calls: int) -> float:
    """CPU µs per call over `calls` calls."""
    start = time.process_time()
    for _ in range(calls):
        guest.call(case.export, case.args)
        guest.output.take()
    return (time.process_time() - start) / calls * 1e6


def measure(project: Path, scratch: Path, case: Case, rounds: int, scale: float) -> dict[str, list[float]]:
    """Per variant, the µs per call of each round; every variant's guest is opened (and first called) under it."""
    trust = load_trust(project / ".ngixi" / "trust.toml")
    bundle = project / "artifacts" / "bundles" / f"{case.guest}-0.1.0.ngx"
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    calls = max(1, round(case.calls * scale))
    with ExitStack() as guests:
        opened: dict[str, Guest] = {}
        for name, patches in VARIANTS.items():
            with variant(patches):
                sandbox = Sandbox.under(scratch / "sandboxes" / f"{case.guest}-{len(opened)}")
                guest = guests.enter_context(open_guest(read_bundle(bundle, trust), engine="wasmtime", sandbox=sandbox))
                call_round(guest, case, max(1, calls // 10))  # warms up, and resolves the export under the variant
            opened[name] = guest
        for _ in range(rounds):
            for name, guest in opened.items():
                times[name].append(call_round(guest, case, calls))
    return times


def report(case: Case, times: dict[str, list[float]]) -> None:
    baseline = statistics.median(next(iter(times.values())))
    print(f"{case.guest}.{case.export}: {case.what}")
    for name, rounds in times.items():
        median = statistics.median(rounds)
        print(f"  {name:<14} {median:>8.1f} {min(rounds):>8.1f} {median / baseline:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="rounds per variant, alternating")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies each case's calls per round")
    options = parser.parse_args()
    if not wasmtime_fastpath.ACTIVE:
        tested = ", ".join(sorted(wasmtime_fastpath.TESTED_ON))
        raise SystemExit(f"wasmtime-py {version('wasmtime')} takes the public API only (the fast path's: {tested})")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch) / "project", toolchain_from=installed_toolchain())
        run(project, "doit", *(f"bundle:{guest}" for guest in sorted({case.guest for case in CASES})))
        results = [(case, measure(project, Path(scratch), case, options.rounds, options.scale)) for case in CASES]
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"wasmtime-py {version('wasmtime')}; CPU µs per call:")
    print(f"  {'variant':<14} {'median':>8} {'fastest':>8} {'cost':>8}  (cost = median / the first variant's)")
    for case, times in results:
        report(case, times)


if __name__ == "__main__":
    main()
