"""In-process calls and loads of a tiny guest against the bare engine, on Wasmer and Wasmtime.

Signs a tiny bundle (one `nop` export, one memory, no capabilities) with AOT artifacts for this
host for both engines, then, per engine, in rounds alternating ours and the bare engine:
- call: `InProcessTenant.call("nop")` against the engine's own call of the export (wasmer
  `instance.exports.nop()`, wasmtime `func(store)`), in µs per call;
- load: `open_tenant(..., isolated=False)` of the signed bundle (trust file read, signature
  checked, artifact hashed against the signed index, deserialized, instantiated) plus one call,
  against bare: read the same artifact from its own file, deserialize, instantiate, call, with the
  engine made once per process, as a host loading many guests would.
Prints medians and fastest rounds, the ratios of the medians against the goals (issue 24: each at
most 3x), where the µs of a call go (each layer timed alone: the engine wrapper, `Guest.call`,
`measure`, the tenant), and the load average.

Run: .venv/bin/python -m bench.inprocess [--rounds N] [--calls N] [--loads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ngixi_build.project import Project
from ngixi_build.stages.bundle import ArtifactInput
from ngixi_build.stages.precompile import precompile_guest, precompile_wasmtime
from ngixi_runtime.bundles.reader import open_bundle_file, read_bundle
from ngixi_runtime.loading.loader import likely_artifacts, open_guest
from ngixi_runtime.loading.tenants import InProcessTenant, measure, open_tenant
from ngixi_runtime.spec.targets import SUPPORTED_TARGETS, host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.wasmgen import Func, module

ENGINES = ("wasmer", "wasmtime")
GOAL = 3.0
WASM = module(functions=[Func("nop")])
MANIFEST = '[guest]\nname = "tiny"\nversion = "0.1.0"\n\n[exports.nop]\n'


@dataclass(frozen=True)
class Fixture:
    keys: KeyFiles
    bundle: Path
    artifacts: dict[str, Path]  # per engine, the same artifact as in the bundle, in its own file


def signed_tiny_bundle(directory: Path) -> Fixture:
    wasm_path = directory / "tiny.wasm"
    wasm_path.write_bytes(WASM)
    triple = host_triple()
    wasmer_out, wasmtime_out = directory / "host.wasmer", directory / "host.cwasm"
    wasmer_meta = precompile_guest(wasm_path=wasm_path, target=SUPPORTED_TARGETS[triple], out_path=wasmer_out)
    target = Project(directory).wasmtime_target(triple)
    wasmtime_meta = precompile_wasmtime(wasm_path=wasm_path, target=target, metered=False, out_path=wasmtime_out)
    keys = make_key(directory / "keys")
    artifacts = [ArtifactInput(wasmer_out, wasmer_meta), ArtifactInput(wasmtime_out, wasmtime_meta)]
    bundle = make_bundle(
        directory / "bundle", keys.key, wasm=WASM, manifest=MANIFEST, guest="tiny", artifacts=artifacts
    )
    return Fixture(keys, bundle, {"wasmer": wasmer_out, "wasmtime": wasmtime_out})


class Bare:
    """The engine alone: its engine made once, each load deserializes, instantiates and calls `nop`."""

    def __init__(self, engine: str, artifact: Path) -> None:
        self.engine = engine
        self.artifact = artifact
        if engine == "wasmer":
            import wasmer

            self._store = wasmer.Store(wasmer.engine.Universal())
        else:
            import wasmtime

            config = wasmtime.Config()
            config.epoch_interruption = True  # as the artifact was compiled
            self._engine = wasmtime.Engine(config)

    def load(self) -> Callable[[], Any]:
        """`nop`, bound to a fresh instance of the artifact read from its file, after one call."""
        code = self.artifact.read_bytes()
        if self.engine == "wasmer":
            import wasmer

            instance = wasmer.Instance(wasmer.Module.deserialize(self._store, code))
            nop: Callable[[], Any] = instance.exports.nop
        else:
            import wasmtime

            store = wasmtime.Store(self._engine)
            store.set_epoch_deadline(1 << 40)
            loaded = wasmtime.Instance(store, wasmtime.Module.deserialize(self._engine, code), [])
            func = loaded.exports(store)["nop"]
            assert isinstance(func, wasmtime.Func)
            nop = lambda: func(store)  # noqa: E731 - the bare call, bound to its store
        nop()
        return nop


def per_call(function: Callable[[], Any], calls: int) -> float:
    """µs per call over `calls` calls."""
    start = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - start) / calls * 1e6


def per_load(load: Callable[[], Any], loads: int) -> float:
    """ms per load over `loads` loads."""
    start = time.process_time()
    for _ in range(loads):
        load()
    return (time.process_time() - start) / loads * 1e3


def open_ours(fixture: Fixture, engine: str) -> InProcessTenant:
    tenant = open_tenant(fixture.bundle, trust_file=fixture.keys.trust, isolated=False, engine=engine)
    assert isinstance(tenant, InProcessTenant)
    assert tenant.origin.startswith("artifact"), tenant.origin
    return tenant


def load_ours(fixture: Fixture, engine: str) -> None:
    with open_ours(fixture, engine) as tenant:
        tenant.call("nop")


def load_stages(fixture: Fixture, engine: str, loads: int) -> dict[str, float]:
    """ms per stage of the steps `open_tenant(..., isolated=False)` takes, each timed on its own, over `loads`."""
    spent = dict.fromkeys(("trust file", "verify bundle (signature, index)", "open guest", "first call, close"), 0.0)
    for _ in range(loads):
        marks = [time.process_time()]
        trust = load_trust(fixture.keys.trust)
        marks.append(time.process_time())
        descriptor = open_bundle_file(fixture.bundle)
        verified = read_bundle(
            fixture.bundle, trust, defer_members=True, prefetch=likely_artifacts(engine), descriptor=descriptor
        )
        marks.append(time.process_time())
        guest = open_guest(verified, engine=engine)
        marks.append(time.process_time())
        measure(guest, "nop", ())
        guest.close()
        os.close(descriptor)
        marks.append(time.process_time())
        for name, begun, ended in zip(spent, marks, marks[1:], strict=False):
            spent[name] += (ended - begun) / loads * 1e3
    return spent


def call_layers(tenant: InProcessTenant, bare: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """Each layer of an in-process call, outermost last: timed alone, their differences say where the µs go."""
    guest = tenant._guest  # the benchmark looks inside on purpose
    instance = guest._instance
    assert instance is not None  # none only after a failed call's renewal failed
    return {
        "bare engine call": bare,
        "engine wrapper (instance.call)": lambda: instance.call("nop", ()),
        "Guest.call": lambda: guest.call("nop", ()),
        "measure()": lambda: measure(guest, "nop", ()),
        "InProcessTenant.call": lambda: tenant.call("nop"),
    }


def summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples):8.3f}  fastest {min(samples):8.3f}"


def bench_engine(fixture: Fixture, engine: str, *, rounds: int, calls: int, loads: int) -> tuple[float, float]:
    """Prints the engine's figures; returns the call and load ratios of the medians."""
    bare = Bare(engine, fixture.artifacts[engine])
    tenant = open_ours(fixture, engine)
    layers = call_layers(tenant, bare.load())
    call_times: dict[str, list[float]] = {name: [] for name in layers}
    load_times: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(rounds):
        for name, function in layers.items():
            call_times[name].append(per_call(function, calls))
        load_times["ours"].append(per_load(lambda: load_ours(fixture, engine), loads))
        load_times["bare"].append(per_load(bare.load, loads))
    tenant.close()
    print(f"\n{engine}: call of nop, µs per call ({rounds} rounds of {calls})")
    previous = 0.0
    for name, samples in call_times.items():
        median = statistics.median(samples)
        print(f"  {name:34} {summary(samples)}   +{median - previous:6.3f} over the layer inside")
        previous = median
    call_ratio = statistics.median(call_times["InProcessTenant.call"]) / statistics.median(
        call_times["bare engine call"]
    )
    print(f"{engine}: load + one call, ms per load ({rounds} rounds of {loads})")
    for name, samples in load_times.items():
        print(f"  {name:34} {summary(samples)}")
    print(f"{engine}: where a load's ms go (the steps of open_tenant, {loads} loads)")
    for name, ms in load_stages(fixture, engine, loads).items():
        print(f"  {name:34} {ms:8.3f}")
    load_ratio = statistics.median(load_times["ours"]) / statistics.median(load_times["bare"])
    return call_ratio, load_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--loads", type=int, default=50)
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    ratios: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["NGIXI_STATE_DIR"] = str(Path(scratch) / "state")
        os.environ["NGIXI_AOT_CACHE"] = str(Path(scratch) / "aot")
        fixture = signed_tiny_bundle(Path(scratch))
        for engine in ENGINES:
            ratios[engine] = bench_engine(
                fixture, engine, rounds=options.rounds, calls=options.calls, loads=options.loads
            )
    print(f"\nratios of the medians (goal: each ≤ {GOAL:.0f}x)")
    for engine, (call_ratio, load_ratio) in ratios.items():
        print(
            f"  {engine:9} nop() {call_ratio:5.2f}x the bare call {'ok' if call_ratio <= GOAL else 'OVER'};"
            f"  verified AOT load {load_ratio:5.2f}x bare {'ok' if load_ratio <= GOAL else 'OVER'}"
        )
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
