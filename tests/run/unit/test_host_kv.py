"""The kv capability on a real SQLite file, through the host functions with a fake guest memory."""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime.capabilities import kv
from ngixi_runtime.capabilities.component import error_case
from ngixi_runtime.capabilities.context import HostContext
from ngixi_runtime.capabilities.kv import MAX_KEY_BYTES, KvOptions, KvStore
from ngixi_runtime.capabilities.linking import core_imports
from ngixi_runtime.capabilities.registry import capability
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import Status
from tests.conftest import FakeMemory

OPTIONS = KvOptions(("counters", "cache"), max_value_bytes=8, max_keys=3)
NS, KEY, VALUE, BUFFER, OUT = 0, 100, 1200, 2400, 4000


class Guest:
    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx

    def put(self, at: int, data: bytes) -> tuple[int, int]:
        self.ctx.mem.write(at, data)
        return at, len(data)

    def call(self, name: str, namespace: str, *args: int) -> int:
        ((_, function),) = core_imports(self.ctx, [("ngixi", f"kv_{name}")])
        result = function(*self.put(NS, namespace.encode()), *args)
        assert isinstance(result, int)
        return result

    def set(self, namespace: str, key: bytes, value: bytes) -> int:
        return self.call("set", namespace, *self.put(KEY, key), *self.put(VALUE, value))

    def get(self, namespace: str, key: bytes, size: int = 64) -> tuple[int, bytes]:
        status = self.call("get", namespace, *self.put(KEY, key), BUFFER, size, OUT)
        length = struct.unpack("<I", self.ctx.mem.read(OUT, 4))[0]
        return status, self.ctx.mem.read(BUFFER, length) if status == 0 else b""

    def list(self, namespace: str, prefix: bytes = b"", size: int = 256) -> tuple[int, list[bytes]]:
        status = self.call("list", namespace, *self.put(KEY, prefix), BUFFER, size, OUT)
        raw = self.ctx.mem.read(BUFFER, struct.unpack("<I", self.ctx.mem.read(OUT, 4))[0]) if status == 0 else b""
        keys = []
        while raw:
            length = struct.unpack_from("<I", raw)[0]
            keys.append(raw[4 : 4 + length])
            raw = raw[4 + length :]
        return status, keys


def open_guest(
    database: Path, report: Callable[[str], None] | None = None, options: KvOptions = OPTIONS
) -> HostContext:
    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(8192), grants=frozenset({"kv"}))
    ctx.states["kv"] = KvStore(options, database, guest="g", report=report, call_ends_at=lambda: ctx.call_ends_at)
    return ctx


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[Guest]:
    ctx = open_guest(tmp_path / "tenant" / "kv.sqlite3")
    yield Guest(ctx)
    ctx.close()


def test_set_get_delete_and_list(guest: Guest) -> None:
    assert guest.get("counters", b"hits") == (Status.NOT_FOUND, b"")
    assert guest.set("counters", b"hits", b"\x01\x00\x00\x00") == Status.OK
    assert guest.set("counters", b"misses", b"0") == Status.OK
    assert guest.set("cache", b"hits", b"other") == Status.OK
    assert guest.get("counters", b"hits") == (Status.OK, b"\x01\x00\x00\x00")
    assert guest.list("counters") == (Status.OK, [b"hits", b"misses"])
    assert guest.list("counters", b"mi") == (Status.OK, [b"misses"])
    assert guest.call("delete", "counters", *guest.put(KEY, b"misses")) == Status.OK
    assert guest.call("delete", "counters", *guest.put(KEY, b"misses")) == Status.NOT_FOUND
    assert guest.get("cache", b"hits") == (Status.OK, b"other")


def test_a_small_buffer_gets_the_length_to_retry_with(guest: Guest) -> None:
    guest.set("counters", b"k", b"12345678")
    assert guest.get("counters", b"k", size=4)[0] == Status.BUFFER_TOO_SMALL
    assert struct.unpack("<I", guest.ctx.mem.read(OUT, 4))[0] == 8


