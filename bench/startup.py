"""Whole-process start: `ngixi run … add 2 3` against the interpreter's own start and Extism's, side by side.

Each variant is a fresh process started as from an installed ngixi-runtime (below); the rounds alternate
between the variants (so a change in the machine's load hits them all alike) and each figure is the median
wall time of its rounds (and its CPU time, user and system, of the process and every process it started, its
orphans included: steadier under load), after one warm-up run (which writes the bytecode caches, even under
PYTHONDONTWRITEBYTECODE, and fills the host AOT cache where a variant compiles):
- `python -c pass`: the floor every Python tool pays, and the unit of the ratios;
- Python + Extism: `import extism`, a `Plugin` of a one-function module, one call (the peer);
- wasmtime-py: `import wasmtime`, compile, instantiate and call an `add` module (the floor of a
  Python host on Wasmtime);
- wasmer-python: `import wasmer`, deserialize the same module compiled ahead, instantiate and call `add` (the
  engine's own floor under `ngixi run` on Wasmer); and the same after importing the libraries a verified run
  needs whatever its own code does (argparse, pathlib, json, tomli for the trust file, blake3 and
  cryptography's Ed25519 and hashes): how far below them a goal lies;
- `ngixi run --in-process BUNDLE add 2 3` on Wasmer and on Wasmtime, and `ngixi run BUNDLE add 2 3`
  (isolated, the default engine): the goals are 2.5x and 4x `python -c pass` (issue 24).
The bundle is the project's built `hello` (`doit bundle:hello`), checked against its dev trust file.

As installed, not as developed: this venv installs ngixi-runtime and ngixi-build editable, and the finders
their `.pth` files install import pathlib, re and importlib.util at every start of its python, which
doubles `python -c pass` and would flatter every ratio (a user's `pip install ngixi-runtime` has no such
finder). So the variants run in a scratch venv of the same base interpreter whose one `.pth` puts the
run side's sources and this venv's site-packages on `sys.path`, as an installed wheel's modules are found,
with this venv's `ngixi` script; this venv's own `python -c pass` is printed too, for comparison.

Run: .venv/bin/python -m bench.startup [--rounds N] [--bundle PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
from importlib.util import find_spec
from pathlib import Path

import wasmtime

import ngixi_runtime

DEV_NGIXI = Path(sys.executable).parent / "ngixi"
HELLO = Path("artifacts/bundles/hello-0.1.0.ngx")
ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'
# An Extism plugin's one-shot work: its output is its input (no copy, the least a call can do).
EXTISM_ECHO = """(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "echo") (result i32) (call $output_set (call $input_offset) (call $input_length)) (i32.const 0)))
"""
GOALS = {"in-process": 2.5, "isolated": 4.0}
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
# What `ngixi run` imports for any guest, whatever its own code: its command line, paths, the index's JSON, the
# trust file's TOML, the members' BLAKE3 and the signature's Ed25519 with the index's digests.
VERIFYING_LIBRARIES = (
    "import argparse, json, pathlib, blake3, tomli\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "from cryptography.hazmat.primitives.asymmetric import ed25519\n"
)


def installed(scratch: Path) -> tuple[str, str]:
    """The python and `ngixi` script of a scratch venv that finds the run side's modules and this venv's
    dependencies on `sys.path`, as an installed wheel's are found, without this venv's editable finders."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(scratch)
    python = scratch / "bin" / "python"
    site_packages = Path(sysconfig.get_paths(vars={"base": str(scratch)})["purelib"])
    sources = Path(ngixi_runtime.__file__).parent.parent
    (site_packages / "ngixi.pth").write_text(f"{sources}\n{sysconfig.get_paths()['purelib']}\n")
    script = scratch / "bin" / "ngixi"
    script.write_text(f"#!{python}\n" + DEV_NGIXI.read_text().split("\n", 1)[1])  # pip's, with our python
    script.chmod(0o755)
    return str(python), str(script)


def wasmer_one_call(wasm: Path, serialized: Path) -> str:
    """A script deserializing `wasm` compiled ahead into `serialized` (written here), instantiating it and calling
    `add`: a verified artifact's load without the verifying."""
    import wasmer

    serialized.write_bytes(wasmer.Module(wasmer.Store(), wasm.read_bytes()).serialize())
    return (
        "import wasmer\n"
        f"module = wasmer.Module.deserialize(wasmer.Store(), open({str(serialized)!r}, 'rb').read())\n"
        "print(wasmer.Instance(module).exports.add(2, 3))\n"
    )


