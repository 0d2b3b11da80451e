"""Lua 5.3 scripts on yowasp-silice's silice.wasm (the Silice HDL compiler, C++, wasm32-wasi, 2.4 MB), whose
preprocessor runs the Lua of a source's `$$` lines with Lua's io and os libraries: committed as a `wasm` command guest
by an author outside this repository, built, signed and run by the CLI as an operator types it, against wasmtime-py's
own WASI running the same module with the same preopens: exit code, stdout, stderr and the files left in /work and
/tmp (read-write) and /ro (read-only). /share (read-only) holds the two framework files Silice reads.

npm's CRuby (`@ruby/*-wasm-wasi`) and Perl (`@6over3/zeroperl-ts`) cannot be guests: each is a reactor (no `_start`)
importing its JavaScript host's functions (README). Silice's Lua is a scripting language a registry ships inside a WASI
command.

tests/data/real-programs/silice_probe.lua reaches WASI through Lua's io and os libraries, one line per check (files
in both kinds of mount, their errors and errno, the host's links followed, looping, dangling and escaping, directories
and links removed and renamed, files open after their name is removed, renamed or truncated, seeks far and before
the start, 12, 17 and 20 MiB reads and writes, a file grown past the disk quota, stdin to its end, arguments as -D
defines, the environment, clocks, 2,000 lines of output), then ends with exit code 3. This build's pcall catches no
error (a Lua error ends the program), so every other ending is a run of its own: 0, false, a Lua error, Lua recursion
and C recursion past Lua's limits, memory past limits.memory_pages, and a source nested past the C stack of Silice's
parser (a trap).

Cost: the module is compiled three times, by wasmtime-py for the reference and once per engine by the build (this
host's triple alone). The probe and the trap run on both engines, isolated and in-process; memory past its limit (a
second of CPU a run) once on each engine; the endings no engine takes part in (proc_exit, Lua's errors) once,
isolated on Wasmtime.
"""

from __future__ import annotations

import os
import re
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
    run_ended,
    sandbox_files,
    wheel_cache,
)
from tests.build.integration.test_wasi_programs import Known

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=28)]

PROBE = REQUIREMENTS.parent / "silice_probe.lua"
FRAMEWORKS = "yowasp_silice/share/silice/frameworks/"
SHARED = ("libraries/memory_ports.si", "boards/icestick/icestick.v")  # what Silice reads of its frameworks
MANIFEST = """\
[guest]
name = "silice"
version = "0.1.0"
kind = "command"
description = "Silice, from PyPI's yowasp-silice"

[build]
output = "silice.wasm"

[capabilities.stdio]
[capabilities.stdin]
[capabilities.args]
[capabilities.env]
allow = ["GREETING", "TMPDIR", "EMPTY", "EQUALS"]
[capabilities.clock]
[capabilities.fs]
preopens = [
    { guest = "/work", host = "work", mode = "rw" },
    { guest = "/ro", host = "ro", mode = "ro" },
    { guest = "/tmp", host = "tmp", mode = "rw" },
    { guest = "/share", host = "share", mode = "ro" },
]

[limits]
memory_pages = 4096
timeout_ms = 20000
"""
MOUNTS = ("work", "ro", "tmp", "share")
READ_ONLY = ("ro", "share")
ENV = (("GREETING", "grüß dich ✓"), ("TMPDIR", "/tmp"), ("EMPTY", ""), ("EQUALS", "a=b=c"))
STDIN = "".join(f"line {n} {'é✓' * (n % 7)}\n" for n in range(3000)).encode()
SILICE = ["--frameworks_dir", "/share/", "--framework", "/share/boards/icestick/icestick.v"]
MAIN = '$$dofile("/ro/probe.lua")\nalgorithm main(output uint8 leds) { leds = 1; }\n'
DEEP = f"algorithm main(output uint8 leds) {{ leds = {'(' * 1000}1{')' * 1000}; }}\n"  # past the C stack
ENDINGS = {  # each ending but the probe's own (exit 3), and what ngixi says after the program's stderr
    "memory": "",
    # after a line Silice leaves unfinished (a terminal colour code): ngixi's begins a line of its own
    "stack overflow": "\nngixi: error: silice: _start trapped: out of bounds memory access\n",
    # proc_exit, as the probe's own ending, and Lua's errors (Silice's "preprocessor error", exit 2): run once,
    # isolated on Wasmtime
    "0": "",
    "false": "",
    "error": "",
    "recursion": "",
    "c stack": "",
}
EVERYWHERE = ("probe", "stack overflow")  # a trap: both engines, isolated and in-process
EACH_ENGINE = (("wasmer", ()), ("wasmtime", ("--in-process",)))  # memory.grow refused, once on each engine
KNOWN = (  # the probe's lines where the reference answers `theirs`, we `ours`, and why ours is right
    Known(
        "past_the_disk_quota: {true, {true}}",
        'past_the_disk_quota: {true, {nil, "Quota exceeded", 19}}',
        "a file grown past capabilities.fs.max_bytes (1 GiB unless set) is DQUOT (README); Wasmtime keeps no quota",
    ),
    Known(
        'removing_a_directory_with_a_slash: {nil, "/work/empty2/: Invalid argument", 28}',
        "removing_a_directory_with_a_slash: {true}",
        "wasi-testsuite's remove_directory_trailing_slashes: `dir/` must be removed; Wasmtime gives INVAL",
    ),
    Known(
        'removing_a_link_with_a_slash: {nil, "/work/moved-link/: Invalid argument", 28}',
        'removing_a_link_with_a_slash: {nil, "/work/moved-link/: Not a directory", 54}',
        "`link/` names the symlink to unlink(2), NOTDIR (README); Wasmtime 50 follows it to the directory, ISDIR, and"
        " remove() then rmdirs `link/`: INVAL",
    ),
)


