"""Real programs (tests/data/wasi-programs: C through zig cc against wasi-libc, Zig through its std.Io) through
the loader, compared with wasmtime-py's own WASI running the same module on an identical directory tree.

Each program uses libc or Zig's std as programs do (stdio files, stat, directories, links, renames, argv, environ,
stdin, clocks, exit codes) and prints what each call returned. It runs as a signed bundle, isolated and in-process, on
Wasmer and on Wasmtime, granted fs (its root preopened as `/`), stdio, stdin, env and args; the reference
is the same module under `wasmtime.WasiConfig`. Stdout, stderr, the exit code and the tree the program
leaves must be the same, except for the differences in `KNOWN`, each where witx, POSIX or the conformance suite
clearly says otherwise than the reference (README's WASI section lists them).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ngixi_build.languages.native import PAGE_BYTES, STACK_BYTES, WASI_TARGET
from ngixi_build.toolchains import ziglang
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from tests.conftest import REPO, KeyFiles, make_bundle, make_key

if TYPE_CHECKING:
    import wasmtime

pytestmark = pytest.mark.integration

PROGRAMS = REPO / "tests" / "data" / "wasi-programs"
SOURCES = {p.stem: p for p in sorted(PROGRAMS.glob("*.c")) + sorted(PROGRAMS.glob("*.zig"))}
NAMES = sorted(SOURCES)
ENGINES = ("wasmer", "wasmtime")
MEMORY_PAGES = 256
ENV = {"HOME": "/home/guest", "LANG": "C.UTF-8", "GREETING": "grüß dich ✓", "EMPTY": ""}
STDIN = b"a line of standard input\n" * 200
TENANT = "programs"


@dataclass(frozen=True)
class Run:
    """One run of a program, with these arguments."""

    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


ENDINGS = ("return", "exit255", "exit256", "exit-1", "_Exit", "abort", "assert")
COMMAND_LINE = ("one arg", "", "--exit=7", "ünïcödé ✓")
RUNS = [
    *(Run(name) for name in NAMES if name not in ("cli", "zigcli", "edges", "exits")),
    *(Run(name, COMMAND_LINE) for name in ("cli", "zigcli", "edges")),
    *(Run("exits", (ending,)) for ending in ENDINGS),
]


@dataclass(frozen=True)
class Known:
    """A line where the reference answers `theirs` and we answer `ours`, and why ours is right."""

    theirs: str
    ours: str
    why: str


_TRAILING = "wasi-testsuite's remove_directory_trailing_slashes: `dir/` must be removed; Wasmtime gives INVAL"
_READDIR_FILE = "a file has no readdir right; NOTDIR, as POSIX getdents on a file"
_SLASHED_LINK = "`link/` names the symlink, which unlink(2) and rmdir(2) answer NOTDIR for; Wasmtime 50 follows it"
_FILE_RIGHTS = "fdstat shows a file no readdir right, which no file has; Wasmtime shows every right but read or write"


def _errno(label: str, theirs: int, ours: int, why: str) -> Known:
    """A line of edges.c's: the label, then the errno each answers."""
    return Known(f"{label:<44} {theirs}", f"{label:<44} {ours}", why)


