"""Round trip of 0 B, 1 KiB, 64 KiB and 1 MiB through an echo export: the call data ABI against Extism.

Ngixi: the `echo` sample (AssemblyScript, `output.bytes(input.bytes())`), in-process and isolated, on
Wasmer and Wasmtime, through `tenant.call("echo", input=data)`. Extism: its Python SDK's
`plugin.call("echo", data)` on two echo plugins, measured in the same run: one copying as Extism's
PDK does (the input into guest memory 8 bytes per `input_load_u64`, then `alloc`, `store_u64` and
`output_set`), and the floor, `output_set(input_offset(), input_length())`, which never copies.
Ratios are the median time per call over the PDK-style Extism plugin's.

Run: .venv/bin/python -m bench.data_abi [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path

import extism
import wasmtime

from ngixi_runtime.loading.tenants import open_tenant
from tests.integration import copy_project, installed_toolchain, run

SIZES = (0, 1 << 10, 64 << 10, 1 << 20)
Call = Callable[[bytes], bytes]

_EXTISM_IMPORTS = """
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "input_load_u64" (func $input_load_u64 (param i64) (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 40)
"""
# As Extism's PDKs do: whole words through input_load_u64 / store_u64, the tail byte by byte.
EXTISM_COPYING = f"""(module {_EXTISM_IMPORTS}
  (func (export "echo") (result i32)
    (local $length i64) (local $at i64) (local $out i64)
    (local.set $length (call $input_length))
    (block $loaded (loop $load
      (br_if $loaded (i64.gt_u (i64.add (local.get $at) (i64.const 8)) (local.get $length)))
      (i64.store (i32.wrap_i64 (local.get $at)) (call $input_load_u64 (local.get $at)))
      (local.set $at (i64.add (local.get $at) (i64.const 8)))
      (br $load)))
    (block $tail (loop $byte
      (br_if $tail (i64.ge_u (local.get $at) (local.get $length)))
      (i32.store8 (i32.wrap_i64 (local.get $at)) (call $input_load_u8 (local.get $at)))
      (local.set $at (i64.add (local.get $at) (i64.const 1)))
      (br $byte)))
    (local.set $out (call $alloc (local.get $length)))
    (local.set $at (i64.const 0))
    (block $stored (loop $store
      (br_if $stored (i64.gt_u (i64.add (local.get $at) (i64.const 8)) (local.get $length)))
      (call $store_u64 (i64.add (local.get $out) (local.get $at)) (i64.load (i32.wrap_i64 (local.get $at))))
      (local.set $at (i64.add (local.get $at) (i64.const 8)))
      (br $store)))
    (block $done (loop $last
      (br_if $done (i64.ge_u (local.get $at) (local.get $length)))
      (call $store_u8 (i64.add (local.get $out) (local.get $at)) (i32.load8_u (i32.wrap_i64 (local.get $at))))
      (local.set $at (i64.add (local.get $at) (i64.const 1)))
      (br $last)))
    (call $output_set (local.get $out) (local.get $length))
    (i32.const 0)))
"""
EXTISM_ZERO_COPY = f"""(module {_EXTISM_IMPORTS}
  (func (export "echo") (result i32)
    (call $output_set (call $input_offset) (call $input_length))
    (i32.const 0)))
"""


def median_us(call: Call, data: bytes, rounds: int) -> float:
    """The median time of one round trip, in µs, after checking that it returns `data`."""
    if call(data) != data:
        raise SystemExit(f"an echo returned other bytes for {len(data)} bytes in")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


@contextmanager
def ngixi_echo(bundle: Path, trust: Path, *, engine: str, isolated: bool) -> Iterator[Call]:
    with open_tenant(bundle, trust_file=trust, isolated=isolated, engine=engine) as tenant:
        yield lambda data: bytes(tenant.call("echo", input=data).data)


@contextmanager
def extism_echo(wat: str) -> Iterator[Call]:
    with extism.Plugin(bytes(wasmtime.wat2wasm(wat)), wasi=False) as plugin:
        yield lambda data: bytes(plugin.call("echo", data))


def rounds_for(size: int, rounds: int) -> int:
    return max(5, rounds // 20) if size >= 1 << 20 else rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="calls per size (a twentieth of it for 1 MiB)")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        project = copy_project(Path(scratch) / "project", toolchain_from=installed_toolchain())
        run(project, "doit", "bundle:echo")
        bundle, trust = project / "artifacts/bundles/echo-0.1.0.ngx", project / ".ngixi/trust.toml"
        variants = {
            "extism, PDK-style copy": stack.enter_context(extism_echo(EXTISM_COPYING)),
            "extism, zero-copy floor": stack.enter_context(extism_echo(EXTISM_ZERO_COPY)),
        }
        for engine in ("wasmer", "wasmtime"):
            for isolated in (False, True):
                name = f"ngixi {engine}, {'isolated' if isolated else 'in-process'}"
                variants[name] = stack.enter_context(ngixi_echo(bundle, trust, engine=engine, isolated=isolated))
        results = {
            name: [median_us(call, os.urandom(size), rounds_for(size, options.rounds)) for size in SIZES]
            for name, call in variants.items()
        }
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"extism {version('extism')} (extism-sys {version('extism-sys')}), wasmtime-py {version('wasmtime')}")
    print("median µs per round trip (ratio: over the PDK-style Extism plugin's)")
    print(f"  {'':<28}" + "".join(f"{_size(size):>20}" for size in SIZES))
    peer = results["extism, PDK-style copy"]
    for name, times in results.items():
        cells = "".join(f"{t:>11.0f} ({t / p:5.2f}x)" for t, p in zip(times, peer, strict=True))
        print(f"  {name:<28}{cells}")


def _size(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB" if size else "0 B"


if __name__ == "__main__":
    main()