def argv(case: str) -> list[str]:
    if case == "probe":
        return [*SILICE, "-D", 'ARG1="x"', "-D", 'ARG2="y z ünï"', "/ro/main.si", "-o", "/work/out.v"]
    source = "/ro/deep.si" if case == "stack overflow" else "/ro/main.si"
    return [*SILICE, "-D", f'ENDING="{case}"', source, "-o", "/work/out.v"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The author's project: silice.wasm committed as guests/silice/silice.wasm beside its manifest, built once."""
    root = tmp_path_factory.mktemp("silice")
    wasm = pinned_wheel_member(wheel_cache(), "yowasp_silice", "yowasp_silice/silice.wasm")
    built_project(root, {"silice": (MANIFEST, wasm)})
    return root


LINKS = {  # each host link the probe reads through, and its target
    "ro/link": "given.txt",
    "ro/chain": "link",
    "ro/dirlink": "tree",
    "ro/loop": "loop",
    "ro/dangling": "nowhere",
    "ro/absolute": "/ro/given.txt",
    "ro/up": "../ro/given.txt",
    "ro/outside": "../../etc/passwd",
    "work/wlink": "target.txt",
    "work/wdirlink": "wdir",
    "work/wdirlink2": "full",
    "work/dangle": "created.txt",
    "work/dangle-out": "../out.txt",
    "work/dangle-abs": "/work/abs.txt",
}


def given(base: Path, case: str) -> None:
    """/work, /ro and /tmp under `base` as the probe expects them (its header), or the scripts alone for an ending;
    /share once."""
    emptied(base, MOUNTS[:3])
    ro = base / "ro"
    (ro / "probe.lua").write_bytes(PROBE.read_bytes())
    (ro / "main.si").write_text(MAIN)
    (ro / "deep.si").write_text(DEEP)
    if case == "probe":
        (ro / "given.txt").write_text("given\n")
        (ro / "big.bin").write_bytes(bytes(range(256)) * (20 * 4096))
        (ro / "tree").mkdir()
        (ro / "tree" / "x.txt").write_text("x")
        (base / "work" / "target.txt").write_text("target")
        for directory in ("wdir", "full", "empty", "empty2"):
            (base / "work" / directory).mkdir()
        (base / "work" / "full" / "inner.txt").write_text("inner")
        for link, target in LINKS.items():
            os.symlink(target, base / link)
    for name in SHARED:
        if not (base / "share" / name).exists():
            (base / "share" / name).parent.mkdir(parents=True, exist_ok=True)
            member = pinned_wheel_member(wheel_cache(), "yowasp_silice", FRAMEWORKS + name)
            (base / "share" / name).write_bytes(member)


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ended]:
    """What wasmtime-py's own WASI makes of each case, once for every engine and mode (the probe's stdout with our
    answers in place of the known differences)."""
    base = tmp_path_factory.mktemp("reference")
    (base / "stdin").write_bytes(STDIN)
    wasm = (project / "artifacts" / "wasm" / "silice.wasm").read_bytes()  # with the build's memory maximum
    ended = {}
    for case in ("probe", *ENDINGS):
        given(base, case)
        known = KNOWN if case == "probe" else ()
        command = ["silice", *argv(case)]
        ended[case] = reference_ended(wasm, base, command, env=ENV, mounts=MOUNTS, read_only=READ_ONLY, known=known)
    return ended


