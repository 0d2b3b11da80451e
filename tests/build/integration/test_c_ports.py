"""What porting a real C program to a C guest takes that a guest written for ngixi does not: setjmp/longjmp (Lua's
errors, SQLite's shell, libpng: `[compile] setjmp = true`), a C stack above wasm-ld's 64 KiB (SQLite's resolver
overflowed it at 500 nested calls: `[compile] stack_bytes`) and function-like macros defined on the command line
(Lua's `-Dlua_tmpnam(b,e)=...`). One small program does all three as those programs do, built by `ngixi build` in an
author's project (setjmp makes a module only Wasmtime runs: `targets = []`) and run by `ngixi run`, isolated and
in-process, against wasmtime-py's own WASI running the same module.

A third guest includes setjmp.h without `setjmp = true`, and a fourth's stack does not fit: their compiles fail.

Cost: two guests of one source compiled (about a second each), each module compiled once by wasmtime-py and once by
the build for this host.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.build.integration.test_real_programs import (
    NGIXI,
    TRAPPED,
    Ended,
    assert_ended_as,
    emptied,
    environment,
    reference_ended,
    run_ended,
)
from tests.integration import run_in

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=8)]

# An interpreter's shape: each argument parsed under a protected call that a failure longjmps out of, a recursion as
# deep as the defined LEVELS(n) asks (512 bytes a level kept across the call: far past 64 KiB), then an uncaught
# failure.
SOURCE = r"""#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf *handler;

static void fail(const char *why) {
    fprintf(stderr, "error: %s\n", why);
    longjmp(*handler, 1);
}

static int parse(int n) {
    if (n < 0) fail("negative");
    return n * 2;
}

static int protected_call(int (*call)(int), int argument, int *result) {
    jmp_buf here;
    jmp_buf *outer = handler;
    handler = &here;
    int failed = setjmp(here);
    if (!failed) *result = call(argument);
    handler = outer;
    return failed;
}

static int depth(int n, volatile unsigned char *outer) {
    volatile unsigned char frame[512];
    frame[0] = (unsigned char)(outer[0] + 1);
    int below = n == 0 ? 0 : depth(n - 1, frame);
    return below + (unsigned char)(frame[0] - outer[0]);
}

static jmp_buf returned;

static int arm(void) { return setjmp(returned); }

static int run(int argc, char **argv) {
    jmp_buf top;
    volatile unsigned char start[1] = {0};
    handler = &top;
    if (setjmp(top)) return 3;
    for (int i = 1; i < argc; i++) {
        int result = 0;
        if (protected_call(parse, atoi(argv[i]), &result)) printf("%s: caught\n", argv[i]);
        else printf("%s: %d\n", argv[i], result);
    }
    printf("depth %d\n", depth(LEVELS(4), start));
    fail("uncaught");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "stale") == 0) {
        if (arm() == 0) longjmp(returned, 1);  /* to a setjmp whose function has returned: nothing catches it */
        return 4;
    }
    return run(argc, argv);
}
"""
MANIFEST = """\
[guest]
name = "{name}"
version = "0.1.0"
kind = "command"
language = "c"

[compile]
flags = ["-O2", "-DLEVELS(n)=((n) * 100)"]
setjmp = true
{stack}
[capabilities.stdio]
[capabilities.args]
[capabilities.fs]
preopens = [{{ guest = "/work", host = "work", mode = "rw" }}]

