"""Rust std programs (tests/data/rust-programs: Debian's rustc 1.63 for wasm32-wasi, std only; its README says how
to rebuild them) committed as `wasm` guests by an author outside this repository, built, signed and run by the CLI
as an operator types it, isolated and in-process on both engines, against wasmtime-py's own WASI running the same
module: exit code, stdout, stderr and the files each leaves.

`files` goes through std::fs as file tools do (a 1 MB file, seeks, set_len, 200 entries in one directory, renames
and hard links across preopens, a read-only preopen, symlinks the host put there, errors' kinds and errno values);
`cli` through args, environment variables, stdin to its end, 4,000 lines of stdout and 2,000 of stderr, clocks and a
sleep (poll_oneoff), HashMap's random keys, what WASI does not support, and each way a program ends: an exit code,
main's error, a panic, an abort, an allocation past the memory's limit and a stack overflow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.build.integration.test_real_programs import TRAPPED, built_project, emptied, reference, run
from tests.build.integration.test_wasi_programs import Known, as_we_answer, tree
from tests.conftest import REPO

pytestmark = pytest.mark.integration

PROGRAMS = REPO / "tests" / "data" / "rust-programs"
# What each program is granted besides stdio, args and clock (env: std imports environ_get whatever a program does).
GRANTS = {
    "files": """\
[capabilities.env]
[capabilities.fs]
preopens = [
    { guest = "/work", host = "work", mode = "rw" },
    { guest = "/ro", host = "ro", mode = "ro" },
    { guest = "/out", host = "out", mode = "rw" },
]
""",
    "cli": """\
[capabilities.stdin]
[capabilities.random]
[capabilities.env]
allow = ["GREETING", "EMPTY", "HOME"]
""",
}
MOUNTS = ("work", "ro", "out")
ENV = (("GREETING", "grüß dich ✓"), ("EMPTY", ""), ("HOME", "/home/guest"))
STDIN = "".join(f"line {n} {'é✓' * (n % 13)}\n" for n in range(5000)).encode() + b"no newline at the end"
STEPS = ["env", "clocks", "random", "unsupported", "streams", "exit", "3"]
# Each ending, and what ngixi says after the program's own stderr (the reference's): a trap names the guest's
# function that Rust's library trapped for.
ENDINGS = {
    "fail": "",
    "panic": "ngixi: error: cli: _start panicked in cli::main\n",
    "abort": "ngixi: error: cli: _start aborted in cli::main\n",
    "alloc 100": "ngixi: error: cli: _start aborted in cli::allocate\n",
    "recurse": "ngixi: error: cli: _start trapped: out of bounds memory access in cli::recurse\n",
}
_ITERATING = (
    "Rust's remove_dir_all removes entries while it reads the directory; Wasmtime's index cookies skip entries "
    "after an unlink, so it fails NOTEMPTY (README: fd_readdir reads on from its cookies)"
)
KNOWN = {  # the files program's lines where the reference answers `theirs`, we `ours`, and why ours is right
    "files": (
        Known("remove_dir_all many: error Uncategorized Some(55)", "remove_dir_all many: ok ()", _ITERATING),
        Known(
            "remove_dir_all with links: error Uncategorized Some(55)", "remove_dir_all with links: ok ()", _ITERATING
        ),
        Known(
            "absolute read_link: error PermissionDenied Some(63)",
            'absolute read_link: ok "/etc/passwd"',
            "path_readlink reads a symlink to an absolute path that the host put there (README); Wasmtime says PERM",
        ),
    )
}
CASES = {"files": ["files", "/work"], "steps": ["cli", *STEPS], **{e: ["cli", *e.split()] for e in ENDINGS}}
MODES = [(engine, mode) for engine in ("wasmer", "wasmtime") for mode in ((), ("--in-process",))]
Ended = tuple[int, str, str, dict[str, tuple[object, ...]]]  # exit code, stdout, stderr, the files left


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The author's project: each program committed as `guests/<name>/<name>.wasm` beside its manifest, built once.
    The build warns of nothing (rustc's `main` export of a command is no undeclared export)."""
    root = tmp_path_factory.mktemp("rust")
    guests = {}
    for name, grants in GRANTS.items():
        header = f'[guest]\nname = "{name}"\nversion = "0.1.0"\nkind = "command"\n\n[limits]\nmemory_pages = 512\n\n'
        common = "[capabilities.stdio]\n[capabilities.args]\n[capabilities.clock]\n"
        guests[name] = (header + common + grants, (PROGRAMS / f"{name}.wasm").read_bytes())
    built = built_project(root, guests)
    assert "warning" not in built.stdout + built.stderr
    return root


