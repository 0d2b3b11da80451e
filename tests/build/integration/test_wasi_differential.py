"""Differential conformance of the host's WASI preview 1: random scripts of raw WASI calls, run by one guest
(tests/data/wasi-programs/differential/wasicalls.c) under the loader on Wasmer and on Wasmtime, in-process and
isolated (in a tenant child), and under wasmtime-py's own WASI (the reference), each on an identical copy of a small
tree of files, directories, symlinks (dangling, looping, absolute, escaping), a FIFO and a socket file, preopened as
`/données`, with one of a few command lines (arguments and environment empty, unicode, huge or many).

A script (`script(seed)`) is a few dozen calls with meaningful arguments: the tree's names and names not there,
`..`, absolute paths, trailing slashes, empty names, every combination of path_open's oflags, rights and fdflags,
seeks past the end, positional I/O, readdir in small buffers, renumber, renames and links over what exists, times
and sizes, short readlink buffers, iovec lists empty, of empty buffers, of many, out of bounds; and the calls beyond
files: fd_readdir's cookies, cut entries, d_ino and d_type against path_filestat_get, names made or removed between
two calls; poll_oneoff's relative and absolute clocks of every id, no subscription, files, stdio, closed
descriptors, undefined event types and buffers out of bounds; every clock's time and resolution; random_get of 0
bytes to 1 MiB and across the end of memory; args and environ; fdstat and set_rights of stdio, preopens and files;
fd_prestat_dir_name's short buffers; proc_raise; sock_* on descriptors that are no sockets; stdio closed and
renumbered (the guest keeps its output where it went). The guest prints each call's errno and results; each must
print the same, exit the same and leave the same tree, except where our answer is a deliberate one of README's "WASI
preview 1 conformance" list or docs/host-policy.md's "WASI answers left open": each such difference is a rule in
`KNOWN`, and one that leaves the two in different states ends the comparison of that script there.

Run it with many more seeds by hand: `python -m tests.build.integration.test_wasi_differential COUNT [ENGINE
[FIRST]]` (`fuzz`; ENGINE `wasmer`, `wasmtime`, `wasmer-isolated` or `wasmtime-isolated`).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from tests.build.integration.test_wasi_programs import ENV, compile_source, manifest, tree
from tests.conftest import REPO, make_bundle, make_key

pytestmark = pytest.mark.integration

SOURCE = REPO / "tests" / "data" / "wasi-programs" / "differential" / "wasicalls.c"
GUEST = "wasicalls"
TENANT = "differential"
ENGINES = ("wasmer", "wasmtime")
ARGS = ("one arg", "", "ünï ✓")
SEEDS = range(12)
ISOLATED_SEEDS = range(100, 104)
CALLS = 40

# --- the tree -------------------------------------------------------------------------------------------------

FILES = {"f": b"hello world\n", "e": b"", "d/g": b"in d\n", "d/sub/h": b"deep\n"}
DIRECTORIES = ("d", "d/sub", "empty")
LINKS = {
    "lf": "f",
    "ld": "d",
    "ll": "lf",
    "dg": "missing",
    "lp": "lp",
    "la": "/etc",
    "lu": "../outside",
    "d/up": "../f",
    "d/ls": "sub/",
}


SPECIAL = {"p": stat.S_IFIFO, "s": stat.S_IFSOCK}  # listed and stat'ed by name, never opened


def make_tree(root: Path) -> Path:
    for directory in DIRECTORIES:
        (root / directory).mkdir(parents=True, exist_ok=True)
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    for name, target in LINKS.items():
        os.symlink(target, root / name)
    for name, kind in SPECIAL.items():
        os.mknod(root / name, kind | 0o600)
    return root


# --- scripts ----------------------------------------------------------------------------------------------------

ALL_RIGHTS = (1 << 29) - 1
STDIO = ("0", "1", "2")
READ, WRITE, READDIR, SEEK = 0x2, 0x40, 0x4000, 0x4
NAMES = [
    *FILES,
    *DIRECTORIES,
    *LINKS,
    "n1",
    "n2",
    "d/n3",
    "empty/n4",
    "missing",
    "missing/x",
    "",
    ".",
    "..",
    "../f",
    "d/..",
    "d/../f",
    "d/../../f",
    "/f",
    "/",
    "d//g",
    "./f",
    "f/",
    "d/",
    "lf/",
    "ld/",
    "ld/g",
    "dg/",
    "lp/",
    "lp/x",
    "la/passwd",
    "lu/",
    "d/up",
    "ld/../f",
    "f/x",
    "d/ls/h",
    "n1/",
    "%ff",
    "a%00b",
]
FILE_NAMES = [*FILES, "n1", "n2", "d/n3", "lf", "ll", "f/", "lf/"]
DIR_NAMES = [*DIRECTORIES, ".", "ld", "ld/", "d/ls", "n1", "empty/n4"]
LINK_TARGETS = ["f", "d", "missing", "../f", "..", "/etc", "n1", "", "d/g", "self", "./"]
IOVECS = ["-", "0", "1", "5", "3,4", "0,0", "0,3", "100", "3000", ",".join(["1"] * 20)]
IOVECS_OUT_OF_BOUNDS = ["!", "2,!", "!,2", "0,!"]
TIMES = ["0 0", "1000000000 2000000000", "5 7"]
FST_FLAGS = [1, 4, 5, 2, 8, 10, 3, 0, 12]
ODD = 0.03


@dataclass
class Script:
    """What a script has so far: its lines, the descriptor slots an earlier path_open filled, and those closed or
    renumbered away since (their number may be another descriptor's by now, a different one in each implementation,
    so they are not used again until a path_open fills them anew)."""

    rng: random.Random
    lines: list[str]
    slots: int = 0
    freed: set[str] = field(default_factory=set)

    def fd(self, keep_stdio: bool = False) -> str:
        """A descriptor: a live slot's, the preopen, stdio, or none. Never stdio where it would close it or free
        its number: stdout is the script's output."""
        roll = self.rng.random()
        live = [f"${slot}" for slot in range(self.slots) if f"${slot}" not in self.freed]
        if roll < 0.55 and live:
            return self.rng.choice(live)
        if roll < 0.85:
            return "3"
        stdio = [] if keep_stdio else [fd for fd in STDIO if fd not in self.freed]  # closed: its number is reused
        return self.rng.choice(["9", "99", "-1", *stdio])

    def freeing(self, fd: str) -> str:
        self.freed.add(fd)
        return fd

    def closing(self) -> str:
        """A descriptor to close or renumber from: now and then stdio (the guest keeps its output where it is)."""
        stdio = [fd for fd in STDIO if fd not in self.freed]
        return self.freeing(self.rng.choice(stdio) if stdio and self.rng.random() < 0.1 else self.fd(keep_stdio=True))

    def renumbered_to(self) -> str:
        return self.fd(keep_stdio=True) if self.rng.random() < 0.8 else self.rng.choice(["50", "3"])

    def dir_fd(self) -> str:
        return "3" if self.rng.random() < 0.8 or not self.slots else self.fd()

    def path(self, pool: list[str] | None = None) -> str:
        if self.rng.random() < ODD:
            return "!"
        return "'" + self.rng.choice(pool if pool and self.rng.random() < 0.6 else NAMES)

    def odd(self, usual: Sequence[object], odd: Sequence[object]) -> object:
        """One of `usual`, or now and then one of `odd`: a value that makes a call trap in Wasmtime, which ends
        the comparison of the script there."""
        return self.rng.choice(odd if self.rng.random() < ODD else usual)

    def iovecs(self) -> str:
        return str(self.odd(IOVECS, IOVECS_OUT_OF_BOUNDS))


