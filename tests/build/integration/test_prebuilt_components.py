"""Components other toolchains made, committed as prebuilt `wasm` guests of an author's project: built with
`ngixi build`, then run with `ngixi run` isolated and in-process on Wasmtime. Each is made here from WAT (or from
WIT with wasm-tools' dummy core module, as wit-bindgen's output is shaped), so no language toolchain runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import wasmtime

from ngixi_build.toolchains.wit import wasm_tools
from tests.build.integration.test_real_programs import NGIXI, environment
from tests.integration import run_in

pytestmark = pytest.mark.integration

# An exported interface, a WIT name with "-", a nested core instance it imports from, and a nested component.
CALC = """(component
  (component $inner
    (core module $m (func (export "run") (result i32) (i32.const 42)))
    (core instance $i (instantiate $m))
    (func (export "run") (result u32) (canon lift (core func $i "run"))))
  (instance $a (instantiate $inner))
  (alias export $a "run" (func $answer))
  (core module $lib (func (export "seven") (result i32) (i32.const 7)))
  (core instance $l (instantiate $lib))
  (core module $m (import "lib" "seven" (func $seven (result i32)))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
    (func (export "add-seven") (param i32) (result i32) (i32.add (call $seven) (local.get 0))))
  (core instance $i (instantiate $m (with "lib" (instance $l))))
  (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
  (instance $api (export "add" (func $add)))
  (export "acme:calc/api@0.1.0" (instance $api))
  (func (export "add-seven") (param "n" u32) (result u32) (canon lift (core func $i "add-seven")))
  (export "answer" (func $answer)))"""
CALC_EXPORTS = ("acme:calc/api@0.1.0#add", "add-seven", "answer")
# Counts its arguments through WASI 0.2.0's wasi:cli/environment (Wasmtime serves any 0.2.x with its own).
OLDER_WASI = """(component
  (import "wasi:cli/environment@0.2.0" (instance $env (export "get-arguments" (func (result (list string))))))
  (core module $heap (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $at i32)
      (local.set $at (global.get $next))
      (global.set $next (i32.add (global.get $next) (i32.add (local.get 3) (i32.const 8))))
      (local.get $at)))
  (core instance $heap (instantiate $heap))
  (core func $arguments (canon lower (func $env "get-arguments")
    (memory (core memory $heap "memory")) (realloc (core func $heap "realloc"))))
  (core instance $host (export "arguments" (func $arguments)))
  (core module $m (import "host" "arguments" (func $arguments (param i32))) (import "heap" "memory" (memory 1))
    (func (export "count") (result i32) (call $arguments (i32.const 0)) (i32.load (i32.const 4))))
  (core instance $i (instantiate $m (with "host" (instance $host)) (with "heap" (instance $heap))))
  (func (export "count") (result u32) (canon lift (core func $i "count"))))"""
# Resource handles and a stream, which the host never passes.
HANDLES_WIT = """package acme:res;
interface api {
  resource counter { constructor(start: u32); get: func() -> u32; }
  make: func(n: u32) -> counter;
  pipe: func(s: option<stream<u8>>) -> u32;
}
world w { export api; }
"""
# An import of an interface no Ngixi capability provides.
NEEDY = """(component
  (import "acme:thing/api" (instance $thing (export "ping" (func (result u32)))))
  (core module $m (func (export "run") (result i32) (i32.const 7)))
  (core instance $i (instantiate $m))
  (func (export "run") (result u32) (canon lift (core func $i "run"))))"""
# An export lifted with the component model's async ABI (a WASI 0.3 toolchain's).
ASYNC = """(component
  (core module $m
    (func (export "run") (result i32) i32.const 0)
    (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func (export "run") async (result u32) (canon lift (core func $i "run") async (callback (core func $i "cb")))))"""
FLAT = '(module (func (export "run") (result i32) (i32.const 1)))'


def manifest(name: str, exports: tuple[str, ...]) -> str:
    declared = "".join(f'[exports."{export}"]\n' for export in exports)
    granted = "[capabilities.args]\n[limits]\nmemory_pages = 1\n" if name == "older" else ""
    return f'[guest]\nname = "{name}"\nversion = "0.1.0"\nlanguage = "wasm"\nabi = "component"\n\n{declared}{granted}'


def from_wit(directory: Path, wit: str) -> bytes:
    """A component of `wit`'s world around wasm-tools' dummy core module (its functions trap)."""
    (directory / "wit").mkdir(parents=True)
    (directory / "wit" / "world.wit").write_text(wit)
    core, component = directory / "core.wasm", directory / "component.wasm"
    subprocess.run([wasm_tools(), "component", "embed", "--dummy", directory / "wit", "-o", core], check=True)
    subprocess.run([wasm_tools(), "component", "new", core, "-o", component], check=True)
    return component.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One author's project of the components above, built once; the build's output (it fails for four of them)."""
    root = tmp_path_factory.mktemp("prebuilt-components")
    handles = from_wit(tmp_path_factory.mktemp("handles"), HANDLES_WIT)
    guests = {
        "calc": (CALC_EXPORTS, bytes(wasmtime.wat2wasm(CALC))),
        "older": (("count",), bytes(wasmtime.wat2wasm(OLDER_WASI))),
        "handles": (("acme:res/api#make", "acme:res/api#pipe"), handles),
        "needy": (("run",), bytes(wasmtime.wat2wasm(NEEDY))),
        "later": (("run",), bytes(wasmtime.wat2wasm(ASYNC))),
        "flat": (("run",), bytes(wasmtime.wat2wasm(FLAT))),
    }
    (root / "pyproject.toml").write_text('[tool.ngixi]\ntargets = []\nwasmtime_targets = ["host"]\n')
    (root / "manifests").mkdir()
    for name, (exports, wasm) in guests.items():
        (root / "manifests" / f"{name}.toml").write_text(manifest(name, exports))
        (root / "guests" / name).mkdir(parents=True)
        (root / "guests" / name / f"{name}.wasm").write_bytes(wasm)
    return root, run_in(root, [str(NGIXI), "build"], env=environment(root), check=False, timeout=300)


def ngixi_run(root: Path, where: str, guest: str, *call: str) -> subprocess.CompletedProcess[str]:
    mode = ["--in-process"] if where == "in-process" else []
    command = [str(NGIXI), "run", *mode, f"artifacts/bundles/{guest}-0.1.0.ngx", *call]
    return run_in(root, command, env=environment(root), check=False, timeout=120)


@pytest.mark.parametrize("where", ["isolated", "in-process"])
def test_a_function_of_an_exported_interface_and_wit_names_are_called_by_their_names(
    built: tuple[Path, subprocess.CompletedProcess[str]], where: str
) -> None:
    root, _ = built
    calls = {("acme:calc/api@0.1.0#add", "2", "3"): "5", ("add-seven", "35"): "42", ("answer",): "42"}
    for call, expected in calls.items():
        done = ngixi_run(root, where, "calc", *call)
        assert (done.returncode, done.stdout.strip(), done.stderr) == (0, expected, "")


@pytest.mark.parametrize("where", ["isolated", "in-process"])
def test_an_import_of_an_older_wasi_0_2_release_is_served(
    built: tuple[Path, subprocess.CompletedProcess[str]], where: str
) -> None:
    done = ngixi_run(built[0], where, "older", "count")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "2", "")  # argv: the guest's name, the export