_CPU_CLOCKS = "witx defines the process and thread CPU-time clocks and we keep them; Wasmtime's WASI has neither (BADF)"
KNOWN: dict[str, tuple[Known, ...]] = {
    "files": (
        Known("rmdir d2/ -> -1 Invalid argument", "rmdir d2/ -> 0 ", _TRAILING),
        Known(
            "unlink symlink to dir/ -> -1 No such file or directory",
            "unlink symlink to dir/ -> -1 Not a directory",
            _SLASHED_LINK,
        ),
    ),
    "dirs": (
        Known(
            "removed while iterating 103",
            "removed while iterating 150",
            "POSIX readdir returns every entry not removed once; Wasmtime's index cookies skip entries after an unlink",
        ),
    ),
    "paths": (
        Known(
            "link from up symlink follow              28",
            "link from up symlink follow              63",
            "path_link's lookup flags may follow a symlink (witx); Wasmtime refuses to follow (INVAL), we follow "
            "and refuse the escape",
        ),
        Known("rmdir data/t/                            28", "rmdir data/t/                            0", _TRAILING),
        Known("rmdir t2/                                28", "rmdir t2/                                0", _TRAILING),
        Known(
            "readdir on file                          8", "readdir on file                          54", _READDIR_FILE
        ),
    ),
    "edges": (
        # Wasmtime 51 (the 3.12 run side's) answers INTR (27); 50 read no bytes, as preadv(2) of no iovecs does.
        _errno("pread no iovecs", 27, 0, "a pread of no iovecs reads nothing; Wasmtime 51 says INTR"),
        *(
            _errno(label, 8, 0, "fcntl(F_SETFL) works on a stream; Wasmtime's stdio answers BADF")
            for label in ("set APPEND on stdout", "set NONBLOCK on stdin")
        ),
        _errno(
            "rmdir data/dd/ln/",
            28,
            54,
            "`link/` names the symlink, which rmdir(2) answers NOTDIR for, as Wasmtime 51 does; 50 answers INVAL "
            "to any `name/`",
        ),
        *(
            _errno(
                f"{call} data/dd/{name}/",
                theirs,
                54,
                _SLASHED_LINK,
            )
            for call in ("unlink", "rmdir")
            for name, theirs in (("dg", 44), ("lp", 32), ("out", 63), *((("ln", 31),) if call == "unlink" else ()))
        ),
        *(
            _errno(
                f"{call} onto data/dd/{name}/",
                theirs,
                20,
                f"{call}(2) answers EXIST to `name/` where the name exists, a symlink never followed; Wasmtime 50 "
                "follows it, and answers NOTDIR for a file",
            )
            for call in ("symlink", "link")
            for name, theirs in (("lf", 54), ("dg", 44), ("lp", 32), ("out", 63), ("f", 54))
        ),
        _errno(
            "mkdir under a file fd",
            8,
            54,
            "a file is no directory: NOTDIR, as mkdirat(2) and path_open (wasi-testsuite's path_open_dirfd_not_dir) "
            "answer; Wasmtime says BADF",
        ),
        Known(
            "  7 entries, 7 go on from their d_next, 6 with their file's inode",
            "  7 entries, 7 go on from their d_next, 7 with their file's inode",
            "a `..` entry's d_ino is the parent's inode, as getdents(2) gives it; Wasmtime repeats the directory's own "
            "(its source says: incorrect, legacy)",
        ),
        _errno(
            "DIRECTORY|TRUNC a dir",
            28,
            31,
            "open(2) answers EISDIR to O_TRUNC on a directory; Wasmtime calls O_DIRECTORY|O_TRUNC invalid",
        ),
        _errno("readdir a file", 8, 54, _READDIR_FILE),
        Known("  read 1 write 0 readdir 1", "  read 1 write 0 readdir 0", _FILE_RIGHTS),
        Known(
            f"{'  write nothing to it':<44} 0",
            f"{'  write nothing to it':<44} 8",
            "a file created with FD_READ alone is not open for writing (witx: the rights asked for; open(2)'s "
            "O_RDONLY|O_CREAT); Wasmtime opens every CREAT for writing",
        ),
        *(_errno(f"clock_{call} {clock}", 8, 0, _CPU_CLOCKS) for clock in (2, 3) for call in ("time_get", "res_get")),
        Known("  type 0 flags 0", "  type 0 flags 4", "NONBLOCK was set on stdin above, which Wasmtime refused"),
        Known(
            f"{'poll stdin at its end':<44} 0, 1 events, waited enough: [30: error 0 type 1 bytes 1 hangup 0]",
            f"{'poll stdin at its end':<44} 0, 1 events, waited enough: [30: error 0 type 1 bytes 0 hangup 0]",
            "witx: nbytes is what is available to read, none at the end of stdin; Wasmtime says 1",
        ),
        *(
            _errno(
                label,
                58,
                ours,
                "witx: fd_fdstat_set_rights removes rights, and adding one is NOTCAPABLE; Wasmtime's is NOTSUP",
            )
            for label, ours in (("narrow to read and seek", 0), ("widen again", 76))
        ),
        Known(
            "  wrote 2 of their 2048 bytes",
            "  wrote 2048 of their 2048 bytes",
            "a short write is allowed, and Wasmtime writes the first iovec only; we write them all, as writev(2)",
        ),
        _errno("write 1025 iovecs", 0, 28, "writev(2) refuses more than IOV_MAX (1024, wasi-libc's too): INVAL"),
        Known(
            "readdir on from its cookies: error 0, 4 entries",
            "readdir on from its cookies: error 0, 3 entries",
            "a listing is read once, at cookie 0, and read on from its cookies (POSIX leaves open whether a name "
            "added since opendir is seen); Wasmtime reads the directory again at each call",
        ),
    ),
}