def _open(s: Script) -> str:
    slot = s.slots if s.slots < 8 and s.rng.random() < 0.7 else s.rng.randrange(max(s.slots, 1))
    s.slots = max(s.slots, slot + 1)
    s.freed.discard(f"${slot}")
    directory = s.rng.random() < 0.3
    oflags = (
        s.rng.choice([0, 0, 1, 1, 2, 4, 5, 8, 9, 13, 3, 10, 6, 15]) if s.rng.random() < 0.8 else s.rng.randrange(16)
    )
    base = s.rng.choice(
        [
            ALL_RIGHTS,
            ALL_RIGHTS,
            READ,
            WRITE,
            READ | WRITE,
            READ | SEEK,
            READDIR,
            0,
            ALL_RIGHTS & ~WRITE,
            ALL_RIGHTS & ~READ,
        ]
    )
    inheriting = s.rng.choice([ALL_RIGHTS, 0, READ])
    fdflags = s.rng.choice([0, 0, 0, 1, 4, 5, 2, 16])
    lookup = s.rng.choice([0, 1, 1])
    name = s.path(DIR_NAMES if directory else FILE_NAMES)
    return f"path_open {slot} {s.dir_fd()} {lookup} {name} {oflags} {base} {inheriting} {fdflags}"


def _transfer(s: Script) -> str:
    call = s.rng.choice(["fd_read", "fd_write", "fd_pread", "fd_pwrite"])
    offset = f" {s.rng.choice([0, 0, 3, 11, 12, 100, 4096, -1])}" if call[3] == "p" else ""
    iovecs = s.iovecs() if s.rng.random() < 0.98 else ",".join(["1"] * 1100)
    return f"{call} {s.fd()} {iovecs}{offset}"


def _times(s: Script) -> str:
    return f"{s.rng.choice(TIMES)} {s.odd(FST_FLAGS, [16])}"


CUT_SIZES = [0, 1, 7, 8, 16, 19, 20, 21, 23, 24, 25, 26, 30, 49, 50, 51]
CHANGED_NAMES = ["n5", "f", "e", "empty", "d", "lf", "g", "sub", "n6"]
CLOCK_IDS = [0, 1, 1, 2, 3]
SET_RIGHTS = [ALL_RIGHTS, 0, READ, READ | WRITE, ALL_RIGHTS & ~WRITE, READDIR, 1 << 30, ALL_RIGHTS | 1 << 40]


def _readdir_change(s: Script) -> str:
    return (
        f"readdir_change {s.fd()} {s.rng.choice([40, 64, 100])} {s.rng.choice('cumr')} '{s.rng.choice(CHANGED_NAMES)}"
    )


