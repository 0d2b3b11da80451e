"""`ngixi run` passes a guest's stdout and stderr on as it writes them, in that order, isolated and in-process on
both engines; a stream whose reader is gone fails the guest's writes to it (EPIPE) and the host ends cleanly."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from tests.conftest import KeyFiles, make_bundle

NGIXI = Path(sys.executable).parent / "ngixi"
COMMAND = '[guest]\nname = "talker"\nversion = "0.1.0"\nkind = "command"\n\n[capabilities.stdio]\n'
WHERE = [(), ("--in-process",)]

# $say(fd, text at 16 + 8 * n, 8 bytes): one fd_write of the n-th 8-byte text; its errno.
_PRELUDE = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 16) "out one\\nerr one\\nout two\\nerr two\\nwaiting\\n\\1b[37m>  ")
  (func $say (param $fd i32) (param $n i32) (result i32)
    (i32.store (i32.const 0) (i32.add (i32.const 16) (i32.mul (local.get $n) (i32.const 8))))
    (i32.store (i32.const 4) (i32.const 8))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
"""
ALTERNATING = f"""(module {_PRELUDE}
  (func (export "_start")
    (drop (call $say (i32.const 1) (i32.const 0)))
    (drop (call $say (i32.const 2) (i32.const 1)))
    (drop (call $say (i32.const 1) (i32.const 2)))
    (drop (call $say (i32.const 2) (i32.const 3)))))
"""
WAITING = f"""(module {_PRELUDE}
  (func (export "_start")
    (drop (call $say (i32.const 1) (i32.const 4)))
    (loop $forever (br $forever))))
"""
# Writes to stdout until a write fails (at most 100,000 times, 800 KB, within limits.stdout_bytes), says so on stderr,
# and exits with that write's errno. An isolated child hears of the closed reader from its parent: the writes must fill
# the pipe to the parent many times over, or a child left running while its parent waits for a core ends first.
UNTIL_REFUSED = f"""(module {_PRELUDE}
  (func (export "_start") (local $errno i32) (local $tries i32)
    (block $refused
      (loop $again
        (local.set $errno (call $say (i32.const 1) (i32.const 0)))
        (br_if $refused (local.get $errno))
        (local.set $tries (i32.add (local.get $tries) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $tries) (i32.const 100000)))))
    (drop (call $say (i32.const 2) (i32.const 1)))
    (call $proc_exit (local.get $errno))))
"""


def _bundle(tmp_path: Path, keys: KeyFiles, wat: str, limits: str = "") -> Path:
    return make_bundle(
        tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=COMMAND + limits, guest="talker"
    )


def _without_notes(shown: bytes) -> bytes:
    """What a run showed without its `note:` line (the guest was compiled at load)."""
    return b"".join(line for line in shown.splitlines(keepends=True) if not line.startswith(b"note: "))


