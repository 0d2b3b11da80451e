"""The round trip of one call to an isolated tenant, against Extism's in-process call and a bare pipe.

One small module, generated here and signed into a bundle as the tests' fixtures do: `nop`
(returns 0, callable by Extism too, the same .wasm) and `echo` (its input back through the call
data ABI). Timed, median µs per call:
- ngixi isolated, on Wasmer and on Wasmtime: `tenant.call("nop")`, then `echo` of 4 KiB and 1 MiB;
- ngixi in-process, on both engines (what the call costs without the process boundary);
- Extism's Python SDK, `plugin.call("nop", b"")` on the same `nop` module, and its zero-copy echo
  (bench/data_abi.py) for the sizes;
- the floor: a bare os.write/os.read round trip of the same bytes (a 4-byte size, then the bytes)
  between this process and a second Python process echoing them back.
Ratios are over Extism's call and over the floor, measured in the same run (the variants take turns, a few
calls each, so that all see the same load), with the load average. Then, for the `nop` of each variant with a
second process (the floor, ngixi isolated), the CPU time per call on each side: this process's
(`time.process_time_ns`) and the other's (its main thread's time on a CPU, `/proc/<pid>/schedstat`), which
the load moves less than the time a call takes.

Run: .venv/bin/python -m bench.isolated_calls [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path

import extism
import wasmtime

from bench.data_abi import EXTISM_ZERO_COPY
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import make_bundle, make_key
from tests.run.integration.test_call_data import ECHO, IMPORTS
from tests.wasmgen import Func, module

SIZES = (0, 4 << 10, 1 << 20)
ENGINES = ("wasmer", "wasmtime")
Call = Callable[[bytes], object]
# The process a variant's calls go to, by the variant's name (the floor's echo, an isolated tenant's child).
PEERS: dict[str, int] = {}

NOP = module(functions=[Func("nop", results=["i32"])])
MEMORY_PAGES = 20  # room for a 1 MiB input at ECHO's buffer
ECHO_MODULE = module(imports=IMPORTS, functions=[Func("echo", body=ECHO)], memory=(MEMORY_PAGES, MEMORY_PAGES))
MANIFEST = f"""\
[guest]
name = "{{name}}"
version = "0.1.0"

[exports.{{export}}]
{{declaration}}

[limits]
memory_pages = {MEMORY_PAGES}
input_bytes = {2 << 20}
output_bytes = {2 << 20}
"""
# A second Python process echoing framed messages back (a 4-byte size, then that many bytes), read in place.
_ECHO_PROCESS = """
import os, struct
def read_into(buffer):
    view, filled = memoryview(buffer), 0
    while filled < len(buffer):
        count = os.readv(0, [view[filled:]])
        if not count:
            raise SystemExit
        filled += count
while True:
    size = bytearray(4)
    read_into(size)
    data = bytearray(struct.unpack("<I", size)[0])
    read_into(data)
    os.writev(1, [size, data])
"""


def medians_us(variants: dict[str, Call], data: bytes, rounds: int) -> dict[str, float]:
    """The median µs of each variant's calls, taken in turns of a few calls each so that all see the same load."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    turn = max(1, rounds // 20)
    for _ in range(0, rounds, turn):
        for name, call in variants.items():
            call(data)
            for _ in range(turn):
                start = time.perf_counter()
                call(data)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples) * 1e6 for name, samples in times.items()}


def bundles(directory: Path) -> tuple[Path, Path, Path]:
    """The nop and echo bundles and the trust file that trusts their key."""
    keys = make_key(directory / "keys")
    nop = MANIFEST.format(name="nop", export="nop", declaration='results = ["i32"]')
    echo = MANIFEST.format(name="echo", export="echo", declaration='input = "bytes"\noutput = "bytes"')
    return (
        make_bundle(directory / "nop", keys.key, wasm=NOP, manifest=nop, guest="nop"),
        make_bundle(directory / "echo", keys.key, wasm=ECHO_MODULE, manifest=echo, guest="echo"),
        keys.trust,
    )


@contextmanager
def ngixi_calls(nop: Path, echo: Path, trust: Path, *, engine: str, isolated: bool) -> Iterator[Call]:
    with (
        open_tenant(nop, trust_file=trust, isolated=isolated, engine=engine) as nops,
        open_tenant(echo, trust_file=trust, isolated=isolated, engine=engine) as echoes,
    ):
        if nops.call("nop").values != (0,) or echoes.call("echo", input=b"x").output != b"x":
            raise SystemExit(f"ngixi on {engine} did not answer as expected")
        if isinstance(nops, IsolatedTenant) and nops.pid is not None:
            PEERS[f"ngixi {engine}, isolated"] = nops.pid
        yield lambda data: echoes.call("echo", input=data) if data else nops.call("nop")


