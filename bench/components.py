"""Component guests against core guests on Wasmtime: build steps, load, and per-call cost.

Uses this project's built bundles (run `make build` first) and prints, in this process:
- build: asc of the core module, then bindings generation, embed + `component new`;
- load: verify + instantiate from the host's Wasmtime artifact, core `hello` against `hello-component`;
- calls: `add(2, 3)` on each (the component lifts and lowers through the canonical ABI), and a kv
  counter (`counter.increment` against `hello-component.count`: two kv calls and, for the component,
  a log line each);
- WASI: embed + `component new` with the WASI preview 1 adapter (`notes-component`) against
  without (`hello-component`); load of `notes-component` against core `notes`; and stdout
  throughput of the WASI probe of tests/build/integration/test_component_wasi.py, built (in a temporary copy of the
  project) as a component and as a core module, writing 11-byte lines: Wasmtime's WASI calling
  the host's writer against the host's own `fd_write`.

Run: .venv/bin/python -m bench.components [--calls N] [--lines N]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages import component
from ngixi_build.workflows import pipeline as stages
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.build.integration.test_component_wasi import add_probe, probe_manifest
from tests.conftest import REPO
from tests.integration import copy_project, run

COMPONENT = "hello-component"
WASI_COMPONENT = "notes-component"
PROBES = {"probe-component": "component", "probe-core": "core"}


def timed(work: Callable[[], object], repeat: int = 1) -> float:
    """Seconds per run, the best of `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def open_bundle(project: Project, guest: str, sandbox: Path) -> Guest:
    bundle = read_bundle(project.bundle_path(guest, "0.1.0"), load_trust(project.dev_trust_file))
    return open_guest(bundle, engine="wasmtime", sandbox=Sandbox.under(sandbox / guest))


def bench_wasi_build(project: Project) -> None:
    adapted = timed(lambda: component.componentize_guest(project, WASI_COMPONENT), repeat=3)
    print(f"build   embed + new + WASI adapter   {adapted * 1000:8.1f} ms  ({WASI_COMPONENT})")


def bench_wasi_stdout(lines: int, sandbox: Path) -> None:
    """Builds the probe both ways in a copy of the project, then times `shout(lines)` on each."""
    with tempfile.TemporaryDirectory() as directory:
        copy = copy_project(Path(directory) / "project", toolchain_from=REPO)
        for name, abi in PROBES.items():
            add_probe(copy, name, probe_manifest(name=name, abi=abi, stdout=1 << 30))
        started = time.perf_counter()
        run(copy, "doit", *(f"bundle:{name}" for name in PROBES))
        print(f"build   both probes (doit bundle)    {(time.perf_counter() - started) * 1000:8.1f} ms")
        probes = Project(copy)
        for name in PROBES:
            with open_bundle(probes, name, sandbox) as probe:
                seconds = timed(functools.partial(probe.call, "shout", (lines,)))
                written = len(probe.output.take().stdout)
                rate = f"{lines / seconds:8.0f} writes/s  {written / seconds / 1e6:5.2f} MB/s"
                print(f"stdout  {name + '.shout':<28} {rate}")


def bench_build(project: Project) -> None:
    hello = read_guest(project, "hello")
    asc_core = timed(lambda: stages.compile_guest(project, hello))
    bindings = timed(lambda: component.generate_bindings(project), repeat=3)
    componentize = timed(lambda: component.componentize_guest(project, COMPONENT), repeat=3)
    print(f"build   asc hello (core)             {asc_core * 1000:8.1f} ms")
    print(f"build   bindings from the WIT        {bindings * 1000:8.1f} ms")
    print(f"build   embed + component new        {componentize * 1000:8.1f} ms")


def load_and_close(project: Project, guest: str, sandbox: Path) -> None:
    open_bundle(project, guest, sandbox).close()


def calls_per_second(guest: Guest, export: str, calls: int) -> float:
    args = (2, 3) if export == "add" else ()
    started = time.perf_counter()
    for _ in range(calls):
        guest.call(export, args)
    return calls / (time.perf_counter() - started)


def bench_calls(project: Project, calls: int, sandbox: Path) -> None:
    for guest in ("hello", COMPONENT, "notes", WASI_COMPONENT):
        load = timed(functools.partial(load_and_close, project, guest, sandbox), repeat=5)
        print(f"load    {guest:<28} {load * 1000:8.2f} ms")
    for guest, export in (("hello", "add"), (COMPONENT, "add"), ("counter", "increment"), (COMPONENT, "count")):
        with open_bundle(project, guest, sandbox) as loaded:
            name = f"{guest}.{export}"
            print(f"calls   {name:<28} {calls_per_second(loaded, export, calls):8.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=20000)
    options = parser.parse_args()
    project = Project(REPO)
    if not project.bundle_path(WASI_COMPONENT, "0.1.0").exists():
        raise SystemExit("no built bundles: run `make build` first")
    bench_build(project)
    bench_wasi_build(project)
    with tempfile.TemporaryDirectory() as sandbox:
        bench_calls(project, options.calls, Path(sandbox))
        bench_wasi_stdout(options.lines, Path(sandbox))


if __name__ == "__main__":
    main()