def _command(keys: KeyFiles, bundle: Path, engine: str, where: tuple[str, ...]) -> list[str]:
    return [str(NGIXI), "run", *where, "--engine", engine, "--trust", str(keys.trust), str(bundle)]


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_stdout_and_stderr_reach_the_operator_in_the_order_written(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    bundle = _bundle(tmp_path, keys, ALTERNATING)
    command = _command(keys, bundle, engine_name, where)
    run = subprocess.run(command, check=False, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert (run.returncode, _without_notes(run.stdout)) == (0, b"out one\nerr one\nout two\nerr two\n")


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_what_a_guest_wrote_is_shown_while_it_still_runs(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    bundle = _bundle(tmp_path, keys, WAITING, "\n[limits]\ntimeout_ms = 20000\n")
    with subprocess.Popen(
        _command(keys, bundle, engine_name, where), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        try:
            assert select.select([process.stdout], [], [], 15)[0], "nothing shown while the guest ran"
            assert process.stdout.readline() == b"waiting\n"
            assert process.poll() is None  # still running: shown as written, not at the end
        finally:
            process.kill()


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_a_closed_stdout_fails_the_guests_writes_and_the_host_ends_cleanly(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    bundle = _bundle(tmp_path, keys, UNTIL_REFUSED)
    reader, writer = os.pipe()
    os.close(reader)  # `ngixi run B | head -0`: the reader is gone before the guest writes
    try:
        command = _command(keys, bundle, engine_name, where)
        run = subprocess.run(command, check=False, cwd=tmp_path, stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    assert (run.returncode, _without_notes(run.stderr)) == (64, b"err one\n")  # WASI's EPIPE, then stderr still written


# Writes, logs (a line with an escape sequence too) and writes again: the log lines among what it writes.
LOGGING = f"""(module (import "ngixi" "log" (func $log (param i32 i32 i32))) {_PRELUDE}
  (data (i32.const 100) "\\1b[2J")
  (func (export "_start")
    (drop (call $say (i32.const 1) (i32.const 0)))
    (call $log (i32.const 2) (i32.const 48) (i32.const 7))
    (drop (call $say (i32.const 2) (i32.const 1)))
    (call $log (i32.const 4) (i32.const 100) (i32.const 4))
    (drop (call $say (i32.const 1) (i32.const 2)))))
"""


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_log_lines_are_shown_as_logged_among_stdout_and_stderr(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    bundle = _bundle(tmp_path, keys, LOGGING, "[capabilities.log]\n")
    command = _command(keys, bundle, engine_name, where)
    run = subprocess.run(command, check=False, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shown = b"out one\ninfo: waiting\nerr one\nerror: \\x1b[2J\nout two\n"  # they came after the call's end
    assert (run.returncode, _without_notes(run.stdout)) == (0, shown)


# Leaves its stderr mid-line (a terminal colour code and a prompt, as Silice's silice.wasm does), logs, does so again
# and traps.
UNFINISHED = f"""(module (import "ngixi" "log" (func $log (param i32 i32 i32))) {_PRELUDE}
  (func (export "_start")
    (drop (call $say (i32.const 2) (i32.const 5)))
    (call $log (i32.const 2) (i32.const 48) (i32.const 7))
    (drop (call $say (i32.const 2) (i32.const 5)))
    unreachable))
"""


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_ngixis_own_lines_begin_a_line_after_a_guests_unfinished_one(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    """The error line read `\\x1b[37m>  ngixi: error: ...` after silice.wasm's stderr, and a log line as much."""
    bundle = _bundle(tmp_path, keys, UNFINISHED, "[capabilities.log]\n")
    run = subprocess.run(_command(keys, bundle, engine_name, where), check=False, cwd=tmp_path, capture_output=True)
    lines = _without_notes(run.stderr).splitlines()
    assert (run.returncode, lines) == (
        5,
        [b"\x1b[37m>  ", b"info: waiting", b"\x1b[37m>  ", b"ngixi: error: talker: _start trapped: unreachable"],
    )


# A library whose _initialize (run at load, before any call) writes to stdout, as its export does.
INITIALIZED = f"""(module {_PRELUDE}
  (func $hello (drop (call $say (i32.const 1) (i32.const 4))))
  (export "_initialize" (func $hello))
  (func (export "run") (result i32) (call $hello) (i32.const 7)))
"""
LIBRARY = '[guest]\nname = "talker"\nversion = "0.1.0"\n\n[exports.run]\nresults = ["i32"]\n\n[capabilities.stdio]\n'


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_what_a_guest_writes_while_it_loads_is_passed_on_too(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    wasm = bytes(wasmtime.wat2wasm(INITIALIZED))
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=LIBRARY, guest="talker")
    command = [*_command(keys, bundle, engine_name, where), "run"]
    run = subprocess.run(command, check=False, cwd=tmp_path, capture_output=True)
    assert (run.returncode, run.stdout) == (0, b"waiting\nwaiting\n7\n")


# Writes to stdout without end: a reader that never reads fills the pipe within the first 64 KiB.
FOREVER = f"""(module {_PRELUDE}
  (func (export "_start") (loop $again (drop (call $say (i32.const 1) (i32.const 0))) (br $again))))
"""


@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_a_reader_that_never_reads_does_not_hold_the_guest_past_its_timeout(
    tmp_path: Path, keys: KeyFiles, engine_name: str, where: tuple[str, ...]
) -> None:
    bundle = _bundle(tmp_path, keys, FOREVER, "\n[limits]\ntimeout_ms = 300\n")
    reader, writer = os.pipe()  # `ngixi run B | sleep 100`: the reader is there and never reads
    try:
        command = _command(keys, bundle, engine_name, where)
        run = subprocess.run(command, check=False, cwd=tmp_path, stdout=writer, stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(writer)
        os.close(reader)
    assert run.returncode != 0
    assert b"limits.timeout_ms" in run.stderr


# A library that writes nothing itself, so that only ngixi's own writes find its reader gone: (the export's code,
# ngixi run's options, its exit code).
CLOSED_STDOUT_CASES = {
    "values": ("i32.const 7", (), 0),
    "json": ("i32.const 7", ("--json",), 0),
    "failure json": ("unreachable", ("--json",), 5),
}


@pytest.mark.parametrize("case", list(CLOSED_STDOUT_CASES))
@pytest.mark.parametrize("where", WHERE, ids=["isolated", "in-process"])
def test_a_closed_stdout_leaves_the_runs_exit_code_as_it_is(
    tmp_path: Path, keys: KeyFiles, where: tuple[str, ...], case: str
) -> None:
    """ngixi's own writes (its values, its JSON document) fail as the guest's would: the run still ends with its
    own exit code, as when the guest's writes failed (it was 141, a shell's for SIGPIPE: `set -o pipefail` saw
    `ngixi run B | head -0` fail or not by whether head left before the write or after it)."""
    code, options, expected = CLOSED_STDOUT_CASES[case]
    wat = f'(module (memory (export "memory") 1 1) (func (export "run") (result i32) {code}))'
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=LIBRARY, guest="talker")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        command = [str(NGIXI), "run", *where, *options, "--trust", str(keys.trust), str(bundle), "run"]
        run = subprocess.run(command, check=False, cwd=tmp_path, stdout=writer, stderr=subprocess.PIPE)
    finally:
        os.close(writer)
    shown = b"ngixi: error: talker: run trapped: unreachable\n" if expected else b""
    assert (run.returncode, _without_notes(run.stderr)) == (expected, shown)


@pytest.mark.parametrize("options", [("--in-process",), ("--json",)], ids=["in-process", "isolated-json"])
def test_a_closed_stderr_leaves_a_failed_runs_exit_code_as_it_is(
    tmp_path: Path, keys: KeyFiles, options: tuple[str, ...]
) -> None:
    """`ngixi run B 2>&1 | head -0`: a note or the error line found its reader gone, and the run ended with 141 (or
    1), not its own 5."""
    wat = '(module (memory (export "memory") 1 1) (func (export "run") (result i32) unreachable))'
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=LIBRARY, guest="talker")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        command = [str(NGIXI), "run", *options, "--trust", str(keys.trust), str(bundle), "run"]
        run = subprocess.run(command, check=False, cwd=tmp_path, stdout=writer, stderr=writer)
    finally:
        os.close(writer)
    assert run.returncode == 5