def given(base: Path) -> Path:
    """/work, /ro and /out under `base` as the files program expects them (its source's header); returns /work."""
    emptied(base, MOUNTS)
    work = base / "work"
    (work / "old.txt").write_text("old")
    os.utime(work / "old.txt", (1_000_000_000, 1_000_000_000))
    links = work / "links"
    (links / "dir").mkdir(parents=True)
    (links / "dir" / "inside").write_text("in")
    (links / "file.txt").write_text("the file\n")
    targets = {"to-file": "file.txt", "to-dir": "dir", "dangling": "nothing", "escape": "../../../etc/passwd"}
    for name, target in {**targets, "absolute": "/etc/passwd", "loop": "loop"}.items():
        os.symlink(target, links / name)
    (base / "ro" / "given.txt").write_text("given")
    return work


def left(base: Path) -> dict[str, tuple[object, ...]]:
    return {f"{mount}/{name}": kind for mount in MOUNTS for name, kind in tree(base / mount).items()}


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ended]:
    """What wasmtime-py's own WASI makes of each run, once for every engine and mode (the files program's stdout with
    our answers in place of the known differences)."""
    base = tmp_path_factory.mktemp("reference")
    (base / "stdin").write_bytes(STDIN)
    ended = {}
    for case, argv in CASES.items():
        guest = argv[0]
        work = given(base)
        wasm = (project / "artifacts" / "wasm" / f"{guest}.wasm").read_bytes()
        code, stdout = reference(wasm, work, argv, base / "stdin", env=ENV, mounts=MOUNTS, read_only=("ro",))
        shown = as_we_answer(guest, stdout.decode(), KNOWN.get(guest, ()))
        ended[case] = (code, shown, (base / "reference.err").read_text(), left(base) if guest == "files" else {})
    return ended


def ours(project: Path, engine: str, mode: tuple[str, ...], argv: list[str]) -> Ended:
    guest, *args = argv
    base = project / ".ngixi" / "sandbox" / "dev" / "default" / guest / "files"
    given(base)
    env = [arg for name, value in ENV for arg in ("--env", f"{name}={value}")] if guest == "cli" else []
    ran = run(project, engine, *args, stdin=STDIN, guest=guest, mode=(*mode, *env))
    return ran.returncode, ran.stdout.decode(), ran.stderr.decode(), left(base) if guest == "files" else {}


@pytest.mark.parametrize(("engine", "mode"), MODES, ids=[f"{e}-{'in-process' if m else 'isolated'}" for e, m in MODES])
def test_rust_std_programs_behave_as_under_wasmtime_py(
    project: Path, expected: dict[str, Ended], engine: str, mode: tuple[str, ...]
) -> None:
    for case, argv in CASES.items():
        code, stdout, stderr, files = expected[case]
        assert ours(project, engine, mode, argv) == (code, stdout, stderr + ENDINGS.get(case, ""), files), case


def test_the_references_runs_are_what_the_programs_were_written_to_do(expected: dict[str, Ended]) -> None:
    """Each case reached its end: nothing above compares two runs that both stopped early."""
    files, steps = expected["files"], expected["steps"]
    assert files[0] == 0 and files[1].endswith("done\n") and files[2] == ""
    assert "many: 201 entries" in files[1] and "out/arrived.txt" in files[3] and "work/links" not in files[3]
    assert steps[0] == 3 and steps[1].endswith("completed\nexiting with 3 ") and steps[2].count("\n") == 2000
    assert "stdin: 5001 lines" in steps[1] and "two states differ: true" in steps[1]
    assert {ending: expected[ending][0] for ending in ENDINGS} == {
        "fail": 1,
        "panic": TRAPPED,
        "abort": TRAPPED,
        "alloc 100": TRAPPED,
        "recurse": TRAPPED,
    }
    assert expected["fail"][2] == 'Error: "failed after 0 steps"\n'
    assert expected["panic"][2].startswith("thread 'main' panicked at 'no number: 7', cli.rs:")
    assert expected["alloc 100"][1].endswith("held 30 MiB\nafter freeing, 8 MiB: 8\n")
