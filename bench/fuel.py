"""What Wasmtime's fuel metering (limits.fuel) costs: per call, and per loop iteration inside a call.

Loads one generated module twice in this process, without and with a fuel limit, and times (in CPU
time of this process, which other work on a shared machine disturbs less than the wall clock)
- a near-empty call (`add`), fastest of several rounds of many calls: the per-call overhead
  (refuelling the store before each call, plus the metering code of the call itself);
- one call that counts down a loop of many iterations: the metering code's share of guest work.

Run: .venv/bin/python -m bench.fuel [--calls N] [--iterations N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from ngixi_runtime.engines import wasmtime as engine_wasmtime
from ngixi_runtime.engines.base import RunLimits
from tests.wasmgen import ADD_BODY, Func, module

# loop { local.get 0; i32.const 1; i32.sub; local.tee 0; br_if 0 } local.get 0
COUNT_DOWN = b"\x03\x40\x20\x00\x41\x01\x6b\x22\x00\x0d\x00\x0b\x20\x00"
WASM = module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY), Func("count", ["i32"], ["i32"], COUNT_DOWN)])
ROUNDS = 9


def instance(fuel: int | None) -> engine_wasmtime.WasmtimeInstance:
    limits = RunLimits(timeout_ms=60_000, memory_pages=1, fuel=fuel)
    prepared = engine_wasmtime.prepare(guest="bench", wasm=WASM, limits=limits)
    return engine_wasmtime.instantiate(prepared, imports=(), on_memory=lambda _: None)


def fastest_of_each(works: list[Callable[[], object]]) -> list[float]:
    """The fastest of several rounds of each work; rounds alternate, so drift on the machine hits all alike."""
    best = [float("inf")] * len(works)
    for _ in range(ROUNDS):
        for position, work in enumerate(works):
            start = time.process_time()
            work()
            best[position] = min(best[position], time.process_time() - start)
    return best


def measure(calls: int, iterations: int) -> list[tuple[float, float]]:
    """Microseconds per `add` call and nanoseconds per loop iteration, without and with fuel."""
    instances = [instance(None), instance(1 << 62)]

    def many_calls(guest: engine_wasmtime.WasmtimeInstance) -> Callable[[], None]:
        def work() -> None:
            for _ in range(calls):
                guest.call("add", (2, 3))

        return work

    per_call = fastest_of_each([many_calls(i) for i in instances])
    per_loop = fastest_of_each([partial(i.call, "count", (iterations,)) for i in instances])
    return [(c / calls * 1e6, loop / iterations * 1e9) for c, loop in zip(per_call, per_loop, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--iterations", type=int, default=20_000_000)
    options = parser.parse_args()
    plain, metered = measure(options.calls, options.iterations)
    print(f"{'Wasmtime':<22} {'µs per call':>12} {'ns per loop iteration':>22}")
    for label, (per_call, per_iteration) in (("no fuel", plain), ("limits.fuel set", metered)):
        print(f"{label:<22} {per_call:>12.2f} {per_iteration:>22.3f}")
    print(
        f"{'fuel overhead':<22} {metered[0] - plain[0]:>+12.2f} {metered[1] - plain[1]:>+22.3f}"
        f"  ({metered[0] / plain[0] - 1:+.0%} per call, {metered[1] / plain[1] - 1:+.0%} per iteration)"
    )


if __name__ == "__main__":
    main()
