"""Save-to-bundle latency of `ngixi watch` (dev profile) and `ngixi watch --release`, against a plain
`doit build`, on a copy of the project.

Each round appends a function to the hello guest and times from the file write to the watcher's
"rebuilt" line, which it prints once the new bundle is in place and verified; the bundle is then
checked for the new export, and the next edit waits until the background steps have put every
target's artifact in the bundle. The same edits are then timed with `doit build`. The CPU time the
watcher and its compiler spend per edit is printed too (the machine may be shared), and the median
of each rebuild step as the watcher logs it with -v ("rest": event delivery, bookkeeping, output).

Run: .venv/bin/python -m bench.watch_latency [--edits 20] [--release-edits 10] [--doit-edits 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.build_times import edit_hello, timed
from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import VerifiedBundle, read_bundle
from ngixi_runtime.spec.bundle_format import BuildProfile
from ngixi_runtime.spec.wasm import read_module_info
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO
from tests.integration import Line, WatchProcess, compiler_processes, copy_project, run, wait_until


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    p50, p95 = percentile(seconds, 0.5) * 1000, percentile(seconds, 0.95) * 1000
    return f"{name:<34} n={len(seconds):<3} p50 {p50:7.0f} ms   p95 {p95:7.0f} ms   max {max(seconds) * 1000:7.0f} ms"


def hello_bundle(project: Project) -> VerifiedBundle:
    return read_bundle(project.bundle_path("hello", "0.1.0"), load_trust(project.dev_trust_file))


def has_every_target(project: Project, targets: int) -> bool:
    return len(hello_bundle(project).index.artifacts) == targets


def exports_of_hello(project: Project) -> set[str]:
    bundle = hello_bundle(project)
    info = read_module_info(bundle.data(bundle.index.member("wasm")), source="hello")
    return {e.name for e in info.exports}


def cpu_ms(pid: int) -> float:
    """User + system CPU time a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class Rounds:
    latencies: list[float] = field(default_factory=list)
    watcher_cpu: list[float] = field(default_factory=list)
    compiler_cpu: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))

    def add_steps(self, lines: list[Line], latency: float) -> None:
        """The watcher's `hello: steps: settle 101 ms, compile 80 ms, ...` line of this rebuild."""
        logged = next(line.text for line in lines if line.text.startswith("hello: steps: "))
        total = 0.0
        for step in logged.removeprefix("hello: steps: ").split(", "):
            name, milliseconds = step.removesuffix(" ms").rsplit(" ", 1)
            self.steps[name].append(float(milliseconds) / 1000)
            total += float(milliseconds) / 1000
        self.steps["rest"].append(latency - total)

    def breakdown(self) -> str:
        return ", ".join(f"{name} {statistics.median(values) * 1000:.0f}" for name, values in self.steps.items())


def watch_rounds(root: Path, edits: int, first: int, profile: BuildProfile) -> Rounds:
    """Latency per edit, the CPU time the watcher and its compiler spent on each edit, and its steps."""
    project = Project(root, profile=profile)
    targets = len(project.targets())
    watcher = WatchProcess(root, ("ngixi", "-v", "watch", *(["--release"] if profile == "release" else [])))
    rounds = Rounds()
    try:
        watcher.until("watching")
        (compiler,) = compiler_processes(watcher.process.pid)
        for n in range(first, first + edits):
            before = cpu_ms(watcher.process.pid), cpu_ms(compiler)
            written = time.perf_counter()
            edit_hello(root, n)
            lines = watcher.until("hello: rebuilt", "hello: failed")
            assert lines[-1].text.startswith("hello: rebuilt"), lines
            rounds.latencies.append(lines[-1].arrived - written)
            rounds.add_steps(lines, rounds.latencies[-1])
            assert f"bench{n}" in exports_of_hello(project), f"edit {n} is not in the {profile} bundle"
            wait_until(lambda: has_every_target(project, targets), what="the background steps")
            rounds.watcher_cpu.append(cpu_ms(watcher.process.pid) - before[0])
            rounds.compiler_cpu.append(cpu_ms(compiler) - before[1])
        return rounds
    finally:
        watcher.stop()


def doit_rounds(root: Path, edits: int, first: int) -> list[float]:
    rounds = []
    for n in range(first, first + edits):
        edit_hello(root, n)
        rounds.append(timed(lambda: run(root, "doit", "build")))
        assert f"bench{n}" in exports_of_hello(Project(root))
    return rounds


def details(name: str, rounds: Rounds) -> str:
    return (
        f"{name}: steps (median ms) {rounds.breakdown()}\n"
        f"  CPU per edit (median): compiler {statistics.median(rounds.compiler_cpu):.0f} ms, "
        f"watcher {statistics.median(rounds.watcher_cpu):.0f} ms (all targets' artifacts included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--release-edits", type=int, default=10)
    parser.add_argument("--doit-edits", type=int, default=5)
    options = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch) / "project", toolchain_from=REPO)
        run(project, "doit", "build")
        dev = watch_rounds(project, options.edits, 0, "dev")
        release = watch_rounds(project, options.release_edits, options.edits, "release")
        built = doit_rounds(project, options.doit_edits, first=options.edits + options.release_edits)
    print(f"load average after:  {os.getloadavg()[0]:.2f}")
    print(summary("watch: write → verified dev bundle", dev.latencies))
    print(summary("watch --release: same, release flags", release.latencies))
    print(summary("doit build after an edit", built))
    print(details("watch", dev))
    print(details("watch --release", release))


if __name__ == "__main__":
    main()