# Exits Wasmtime refuses ("invalid exit status outside of [0..126)") where witx's proc_exit takes any u32.
KNOWN_EXITS = {"exit255": 255, "exit256": 256, "exit-1": 0xFFFFFFFF}


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: trapped
    stdout: str
    stderr: str
    tree: dict[str, tuple[object, ...]]


def compile_program(name: str, output: Path) -> None:
    """As the build compiles a C or Zig command for wasm32-wasi: its memory bounded, its stack the build's, not
    stripped (Zig builds wasi-libc once for each set of flags that changes it, stripping among them: a stripped
    program's was a second build of it in each run of the suite)."""
    compile_source(SOURCES[name], output)


def compile_source(source: Path, output: Path, defines: Sequence[str] = ()) -> None:
    """A C or Zig program compiled as `compile_program` says (a C one with the macros `defines`)."""
    zig = [str(ziglang.ensure_zig())]
    if source.suffix == ".c":
        command = [*zig, "cc", f"--target={WASI_TARGET}", "-O2", "-w", *(f"-D{name}" for name in defines)]
        command += [str(source), "-o", str(output)]
        command += [f"-Wl,--max-memory={MEMORY_PAGES * PAGE_BYTES}", f"-Wl,-z,stack-size={STACK_BYTES}"]
    else:
        command = [*zig, "build-exe", "-target", WASI_TARGET, "-O", "ReleaseSmall", str(source)]
        command += [f"-femit-bin={output}", f"--max-memory={MEMORY_PAGES * PAGE_BYTES}", "--stack", str(STACK_BYTES)]
    subprocess.run(command, check=True, capture_output=True, timeout=300, cwd=output.parent)


def manifest(
    name: str, env_names: Iterable[str] = ENV, preopen: str = "/", preopens: Sequence[tuple[str, str, str]] = ()
) -> str:
    """Every capability a program uses; its root preopened read-write as `preopen`, or `preopens` (guest path, host
    folder, mode) instead."""
    mounts = ", ".join(
        f'{{ guest = "{g}", host = "{h}", mode = "{m}" }}' for g, h, m in preopens or [(preopen, "root", "rw")]
    )
    return f"""[guest]
name = "{name}"
version = "0.1.0"
kind = "command"

[capabilities.args]
[capabilities.clock]
[capabilities.random]
[capabilities.stdin]
[capabilities.stdio]
[capabilities.env]
allow = {json.dumps(sorted(env_names))}
[capabilities.fs]
preopens = [{mounts}]

[limits]
memory_pages = {MEMORY_PAGES}
timeout_ms = 30000
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyFiles, dict[str, Path]]:
    """Each program compiled once (`<name>.wasm`) and signed as a bundle."""
    directory = tmp_path_factory.mktemp("wasi-programs")
    keys = make_key(directory / "keys")
    bundles = {}
    for name in NAMES:
        wasm = directory / f"{name}.wasm"
        compile_program(name, wasm)
        bundles[name] = make_bundle(
            directory / name, keys.key, wasm=wasm.read_bytes(), manifest=manifest(name), guest=name
        )
    return keys, bundles


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """What a program left: each path's type, and a file's content digest and link count, a link's target."""
    found: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir",)
        elif not path.is_file():  # a FIFO, socket or device: never opened (a FIFO's read would wait)
            found[name] = ("special", stat.S_IFMT(path.lstat().st_mode))
        else:
            found[name] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_nlink)
    return found


OLD_NS = -(10**18)  # 1938-04-24: a file dated before 1970, which a timestamp (u64) cannot hold


def fresh_root(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "old").write_text("from 1938")
    os.utime(root / "old", ns=(OLD_NS, OLD_NS))
    return root