def test_quotas_hold(guest: Guest, tmp_path: Path) -> None:
    assert guest.set("counters", b"big", b"123456789") == Status.TOO_LARGE
    for key in (b"a", b"b", b"c"):
        assert guest.set("counters" if key != b"c" else "cache", key, b"v") == Status.OK
    assert guest.set("counters", b"d", b"v") == Status.QUOTA_EXCEEDED
    assert guest.set("counters", b"a", b"replaced") == Status.OK  # replacing adds no key
    assert guest.set("counters", b"x" * (MAX_KEY_BYTES + 1), b"v") == Status.TOO_LARGE
    assert guest.set("counters", b"", b"v") == Status.INVALID
    with sqlite3.connect(tmp_path / "tenant" / "kv.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (3,)


def test_each_refusal_is_told_to_the_operator_with_the_option_to_raise(tmp_path: Path) -> None:
    """README: refusals are reported as host lines; a namespace's were, a value, key or quota refusal was the guest's
    status alone (TOO_LARGE, QUOTA_EXCEEDED, INVALID), leaving the operator to guess which limit."""
    told: list[str] = []
    guest = Guest(open_guest(tmp_path / "kv.sqlite3", report=told.append))
    assert guest.set("counters", b"big", b"123456789") == Status.TOO_LARGE
    assert guest.set("counters", b"", b"v") == Status.INVALID
    assert guest.get("counters", b"x" * (MAX_KEY_BYTES + 1))[0] == Status.TOO_LARGE
    assert [guest.set("counters", key, b"v") for key in (b"a", b"b", b"c", b"d")][-1] == Status.QUOTA_EXCEEDED
    assert guest.set("sessions", b"k", b"v") == Status.DENIED
    assert told == [
        "g: kv: a value of 9 bytes refused: over [capabilities.kv] max_value_bytes (8); raise it to allow it",
        "g: kv: an empty key refused: a key is 1 to 1024 bytes",
        "g: kv: a key of 1025 bytes refused: a key is 1 to 1024 bytes",
        "g: kv: a new key refused: the store holds 3 keys, its limit ([capabilities.kv] max_keys); raise it, or delete"
        " keys",
        'g: kv: namespace "sessions" refused: not in [capabilities.kv] namespaces; add it to allow it',
    ]
    guest.ctx.close()


def test_keys_of_namespaces_no_longer_granted_still_count(tmp_path: Path) -> None:
    """A signer's next version naming new namespaces does not get max_keys more of the operator's disk."""
    database = tmp_path / "tenant" / "kv.sqlite3"
    earlier = Guest(open_guest(database, options=OPTIONS._replace(namespaces=("old",))))
    assert [earlier.set("old", key, b"v") for key in (b"a", b"b", b"c")] == [Status.OK] * 3
    earlier.ctx.close()
    later = Guest(open_guest(database))
    assert later.set("counters", b"new", b"v") == Status.QUOTA_EXCEEDED
    later.ctx.close()


def test_only_granted_namespaces_are_reachable(guest: Guest) -> None:
    assert guest.set("sessions", b"k", b"v") == Status.DENIED
    assert guest.get("sessions", b"k")[0] == Status.DENIED


def test_a_namespace_longer_than_any_granted_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """The namespace's length is the guest's, up to its whole memory: it was read and decoded whole, in the host,
    to be refused as not granted. One longer than any namespace a manifest may name is refused from its length."""
    told: list[str] = []
    guest = Guest(open_guest(tmp_path / "kv.sqlite3", report=told.append))
    assert guest.get("c" * 63, b"k")[0] == Status.DENIED
    assert guest.get("c" * 64, b"k")[0] == Status.TOO_LARGE
    assert guest.set("c" * 64, b"k", b"v") == Status.TOO_LARGE
    assert told[-1] == "g: kv: a namespace of 64 bytes refused: a namespace is at most 63 bytes"
    guest.ctx.close()


# A request a core guest makes through its import, and a component through its function: each refused alike.
SAME_REFUSALS: dict[str, tuple[Callable[[Guest], int], tuple[Any, ...]]] = {
    "a namespace longer than any granted": (lambda guest: guest.get("c" * 64, b"k")[0], ("get", "c" * 64, b"k")),
    "a prefix longer than any key": (
        lambda guest: guest.list("counters", b"p" * (MAX_KEY_BYTES + 1))[0],
        ("keys", "counters", b"p" * (MAX_KEY_BYTES + 1)),
    ),
    "a value too large for a namespace not granted": (
        lambda guest: guest.set("sessions", b"k", b"123456789"),
        ("set", "sessions", b"k", b"123456789"),
    ),
}


@pytest.mark.parametrize("case", SAME_REFUSALS)
def test_a_component_is_refused_what_a_core_guest_is_and_the_operator_told_the_same(case: str, tmp_path: Path) -> None:
    """A component's namespace had no length bound (a long one was DENIED, told to the operator whole), its key prefix
    none (a prefix of any length was looked up), and its value was checked after the namespace (DENIED where a core
    guest's is TOO_LARGE). The component functions call the core checks now, in the core's order."""
    told: list[str] = []
    guest = Guest(open_guest(tmp_path / "kv.sqlite3", report=told.append))
    core_call, (function, *arguments) = SAME_REFUSALS[case]
    status = core_call(guest)
    assert status != Status.OK
    assert capability("kv").component_host[function](guest.ctx)(*arguments) == error_case(status)
    assert len(told) == 2 and told[0] == told[1]
    guest.ctx.close()


def test_values_persist_across_instances_and_the_file_is_created_on_first_use(tmp_path: Path) -> None:
    database = tmp_path / "tenant" / "kv.sqlite3"
    first = open_guest(database)
    assert not database.exists()
    Guest(first).set("counters", b"hits", b"7")
    first.close()
    second = Guest(open_guest(database))
    assert second.get("counters", b"hits") == (Status.OK, b"7")
    second.ctx.close()


def test_the_store_and_its_journals_are_this_users_alone_whatever_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0)
    try:
        guest = Guest(open_guest(tmp_path / "tenant" / "kv.sqlite3"))
        assert guest.set("counters", b"hits", b"7") == Status.OK
        assert os.umask(0) == 0  # the umask the caller had is back after the call
    finally:
        os.umask(umask)
    made = ["tenant", "tenant/kv.sqlite3", "tenant/kv.sqlite3-wal", "tenant/kv.sqlite3-shm"]
    modes = [stat.S_IMODE((tmp_path / name).stat().st_mode) for name in made]
    guest.ctx.close()
    assert modes == [0o700, 0o600, 0o600, 0o600]