def _poll_token(s: Script) -> str:
    roll = s.rng.random()
    if roll < 0.35:
        kind = s.rng.choice("ra")
        delay = s.rng.choice([0, 0, 1000, 1000000, 2000000] if kind == "r" else [0, 1000, 1000000])
        return f"c{s.odd(CLOCK_IDS, [4, 9])}:{kind}:{delay}"
    if roll < 0.95:
        return f"{s.rng.choice('rw')}{s.fd()}"
    return s.rng.choice(["x", "!s", "!e", "!n", "u18446744073709551615"])


def _poll(s: Script) -> str:
    return " ".join(["poll", *(_poll_token(s) for _ in range(s.rng.choice([0, 1, 1, 2, 2, 3, 5])))])


RANDOM_LENGTHS = {"d": [0, 1, 16, 256, 4096, 65536], "b": [0, 300000, 1 << 20], "e": [2, 100, 4096], "o": [0, 1]}


def _random(s: Script) -> str:
    where = s.rng.choice("ddddbbeo") if s.rng.random() > ODD else "!"
    return f"random {s.rng.choice(RANDOM_LENGTHS.get(where, [0, 8]))} {where}"


def _socket(s: Script) -> str:
    call = s.rng.choice(["sock_accept", "sock_recv", "sock_send", "sock_shutdown"])
    if call == "sock_accept":
        return f"{call} {s.fd()} {s.rng.choice([0, 4])}"
    if call == "sock_shutdown":
        return f"{call} {s.fd()} {s.rng.choice([0, 1, 2, 3])}"
    return f"{call} {s.fd()} {s.iovecs()} {s.rng.choice([0, 1, 2])}"


CALL_MAKERS: tuple[tuple[int, Callable[[Script], str]], ...] = (
    (14, _open),
    (14, _transfer),
    (4, lambda s: f"fd_seek {s.fd()} {s.rng.choice([0, 3, 12, 100, -1, -100])} {s.rng.choice([0, 1, 2, 0])}"),
    (2, lambda s: f"fd_tell {s.fd()}"),
    (4, lambda s: f"fd_close {s.closing()}"),
    (2, lambda s: f"fd_renumber {s.closing()} {s.renumbered_to()}"),
    (3, lambda s: f"fd_fdstat_get {s.fd()}"),
    (2, lambda s: f"fd_fdstat_set_flags {s.fd()} {s.odd([0, 1, 4, 5, 2], [32])}"),
    (4, lambda s: f"fd_filestat_get {s.fd()}"),
    (2, lambda s: f"fd_filestat_set_size {s.fd()} {s.rng.choice([0, 3, 12, 100, 5000, -1])}"),
    (2, lambda s: f"fd_filestat_set_times {s.fd()} {_times(s)}"),
    (1, lambda s: f"{s.rng.choice(['fd_sync', 'fd_datasync'])} {s.fd()}"),
    (1, lambda s: f"fd_advise {s.fd()} {s.rng.choice([0, 5])} {s.rng.choice([0, 10])} {s.rng.choice(range(6))}"),
    (1, lambda s: f"fd_allocate {s.fd()} 0 {s.rng.choice([0, 10])}"),
    (4, lambda s: f"fd_readdir {s.fd()} {s.rng.choice([24, 25, 40, 64, 128, 4096])}"),
    (1, lambda s: f"fd_prestat_get {s.fd()}"),
    (1, lambda s: f"fd_prestat_dir_name {s.fd()} {s.rng.choice([0, 1, 2, 8, 9, 10, 64])}"),
    (3, lambda s: f"path_create_directory {s.dir_fd()} {s.path(DIR_NAMES)}"),
    (3, lambda s: f"path_remove_directory {s.dir_fd()} {s.path(DIR_NAMES)}"),
    (3, lambda s: f"path_unlink_file {s.dir_fd()} {s.path(FILE_NAMES)}"),
    (4, lambda s: f"path_rename {s.dir_fd()} {s.path()} {s.dir_fd()} {s.path()}"),
    (2, lambda s: f"path_link {s.dir_fd()} {s.rng.choice([0, 1])} {s.path(FILE_NAMES)} {s.dir_fd()} {s.path()}"),
    (3, lambda s: f"path_symlink '{s.rng.choice(LINK_TARGETS)} {s.dir_fd()} {s.path()}"),
    (3, lambda s: f"path_readlink {s.dir_fd()} {s.path(list(LINKS))} {s.odd([0, 1, 3, 64], [-1])}"),
    (4, lambda s: f"path_filestat_get {s.dir_fd()} {s.rng.choice([0, 1])} {s.path()}"),
    (2, lambda s: f"path_filestat_set_times {s.dir_fd()} {s.rng.choice([0, 1])} {s.path()} {_times(s)}"),
    (2, lambda s: "poll_oneoff " + " ".join(f"{s.rng.choice('rw')}{s.fd()}" for _ in range(s.rng.randrange(3)))),
    (1, lambda s: f"clock_time_get {s.odd([0, 1], [7])} 1"),
    (1, lambda s: f"clock_res_get {s.odd([0, 1], [7])}"),
    (1, lambda s: f"random_get {s.odd([0, 16], [-1])}"),
    (1, lambda s: s.rng.choice(["args", "environ", "sched_yield"])),
    # the families beyond paths and file descriptors
    (3, lambda s: f"readdir_walk {s.fd()} {s.rng.choice([24, 32, 40, 64, 100, 4096])}"),
    (2, lambda s: f"readdir_cut {s.fd()} {s.rng.choice(CUT_SIZES)}"),
    (2, _readdir_change),
    (4, _poll),
    (2, lambda s: f"clock {s.odd(CLOCK_IDS, [4, -1, 2147483647])} {s.rng.choice([0, 1, 1000000, -1])}"),
    (2, _random),
    (2, lambda s: f"{s.rng.choice(['args', 'environ'])} {s.odd(['-'], ['!', 's'])}"),
    (3, lambda s: f"fdstat {s.fd()}"),
    (2, lambda s: f"fd_fdstat_set_rights {s.fd()} {s.rng.choice(SET_RIGHTS)} {s.rng.choice(SET_RIGHTS)}"),
    (1, lambda s: f"proc_raise {s.rng.choice([0, 2, 9, 15, 99])}"),
    (2, _socket),
)
WEIGHTS = [weight for weight, _ in CALL_MAKERS]