def variants(bundle: Path, scratch: Path) -> dict[str, tuple[list[str], float | None]]:
    """Name → (command line, goal as a multiple of `python -c pass`, if any)."""
    python, ngixi = installed(scratch / "venv")
    add_wasm, echo_wasm = scratch / "add.wasm", scratch / "echo.wasm"
    add_wasm.write_bytes(wasmtime.wat2wasm(ADD))
    echo_wasm.write_bytes(wasmtime.wat2wasm(EXTISM_ECHO))
    extism = (
        "import sys, extism\n"
        f"with extism.Plugin(open({str(echo_wasm)!r}, 'rb').read(), wasi=False) as plugin:\n"
        "    print(bytes(plugin.call('echo', b'5')).decode())\n"
    )
    floor = (
        "import wasmtime\n"
        "engine = wasmtime.Engine(); store = wasmtime.Store(engine)\n"
        f"module = wasmtime.Module.from_file(engine, {str(add_wasm)!r})\n"
        "print(wasmtime.Instance(store, module, []).exports(store)['add'](store, 2, 3))\n"
    )
    found: dict[str, tuple[list[str], float | None]] = {
        "python -c pass": ([python, "-c", "pass"], None),
        "python -c pass (dev venv, editable)": ([sys.executable, "-c", "pass"], None),
        "python + extism, one call": ([python, "-c", extism], None),
        "python + wasmtime-py, one call": ([python, "-c", floor], None),
    }
    engines = [name for name in ("wasmer", "wasmtime") if find_spec(name) is not None]
    if "wasmer" in engines:
        wasmer_call = wasmer_one_call(add_wasm, scratch / "add.wasmer")
        found["python + wasmer-python, one call"] = ([python, "-c", wasmer_call], None)
        found["wasmer-python, after a run's libs"] = ([python, "-c", VERIFYING_LIBRARIES + wasmer_call], None)
    for engine in engines:
        command = [ngixi, "run", "--in-process", "--engine", engine, str(bundle), "add", "2", "3"]
        found[f"ngixi run --in-process ({engine})"] = (command, GOALS["in-process"])
    found[f"ngixi run, isolated ({engines[0]})"] = ([ngixi, "run", str(bundle), "add", "2", "3"], GOALS["isolated"])
    return found


# As installed: the warm-up run writes the bytecode caches the timed runs read.
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_once(command: list[str]) -> tuple[float, float]:
    """The wall and CPU seconds of one run of `command`."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=ENVIRONMENT
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)[:80]}… failed: {errors.read().decode(errors='replace').strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime + orphans_cpu()


def adopt_orphans() -> None:
    """Makes this process the reaper of its variants' orphans (Linux), so that `orphans_cpu` counts a process a
    run leaves behind: `ngixi run --in-process` on Wasmer forks a watchdog, which ends a moment after the run."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def orphans_cpu() -> float:
    """The CPU seconds of the orphans this process adopted, each waited for (none where it adopts none)."""
    seconds = 0.0
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return seconds
        seconds += usage.ru_utime + usage.ru_stime


def medians(commands: dict[str, list[str]], rounds: int) -> dict[str, tuple[float, float]]:
    """Name → the median wall and CPU seconds of its rounds."""
    for command in commands.values():
        run_once(command)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(run_once(command))
    return {
        name: (statistics.median(wall for wall, _ in values), statistics.median(cpu for _, cpu in values))
        for name, values in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="runs of each variant (default 15)")
    parser.add_argument("--bundle", type=Path, default=HELLO, help=f"the hello bundle (default {HELLO})")
    options = parser.parse_args()
    if not options.bundle.is_file():
        raise SystemExit(f"{options.bundle}: not found; build it first: .venv/bin/doit bundle:hello")
    adopt_orphans()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        chosen = variants(options.bundle, Path(scratch))
        results = medians({name: command for name, (command, _) in chosen.items()}, options.rounds)
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"medians of {options.rounds} whole processes each: wall time, its ratio over python -c pass, CPU time")
    unit, cpu_unit = results["python -c pass"]
    for name, (seconds, cpu) in results.items():
        goal = chosen[name][1]
        verdict = "" if goal is None else f"  goal <= {goal}x: {'met' if seconds / unit <= goal else 'not met'}"
        print(
            f"  {name:<36}{seconds * 1000:8.1f} ms {seconds / unit:6.2f}x   cpu {cpu * 1000:6.1f} ms"
            f" {cpu / cpu_unit:5.2f}x{verdict}"
        )


if __name__ == "__main__":
    main()