def test_a_broken_database_is_a_host_failure_for_the_guest(tmp_path: Path) -> None:
    database = tmp_path / "kv.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    guest = Guest(open_guest(database))
    assert guest.set("counters", b"k", b"v") == Status.HOST_FAILURE
    guest.ctx.close()


@pytest.mark.parametrize(
    ("name", "put", "why"),
    [
        ("kv.sqlite3", lambda path, elsewhere: path.symlink_to(elsewhere), "became a symbolic link"),
        ("kv.sqlite3-wal", lambda path, elsewhere: path.symlink_to(elsewhere), "became a symbolic link"),
        ("kv.sqlite3", lambda path, elsewhere: os.link(elsewhere, path), "was given other names (hard links)"),
        ("kv.sqlite3", lambda path, elsewhere: os.mkfifo(path), "is no longer a regular file"),
    ],
    ids=["link", "wal-link", "hard-link", "fifo"],
)
def test_a_store_file_swapped_after_load_is_never_opened(
    tmp_path: Path, name: str, put: Callable[[Path, Path], None], why: str
) -> None:
    """The sandbox's check ran at load; what is put there before the first kv call is refused as it would have been."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"")
    reports: list[str] = []
    guest = Guest(open_guest(tmp_path / "tenant" / "kv.sqlite3", reports.append))
    (tmp_path / "tenant").mkdir()
    put(tmp_path / "tenant" / name, elsewhere)
    assert guest.set("counters", b"k", b"v") == Status.HOST_FAILURE
    guest.ctx.close()
    assert elsewhere.read_bytes() == b""
    assert reports == [f"g: kv: {tmp_path}/tenant/kv.sqlite3: {name} {why} since the guest was loaded; remove it"]


def prepared_file(tmp_path: Path, script: str) -> Path:
    """A kv file someone else made: kv's table, then what `script` makes."""
    database = tmp_path / "kv.sqlite3"
    prepared = sqlite3.connect(database)
    prepared.execute(kv._SCHEMA)
    prepared.executescript(script)
    prepared.close()
    return database


def test_a_prepared_file_holding_more_than_kv_makes_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    """A kv file others prepared in a sandbox directory: its trigger copied every value the guest set into a table
    of theirs (SQLite ran it), where they could read it."""
    database = prepared_file(
        tmp_path,
        "CREATE TABLE stolen (value BLOB);"
        "CREATE TRIGGER steal AFTER INSERT ON entries BEGIN INSERT INTO stolen VALUES (new.value); END",
    )
    said: list[str] = []
    ctx = open_guest(database, said.append)
    assert Guest(ctx).set("counters", b"k", b"secret") == Status.HOST_FAILURE
    ctx.close()
    assert said == [
        f"g: kv: {database}: holds table 'stolen', trigger 'steal', not as kv makes them (they could run code on "
        "the guest's data): move the file away for kv to start an empty store"
    ]
    with sqlite3.connect(database) as after:
        assert after.execute("SELECT count(*) FROM stolen").fetchall() == [(0,)]
        assert after.execute("SELECT count(*) FROM entries").fetchall() == [(0,)]
    after.close()


