"""A spinning guest in `ngixi run --in-process`, in a call or in its start function, is stopped at limits.timeout_ms:
by Wasmtime itself, and on Wasmer (which cannot interrupt it and holds the GIL while it runs) by a forked watcher
that ends the process."""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.watchdog import ProcessWatchdog
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle
from tests.integration import BIN, WatchProcess, run_in
from tests.wasmgen import DROP, Func, Imp, call_import, module, push

SPIN = b"\x03\x40\x0c\x00\x0b\x00"  # loop: br 0; end; unreachable
TIMED = HELLO_MANIFEST.replace("[capabilities.log]", "[limits]\ntimeout_ms = 200\n\n[capabilities.log]")


def spinning(start: bool) -> bytes:
    functions = [Func("add", ["i32", "i32"], ["i32"], SPIN)]
    if start:
        functions.append(Func("spin", [], [], b"\x03\x40\x0c\x00\x0b"))
    return module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=functions, start="spin" if start else None)


@pytest.mark.parametrize("start", [False, True], ids=["call", "start-function"])
def test_a_spinning_guest_in_process_is_stopped_at_its_timeout(
    tmp_path: Path, keys: KeyFiles, start: bool, engine_name: str
) -> None:
    """With --json (the start function's case), one failure document on stdout: on Wasmer the watcher writes it,
    with the exit status it gives the process (it printed none)."""
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=spinning(start), manifest=TIMED)
    began = time.monotonic()
    argv = [str(BIN / "ngixi"), "run", "--in-process", "--engine", engine_name, "--trust", str(keys.trust)]
    argv += ["--json"] if start else []
    result = run_in(tmp_path, [*argv, str(bundle), "add", "1", "2"], env=dict(os.environ), check=False, timeout=60)
    assert result.returncode == (-9 if engine_name == "wasmer" else 5), result.stderr
    what = "start" if start else "add"
    line = f"ngixi: error: hello: {what} exceeded its 200 ms timeout (limits.timeout_ms)"
    assert line in result.stderr
    assert time.monotonic() - began < 20
    if start:
        error = json.loads(result.stdout)["error"]
        assert error["exit_code"] == (137 if engine_name == "wasmer" else 5)
        assert (error["kind"], f"ngixi: error: {error['message']}".startswith(line)) == ("guest", True)
    else:
        assert result.stdout == ""


def sleeping() -> bytes:
    """`add` sleeps 10 s in poll_oneoff: one subscription to the monotonic clock (witx's layout, 48 bytes at 0)."""
    subscription = struct.pack("<QB7xI4xQQH6x", 1, 0, 1, 10 * 10**9, 0, 0)
    poll = Imp("wasi_snapshot_preview1", "poll_oneoff", ["i32"] * 4, ["i32"])
    body = call_import(0, 0, 64, 1, 128) + DROP + push(0)
    return module(imports=[poll], functions=[Func("add", ["i32", "i32"], ["i32"], body)], data=[(0, subscription)])


def test_a_guest_sleeping_past_its_timeout_in_process_ends_its_call_itself(
    tmp_path: Path, keys: KeyFiles, engine_name: str
) -> None:
    """A sleep the host serves (Rust's thread::sleep, C's nanosleep) ends at the call's deadline as the call's timeout,
    on Wasmer too: its watcher stopped the whole process at the same moment, saying the engine could not
    interrupt the guest."""
    manifest = TIMED.replace("[capabilities.log]", "[capabilities.clock]")
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=sleeping(), manifest=manifest)
    argv = [str(BIN / "ngixi"), "run", "--in-process", "--engine", engine_name, "--trust", str(keys.trust)]
    result = run_in(tmp_path, [*argv, str(bundle), "add", "1", "2"], env=dict(os.environ), check=False, timeout=60)
    assert result.returncode == 5, result.stderr
    assert result.stderr.endswith("ngixi: error: hello: reached its limits.timeout_ms while sleeping in poll_oneoff\n")