@contextmanager
def extism_calls() -> Iterator[Call]:
    with (
        extism.Plugin(NOP, wasi=False) as nops,
        extism.Plugin(bytes(wasmtime.wat2wasm(EXTISM_ZERO_COPY)), wasi=False) as echoes,
    ):
        yield lambda data: echoes.call("echo", data) if data else nops.call("nop", b"")


@contextmanager
def pipe_floor() -> Iterator[Call]:
    """A bare write and read of the framed bytes to a second Python process and back."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _ECHO_PROCESS], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    requests, replies = process.stdin.fileno(), process.stdout.fileno()
    PEERS["pipe round trip (floor)"] = process.pid

    def round_trip(data: bytes) -> bytes:
        os.writev(requests, [struct.pack("<I", len(data)), data])
        received = bytearray(4 + len(data))
        view, filled = memoryview(received), 0
        while filled < len(received):
            filled += os.readv(replies, [view[filled:]])
        return bytes(received)

    try:
        yield round_trip
    finally:
        process.stdin.close()
        process.wait()


def cpu_us_per_call(variants: dict[str, Call], rounds: int) -> dict[str, tuple[float, float]]:
    """The CPU µs per `nop` call of each variant with a peer process: this process's and the peer's, in turns."""
    spent = {name: [0, 0] for name in PEERS}
    turn = max(1, rounds // 20)
    for _ in range(0, rounds, turn):
        for name, peer in PEERS.items():
            ours, theirs = time.process_time_ns(), _cpu_ns(peer)
            for _ in range(turn):
                variants[name](b"")
            spent[name][0] += time.process_time_ns() - ours
            spent[name][1] += _cpu_ns(peer) - theirs
    calls = len(range(0, rounds, turn)) * turn
    return {name: (ours / calls / 1000, theirs / calls / 1000) for name, (ours, theirs) in spent.items()}


def _cpu_ns(pid: int) -> int:
    """The time the main thread of process `pid` has spent on a CPU (ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def rounds_for(size: int, rounds: int) -> int:
    return max(10, rounds // 100) if size >= 1 << 20 else rounds // 2 if size else rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000, help="calls per size (fewer for the larger sizes)")
    options = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        nop, echo, trust = bundles(Path(scratch))
        variants = {"extism plugin.call": stack.enter_context(extism_calls())}
        variants["pipe round trip (floor)"] = stack.enter_context(pipe_floor())
        for engine in ENGINES:
            for isolated in (True, False):
                name = f"ngixi {engine}, {'isolated' if isolated else 'in-process'}"
                variants[name] = stack.enter_context(ngixi_calls(nop, echo, trust, engine=engine, isolated=isolated))
        by_size = [medians_us(variants, os.urandom(size), rounds_for(size, options.rounds)) for size in SIZES]
        results = {name: [medians[name] for medians in by_size] for name in variants}
        cpu = cpu_us_per_call(variants, options.rounds)
    load_after = os.getloadavg()
    print(f"load average {_load(load_before)} before, {_load(load_after)} after, on {os.cpu_count()} cores")
    print(f"extism {version('extism')}, wasmer {version('wasmer')}, wasmtime-py {version('wasmtime')}")
    print("median µs per call (nop, then echo of the size through the data ABI); x extism, x floor")
    print(f"  {'':<28}" + "".join(f"{_size(size):>26}" for size in SIZES))
    peer, floor = results["extism plugin.call"], results["pipe round trip (floor)"]
    for name, times in results.items():
        cells = "".join(f"{t:>10.1f} ({t / p:5.2f}x {t / f:5.2f}x)" for t, p, f in zip(times, peer, floor, strict=True))
        print(f"  {name:<28}{cells}")
    print("CPU µs per nop call: this process, the other; x the floor's")
    floor_cpu = cpu["pipe round trip (floor)"]
    for name, (ours, theirs) in cpu.items():
        print(f"  {name:<28}{ours:10.1f} {theirs:8.1f}   ({ours / floor_cpu[0]:5.2f}x {theirs / floor_cpu[1]:5.2f}x)")
    for engine in ENGINES:
        ratio = results[f"ngixi {engine}, isolated"][0] / peer[0]
        verdict = "met" if ratio <= 2 else "NOT met"
        print(f"goal: isolated nop() on {engine} <= 2x extism plugin.call: {ratio:.2f}x, {verdict}")


def _load(average: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.2f}" for value in average)


def _size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size else "nop"


if __name__ == "__main__":
    main()
