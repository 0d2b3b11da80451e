"""Bytes through a component's `list<u8>` against a core guest's call data, in one run.

A component whose export returns its `list<u8>` argument (written in WAT: the guest does no work, so this is the
crossing alone, both ways) and the sample core guest `echo` (`input = "bytes"`, `output = "bytes"`: the floor), each
given the same MiB of random bytes through `tenant.call`:
- core: `echo` in-process, its call data (the floor);
- bulk: the component in-process, its list copied in bulk (`wasmtime_fastpath.components.component_export`);
- public: the same through wasmtime-py's public `component.Func.__call__`, one Python call per byte each way;
- isolated: the component in a tenant's child process (bulk there too, plus the bytes as base64 in JSON both ways);
- host bulk / host public: through wasmtime-py's component API, a component passing its `list<u8>` to a host function
  that returns it, and returning that: the host function defined by
  `wasmtime_fastpath.components.define_component_import`, or by wasmtime-py's `LinkerInstance.add_func` (the export
  called in bulk both times).
Rounds alternate the paths; prints the median seconds per call of each and its ratio to the floor, with the load
average. Uses the built `echo` bundle (run `make build` first).

Run: .venv/bin/python -m bench.component_bytes [--mib N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import wasmtime
import wasmtime.component as wc

from bench.typed_components import built_bundle
from ngixi_build.project import Project
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.wasmtime_fastpath import components
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import REPO, make_bundle, make_key
from tests.run.unit.test_component_lists import COMPONENT, IMPORTING, MANIFEST

CORE = "echo"


@contextmanager
def public_api() -> Iterator[None]:
    """wasmtime-py's public call for the exports first called inside (each export's way is chosen at its first)."""
    wasmtime_fastpath.ACTIVE, active = False, wasmtime_fastpath.ACTIVE
    try:
        yield
    finally:
        wasmtime_fastpath.ACTIVE = active


def component_bundle(directory: Path) -> tuple[Path, Path]:
    keys = make_key(directory / "keys")
    manifest = MANIFEST.replace("memory_pages = 64", "memory_pages = 1024").replace("5000", "120000")
    wasm = bytes(wasmtime.wat2wasm(COMPONENT))
    return make_bundle(directory, keys.key, wasm=wasm, manifest=manifest, guest="lists"), keys.trust


def host_round_trip(data: bytes, *, bulk: bool) -> Callable[[], object]:
    """A call of IMPORTING's `run` with `data`, its host function returning what it is given."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    with linker.root() as root, root.add_instance("host") as host:
        if not (bulk and components.define_component_import(host, "swap", lambda _store, given: given)):
            host.add_func("swap", lambda _store, given: given)
    run = linker.instantiate(store, wc.Component(engine, IMPORTING)).get_func(store, "run")
    assert run is not None
    call = components.component_export(run, store)
    assert call is not None
    return lambda: call(store, [data])


def seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=float, default=1.0, help="bytes per call, in MiB (the core echo takes 1 MiB)")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    project = Project(REPO)
    core_bundle = built_bundle(project, CORE)
    data = random.Random(7).randbytes(int(options.mib * 2**20))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        bundle, trust = component_bundle(Path(directory))
        core = open_tenant(core_bundle, trust_file=project.dev_trust_file, isolated=False)
        bulk = open_tenant(bundle, trust_file=trust, isolated=False)
        with public_api():
            public = open_tenant(bundle, trust_file=trust, isolated=False)
            public.call("echo-u8", [b""])
        isolated = open_tenant(bundle, trust_file=trust, isolated=True)
        for tenant in (core, bulk, public, isolated):
            stack.enter_context(tenant)
        calls: dict[str, Callable[[], object]] = {
            "core": lambda: core.call(CORE, input=data).output,
            "bulk": lambda: bulk.call("echo-u8", [data]).values,
            "public": lambda: public.call("echo-u8", [data]).values,
            "isolated": lambda: isolated.call("echo-u8", [data]).values,
            "host bulk": host_round_trip(data, bulk=True),
            "host public": host_round_trip(data, bulk=False),
        }
        assert calls["core"]() == data and all(calls[way]() == (data,) for way in ("bulk", "public", "isolated"))
        assert calls["host bulk"]() == calls["host public"]() == data
        times: dict[str, list[float]] = {way: [] for way in calls}
        for _ in range(options.rounds):
            for way, call in calls.items():
                times[way].append(seconds(call))
    floor = statistics.median(times["core"])
    print(f"{len(data):,} bytes in and out; seconds per call, median of {options.rounds} alternating rounds")
    for way, measured in times.items():
        median = statistics.median(measured)
        print(f"  {way:<11} {median:8.4f} s  {median / floor:7.1f}x the core guest's call data")
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