@pytest.mark.parametrize(
    "made",
    [
        "CREATE VIEW everything AS SELECT * FROM entries",
        "CREATE INDEX by_value ON entries (value)",
        "DROP TABLE entries; CREATE TABLE entries (namespace TEXT, key BLOB, value BLOB CHECK (abs(1)))",
    ],
)
def test_any_other_object_or_another_entries_table_is_refused(tmp_path: Path, made: str) -> None:
    database = prepared_file(tmp_path, made)
    said: list[str] = []
    ctx = open_guest(database, said.append)
    assert Guest(ctx).get("counters", b"k")[0] == Status.HOST_FAILURE
    ctx.close()
    assert len(said) == 1 and "not as kv makes them" in said[0]


def test_a_store_kv_made_opens_again_with_the_defensive_settings(tmp_path: Path) -> None:
    database = tmp_path / "kv.sqlite3"
    store = KvStore(OPTIONS, database, guest="g")
    store.set("counters", b"hits", b"7")
    connection = store._connect(kv.BUSY_MS)
    assert connection.execute("PRAGMA trusted_schema").fetchall() == [(0,)]
    assert connection.execute("PRAGMA cell_size_check").fetchall() == [(1,)]
    if sys.version_info >= (3, 12):
        assert connection.getconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE)
        assert not connection.getconfig(sqlite3.SQLITE_DBCONFIG_ENABLE_TRIGGER)
    store.close()
    second = Guest(open_guest(database))
    assert second.get("counters", b"hits") == (Status.OK, b"7")
    second.ctx.close()


def test_a_store_an_operator_analyzed_still_opens(tmp_path: Path) -> None:
    """ANALYZE (or PRAGMA optimize) adds SQLite's own sqlite_stat1 table to the file: kv refused the store after it,
    and its message had the operator move the guest's data away."""
    database = tmp_path / "kv.sqlite3"
    store = KvStore(OPTIONS, database, guest="g")
    for number in range(3):
        store.set("counters", bytes([number]), b"7")
    store.close()
    with sqlite3.connect(database) as operator:
        operator.execute("ANALYZE")
        assert operator.execute("SELECT count(*) FROM sqlite_stat1").fetchall() == [(1,)]
    operator.close()
    guest = Guest(open_guest(database))
    assert guest.get("counters", bytes([2])) == (Status.OK, b"7")
    guest.ctx.close()


def test_a_call_waits_for_another_transaction_no_longer_than_its_own_deadline(guest: Guest, tmp_path: Path) -> None:
    """SQLite's busy timeout (5 s) held a call whose limits.timeout_ms was nearer: the wait ends with the call's
    time, as a timeout, and the next call with time to spare waits the whole 5 s again."""
    assert guest.set("counters", b"a", b"1") == Status.OK
    with sqlite3.connect(tmp_path / "tenant" / "kv.sqlite3", isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")
        guest.ctx.call_ends_at = time.monotonic() + 0.3
        started = time.monotonic()
        with pytest.raises(GuestError, match=r"^g: reached its limits\.timeout_ms while waiting for another") as late:
            guest.set("counters", b"b", b"2")
        assert late.value.outcome == "timeout" and 0.25 < time.monotonic() - started < 2
        other.execute("ROLLBACK")
    guest.ctx.call_ends_at = math.inf
    assert guest.set("counters", b"b", b"2") == Status.OK


def test_a_lock_held_past_the_busy_timeout_is_a_host_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv, "BUSY_MS", 100)
    said: list[str] = []
    guest = Guest(open_guest(tmp_path / "kv.sqlite3", report=said.append))
    assert guest.set("counters", b"a", b"1") == Status.OK
    with sqlite3.connect(tmp_path / "kv.sqlite3", isolation_level=None) as other:
        other.execute("BEGIN IMMEDIATE")
        assert guest.set("counters", b"b", b"2") == Status.HOST_FAILURE
        other.execute("ROLLBACK")
    assert said == [f"g: kv: {tmp_path / 'kv.sqlite3'}: database is locked"]
    guest.ctx.close()