def test_what_the_host_cannot_pass_or_provide_is_refused_at_build_in_one_line_each(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    root, build = built
    assert build.returncode != 0 and "Traceback" not in build.stdout + build.stderr
    said = build.stdout + build.stderr
    refusals = {
        "handles.toml: exports.acme:res/api#make": "acme:res/api#make passes resource handles (own)",
        "handles.toml: exports.acme:res/api#pipe": "acme:res/api#pipe passes streams",
        "later.toml: exports.run": "run is async (the component model's async ABI)",
    }
    for where, why in refusals.items():
        assert (
            f"manifests/{where}: the component's {why}, which Ngixi does not support; export a synchronous "
            "function of plain WIT types (docs/components.md)"
        ) in said
    assert (
        "manifests/needy.toml: capabilities: the component imports acme:thing/api, which no Ngixi capability "
        "provides; this host provides WASI 0.2's cli, clocks, filesystem, io, random and ngixi:host@0.1.0 "
        "(`ngixi wit`): build the component without the import"
    ) in said
    assert (
        f'{root}/guests/flat/flat.wasm: is a core module, and {root}/manifests/flat.toml says abi = "component"; '
        'declare [guest] abi = "core" there, or make it a component (wasm-tools component new)'
    ) in said
    assert sorted(path.name for path in (root / "artifacts" / "bundles").glob("*.ngx")) == [
        "calc-0.1.0.ngx",
        "older-0.1.0.ngx",
    ]