@pytest.mark.parametrize("where", [["--in-process"], []], ids=["in-process", "isolated"])
def test_ctrl_c_ends_a_spinning_call_at_once_on_wasmtime(tmp_path: Path, keys: KeyFiles, where: list[str]) -> None:
    """In process, Python raises KeyboardInterrupt only once Wasmtime's call returns: Ctrl-C waited for the guest's
    deadline (a minute here) before its one interrupted document and exit 130. Isolated, it never waited."""
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=spinning(False), manifest=TIMED.replace("200", "60000"))
    argv = ["ngixi", "run", *where, "--engine", "wasmtime", "-v", "--json", "--trust", str(keys.trust)]
    run = WatchProcess(tmp_path, [*argv, str(bundle), "add", "1", "2"])
    run.until("note: hello:", timeout=60)  # printed as the call begins
    time.sleep(0.3)
    sent = time.monotonic()
    assert run.stop() == 130
    assert time.monotonic() - sent < 10
    output = run.until("}")  # the rest of the output: the document, then its end
    document = json.loads("\n".join(line.text for line in output if not line.text.startswith(("note:", "ngixi"))))
    assert document["error"] == {"kind": "interrupted", "message": "interrupted (SIGINT)", "exit_code": 130}


def test_ctrl_c_on_a_terminal_leaves_wasmers_watcher_to_stop_the_spinning_call(tmp_path: Path, keys: KeyFiles) -> None:
    """A terminal's Ctrl-C reaches its whole process group, the forked watcher too: it died of it (printing "Exception
    ignored when trying to write to the signal wakeup fd" and a traceback), and the Wasmer guest, which holds the GIL
    so Python never sees the interrupt, spun on for ever. The watcher ignores the terminal's signals: the call ends
    at its deadline."""
    pytest.importorskip("wasmer")
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=spinning(False), manifest=TIMED.replace("200", "1500"))
    argv = ["ngixi", "run", "--in-process", "--engine", "wasmer", "-v", "--trust", str(keys.trust)]
    run = WatchProcess(tmp_path, [*argv, str(bundle), "add", "1", "2"])
    run.until("note: hello:", timeout=60)
    spinning_since = _cpu_seconds(run.process.pid)
    while _cpu_seconds(run.process.pid) < spinning_since + 0.3:  # in the call, which spins: past Python's reach
        time.sleep(0.01)
    watchers = Path(f"/proc/{run.process.pid}/task/{run.process.pid}/children").read_text().split()
    for pid in (run.process.pid, *map(int, watchers)):  # as a terminal's Ctrl-C does
        os.kill(pid, signal.SIGINT)
    try:
        output = [line.text for line in run.until("ngixi: error: hello: add exceeded its 1500 ms timeout", timeout=30)]
        assert run.process.wait(timeout=30) == -signal.SIGKILL
    finally:
        run.process.kill()
    assert not any("Traceback" in text for text in output), output