[limits]
memory_pages = 64
"""
STACKS = {"deep": "stack_bytes = 1048576\n", "shallow": ""}  # the second keeps wasm-ld's 64 KiB
TIGHT = "stack_bytes = 8388608\n"  # more than the 64 pages of memory hold: its link fails
ARGV = ["7", "-1", "21"]
TRAP = "ngixi: error: shallow: _start trapped: out of bounds memory access in depth\n"
UNCAUGHT = (
    "ngixi: error: deep: _start trapped: an uncaught exception (what a C longjmp throws when no running setjmp takes "
    "it) in main\n"
)
MODES = [(), ("--in-process",)]
MODE_IDS = ["isolated", "in-process"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The author's project, built for Wasmtime alone: the two guests, and a third whose stack its memory cannot
    hold; the build's output."""
    root = tmp_path_factory.mktemp("ports")
    (root / "pyproject.toml").write_text('[tool.ngixi]\ntargets = []\nwasmtime_targets = ["host"]\n')
    (root / "manifests").mkdir()
    for name, stack in {**STACKS, "tight": TIGHT, "nojmp": ""}.items():
        manifest = MANIFEST.format(name=name, stack=stack)
        (root / "manifests" / f"{name}.toml").write_text(
            manifest.replace("setjmp = true\n", "") if name == "nojmp" else manifest
        )
        (root / "guests" / name).mkdir(parents=True)
        (root / "guests" / name / "main.c").write_text(SOURCE)
    return root, run_in(root, [str(NGIXI), "build"], env=environment(root), check=False, timeout=300)


@pytest.fixture(scope="module")
def project(built: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return built[0]


def test_a_stack_the_memory_cannot_hold_names_the_field_to_raise(
    built: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    said = (
        "manifests/tight.toml: limits.memory_pages: 64 pages cannot hold the module's stack and static data "
        "(wasm-ld: maximum memory too small, "
    )
    assert built[1].returncode != 0 and f"failed: tight (compile): {said}" in built[1].stdout
    assert "): raise it to 129 or more\n" in built[1].stdout  # 8 MiB of stack and a page of data
    assert "failed: deep" not in built[1].stdout and "failed: shallow" not in built[1].stdout


def test_setjmp_h_without_its_field_names_the_field(built: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """wasi-libc's own error asked for `-mllvm -wasm-enable-sjlj`, which `[compile] flags` refuses."""
    said = (
        "failed: nojmp (compile): manifests/nojmp.toml: compile.setjmp: guests/nojmp/main.c includes setjmp.h, whose "
        "setjmp and longjmp need `setjmp = true` in [compile] (what wasi-libc's error calls -mllvm -wasm-enable-sjlj); "
        'the module then runs on Wasmtime alone (README, "Porting a C program someone else wrote")\n'
    )
    assert said in built[1].stdout, built[1].stdout


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ended]:
    """What wasmtime-py's own WASI makes of each guest's module."""
    base = tmp_path_factory.mktemp("reference")
    (base / "stdin").write_bytes(b"")
    ended = {}
    for name in STACKS:
        emptied(base, ("work",))
        wasm = (project / "artifacts" / "wasm" / f"{name}.wasm").read_bytes()
        ended[name] = reference_ended(wasm, base, [name, *ARGV], env=(), mounts=("work",), read_only=())
    ended["stale"] = reference_ended(wasm, base, ["deep", "stale"], env=(), mounts=("work",), read_only=())
    return ended


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_setjmp_and_a_larger_stack_run_as_under_wasmtime_py(
    project: Path, expected: dict[str, Ended], mode: tuple[str, ...]
) -> None:
    deep, shallow = expected["deep"], expected["shallow"]
    assert deep[:3] == (3, "7: 14\n-1: caught\n21: 42\ndepth 401\n", "error: negative\nerror: uncaught\n")
    assert shallow[0] == TRAPPED and "depth" not in shallow[1]
    for name, said in (("deep", ""), ("shallow", TRAP)):
        got = run_ended(project, "wasmtime", mode, ARGV, guest=name, stdin=b"", env=(), mounts=("work",))
        assert_ended_as(got, expected[name], name, said=said)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_a_longjmp_nothing_catches_says_so_as_it_traps_under_wasmtime_py(
    project: Path, expected: dict[str, Ended], mode: tuple[str, ...]
) -> None:
    """Wasmtime's error says only "error while executing at wasm backtrace:" on its first line, the cause (a thrown
    exception) under it; the guest's function is named, not wasi-libc's __wasm_longjmp."""
    assert expected["stale"][0] == TRAPPED
    got = run_ended(project, "wasmtime", mode, ["stale"], guest="deep", stdin=b"", env=(), mounts=("work",))
    assert_ended_as(got, expected["stale"], "stale", said=UNCAUGHT)
