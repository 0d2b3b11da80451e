"""Guest languages side by side: one sample guest per language, built and loaded the same way.

In a temporary copy of the project holding only the samples below (built for this host, with
Wasmtime artifacts), per language:
- clean build: `doit bundle:<guest>` with nothing of that guest built yet (toolchains installed,
  Zig's wasi-libc already in its global cache, the catalog's bindings generated);
- no-op build: the same again, nothing to do (median of --repeat);
- .wasm and bundle size;
- watch mode: a save of one of its sources to the verified dev bundle (`<guest>: rebuilt`), median of --repeat;
- cold start on each engine the guest's ABI runs on: compile-at-load (a bundle without artifacts,
  a fresh host AOT cache each time) against the verified AOT load, medians of --repeat, and their ratio.
Ratios are against AssemblyScript (`hello`) measured in the same run; the load average is printed too.

Run: .venv/bin/python -m bench.languages [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.cold_start import aot_cache_at, timed_load, without_artifacts
from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.integration import WatchProcess, copy_project, installed_toolchain, keep_only_guests, run, set_targets

# One small sample per language; the first is the peer. JavaScript's and Python's are components with
# an embedded engine, the headline: their compile-at-load against the AOT load.
SAMPLES = {
    "assemblyscript": "hello",
    "c": "c-counter",
    "zig": "zig-notes",
    "wasm": "handmade",
    "javascript": "counter-js",
    "python": "counter-python",
}
# What watch mode's bench appends to which source of each sample: a change its compiler ignores.
SAVES = {
    "assemblyscript": ("assembly/index.ts", "// save {n}\n"),
    "c": ("counter.c", "// save {n}\n"),
    "zig": ("main.zig", "// save {n}\n"),
    "wasm": ("answer.txt", "\n"),
    "javascript": ("index.js", "// save {n}\n"),
    "python": ("app.py", "# save {n}\n"),
}
ENGINES = ("wasmer", "wasmtime")


@dataclass(frozen=True)
class Row:
    language: str
    guest: str
    clean: float
    noop: float
    wasm_bytes: int
    bundle_bytes: int
    loads: dict[str, tuple[float, float]]  # engine: (compile-at-load, AOT load), medians
    watch: float = 0.0  # save to verified dev bundle, median


def timed(project: Path, *command: str) -> float:
    start = time.perf_counter()
    run(project, *command)
    return time.perf_counter() - start


def sample_project(scratch: Path) -> Project:
    root = copy_project(scratch / "project", toolchain_from=installed_toolchain())
    project = Project(keep_only_guests(root, list(SAMPLES.values())))
    set_targets(project.root, [host_triple()], ["host"])
    for task in ("toolchain", "devkey", "bindings"):
        run(project.root, "doit", task)
    return project


def measure_loads(project: Project, guest: str, scratch: Path, repeat: int) -> dict[str, tuple[float, float]]:
    trust = load_trust(project.dev_trust_file)
    built = read_guest(project, guest)
    aot_bundle = project.bundle_path(guest, built.version)
    compile_bundle = without_artifacts(project, aot_bundle, scratch / f"{guest}-compile.ngx", trust)
    loads = {}
    for engine in ("wasmtime",) if built.type.is_component else ENGINES:
        compiled, aot = [], []
        for attempt in range(repeat):
            with aot_cache_at(scratch / "aot" / f"{guest}-{engine}-{attempt}"):
                compiled.append(timed_load(compile_bundle, trust, engine_name=engine, expect="compiled").seconds)
            aot.append(timed_load(aot_bundle, trust, engine_name=engine, expect="artifact").seconds)
        loads[engine] = (statistics.median(compiled), statistics.median(aot))
    return loads


def measure(project: Project, scratch: Path, repeat: int) -> list[Row]:
    rows = []
    for language, guest in SAMPLES.items():
        clean = timed(project.root, "doit", f"bundle:{guest}")
        noop = statistics.median(timed(project.root, "doit", f"bundle:{guest}") for _ in range(repeat))
        bundle = project.bundle_path(guest, read_guest(project, guest).version)
        wasm = project.wasm_path(guest).stat().st_size
        loads = measure_loads(project, guest, scratch, repeat)
        rows.append(Row(language, guest, clean, noop, wasm, bundle.stat().st_size, loads))
    return rows


def watch_latencies(project: Project, rows: list[Row], repeat: int) -> list[Row]:
    """Each row with its save-to-verified-dev-bundle median, from one `ngixi watch` over the samples."""
    watch = WatchProcess(project.root)
    try:
        watch.until("watching", timeout=600)
        return [replace(row, watch=statistics.median(saves(project, watch, row, repeat))) for row in rows]
    finally:
        watch.stop()


def saves(project: Project, watch: WatchProcess, row: Row, repeat: int) -> list[float]:
    source, addition = SAVES[row.language]
    path = project.guests_dir / row.guest / source
    latencies = []
    for n in range(repeat):
        saved = time.perf_counter()
        with path.open("a") as stream:
            stream.write(addition.format(n=n))
        done = watch.until(f"{row.guest}: rebuilt", f"{row.guest}: failed")[-1]
        if not done.text.startswith(f"{row.guest}: rebuilt"):
            raise SystemExit(f"{row.guest}: the watcher's rebuild failed: {done.text}")
        latencies.append(done.arrived - saved)
    return latencies


def report(rows: list[Row], repeat: int, load_before: float) -> None:
    peer = rows[0]
    print(f"per language, medians of {repeat}; x = ratio to {peer.language} ({peer.guest}) in this run")
    header = f"{'clean s':>8} {'x':>6} {'no-op s':>8} {'x':>6} {'watch s':>8} {'x':>6} {'wasm B':>8} {'bundle B':>9}"
    print(f"{'language':15} {'guest':14} {header}")
    for row in rows:
        print(
            f"{row.language:15} {row.guest:14} {row.clean:8.2f} {row.clean / peer.clean:6.2f} {row.noop:8.2f} "
            f"{row.noop / peer.noop:6.2f} {row.watch:8.2f} {row.watch / peer.watch:6.2f} "
            f"{row.wasm_bytes:8d} {row.bundle_bytes:9d}"
        )
    print(f"\n{'language':15} {'engine':9} {'compile ms':>10} {'AOT ms':>8} {'compile/AOT':>11}")
    for row in rows:
        for engine, (compiled, aot) in row.loads.items():
            print(f"{row.language:15} {engine:9} {compiled * 1000:10.2f} {aot * 1000:8.2f} {compiled / aot:11.2f}")
    print(f"\nload average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="no-op builds and loads per guest and path")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        project = sample_project(Path(scratch))
        rows = watch_latencies(project, measure(project, Path(scratch), options.repeat), options.repeat)
    report(rows, options.repeat, load_before)


if __name__ == "__main__":
    main()
