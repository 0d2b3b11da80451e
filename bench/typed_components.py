"""A typed component call, string in and record out, through ngixi against bare wasmtime-py, in one run.

`words-component.analyze(text) -> stats` (a record of three u32 and a string) with texts of 16 B,
1 KiB and 64 KiB, called:
- bare: wasmtime-py's component API on the same component (`Func.__call__`, lifting to a
  `wasmtime.component.Record`), no limits, no deadline: the floor;
- in-process: `Guest.call` (checks the arguments against the WIT types, arms the deadline, lifts to a dict);
- isolated: a tenant's child process (the same, plus the JSON line to and from the child).
Prints microseconds per call (the median of several rounds) and each path's ratio to the bare call,
with the load average. Uses the built bundle (run `make build` first).

Run: .venv/bin/python -m bench.typed_components [--calls N]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component as wc

from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO

GUEST, EXPORT = "words-component", "analyze"
SIZES = (16, 1024, 65536)
ROUNDS = 5


def text_of(size: int) -> str:
    return ("the quick brown fox jumps over the lazy dog " * (size // 44 + 1))[:size]


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    """Microseconds per call, the median of ROUNDS rounds of `calls` calls."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(rounds)


def bare_call(wasm: Path, text: str) -> Callable[[], Any]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wc.Linker(engine).instantiate(store, wc.Component.from_file(engine, str(wasm)))
    function = instance.get_func(store, EXPORT)
    assert function is not None
    return lambda: function(store, text)


def built_bundle(project: Project, guest: str) -> Path:
    """The path of the guest's built bundle; exits saying to build it when there is none."""
    path = project.bundle_path(guest, "0.1.0")
    if not path.exists():
        raise SystemExit("no built bundles: run `make build` first")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    options = parser.parse_args()
    project = Project(REPO)
    bundle_path = built_bundle(project, GUEST)
    load_before = os.getloadavg()[0]
    trust = load_trust(project.dev_trust_file)
    print(f"{GUEST}.{EXPORT}: string in, record out; microseconds per call (ratio to bare wasmtime-py)")
    with (
        tempfile.TemporaryDirectory() as sandbox,
        open_guest(read_bundle(bundle_path, trust), engine="wasmtime", sandbox=Sandbox.under(Path(sandbox))) as guest,
        open_tenant(bundle_path, trust_file=project.dev_trust_file) as tenant,
    ):
        for size in SIZES:
            text = text_of(size)
            assert guest.call(EXPORT, [text]) == tenant.call(EXPORT, [text]).values
            bare = per_call_us(bare_call(project.wasm_path(GUEST), text), options.calls)
            in_process = per_call_us(functools.partial(guest.call, EXPORT, [text]), options.calls)
            isolated = per_call_us(functools.partial(tenant.call, EXPORT, [text]), options.calls)
            print(
                f"{size:>6} B  bare {bare:8.1f}   in-process {in_process:8.1f} ({in_process / bare:4.2f}x)"
                f"   isolated {isolated:8.1f} ({isolated / bare:4.2f}x)"
            )
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