def runs_in(case: str, engine: str, mode: tuple[str, ...]) -> bool:
    if case == "memory":
        return (engine, mode) in EACH_ENGINE
    return case in EVERYWHERE or (engine, mode) == ("wasmtime", ())


@pytest.mark.parametrize(("engine", "mode"), MODES, ids=MODE_IDS)
def test_lua_scripts_behave_as_under_wasmtime_py(
    project: Path, expected: dict[str, Ended], engine: str, mode: tuple[str, ...]
) -> None:
    for case in ("probe", *ENDINGS):
        if not runs_in(case, engine, mode):
            continue
        given(sandbox_files(project, "silice"), case)
        got = run_ended(project, engine, mode, argv(case), guest="silice", stdin=STDIN, env=ENV, mounts=MOUNTS)
        assert_ended_as(got, expected[case], case, said=ENDINGS.get(case, ""))


def test_the_references_runs_are_what_the_script_was_written_to_do(expected: dict[str, Ended]) -> None:
    """Each case reached its end: nothing above compares two runs that both stopped early."""
    code, stdout, stderr, files = expected["probe"]
    lines = stdout.splitlines()
    assert code == 3 and lines[-1] == 'printing_a_lot: "done"' and len(lines) > 2040
    assert stderr.endswith("".join(f"progress {n}\n" for n in range(0, 2000, 500)))
    assert 'arguments: {"x", "y z ünï"}' in lines
    assert 'environment: {"grüß dich ✓", "/tmp", "", "a=b=c", "nil", "nil"}' in lines
    assert 'standard_input: {"line 0 ", nil, 76852, 2999, ""}' in lines
    assert 'missing_file: {"/work/missing.txt: No such file or directory", 44}' in lines
    assert files["work/large.bin"][0] == "file" and "work/arrived.txt" in files
    assert {ending: expected[ending][0] for ending in ENDINGS} == {
        "0": 0,
        "false": 1,
        "memory": 2,
        "stack overflow": TRAPPED,
        "error": 2,
        "recursion": 2,
        "c stack": 2,
    }
    ended = {e: expected[e][2].split("preprocessing \n")[-1] for e in ENDINGS if expected[e][0] == 2}
    endings = {ending: re.sub(r"probe\.lua:\d+", "probe.lua", stderr) for ending, stderr in ended.items()}
    assert re.fullmatch(r"\[\[LUA\]exit\] .*\npreprocessor error\n", endings.pop("memory"))  # no message of Lua's
    assert endings == {  # Silice's end of a Lua error
        "error": "[[LUA]exit] stopped with a message\npreprocessor error\n",
        "recursion": "[[LUA]exit] /ro/probe.lua: stack overflow\npreprocessor error\n",
        "c stack": "[[LUA]exit] /ro/probe.lua: C stack overflow\npreprocessor error\n",
    }