ENV_NAMES = (*ENV, "BIG", "WIDE", "PLAIN")


@dataclass(frozen=True)
class CommandLine:
    """What a script's guest runs with besides its preopen."""

    args: tuple[str, ...] = ARGS
    env: dict[str, str] = field(default_factory=lambda: dict(ENV))
    stdin: bytes = b""


COMMAND_LINES = (
    CommandLine(),
    CommandLine((), {}),
    CommandLine(("", "", ""), {"EMPTY": ""}, b"one line\n"),
    CommandLine(("ü✓" * 200, "\t\n =", "🦀"), {"WIDE": "ü✓🦀" * 300, "GREETING": "grüß dich ✓"}, "ü✓".encode()),
    CommandLine(("x" * 70000,), {"BIG": "y" * 100000}, bytes(range(256)) * 300),
    CommandLine(tuple(str(n) for n in range(400)), {name: name.lower() for name in ENV_NAMES}),
)


def command_line(seed: int) -> CommandLine:
    """The arguments, environment and stdin a script's guest runs with: empty, unicode, huge or many."""
    return random.Random(f"command line {seed}").choice(COMMAND_LINES)


def script(seed: int, calls: int = CALLS) -> str:
    s = Script(random.Random(seed), [])
    for _ in range(calls):
        (make,) = s.rng.choices([make for _, make in CALL_MAKERS], WEIGHTS)
        s.lines.append(make(s))
    if s.rng.random() < 0.1:
        s.lines.append(f"proc_exit {s.rng.choice([0, 3, 125])}")
    return "\n".join(s.lines) + "\n"


# --- running it ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: trapped
    stdout: str
    tree: dict[str, tuple[object, ...]]
    trap: str = ""


def compile_guest(output: Path) -> Path:
    compile_source(SOURCE, output)
    return output


PREOPEN = "/données"  # 9 bytes, for fd_prestat_dir_name's short buffers
MANIFEST = manifest(GUEST, ENV_NAMES, PREOPEN)


def fresh_root(root: Path, text: str) -> Path:
    """The tree, made anew inside `root` (which a tenant's preopen holds open, so it stays)."""
    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    make_tree(root)
    (root / ".script").write_text(text)
    return root