def wasi_command(config: wasmtime.WasiConfig, wasm: bytes) -> Callable[[], object]:
    """The module's `_start` under wasmtime-py's own WASI, set up by `config`, to call."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    start = linker.instantiate(store, wasmtime.Module(engine, wasm)).exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    return lambda: start(store)


def reference(run: Run, wasm: bytes, work: Path) -> Outcome:
    """The program under wasmtime-py's own WASI, its root preopened as `/`."""
    import wasmtime

    root = fresh_root(work / "root")
    (work / "stdin").write_bytes(STDIN)
    config = wasmtime.WasiConfig()
    config.argv = [run.name, *run.args]
    config.env = list(ENV.items())
    config.preopen_dir(str(root), "/")
    config.stdin_file = str(work / "stdin")
    config.stdout_file = str(work / "stdout")
    config.stderr_file = str(work / "stderr")
    start = wasi_command(config, wasm)
    exit_code: int | None = 0
    try:
        start()
    except wasmtime.ExitTrap as exit_trap:
        exit_code = exit_trap.code
    except wasmtime.Trap:
        exit_code = None
    except wasmtime.WasmtimeError as refused:
        assert "invalid exit status" in str(refused) and run.args[0] in KNOWN_EXITS, refused
        exit_code = KNOWN_EXITS[run.args[0]]
    stdout, stderr = ((work / stream).read_text(errors="replace") for stream in ("stdout", "stderr"))
    return Outcome(exit_code, stdout, stderr, tree(root))


def ours(run: Run, bundle: Path, keys: KeyFiles, sandboxes: Path, engine: str, *, isolated: bool) -> Outcome:
    root = fresh_root(sandboxes / TENANT / run.name / "files" / "root")
    with open_tenant(
        bundle,
        trust_file=keys.trust,
        isolated=isolated,
        args=run.args,
        env=ENV,
        stdin=STDIN,
        sandboxes=sandboxes,
        tenant=TENANT,
        engine=engine,
    ) as tenant:
        try:
            result = tenant.run()
        except CallFailed as trapped:
            result = trapped.result
    stdout, stderr = (stream.decode(errors="replace") for stream in (result.stdout, result.stderr))
    return Outcome(result.exit_code, stdout, stderr, tree(root))


def as_we_answer(name: str, stdout: str, known_here: Sequence[Known] | None = None) -> str:
    """The reference's stdout with each known difference (`known_here`, else KNOWN's of `name`) replaced by our
    answer (each must be there, or our answer in its place: Wasmtime 51 removes `dir/` as we do, where 50 answered
    INVAL)."""
    lines = stdout.split("\n")
    for known in KNOWN.get(name, ()) if known_here is None else known_here:
        if known.ours in lines and known.theirs not in lines:
            continue
        assert known.theirs in lines, f"{name}: the reference no longer answers {known.theirs!r} ({known.why})"
        lines[lines.index(known.theirs)] = known.ours
    return "\n".join(lines)


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_a_program_behaves_as_under_wasmtimes_own_wasi(
    run: Run, programs: tuple[KeyFiles, dict[str, Path]], tmp_path: Path
) -> None:
    keys, bundles = programs
    pytest.importorskip("wasmtime")
    bundle = bundles[run.name]
    wasm = (bundle.parent / f"{run.name}.wasm").read_bytes()  # make_bundle keeps it beside the bundle
    expected = reference(run, wasm, tmp_path / "reference")
    expected = Outcome(expected.exit_code, as_we_answer(run.name, expected.stdout), expected.stderr, expected.tree)
    installed = [engine for engine in ENGINES if find_spec(engine) is not None]  # 3.12's run side: Wasmtime alone
    if not installed:
        pytest.skip("no engine installed")
    for engine, isolated in ((engine, isolated) for engine in installed for isolated in (True, False)):
        how = f"{'isolated' if isolated else 'in-process'} on {engine}"
        got = ours(run, bundle, keys, tmp_path / how.replace(" ", "-"), engine, isolated=isolated)
        assert got.stdout.split("\n") == expected.stdout.split("\n"), f"{run} {how}: stdout"
        assert (got.exit_code, got.stderr) == (expected.exit_code, expected.stderr), f"{run} {how}"
        assert got.tree == expected.tree, f"{run} {how}: the tree it left"