def _cpu_seconds(pid: int) -> float:
    """The processor time a process has used (Linux's /proc: utime and stime, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> set[str]:
    """This thread's child processes, unreaped ones included (Linux's /proc)."""
    listing = Path(f"/proc/self/task/{threading.get_native_id()}/children")
    if not listing.exists():
        pytest.skip("this kernel does not list a thread's children")
    return set(listing.read_text().split())


def test_a_closed_watchdog_has_ended_its_watcher() -> None:
    """`ngixi run --json` prints its document once the tenant is closed: a watcher still running then could fire
    at the deadline of a call that had just ended and write its own document too, before or after that one.
    close() ends the watcher and waits for it (a limit block and a close, no deadline reached)."""
    before = _children()
    watchdog = ProcessWatchdog(lambda message: message)
    with watchdog.limit(60, "never reached"):
        assert len(_children() - before) == 1
    watchdog.close()
    assert _children() == before
    with watchdog.limit(60, "never reached"):
        [watcher] = _children() - before
    os.kill(int(watcher), signal.SIGKILL)
    os.waitpid(int(watcher), 0)
    watchdog.close()  # a watcher gone already: closed all the same
    assert _children() == before


def test_a_guest_drawing_its_whole_memory_of_random_bytes_ends_at_its_timeout(tmp_path: Path, keys: KeyFiles) -> None:
    """A guest in a host function is past the engine's deadline: random_get filling a memory of 1 GiB held an
    in-process call for as long as the system's generator took, many times timeout_ms = 100. It looks at the call's
    deadline as it draws, and ends the call as timed out."""
    random_get = Imp("wasi_snapshot_preview1", "random_get", ["i32", "i32"], ["i32"])
    body = call_import(0, 0, 1 << 30)
    wasm = module(imports=[random_get], functions=[Func("add", ["i32", "i32"], ["i32"], body)], memory=(16384, 16384))
    manifest = HELLO_MANIFEST.replace("[capabilities.log]", "[limits]\ntimeout_ms = 100\nmemory_pages = 16384\n\n")
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=wasm, manifest=manifest + "[capabilities.random]\n")
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmtime") as tenant:
        began = time.monotonic()
        with pytest.raises(GuestError) as stopped:
            tenant.call("add", (1, 2))
        elapsed = time.monotonic() - began
    assert str(stopped.value) == "hello: reached its limits.timeout_ms while drawing random bytes in random_get"
    assert elapsed < 0.1 + 0.5


def slow_to_compile(values: int) -> bytes:
    """`add` keeps `values` values live across as many blocks, a shape each engine takes time in the square of its
    size to compile, and returns `values`."""
    body = push(*[1] * values) + b"\x41\x00\x04\x40\x0b" * values + b"\x6a" * (values - 1)  # i32.const 0; if; end
    return module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], body)])


def test_compiling_a_guest_in_process_is_not_charged_to_its_start_functions_timeout(
    tmp_path: Path, keys: KeyFiles
) -> None:
    """On Wasmer the watcher's deadline for the start function (limits.timeout_ms) ran from the start of the load,
    through the compile of the .wasm: a guest whose compile took longer than its timeout (a large program's, at its
    first load) was ended as `start exceeded its 1 ms timeout` before any of its code ran, every time until a
    compile was kept in the host AOT cache, which a killed compile never is. The start's deadline now runs from
    instantiation."""
    pytest.importorskip("wasmer")
    manifest = TIMED.replace("timeout_ms = 200", "timeout_ms = 1")  # ended 0.75 s after it: a compile takes longer
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=slow_to_compile(12_000), manifest=manifest)
    argv = [str(BIN / "ngixi"), "run", "--in-process", "--engine", "wasmer", "--trust", str(keys.trust)]
    result = run_in(tmp_path, [*argv, str(bundle), "add", "1", "2"], env=dict(os.environ), check=False, timeout=120)
    assert (result.returncode, result.stdout) == (0, "12000\n"), result.stderr


# Run as `ngixi`, with a compile's allowance made so small that any compile outlives it.
_NO_TIME_TO_COMPILE = """
import sys
from ngixi_runtime import cli
from ngixi_runtime.loading import loader
loader._COMPILE_BASE_SECONDS, loader._COMPILED_BYTES_PER_SECOND = 0.0, 10**12
sys.exit(cli.main())
"""


def test_a_compile_in_process_is_held_to_the_allowance_an_isolated_child_has(
    tmp_path: Path, keys: KeyFiles, engine_name: str
) -> None:
    """A function crafted for the compilers (values live across many blocks) takes each engine time in the square of
    its size (Wasmtime 14.5 s for 0.26 MB; an isolated tenant's child is stopped after 30 s and 10 s per MB), and
    `ngixi run --in-process` compiled it for as long as that took. Its compile is held to the child's allowance
    now: the watcher ends the process past it (here an allowance of nothing), on both engines, saying so."""
    wasm = slow_to_compile(8_000)
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=wasm, manifest=TIMED)
    argv = [sys.executable, "-c", _NO_TIME_TO_COMPILE, "run", "--in-process", "--engine", engine_name]
    argv += ["--trust", str(keys.trust), "--json", str(bundle), "add", "1", "2"]
    result = run_in(tmp_path, argv, env=dict(os.environ), check=False, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    line = f"ngixi: error: hello: compiling its .wasm ({len(wasm)} bytes) took over 0 s, the most a module of its"
    assert result.stderr.startswith(line)
    assert json.loads(result.stdout)["error"]["exit_code"] == 137