class Reference:
    """The guest under wasmtime-py's own WASI, compiled once."""

    def __init__(self, wasm: bytes) -> None:
        import wasmtime

        self.wasmtime = wasmtime
        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module(self.engine, wasm)

    def run(self, text: str, work: Path, command: CommandLine = CommandLine()) -> Outcome:
        wasmtime = self.wasmtime
        root = fresh_root(work / "root", text)
        config = wasmtime.WasiConfig()
        config.argv = [GUEST, *command.args]
        config.env = list(command.env.items())
        (work / "stdin").write_bytes(command.stdin)
        config.stdin_file = str(work / "stdin")
        config.preopen_dir(str(root), PREOPEN)
        config.stdout_file = str(work / "stdout")
        store = wasmtime.Store(self.engine)
        store.set_wasi(config)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        instance = linker.instantiate(store, self.module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        exit_code: int | None = 0
        trap = ""
        try:
            start(store)
        except wasmtime.ExitTrap as exit_trap:
            exit_code = exit_trap.code
        except (wasmtime.Trap, wasmtime.WasmtimeError) as trapped:
            exit_code, trap = None, str(trapped)
        stdout = (work / "stdout").read_text(errors="replace")
        return Outcome(exit_code, stdout, tree(root), trap)


class Ours:
    """The guest as a signed bundle under the loader on `engine`, in-process or isolated (in a tenant child): a
    tenant a script (a C command's `_start` runs once an instance)."""

    def __init__(self, wasm: bytes, work: Path, engine: str, *, isolated: bool = False) -> None:
        self.keys = make_key(work / "keys")
        self.bundle = make_bundle(work / "bundle", self.keys.key, wasm=wasm, manifest=MANIFEST, guest=GUEST)
        self.sandboxes = work / "sandboxes"
        self.engine = engine
        self.isolated = isolated

    def run(self, text: str, command: CommandLine = CommandLine()) -> Outcome:
        root = fresh_root(self.sandboxes / TENANT / GUEST / "files" / "root", text)
        with open_tenant(
            self.bundle,
            trust_file=self.keys.trust,
            isolated=self.isolated,
            args=command.args,
            env=command.env,
            stdin=command.stdin,
            sandboxes=self.sandboxes,
            tenant=TENANT,
            engine=self.engine,
        ) as tenant:
            trap = ""
            try:
                result = tenant.run()
            except CallFailed as trapped:
                result, trap = trapped.result, str(trapped)
        return Outcome(result.exit_code, result.stdout.decode(errors="replace"), tree(root), trap)


# --- where we answer otherwise, on purpose ----------------------------------------------------------------------


INVAL, ILSEQ, BADF, NOTDIR, EXIST, LOOP, ISDIR, PERM, INTR = 28, 25, 8, 54, 20, 32, 31, 63, 27
CREAT, DIRECTORY, TRUNC, APPEND = 1, 2, 8, 1


@dataclass(frozen=True)
class Call:
    """One line of a script, what the reference answered and what we answered, and the lines before it with the
    reference's answers to them."""

    line: str
    theirs: list[str]
    ours: list[str]
    before: list[str]
    answered: list[str]

    @property
    def args(self) -> list[str]:
        return self.line.split()[1:]

    def opened(self, fd: str) -> list[str]:
        """The arguments of the path_open that made descriptor `fd` (`$N`, or a number renumbered from one), or []."""
        for line, answer in reversed(list(zip(self.before, self.answered, strict=True))):
            name, *args = line.split()
            if name == "fd_renumber" and args[1] == fd and answer == "fd_renumber 0":
                fd = args[0]
            elif name == "path_open" and fd == f"${args[0]}":
                return args if answer == "path_open 0" else []
        return []


@dataclass(frozen=True)
class Known:
    """A deliberate difference (README, "WASI preview 1 conformance"): the call, what each answers, when it
    applies, and whether the two go on from different states (then the rest of the script is not compared)."""

    call: str
    theirs: frozenset[int] | None  # None: any
    ours: frozenset[int] | None
    applies: Callable[[Call], bool]
    why: str
    diverges: bool = False

    def matches(self, call: Call) -> bool:
        if call.line.split()[0] != self.call or not call.theirs or not call.ours:
            return False
        theirs, ours = int(call.theirs[0]), int(call.ours[0])
        return (
            (self.theirs is None or theirs in self.theirs)
            and (self.ours is None or ours in self.ours)
            and self.applies(call)
        )


def _errors(*codes: int) -> frozenset[int]:
    return frozenset(codes)


ANY_ERROR = frozenset(range(1, 77))


def _oflags(call: Call) -> int:
    return int(call.args[4])


def _stdio(call: Call, fd: str) -> bool:
    """Whether `fd` is stdin, stdout or stderr, or one renumbered to it."""
    renumbered = (line.split()[1:] for line in call.before if line.startswith("fd_renumber "))
    return fd in ("0", "1", "2") or any(old in ("0", "1", "2") and new == fd for old, new in renumbered)


def _after_appending_nothing(call: Call) -> bool:
    """Whether the call's descriptor, opened with APPEND, was written no bytes before (`fd_write FD -`, `0`, `0,0`)."""
    fd, opened = call.args[0], call.opened(call.args[0])
    if not opened or not int(opened[7]) & APPEND:
        return False
    writes = (line.split()[1:] for line in call.before if line.startswith("fd_write "))
    return any(args[0] == fd and not re.findall(r"[1-9]", args[1]) for args in writes)


def _access_differs(call: Call) -> bool:
    """Whether the descriptor came from a path_open whose access mode differs on purpose: CREAT without FD_WRITE,
    TRUNC or APPEND opens to read here, to write in Wasmtime; APPEND without FD_WRITE to write here, not there."""
    opened = call.opened(call.args[0])
    if not opened:
        return False
    oflags, rights, fdflags = int(opened[4]), int(opened[5]), int(opened[7])
    if rights & WRITE or oflags & TRUNC:
        return False
    return bool(oflags & CREAT or fdflags & APPEND)


def _either_error(path: str) -> bool:
    """Whether one of a call's two paths (`'name`) may fail on its own: a trailing slash, or a way out."""
    return path.startswith("'") and (path.endswith("/") or path.startswith(("'..", "'/")))


def _invalid_argument(call: Call) -> bool:
    """A call with an argument WASI refuses whatever the descriptor (a bad time flag pair, an offset past i64, a
    path not UTF-8): which of two errors comes first is the implementation's (ours: the descriptor's)."""
    args = call.args
    name = call.line.split()[0]
    if name.endswith("set_times"):
        flags = int(args[-1])
        return bool(flags & 3 == 3 or flags & 12 == 12 or flags & ~15)
    if name in ("fd_pread", "fd_pwrite"):
        return int(args[-1]) < 0
    if name == "path_symlink" and args[0] == "'":
        return True
    if name in ("path_link", "path_rename", "path_symlink") and any(_either_error(arg) for arg in args):
        return True
    return any("%ff" in arg or "%00" in arg for arg in args)


def _file_events_differ_on_purpose(call: Call) -> bool:
    """Whether a poll subscribed to a descriptor other than stdio (or to stdio beside a clock, which Wasmtime may
    answer first), and each event the reference answered is one of ours, but for the HANGUP flag Wasmtime sets on a
    file read past its end."""
    events = [
        {tuple(answer[at : at + 3]): answer[at + 3] for at in range(3, len(answer) - 3, 4)}
        for answer in (call.theirs, call.ours)
    ]
    files = any(re.fullmatch(r"[rw]\$\d+|[rw][3-9]\d*", argument) for argument in call.args)
    clocked = any(a.startswith("c") for a in call.args) and any(a.startswith(("r", "w")) for a in call.args)
    return (files or clocked) and all(
        event in events[1] and events[1][event] in ("0", flags) for event, flags in events[0].items()
    )


def _fewer_file_events(call: Call) -> bool:
    """Whether a poll_oneoff subscribed to a descriptor other than stdio, and the reference's events are some of
    ours."""
    theirs, ours = (
        {tuple(answer[at : at + 3]) for at in range(1, len(answer), 3)} for answer in (call.theirs, call.ours)
    )
    return any(argument[1:] not in ("0", "1", "2") for argument in call.args) and theirs < ours


PATH_FILESTAT_SET_SIZE = 1 << 19
WASMTIMES_PREOPEN_RIGHTS = 129498624  # Wasmtime's fdstat of a preopen: ours less PATH_FILESTAT_SET_SIZE
NOTSUP = 58
FILETYPE_REGULAR_FILE, FILETYPE_DIRECTORY = 4, 3


def _rights_differ_on_purpose(call: Call) -> bool:
    """Whether fdstat's rights differ only as README says: a file's (Wasmtime shows every right), stdio's (the
    rights it has beside reading or writing, and none to hand down), a preopen's PATH_FILESTAT_SET_SIZE (which
    path_open's TRUNC needs, witx says; Wasmtime never shows it), another directory's (Wasmtime's are mixed with a
    file's)."""
    if len(call.ours) < 5 or call.theirs[:3] != call.ours[:3]:
        return False
    if int(call.ours[1]) == FILETYPE_REGULAR_FILE:
        return True
    if _stdio(call, call.args[0]):
        return int(call.ours[3]) & (READ | WRITE) == int(call.theirs[3]) and call.ours[4] == "0"
    if int(call.ours[1]) != FILETYPE_DIRECTORY:
        return False
    if int(call.theirs[3]) != WASMTIMES_PREOPEN_RIGHTS:  # a directory path_open opened: Wasmtime's are a file's too
        return True
    differ = (int(a) ^ int(b) for a, b in zip(call.theirs[3:], call.ours[3:], strict=True))
    return all(not bits & ~PATH_FILESTAT_SET_SIZE for bits in differ)


def _cpu_clock(call: Call) -> bool:
    """Whether a clock or poll_oneoff line names the process or thread CPU-time clock (ids 2 and 3)."""
    if call.line.startswith("clock "):
        return call.args[0] in ("2", "3")
    return any(re.fullmatch(r"c[23]:.*", argument) for argument in call.args)


KNOWN = (
    Known(
        "fd_read",
        _errors(INTR),
        _errors(0),
        lambda c: _stdio(c, c.args[0]) and not re.findall(r"[1-9]", c.args[1]),
        "a read of no bytes from stdin reads 0 bytes, as read(2) does; Wasmtime answers INTR while it has bytes left",
    ),
    Known(
        "clock",
        None,
        None,
        _cpu_clock,
        "the process and thread CPU-time clocks (ids 2 and 3) answer; Wasmtime's WASI has neither (BADF)",
    ),
    Known(
        "poll",
        _errors(INVAL),
        None,
        _cpu_clock,
        "the process and thread CPU-time clocks (ids 2 and 3) answer; Wasmtime's poll_oneoff refuses them (INVAL)",
    ),
    Known(
        "fdstat",
        _errors(0),
        _errors(0),
        _rights_differ_on_purpose,
        "fd_fdstat_get's rights: a file's and stdio's are those it can use, a directory's include "
        "PATH_FILESTAT_SET_SIZE",
    ),
    Known(
        "readdir_change",
        _errors(0),
        _errors(0),
        lambda c: c.theirs[:3] == c.ours[:3] and c.ours[3] == "0",
        "a listing read on from a cookie is the one read at cookie 0 (a name made or removed since is seen from the "
        "next cookie-0 call on, and every other name once); Wasmtime reads the directory again at each call, and "
        "may list a name twice or not at all",
    ),
    *(
        Known(
            "fd_fdstat_set_rights",
            _errors(NOTSUP, BADF),
            ours,
            lambda c: True,
            "fd_fdstat_set_rights removes rights, NOTCAPABLE to adding one (witx); Wasmtime's is NOTSUP (BADF on "
            "stdio)",
            diverges=ours == _errors(0),
        )
        for ours in (_errors(0), ANY_ERROR)
    ),
    Known(
        "fd_fdstat_set_flags",
        _errors(BADF),
        None,
        lambda c: _stdio(c, c.args[0]),
        "fd_fdstat_set_flags sets APPEND/NONBLOCK on stdio as fcntl(2) does (Wasmtime: BADF)",
        diverges=True,
    ),
    Known(
        "path_open",
        _errors(INVAL),
        ANY_ERROR,
        lambda c: _oflags(c) & (DIRECTORY | TRUNC) == DIRECTORY | TRUNC,
        "path_open with DIRECTORY|TRUNC answers as open(2) (ISDIR on a directory); Wasmtime says INVAL",
    ),
    Known(
        "path_open",
        _errors(LOOP),
        _errors(NOTDIR),
        lambda c: bool(_oflags(c) & DIRECTORY) and c.args[2] == "0",
        "path_open with DIRECTORY of a symlink, not following it, is NOTDIR as open(2) answers (Wasmtime: LOOP)",
    ),
    Known(
        "path_open",
        _errors(EXIST),
        _errors(ISDIR),
        lambda c: c.args[3] in ("'.", "'./", "'d/..") and _oflags(c) & 5 == 5,
        "CREAT|EXCL of `./` is ISDIR, as open(2) answers (Wasmtime: EXIST)",
    ),
    *(
        Known(call, ANY_ERROR, _errors(ours), lambda c: c.args[-1].endswith("/"), why)
        for calls, ours, why in (
            (
                ("path_unlink_file", "path_remove_directory"),
                NOTDIR,
                "`link/` names the symlink itself, which unlink(2) and rmdir(2) answer NOTDIR for (a file's `name/` "
                "too)",
            ),
            (
                ("path_symlink", "path_link"),
                EXIST,
                "symlink(2) and link(2) answer EXIST to `name/` where the name exists, never followed",
            ),
        )
        for call in calls
    ),
    Known(
        "path_remove_directory",
        _errors(INVAL),
        _errors(0),
        lambda c: c.args[-1].endswith("/"),
        "`dir/` is removed (wasi-testsuite's remove_directory_trailing_slashes); Wasmtime 50 says INVAL",
        diverges=True,
    ),
    Known(
        "path_remove_directory",
        _errors(INVAL),
        ANY_ERROR,
        lambda c: c.args[-1].endswith("/"),
        "`dir/` is looked at as `dir` (NOTEMPTY, NOENT, ...); Wasmtime 50 says INVAL to any `name/`",
    ),
    Known(
        "path_link",
        _errors(INVAL),
        None,
        lambda c: c.args[1] == "1",
        "path_link's lookup flags may follow a symlink (witx); Wasmtime refuses to (INVAL)",
        diverges=True,
    ),
    Known(
        "path_readlink",
        _errors(PERM),
        _errors(0),
        lambda c: True,  # the one absolute link, wherever renamed to
        "path_readlink of a symlink to an absolute path (the host's) reads its text; Wasmtime answers PERM",
    ),
    *(
        Known(
            call,
            None,
            None,
            _access_differs,
            "path_open writes a file if FD_WRITE, TRUNC or APPEND asks (witx: the rights asked for; open(2)'s "
            "O_RDONLY|O_CREAT); Wasmtime writes every CREAT, and no APPEND without FD_WRITE",
            diverges=True,
        )
        for call in ("fd_fdstat_get", "fd_write", "fd_pwrite", "fd_read", "fd_pread", "fd_filestat_set_size")
    ),
    Known(
        "poll",
        _errors(0),
        _errors(0),
        _file_events_differ_on_purpose,
        "poll_oneoff answers a regular file ready to read and to write at once, as poll(2) does, and never flags it "
        "HANGUP; Wasmtime leaves some of a file's subscriptions unanswered, and flags one read past the end HANGUP",
    ),
    Known(
        "poll_oneoff",
        _errors(0),
        _errors(0),
        _fewer_file_events,
        "poll_oneoff answers a regular file ready to read and to write at once, as poll(2) does; Wasmtime leaves "
        "some of a file's subscriptions unanswered",
    ),
    *(
        Known(
            call,
            None,
            None,
            _after_appending_nothing,
            'a write of no bytes to an APPEND descriptor leaves its position (POSIX write(): "no other results");'
            " Wasmtime moves it to the end",
            diverges=True,
        )
        for call in ("fd_tell", "fd_seek", "fd_read")
    ),
    Known(
        "fd_pwrite",
        _errors(0),
        _errors(INVAL),
        lambda c: int(c.args[-1]) < 0,
        "an offset past what a host file offset holds (2^63) is INVAL, even appending; Wasmtime appends",
        diverges=True,
    ),
    *(
        Known(
            call,
            _errors(0),
            _errors(INVAL),
            lambda c: c.args[1].count(",") >= 1024,
            "more than 1024 iovecs (IOV_MAX) are INVAL, as on Linux; Wasmtime takes any number",
            diverges=True,
        )
        for call in ("fd_write", "fd_pwrite", "fd_read", "fd_pread")
    ),
    *(
        Known(
            call,
            ANY_ERROR,
            ANY_ERROR,
            _invalid_argument,
            "two errors: which one a call answers is the "
            "implementation's (witx leaves the order open): ours, the path's or the descriptor's first",
        )
        for call in (
            "fd_filestat_set_times",
            "path_filestat_set_times",
            "fd_pread",
            "fd_pwrite",
            "path_open",
            "path_rename",
            "path_link",
            "path_symlink",
            "path_unlink_file",
            "path_remove_directory",
            "path_create_directory",
            "path_filestat_get",
            "path_readlink",
        )
    ),
)


INVALID_VALUE_TRAP = re.compile(r"Invalid (enum|flag) value|Int conversion error")
OUT_OF_BOUNDS_TRAP = "Pointer out of bounds"
OURS_OUT_OF_BOUNDS = "outside the guest's memory"


def _out_of_bounds(line: str) -> bool:
    """Whether a script line passes a pointer out of bounds (`!`, or a negative buffer size)."""
    name, *args = line.split()
    return "!" in line or (name in ("path_readlink", "random_get") and args[-1].startswith("-"))


@dataclass
class Comparison:
    """What differs between the reference's outcome and ours, which known differences were met, and how many of
    the script's calls were compared (up to a difference, or one that leaves the two in different states)."""

    differences: list[str]
    known: list[str]
    compared: int


def _known_trap(index: int, line: str, expected: Outcome, got: Outcome) -> str | None:
    """Why one side trapped at the script's line `index` where the other answered, when that is a known difference."""
    theirs, ours = len(expected.stdout.splitlines()), len(got.stdout.splitlines())
    if index == theirs < ours and expected.exit_code is None:
        if INVALID_VALUE_TRAP.search(expected.trap) and got.stdout.splitlines()[index].split()[1:2] != ["0"]:
            return "a value outside a witx enum or flags type is INVAL; Wasmtime traps"
        if OUT_OF_BOUNDS_TRAP in expected.trap and _out_of_bounds(line):
            return "a pointer out of bounds traps; ours answers a bad descriptor first, and moves no byte it need not"
    if index == ours < theirs and OURS_OUT_OF_BOUNDS in got.trap and _out_of_bounds(line):
        return "a pointer out of bounds traps; Wasmtime reads no iovec after the first it moves"
    return None


def compare(text: str, expected: Outcome, got: Outcome) -> Comparison:
    """Line by line, each difference either a `KNOWN` one or reported; the exit code and the tree the script left
    too, unless a known difference left the two in different states."""
    lines = text.splitlines()
    theirs, ours = expected.stdout.splitlines(), got.stdout.splitlines()
    known: list[str] = []
    for index, line in enumerate(lines):
        if (why := _known_trap(index, line, expected, got)) is not None:
            return Comparison([], [*known, why], index)
        if index >= len(theirs) or index >= len(ours):
            break
        if theirs[index] == ours[index]:
            continue
        call = Call(line, theirs[index].split()[1:], ours[index].split()[1:], lines[:index], theirs[:index])
        rule = next((rule for rule in KNOWN if rule.matches(call)), None)
        if rule is None:
            return Comparison(
                [f"line {index + 1}: {line}\n  theirs {theirs[index]}\n  ours   {ours[index]}"], known, index
            )
        known.append(rule.why)
        if rule.diverges:
            return Comparison([], known, index + 1)
    found = []
    if len(theirs) != len(ours):
        found.append(f"{len(theirs)} lines from the reference, {len(ours)} from ours")
    if expected.exit_code != got.exit_code:
        found.append(f"exit {expected.exit_code} (reference), {got.exit_code} (ours): {expected.trap} / {got.trap}")
    keys = sorted(set(expected.tree) | set(got.tree))
    found += [
        f"tree {k}: {expected.tree.get(k)} / {got.tree.get(k)}" for k in keys if expected.tree.get(k) != got.tree.get(k)
    ]
    return Comparison(found, known, len(lines))


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return compile_guest(tmp_path_factory.mktemp("wasicalls") / f"{GUEST}.wasm").read_bytes()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_random_call_scripts_answer_as_wasmtimes_wasi(engine: str, isolated: bool, wasm: bytes, tmp_path: Path) -> None:
    """In-process, and in a tenant child (its WASI is the same code, reached through the child's host functions and
    the tenant wire) with fewer seeds."""
    pytest.importorskip(engine)
    pytest.importorskip("wasmtime")
    reference, ours = Reference(wasm), Ours(wasm, tmp_path / "ours", engine, isolated=isolated)
    for seed in ISOLATED_SEEDS if isolated else SEEDS:
        text, command = script(seed), command_line(seed)
        expected = reference.run(text, tmp_path / "reference", command)
        assert not compare(text, expected, ours.run(text, command)).differences, f"seed {seed}:\n{text}"


def fuzz(seeds: range, engine: str, isolated: bool = False) -> None:
    """Runs the scripts of `seeds` as the test does, in a temporary directory; prints each that differs, then how
    many calls were run and compared and how often each known difference was met."""
    with tempfile.TemporaryDirectory(prefix="wasidiff-") as temporary:
        work = Path(temporary)
        wasm = compile_guest(work / f"{GUEST}.wasm").read_bytes()
        reference, ours = Reference(wasm), Ours(wasm, work / "ours", engine, isolated=isolated)
        calls = compared = failed = whole = 0
        known: Counter[str] = Counter()
        for seed in seeds:
            text, command = script(seed), command_line(seed)
            comparison = compare(text, reference.run(text, work / "reference", command), ours.run(text, command))
            calls += text.count("\n")
            compared += comparison.compared
            whole += comparison.compared == text.count("\n")
            known.update(comparison.known)
            if comparison.differences:
                failed += 1
                print(f"--- seed {seed}: " + "\n".join(comparison.differences), flush=True)
    print(f"{len(seeds)} scripts, {calls} calls ({compared} compared; {whole} scripts whole), {failed} differ")
    print("known differences met:")
    for why, count in known.most_common():
        print(f"  {count:6} {why}")


if __name__ == "__main__":
    count, engine = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "wasmtime"
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    fuzz(range(first, first + count), engine.removesuffix("-isolated"), engine.endswith("-isolated"))
