"""WASI-heavy calls per second: the host's own WASI (our loader, on Wasmer and on Wasmtime) against
wasmtime-py's WASI (`wasmtime.WasiConfig`) running the same module on the same machine.

One core module, made here, exports three loops over WASI preview 1 calls on its preopen `/data`:
- `open_read_close(n)`: path_open + fd_read of a 100-byte file + fd_close, n times;
- `write_mib(n)`: path_open (create, truncate) + one 1 MiB fd_write + fd_close, n times;
- `readdir(n)`: path_open of a directory of 1,000 files + fd_readdir of it all + fd_close, n times.
Ours runs as a signed bundle through the loader (in-process: the WASI calls are what is measured,
not a tenant's pipe). Each figure is the best of `--repeat` runs; ratios are ours / wasmtime-py's time
per operation (above 1: ours is slower). The load average is printed with them.

Run: .venv/bin/python -m bench.wasi [--calls N] [--repeat N]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import wasmtime

from bench.components import timed
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.abi import (
    OFLAG_CREAT,
    OFLAG_DIRECTORY,
    OFLAG_TRUNC,
    RIGHT_FD_READ,
    RIGHT_FD_READDIR,
    RIGHT_FD_WRITE,
)
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import make_bundle, make_key
from tests.wasmgen import DROP, I64, Func, Imp, call_import, load_i32, module, push

I32 = "i32"
ENGINES = ("wasmer", "wasmtime")
PREOPEN = 3
MIB = 1 << 20
OUT, IOV, DONE, PATHS, LISTING, BUFFER = 16, 32, 48, 64, 1 << 16, MIB
PATH_OPEN = Imp("wasi_snapshot_preview1", "path_open", [I32] * 5 + ["i64", "i64", I32, I32], [I32])
FD_READ = Imp("wasi_snapshot_preview1", "fd_read", [I32] * 4, [I32])
FD_WRITE = Imp("wasi_snapshot_preview1", "fd_write", [I32] * 4, [I32])
FD_CLOSE = Imp("wasi_snapshot_preview1", "fd_close", [I32], [I32])
FD_READDIR = Imp("wasi_snapshot_preview1", "fd_readdir", [I32, I32, I32, "i64", I32], [I32])
IMPORTS = [PATH_OPEN, FD_READ, FD_WRITE, FD_CLOSE, FD_READDIR]
NAMES = {"small.txt": PATHS, "big.bin": PATHS + 16, "many": PATHS + 32}
OPERATIONS = {
    "open_read_close": "open/read/close 100 B",
    "write_mib": "open/write 1 MiB/close",
    "readdir": "readdir 1,000",
}
MANIFEST = (
    '[guest]\nname = "wasi-bench"\nversion = "0.1.0"\n'
    + "".join(f'[exports.{name}]\nparams = ["i32"]\nresults = ["i32"]\n' for name in OPERATIONS)
    + "[capabilities.stdio]\n"
    + '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'
    + "[limits]\nmemory_pages = 40\ntimeout_ms = 600000\n"
)


def _open(name: str, oflags: int, rights: int) -> bytes:
    return call_import(0, PREOPEN, 0, NAMES[name], len(name), oflags, I64(rights), I64(0), 0, OUT) + DROP


def _loop(body: bytes) -> bytes:
    """`body` n times (n: the function's parameter, at least 1), then 0."""
    countdown = b"\x20\x00" + push(1) + b"\x6b\x22\x00\x0d\x00"  # local.get 0; i32.sub 1; local.tee 0; br_if 0
    return b"\x03\x40" + body + countdown + b"\x0b" + push(0)


def _call(index: int) -> bytes:
    """Calls import `index` (of IMPORTS) with the arguments pushed before, dropping its errno."""
    return b"\x10" + bytes([index]) + DROP


def _on_opened(*args: int | I64) -> bytes:
    """Pushes the descriptor path_open wrote, then `args`."""
    return load_i32(OUT) + push(*args)


_CLOSE = _on_opened() + _call(3)

WASM = module(
    imports=IMPORTS,
    functions=[
        Func(
            "open_read_close",
            [I32],
            [I32],
            _loop(_open("small.txt", 0, RIGHT_FD_READ) + _on_opened(IOV, 1, DONE) + _call(1) + _CLOSE),
        ),
        Func(
            "write_mib",
            [I32],
            [I32],
            _loop(
                _open("big.bin", OFLAG_CREAT | OFLAG_TRUNC, RIGHT_FD_WRITE)
                + _on_opened(IOV + 8, 1, DONE)
                + _call(2)
                + _CLOSE
            ),
        ),
        Func(
            "readdir",
            [I32],
            [I32],
            _loop(
                _open("many", OFLAG_DIRECTORY, RIGHT_FD_READDIR)
                + _on_opened(LISTING, MIB - LISTING, I64(0), DONE)
                + _call(4)
                + _CLOSE
            ),
        ),
    ],
    memory=(40, 40),
    data=[(address, name.encode()) for name, address in NAMES.items()]
    + [(IOV, BUFFER.to_bytes(4, "little") + (100).to_bytes(4, "little"))]
    + [(IOV + 8, BUFFER.to_bytes(4, "little") + MIB.to_bytes(4, "little"))],
)


def _files(root: Path) -> Path:
    data = root / "data"
    (data / "many").mkdir(parents=True)
    (data / "small.txt").write_bytes(b"x" * 100)
    for number in range(1000):
        (data / "many" / f"file{number:04}").touch()
    return data


def ours(engine: str, directory: Path, calls: int, repeat: int) -> dict[str, float]:
    keys = make_key(directory / "keys")
    bundle = make_bundle(directory / "bundle", keys.key, wasm=WASM, manifest=MANIFEST, guest="wasi-bench")
    sandbox = Sandbox.under(directory / "sandbox")
    _files(sandbox.files)
    guest = open_guest(read_bundle(bundle, load_trust(keys.trust)), engine=engine, sandbox=sandbox)
    try:
        return {op: timed(functools.partial(guest.call, op, (calls,)), repeat) / calls for op in OPERATIONS}
    finally:
        guest.close()


def reference(directory: Path, calls: int, repeat: int) -> dict[str, float]:
    """wasmtime-py's own WASI over the same files."""
    data = _files(directory)
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    config = wasmtime.WasiConfig()
    config.preopen_dir(str(data), "/data")
    store.set_wasi(config)
    instance = linker.instantiate(store, wasmtime.Module(engine, WASM))
    exports = instance.exports(store)
    result = {}
    for op in OPERATIONS:
        function = exports[op]
        assert isinstance(function, wasmtime.Func)
        result[op] = timed(_calling(function, store, calls), repeat) / calls
    return result


def _calling(function: wasmtime.Func, store: wasmtime.Store, calls: int) -> Callable[[], object]:
    return lambda: function(store, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="operations per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (the best counts)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        peer = reference(root / "reference", options.calls, options.repeat)
        figures = {
            engine: ours(engine, root / engine, options.calls, options.repeat) for engine in ("wasmer", "wasmtime")
        }
    print(f"{'operation':<24} {'wasmtime-py WASI':>17} {'ours on wasmer':>22} {'ours on wasmtime':>22}")
    for op, label in OPERATIONS.items():
        cells = [f"{1 / peer[op]:10.0f} ops/s    "]
        cells += [f"{1 / figures[e][op]:10.0f} ops/s {figures[e][op] / peer[op]:5.2f}x" for e in figures]
        print(f"{label:<24} " + " ".join(cells))
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
