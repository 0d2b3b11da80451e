"""What an operator sees when a guest fails: one line naming the guest, the export, what happened and the guest's
own place, with the same exit code on both engines, isolated and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import KeyFiles, make_bundle, make_key

NGIXI = Path(sys.executable).parent / "ngixi"
LIBRARY = '[guest]\nname = "g"\nversion = "0.1.0"\n\n[exports.run]\nresults = ["i32"]\n'
CASES = {
    # A start function that traps: Wasmer said "cannot load the guest" with exit 1, Wasmtime exit 5.
    "start": (
        '(module (memory (export "memory") 1 1) (func $setup unreachable) (start $setup)'
        ' (func (export "run") (result i32) i32.const 1))',
        "g: its start function trapped: unreachable in setup",
    ),
    # C's abort() (wasi-libc's ends in `unreachable`): the place was libc's abort, the cause "unreachable".
    "abort": (
        '(module (memory (export "memory") 1 1) (func $abort unreachable) (func $guess (call $abort))'
        ' (func (export "run") (result i32) (call $guess) i32.const 0))',
        "g: run aborted in guess",
    ),
    # A load past the memory (a C guest's stack overflowing its shadow stack ends so): engines word it apart.
    "memory": (
        '(module (memory (export "memory") 1 1) (func $read (result i32) i32.const 70000 i32.load)'
        ' (func (export "run") (result i32) call $read))',
        "g: run trapped: out of bounds memory access in read",
    ),
    # C's exit() in a library's export or _initialize: a traceback (in-process, "unexpected GuestExit"; isolated,
    # "the tenant process died" with the child's traceback), exit 1 or 5.
    "exit": (
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1 1) (func (export "run") (result i32) i32.const 7 call $exit i32.const 0))',
        "g: run called proc_exit(7), which ends a command guest; an export returns instead",
    ),
    "initialize exit": (
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1 1) (func (export "_initialize") i32.const 0 call $exit)'
        ' (func (export "run") (result i32) i32.const 1))',
        "g: _initialize called proc_exit(0) as the guest loaded; only a command's _start may exit",
    ),
}


# A component whose core module's start function traps: it said "cannot load the guest" with exit 1.
COMPONENT_START = (
    '(component (core module $m (memory (export "memory") 1 1) (func $setup unreachable) (start $setup)'
    ' (func (export "run") (result i32) i32.const 1)) (core instance $i (instantiate $m))'
    ' (func (export "run") (result s32) (canon lift (core func $i "run"))))'
)
WHERE = pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])


@WHERE
@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_guest_is_one_line_and_exit_code_5(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...], case: str
) -> None:
    wat, line = CASES[case]
    _fails_so(tmp_path, keys, wat, LIBRARY, options=[*where, "--engine", engine_name], line=line)


@WHERE
def test_a_components_start_trap_reads_as_a_core_guests(tmp_path: Path, keys: KeyFiles, where: tuple[str, ...]) -> None:
    manifest = LIBRARY.replace('version = "0.1.0"', 'version = "0.1.0"\nabi = "component"').replace("i32", "s32")
    _fails_so(tmp_path, keys, COMPONENT_START, manifest, options=list(where), line=CASES["start"][1])


@pytest.mark.parametrize("case", ["abort", "memory"])
def test_a_components_trap_in_a_call_reads_as_a_core_guests(tmp_path: Path, keys: KeyFiles, case: str) -> None:
    """It read `run failed: unreachable (in m!guess < m!run)`, and a load past memory `run failed: 0: memory fault
    at wasm address 0x11170 ... 1: wasm trap: out of bounds memory access (in m!read < m!run)`."""
    manifest = LIBRARY.replace('version = "0.1.0"', 'version = "0.1.0"\nabi = "component"').replace("i32", "s32")
    core = CASES[case][0].replace("(module ", "(core module $m ").replace('(export "run")', '(export "core-run")')
    component = (
        f"(component {core} (core instance $i (instantiate $m))"
        ' (func (export "run") (result s32) (canon lift (core func $i "core-run"))))'
    )
    line = CASES[case][1]
    _fails_so(tmp_path, keys, component, manifest, options=["--in-process"], line=line)


def _fails_so(tmp_path: Path, keys: KeyFiles, wat: str, manifest: str, *, options: list[str], line: str) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=manifest, guest="g")
    command = [str(NGIXI), "run", *options, "--trust", str(keys.trust), str(bundle), "run"]
    ran = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    shown = [shown for shown in ran.stderr.splitlines() if not shown.startswith("note: ")]
    assert (ran.returncode, shown) == (5, [f"ngixi: error: {line}"])


@WHERE
@pytest.mark.parametrize(("status", "shown"), [(256, 256), (-1, 4294967295)])
def test_an_exit_status_no_shell_can_read_is_exit_1_with_a_note(
    tmp_path: Path, keys: KeyFiles, where: tuple[str, ...], status: int, shown: int
) -> None:
    """C's exit(256) and Rust's process::exit(-1): `ngixi run` exited 1, and nothing said why."""
    wat = (
        '(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        f' (memory (export "memory") 1 1) (func (export "_start") i32.const {status} call $exit))'
    )
    manifest = '[guest]\nname = "g"\nversion = "0.1.0"\nkind = "command"\n'
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=manifest, guest="g")
    command = [str(NGIXI), "run", *where, "--trust", str(keys.trust), str(bundle)]
    ran = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert (ran.returncode, ran.stderr.splitlines()[-1]) == (
        1,
        f"note: the guest exited with status {shown}, outside 0-255: ngixi run exits 1",
    )


# ngixi run --json's failures, each with its exit code: those at load printed no document, only the error line.
JSON_FAILURES = {"start": 5, "call": 5, "untrusted": 3, "tampered": 3, "policy": 6, "missing export": 3}


@WHERE
@pytest.mark.parametrize("case", list(JSON_FAILURES))
def test_run_json_prints_one_document_for_every_failure(
    tmp_path: Path, keys: KeyFiles, where: tuple[str, ...], case: str
) -> None:
    wat = CASES["abort" if case == "call" else "start"][0]
    if case == "missing export":
        wat = wat.replace('(export "run")', '(export "go")')
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=LIBRARY, guest="g")
    trust = make_key(tmp_path / "other").trust if case == "untrusted" else keys.trust
    if case == "tampered":
        bundle.write_bytes(bundle.read_bytes()[:-1] + b"\1")
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\ntimeout_ms = 1\n" if case == "policy" else "")
    options = [*where, "--json", "--policy", str(policy), "--trust", str(trust), str(bundle), "run"]
    ran = subprocess.run([str(NGIXI), "run", *options], cwd=tmp_path, capture_output=True, text=True, check=False)
    document = json.loads(ran.stdout)
    error = document["error"]
    assert (ran.returncode, error["exit_code"], document["ok"]) == (JSON_FAILURES[case], JSON_FAILURES[case], False)
    assert f"ngixi: error: {error['message']}" in ran.stderr and error["kind"] in ("guest", "verification", "policy")
    assert ("metrics" in document) == (case == "call")  # the call's fields, when the call ran
