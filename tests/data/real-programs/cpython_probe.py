"""CPython's standard library over WASI, run as python.wasm's script by test_cpython_programs.py: each check prints
one line, `name: what it found` (an exception as its class and errno name), so a line that differs names its check.

Its mounts: /ro (read-only) holding this script, given.txt, many/ (200 empty files), tree/ (sub/deeper/x, top.txt,
link -> top.txt), odd/ (a name that is not UTF-8), odd-link (a link whose text is not UTF-8) and modules/; /work and
/tmp (read-write), empty. Its last argument says how it ends; `--ending-only` before it skips the checks.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

ARGS = sys.argv[1:-1]
STARTED_AT = time.monotonic()  # before the checks, which take tens of seconds on a loaded machine
CHECKS: list[Callable[[], object]] = []


def check(function: Callable[[], object]) -> Callable[[], object]:
    CHECKS.append(function)
    return function


def report(function: Callable[[], object]) -> None:
    try:
        found = function()
    except Exception as error:
        code = getattr(error, "errno", None)
        found = f"{type(error).__name__} {errno.errorcode.get(code, code) if isinstance(code, int) else code}"
    print(f"{function.__name__}: {found}", flush=True)


# --- the standard library --------------------------------------------------------------------------------------


@check
def modules() -> str:
    import importlib

    names = [
        *("json", "re", "decimal", "fractions", "datetime", "zoneinfo", "sqlite3", "hashlib", "zlib", "bz2", "lzma"),
        *("gzip", "zipfile", "tarfile", "base64", "binascii", "struct", "array", "collections", "itertools"),
        *("functools", "statistics", "math", "cmath", "random", "secrets", "uuid", "csv", "io", "pathlib", "shutil"),
        *("tempfile", "glob", "fnmatch", "unicodedata", "textwrap", "difflib", "pickle", "copy", "enum", "typing"),
        *("dataclasses", "argparse", "logging", "xml.etree.ElementTree", "html.parser", "email.message"),
        *("urllib.parse", "asyncio", "select", "selectors", "socket", "ssl", "threading", "subprocess", "ctypes"),
        *("multiprocessing", "mmap", "fcntl", "termios", "resource", "pwd", "grp", "locale", "signal"),
    ]
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return f"{len(names) - len(missing)} of {len(names)}; missing {missing}"


@check
def using_modules() -> list[object]:
    import datetime
    import decimal
    import hashlib
    import json
    import re
    import zlib

    decimal.getcontext().prec = 40
    day = datetime.date(2024, 2, 28) + datetime.timedelta(days=1)
    packed = zlib.compress(b"abc" * 10_000, 9)
    return [
        str(decimal.Decimal(1) / decimal.Decimal(3)),
        day.isoformat(),
        json.loads(json.dumps({"ü": [1, 2.5, None, True], "n": 10**30})),
        re.sub(r"(\w+)@(\w+)", r"\2 at \1", "me@home you@work"),
        hashlib.sha256(b"x").hexdigest()[:16],
        hashlib.blake2b(b"x", digest_size=8).hexdigest(),
        len(packed),
        zlib.crc32(zlib.decompress(packed)),
    ]


@check
def time_zones() -> list[object]:
    import zoneinfo

    return [len(zoneinfo.available_timezones()), str(zoneinfo.ZoneInfo("Europe/Paris"))]


@check
def sqlite_in_memory() -> list[object]:
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("create table t (k integer primary key, v text)")
    db.executemany("insert into t (v) values (?)", [(str(n),) for n in range(1000)])
    return [sqlite3.sqlite_version, db.execute("select count(*), sum(k) from t").fetchone()]


@check
def sqlite_on_a_file() -> list[object]:
    import sqlite3

    db = sqlite3.connect("/work/store.db")
    modes = [db.execute(f"pragma journal_mode={mode}").fetchone()[0] for mode in ("truncate", "wal", "delete")]
    db.execute("create table t (v text)")
    with db:
        db.executemany("insert into t values (?)", [(str(n) * 50,) for n in range(2000)])
    db.close()
    return [modes, sqlite3.connect("/work/store.db").execute("select count(*), max(v) from t").fetchone()[0]]


@check
def archives() -> list[object]:
    import gzip
    import zipfile

    with gzip.GzipFile("/work/data.gz", "wb", mtime=0) as packed:
        packed.write(b"gzip text\n" * 100)
    with zipfile.ZipFile("/work/data.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("inside.txt", (2020, 1, 1, 0, 0, 0)), "zipped\n" * 100)
        archive.write("/ro/given.txt", "given.txt")
    with zipfile.ZipFile("/work/data.zip") as archive:
        names = archive.namelist()
    return [gzip.open("/work/data.gz", "rt").read().count("\n"), names]


@check
def importing_from_the_mounts() -> list[object]:
    Path("/work/helper.py").write_text("VALUE = 42\n")
    os.utime("/work/helper.py", (1_600_000_000, 1_600_000_000))
    sys.path[:0] = ["/work", "/ro/modules"]
    import helper  # type: ignore[import-not-found]
    import ro_module  # type: ignore[import-not-found]

    return [helper.VALUE, os.listdir("/work/__pycache__"), ro_module.VALUE, os.listdir("/ro/modules")]


# --- the process ------------------------------------------------------------------------------------------------


@check
def where_am_i() -> list[object]:
    return [os.getcwd(), sys.platform, sys.version_info[:2], sys.getfilesystemencoding(), sys.getrecursionlimit()]


@check
def arguments() -> list[str]:
    return ARGS


@check
def environment() -> list[tuple[str, str]]:
    return sorted(os.environ.items())


@check
def standard_input() -> list[object]:
    import hashlib

    data = sys.stdin.buffer.read()
    return [len(data), data.count(b"\n"), hashlib.sha256(data).hexdigest()[:16], sys.stdin.buffer.read()]


@check
def standard_streams() -> list[object]:
    return [sys.stdin.isatty(), sys.stdout.encoding, sys.stdout.line_buffering, os.get_blocking(1)]


@check
def non_blocking_stdin() -> bool:
    os.set_blocking(0, False)
    return os.get_blocking(0)


@check
def selecting() -> list[object]:
    import select
    import selectors

    selector = selectors.DefaultSelector()
    with open("/ro/given.txt") as given:
        selector.register(given, selectors.EVENT_READ)
        ready = [key.fileobj.name for key, _ in selector.select(0.01)]  # type: ignore[union-attr]
    before = time.monotonic()
    waited = selectors.DefaultSelector().select(0.03)
    return [select.select([0], [], [], 0), type(selector).__name__, ready, waited, time.monotonic() - before >= 0.03]


@check
def clocks() -> list[object]:
    wall, before = time.time(), time.monotonic()
    time.sleep(0.05)
    slept = time.monotonic() - before
    return [wall > 1.7e9, 0.05 <= slept < 5, time.time() >= wall, time.gmtime(0)[:6], time.tzname, time.timezone]


@check
def monotonic_from_the_start() -> bool:
    return STARTED_AT < 120  # the interpreter's start, not the host's uptime


@check
def clock_implementations() -> list[object]:
    return [time.get_clock_info(name).implementation for name in ("time", "monotonic", "perf_counter")]


@check
def randomness() -> list[object]:
    import random

    one, two = os.urandom(32), os.urandom(32)
    random.seed(42)
    return [len(one), one != two, len(os.urandom(2**20)), random.random(), random.SystemRandom().random() < 1]


@check
def threads() -> None:
    import threading

    threading.Thread(target=print).start()


@check
def processes() -> None:
    import subprocess

    subprocess.run(["true"], check=False)


@check
def sockets() -> None:
    import socket

    socket.socket()


@check
def an_event_loop() -> None:
    import asyncio
    import socket

    asyncio.SelectorEventLoop  # noqa: B018  # its self-pipe needs socketpair, which WASI preview 1 lacks
    socket.socketpair()


# --- files: reading, and the read-only mount --------------------------------------------------------------------


@check
def listing() -> list[object]:
    return [sorted(os.listdir("/ro")), sorted(os.listdir("/work")), len(os.listdir("/ro/many"))]


@check
def walking() -> list[object]:
    return [(top, sorted(dirs), sorted(files)) for top, dirs, files in sorted(os.walk("/ro/tree"))]


@check
def scanning() -> list[object]:
    entries = sorted(os.scandir("/ro/tree"), key=lambda entry: entry.name)
    found: list[object] = [(e.name, e.is_dir(), e.is_file(), e.is_symlink()) for e in entries]
    return [*found, entries[-1].inode() == os.stat("/ro/tree/top.txt").st_ino]


@check
def stat_of_a_file() -> list[object]:
    info = os.stat("/ro/given.txt")
    return [
        info.st_size,
        stat.S_ISREG(info.st_mode),
        info.st_mtime,
        info.st_nlink,
        stat.S_ISDIR(os.stat("/ro").st_mode),
    ]


@check
def reading() -> list[object]:
    with open("/ro/given.txt") as given:
        return [given.read(), given.tell(), os.path.realpath("/ro/tree/link")]


@check
def writing_to_the_ro_mount() -> None:
    open("/ro/given.txt", "a")  # noqa: SIM115


@check
def creating_on_the_ro_mount() -> None:
    open("/ro/new.txt", "w")  # noqa: SIM115


@check
def mkdir_on_the_ro_mount() -> None:
    os.mkdir("/ro/made")


@check
def unlink_on_the_ro_mount() -> None:
    os.unlink("/ro/given.txt")


@check
def rename_out_of_the_ro_mount() -> None:
    os.rename("/ro/given.txt", "/work/taken.txt")


@check
def utime_on_the_ro_mount() -> None:
    os.utime("/ro/given.txt", (1, 1))


@check
def odd_host_names() -> list[bytes]:
    return sorted(os.fsencode(name) for name in os.listdir("/ro/odd"))


@check
def opening_an_odd_name() -> None:
    open(os.fsdecode(b"/ro/odd/\xff\xfe.txt"))  # noqa: SIM115


@check
def reading_an_odd_link() -> bytes:
    return os.fsencode(os.readlink("/ro/odd-link"))


@check
def making_an_odd_name() -> None:
    open(os.fsdecode(b"/work/\xff"), "w")  # noqa: SIM115


@check
def opening_many_files() -> int:
    files = [open(f"/ro/many/entry-{number}") for number in range(200)]  # noqa: SIM115
    for file in files:
        file.close()
    return len(files)


# --- paths outside the mounts -----------------------------------------------------------------------------------


@check
def missing_file() -> None:
    open("/work/missing.txt")  # noqa: SIM115


@check
def escaping_with_dots() -> None:
    open("/work/../ro/given.txt")  # noqa: SIM115


@check
def escaping_far() -> None:
    open("/work/../../etc/passwd")  # noqa: SIM115


@check
def absolute_outside() -> None:
    open("/etc/passwd")  # noqa: SIM115


@check
def relative_path() -> None:
    open("given.txt")  # noqa: SIM115


@check
def listing_the_root() -> None:
    os.listdir("/")


@check
def listing_above_a_mount() -> None:
    os.listdir("/work/..")


@check
def making_a_top_level_directory() -> None:
    os.mkdir("/newtop")


@check
def existing() -> list[bool]:
    return [os.path.exists(path) for path in ("/", "/work", "/work/", "/ro/given.txt", "/nowhere", "/work/..")]


@check
def changing_directory() -> list[object]:
    os.chdir("/work")
    try:
        return [os.getcwd(), os.path.abspath("x"), os.path.exists("relative.txt")]
    finally:
        os.chdir("/")


# --- files: writing ---------------------------------------------------------------------------------------------


@check
def large_write() -> list[object]:
    block = bytes(range(256)) * 4096
    with open("/work/large.bin", "wb") as large:
        for _ in range(12):
            large.write(block)
    with open("/work/large.bin", "rb") as large:
        data = large.read()
    return [len(data), data == block * 12, os.path.getsize("/work/large.bin")]


@check
def one_write_of_17_mib() -> list[object]:
    data = bytes(17 << 20)
    fd = os.open("/work/once.bin", os.O_WRONLY | os.O_CREAT)
    written = os.write(fd, data)  # what one write moves, which a program must check
    os.close(fd)
    with open("/work/buffered.bin", "wb") as buffered:
        buffered.write(data)  # writes on until all is written
    found: list[object] = [written, os.path.getsize("/work/once.bin"), os.path.getsize("/work/buffered.bin")]
    os.unlink("/work/once.bin")
    os.unlink("/work/buffered.bin")
    return found


@check
def seek_and_tell() -> list[object]:
    with open("/work/seek.txt", "w+b") as file:
        file.write(b"0123456789")
        file.seek(3)
        file.write(b"abc")
        file.seek(-2, os.SEEK_END)
        end = file.read()
        file.seek(20)
        file.write(b"!")
        size = file.tell()
        file.seek(0)
        return [end, size, file.read()]


@check
def seeking_far_and_before_the_start() -> list[object]:
    with open("/work/sparse.bin", "wb") as sparse:
        position = sparse.seek(2**33)
    with open("/work/sparse.bin", "rb") as sparse:
        read = os.pread(sparse.fileno(), 10, 2**40)
        sparse.seek(-100, os.SEEK_CUR)
    return [position, read]


@check
def append_mode() -> list[str]:
    with open("/work/log.txt", "a") as log:
        log.write("one\n")
    with open("/work/log.txt", "a+") as log:
        log.write("two\n")
        log.seek(0)
        first = log.read()
        log.seek(0)
        log.write("three\n")
    return [first, Path("/work/log.txt").read_text()]


@check
def truncating() -> list[object]:
    with open("/work/cut.txt", "w") as cut:
        cut.write("x" * 100)
        cut.truncate(10)
    os.truncate("/work/cut.txt", 4)
    with open("/work/cut.txt", "r+") as cut:
        cut.truncate(8)
        found: list[object] = [cut.read()]
    with open("/work/grown.bin", "wb") as grown:
        grown.truncate(5_000_000)
    return [*found, os.path.getsize("/work/cut.txt"), os.path.getsize("/work/grown.bin")]


@check
def low_level_io() -> list[object]:
    fd = os.open("/work/low.txt", os.O_RDWR | os.O_CREAT | os.O_EXCL)
    os.write(fd, b"hello world")
    moved = os.lseek(fd, 6, os.SEEK_SET)
    data = os.read(fd, 100)
    written = os.pwrite(fd, b"W", 6)
    again = os.pread(fd, 5, 6)
    os.ftruncate(fd, 5)
    os.fsync(fd)
    os.fdatasync(fd)
    size = os.fstat(fd).st_size
    os.close(fd)
    return [moved, data, written, again, size]


@check
def unbuffered_io() -> list[object]:
    with open("/work/raw.bin", "wb", buffering=0) as raw:
        raw.write(b"abcdef")
    with open("/work/raw.bin", "rb", buffering=0) as raw:
        buffer = bytearray(4)
        return [raw.readinto(buffer), bytes(buffer), raw.readall()]


@check
def wrong_way_descriptors() -> list[object]:
    fd = os.open("/work/low.txt", os.O_WRONLY | os.O_APPEND)
    os.pwrite(fd, b"Z", 0)  # O_APPEND: at the end, as Linux does
    found = []
    for descriptor in (fd, 12345):  # written only, and none
        try:
            os.read(descriptor, 1)
        except OSError as error:
            found.append(errno.errorcode.get(error.errno or 0))
    os.close(fd)
    return [*found, Path("/work/low.txt").read_bytes()]


@check
def directories() -> list[tuple[str, list[str], list[str]]]:
    os.makedirs("/work/a/b/c")
    os.makedirs("/work/a/b/c", exist_ok=True)
    os.mkdir("/work/empty")
    os.rmdir("/work/empty")
    return sorted(os.walk("/work/a"))


@check
def mkdir_twice() -> None:
    os.mkdir("/work/a")


@check
def rmdir_not_empty() -> None:
    os.rmdir("/work/a")


@check
def unlink_a_directory() -> None:
    os.unlink("/work/a")


@check
def listdir_of_a_file() -> None:
    os.listdir("/work/log.txt")


@check
def trailing_slash_on_a_file() -> None:
    open("/work/log.txt/")  # noqa: SIM115


@check
def open_a_directory() -> None:
    open("/work/a")  # noqa: SIM115


@check
def exclusive_create() -> None:
    open("/work/log.txt", "x")  # noqa: SIM115


@check
def names() -> list[object]:
    made = ["ünïcödé ✓.txt", ".hidden", "x" * 255]
    for name in made:
        Path("/work", name).touch()
    return [sorted(name for name in os.listdir("/work") if name in made) == sorted(made)]


@check
def name_too_long() -> None:
    Path("/work", "x" * 256).touch()


@check
def deep_directories() -> list[object]:
    import shutil

    deepest = "/work/deep/" + "d/" * 120  # a rename resolves two paths: 240 directories held open at once
    os.makedirs(deepest)
    Path(deepest, "f").write_text("at the bottom")
    os.rename(deepest + "f", deepest + "g")
    found: list[object] = [len(deepest), Path(deepest, "g").read_text()]
    shutil.rmtree("/work/deep")
    return [*found, os.path.exists("/work/deep")]


@check
def renaming() -> list[object]:
    Path("/work/first.txt").write_text("first")
    Path("/work/second.txt").write_text("second")
    os.rename("/work/first.txt", "/work/moved.txt")
    os.replace("/work/moved.txt", "/work/second.txt")
    os.rename("/work/a/b", "/work/b")
    return [Path("/work/second.txt").read_text(), sorted(os.listdir("/work"))]


@check
def rename_onto_a_directory() -> None:
    os.rename("/work/second.txt", "/work/b")


@check
def renaming_a_mount() -> None:
    os.rename("/work", "/work/elsewhere")


@check
def removing_a_mount() -> None:
    os.rmdir("/tmp")


@check
def into_its_own_subdirectory() -> None:
    os.makedirs("/work/outer/inner")
    os.rename("/work/outer", "/work/outer/inner/moved")


@check
def moving_across_mounts() -> list[object]:
    Path("/tmp/across.txt").write_text("across")
    os.rename("/tmp/across.txt", "/work/arrived.txt")
    os.link("/work/arrived.txt", "/tmp/linked.txt")
    return [Path("/work/arrived.txt").read_text(), os.stat("/tmp/linked.txt").st_nlink]


@check
def links() -> list[object]:
    os.symlink("second.txt", "/work/link")
    os.symlink("nowhere", "/work/dangling")
    os.link("/work/second.txt", "/work/hard")
    return [
        os.readlink("/work/link"),
        os.path.islink("/work/link"),
        os.path.exists("/work/dangling"),
        os.lstat("/work/dangling").st_size,
        os.stat("/work/hard").st_nlink,
        os.path.samefile("/work/second.txt", "/work/hard"),
        Path("/work/link").read_text(),
    ]


@check
def symlink_to_an_absolute_path() -> None:
    os.symlink("/etc/passwd", "/work/outside")


@check
def symlink_loop() -> None:
    os.symlink("loop", "/work/loop")
    open("/work/loop")  # noqa: SIM115


@check
def symlink_escaping_upwards() -> list[object]:
    os.symlink("../ro/given.txt", "/work/up")
    return [os.readlink("/work/up"), os.path.lexists("/work/up"), os.path.exists("/work/up")]


@check
def hard_link_of_a_symlink() -> None:
    os.link("/work/link", "/work/link-hard", follow_symlinks=False)


@check
def setting_times() -> list[object]:
    os.utime("/work/second.txt", (1_000_000_000, 1_500_000_000))
    os.utime("/work/log.txt", ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    os.utime("/work/link", (5, 6), follow_symlinks=False)
    first, second = os.stat("/work/second.txt"), os.stat("/work/log.txt")
    before = time.time()
    os.utime("/work/cut.txt")
    return [
        first.st_atime,
        first.st_mtime,
        second.st_atime_ns,
        second.st_mtime_ns,
        os.lstat("/work/link").st_mtime,
        abs(os.stat("/work/cut.txt").st_mtime - before) < 5,
    ]


@check
def changing_modes() -> list[object]:
    os.chmod("/work/second.txt", 0o600)
    return [oct(os.stat("/work/second.txt").st_mode & 0o777), os.access("/ro/given.txt", os.W_OK)]


@check
def shutil_work() -> list[object]:
    import shutil

    shutil.copytree("/ro/tree", "/work/tree", symlinks=True)
    shutil.copy2("/ro/given.txt", "/work/tree/copied.txt")
    shutil.move("/work/tree/copied.txt", "/work/b/copied.txt")
    shutil.rmtree("/work/a")
    shutil.rmtree("/work/tree/sub")
    return [sorted(os.listdir("/work/tree")), os.stat("/work/b/copied.txt").st_mtime, hasattr(shutil, "disk_usage")]


@check
def pathlib_work() -> list[object]:
    notes = Path("/work/notes")
    notes.mkdir()
    for number in range(30):
        (notes / f"note-{number:02}.md").write_text(f"note {number}\n")
    (notes / "note-00.md").rename(notes / "first.md")
    (notes / "note-01.md").unlink()
    found = sorted(path.name for path in notes.glob("note-1*.md"))
    return [found, (notes / "first.md").read_text(), sum(1 for _ in notes.rglob("*"))]


@check
def temporary_files() -> list[object]:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        with tempfile.NamedTemporaryFile(dir=directory) as file:
            file.write(b"temporary")
            file.flush()
            size = os.path.getsize(file.name)
        inside = os.listdir(directory)
    with tempfile.TemporaryFile() as unnamed:
        unnamed.write(b"x" * 5000)
        unnamed.seek(0)
        read = len(unnamed.read())
    return [tempfile.gettempdir(), size, inside, read, os.listdir("/tmp")]


@check
def printing_a_lot() -> str:
    for number in range(2000):
        sys.stdout.write(f"{number:05} {'-' * 60}\n")
        if number % 500 == 0:
            sys.stderr.write(f"progress {number}\n")
    return "done"


# --- endings ----------------------------------------------------------------------------------------------------


def recurse(depth: int) -> int:
    return recurse(depth + 1)


def deep_json() -> int:
    import json

    nested: list[object] = []
    for _ in range(100_000):
        nested = [nested]
    return len(json.dumps(nested))


class Endless:
    def __getattr__(self, name: str) -> object:
        return getattr(self, name)


def overflow_the_stack() -> object:
    sys.setrecursionlimit(1_000_000)  # past what the C stack in linear memory holds
    return Endless().attribute


def exhaust_memory() -> None:
    held = []
    while True:
        held.append(bytearray(8 * 2**20))


ENDINGS: dict[str, Callable[[], object]] = {
    "0": lambda: None,
    "3": lambda: sys.exit(3),
    "string": lambda: sys.exit("stopped with a message"),
    "raise": lambda: dict[str, int]()["no such key"],
    "memory": exhaust_memory,
    "recursion": lambda: recurse(0),
    "json recursion": deep_json,
    "stack overflow": overflow_the_stack,
}

if ARGS[:1] != ["--ending-only"]:
    for each in CHECKS:
        report(each)
ENDINGS[sys.argv[-1]]()
