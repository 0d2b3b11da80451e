"""The `kv` capability: a namespaced key-value store in one SQLite file per tenant.

[capabilities.kv]
namespaces = ["counters"]
max_value_bytes = 65536
max_keys = 1000

Keys and values are bytes. A guest reaches only the namespaces its manifest names; `max_keys`
counts every key in its file (those of namespaces an earlier version named too), `max_value_bytes` bounds
each value. A new key is counted and inserted in one `BEGIN IMMEDIATE` transaction, so concurrent instances
of the same tenant cannot overshoot the quota together. A call waits for another instance's transaction 5 s at most, and
never past its own call's limits.timeout_ms: then the call ends as timed out.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from ngixi_runtime.capabilities.base import (
    Binder,
    Bounds,
    Capability,
    ComponentFunction,
    at_most,
    bounded,
    ceiling_bound,
    host_failure,
    host_import,
    members,
    optional_array,
    state_method,
)
from ngixi_runtime.capabilities.component import fallible, granted_state, outcome, utf8_length
from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.errors import GuestError
from ngixi_runtime.files import make_directories, private_creation
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, GuestMemory, Status, copy_out, read_utf8, write_u32
from ngixi_runtime.spec.sandbox_layout import KV_STORE_ENDINGS
from ngixi_runtime.spec.schema import Problems, array, string_item

MAX_KEY_BYTES = 1024
BUSY_MS = 5000  # the longest a call waits for another instance's transaction to end
# SQLite's steps between two looks at the call's deadline: a guest inside a host function is past the engine's, and a
# store of a million keys (max_keys allows it) took seconds to count for each new key, or to list.
STEPS_PER_LOOK = 10_000
_KEYS_WITH = "FROM entries WHERE namespace = ? AND substr(key, 1, ?) = ?"
VALUE_BYTES = Bounds(65536, 1, 16 << 20)
KV_KEYS = Bounds(1000, 1, 1_000_000)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " namespace TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, PRIMARY KEY (namespace, key)"
    ") WITHOUT ROWID"
)
# All that kv and SQLite make in its file (sqlite_master's type, name and SQL): the entries table, and the statistics
# tables of an ANALYZE or PRAGMA optimize (an operator's tool may run one; no one else can make them, and they hold
# no code). A file holding anything more (a trigger that copies every value elsewhere, a view, another table) was
# made by someone else, and is refused, not run.
_OBJECTS = {
    ("table", "entries", _SCHEMA.replace(" IF NOT EXISTS", "")),
    ("table", "sqlite_stat1", "CREATE TABLE sqlite_stat1(tbl,idx,stat)"),
    ("table", "sqlite_stat4", "CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)"),
}
# SQLite's settings for a file others may have prepared (Connection.setconfig, Python 3.12 and newer): no schema
# change beyond the usual, and no trigger or view runs.
_DEFENSIVE_CONFIG = {
    "SQLITE_DBCONFIG_DEFENSIVE": True,
    "SQLITE_DBCONFIG_TRUSTED_SCHEMA": False,
    "SQLITE_DBCONFIG_ENABLE_TRIGGER": False,
    "SQLITE_DBCONFIG_ENABLE_VIEW": False,
}


class ForeignObjects(Exception):
    """A kv file holds what kv did not make."""


class SwappedStore(Exception):
    """A kv file is no longer what the sandbox's check at load found (`_refuse_swapped`)."""


def _refuse_swapped(database: Path) -> None:
    """Checked again when the store is first opened, maybe long after the sandbox's check at load: SQLite opens
    its files by name and follows a symbolic link, so one put there meanwhile would have it write elsewhere. Each
    must be missing or a regular file of this user's with no other name."""
    for suffix in KV_STORE_ENDINGS:
        path = Path(f"{database}{suffix}")
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            continue
        problem = _swapped(found)
        if problem is not None:
            raise SwappedStore(f"{path.name} {problem} since the guest was loaded; remove it")


def _swapped(found: os.stat_result) -> str | None:
    if stat.S_ISLNK(found.st_mode):
        return "became a symbolic link"
    if not stat.S_ISREG(found.st_mode):
        return "is no longer a regular file"
    if found.st_nlink != 1:
        return "was given other names (hard links)"
    return None if found.st_uid == os.geteuid() else "belongs to another user"


class KvOptions(NamedTuple):
    namespaces: tuple[str, ...]
    max_value_bytes: int
    max_keys: int


MAX_NAMESPACE_BYTES = 63
_NAMESPACE = re.compile(rf"^[a-z][a-z0-9_-]{{0,{MAX_NAMESPACE_BYTES - 1}}}\Z")
namespace_item = string_item(_NAMESPACE, 'must be lowercase letters, digits, "-" and "_", starting with a letter')


def parse_kv(raw: Mapping[str, Any], field: str, problems: Problems) -> KvOptions:
    problems.unknown_keys(raw, ("namespaces", "max_value_bytes", "max_keys"), field)
    namespaces = array(
        raw,
        "namespaces",
        f"{field}.namespaces",
        problems,
        item=namespace_item,
        required='name the namespaces the guest may use, like ["counters"]',
        identity=str,
    )
    value_bytes = bounded(raw, "max_value_bytes", field, problems, VALUE_BYTES)
    keys = bounded(raw, "max_keys", field, problems, KV_KEYS)
    return KvOptions(namespaces, value_bytes, keys)


class KvCeiling(NamedTuple):
    """The operator policy's ceiling on `[capabilities.kv]`."""

    namespaces: tuple[str, ...] | None
    max_value_bytes: int | None
    max_keys: int | None

    def exceeded(self, options: KvOptions, field: str) -> list[str]:
        return [
            *members(f"{field}.namespaces", options.namespaces, self.namespaces, default=None),
            *at_most(
                f"{field}.max_value_bytes", options.max_value_bytes, self.max_value_bytes, default=VALUE_BYTES.default
            ),
            *at_most(f"{field}.max_keys", options.max_keys, self.max_keys, default=KV_KEYS.default),
        ]


def parse_kv_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> KvCeiling:
    problems.unknown_keys(raw, ("namespaces", "max_value_bytes", "max_keys"), field)
    return KvCeiling(
        namespaces=optional_array(raw, "namespaces", field, problems, namespace_item),
        max_value_bytes=ceiling_bound(raw, "max_value_bytes", field, problems, VALUE_BYTES),
        max_keys=ceiling_bound(raw, "max_keys", field, problems, KV_KEYS),
    )


class KvStore:
    """One guest instance's view of its tenant's store; the database opens on first use.

    `report` tells the operator about refusals and storage failures.
    """

    def __init__(
        self,
        options: KvOptions,
        database: Path,
        *,
        guest: str,
        report: Callable[[str], None] | None = None,
        call_ends_at: Callable[[], float] = lambda: math.inf,
    ) -> None:
        self.options = options
        self.database = database
        self.guest = guest
        self.report = report or (lambda message: None)
        self.call_ends_at = call_ends_at  # when the guest's current call reaches its limits.timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._busy_ms = BUSY_MS  # the connection's busy timeout

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        ends_at = self.call_ends_at()
        left_ms = (ends_at - time.monotonic()) * 1000
        busy_ms = BUSY_MS if left_ms >= BUSY_MS else max(0, math.ceil(left_ms))
        try:
            connection = self._connect(busy_ms)
            if busy_ms != self._busy_ms:
                connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
                self._busy_ms = busy_ms
            connection.execute("BEGIN IMMEDIATE")
            try:
                with _until(connection, ends_at):
                    yield connection
            except BaseException:
                if connection.in_transaction:  # an interrupted statement has rolled the transaction back itself
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except (sqlite3.Error, ForeignObjects, SwappedStore) as error:
            if busy_ms < BUSY_MS and isinstance(error, sqlite3.OperationalError) and "is locked" in str(error):
                raise GuestError(
                    f"{self.guest}: reached its limits.timeout_ms while waiting for another instance's kv transaction",
                    outcome="timeout",
                ) from None
            if isinstance(error, sqlite3.OperationalError) and str(error) == "interrupted":
                raise GuestError(
                    f"{self.guest}: reached its limits.timeout_ms in a kv query of its store", outcome="timeout"
                ) from None
            self.report(f"{self.guest}: kv: {self.database}: {error}")
            raise AbiFault(Status.HOST_FAILURE) from None

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        if self._connection is None:
            make_directories(self.database.parent, 0o700)
            _refuse_swapped(self.database)
            # SQLite makes the database 0644 less the umask, and its -wal, -shm and -journal files as the database
            with private_creation():
                connection = sqlite3.connect(self.database, isolation_level=None, timeout=busy_ms / 1000)
                self._busy_ms = busy_ms
                try:
                    _defend(connection)
                    _check_objects(connection)
                    # WAL without a sync per commit: a power cut may lose the last writes, never consistency.
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=NORMAL")
                    connection.execute(_SCHEMA)
                except BaseException:
                    connection.close()
                    raise
            self._connection = connection
        return self._connection

    # --- the store -------------------------------------------------------------------------

    def get(self, namespace: str, key: bytes) -> bytes:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM entries WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        if row is None:
            raise AbiFault(Status.NOT_FOUND)
        value: bytes = row[0]
        return value

    def set(self, namespace: str, key: bytes, value: bytes) -> None:
        self.checked_value(len(value))
        with self._transaction() as db:
            known = db.execute("SELECT 1 FROM entries WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
            if known is None:
                # Every namespace's: those an earlier version was granted count too, or each version naming new ones
                # would add max_keys more to the file.
                # Counted row by row, up to the limit: SQLite's COUNT(*) of a whole table is one step, which its
                # progress handler (the call's deadline) cannot interrupt.
                limited = "SELECT COUNT(*) FROM (SELECT 1 FROM entries LIMIT ?)"
                (count,) = db.execute(limited, (self.options.max_keys,)).fetchone()
                if count >= self.options.max_keys:
                    self._refuse(
                        Status.QUOTA_EXCEEDED,
                        f"a new key refused: the store holds {count} keys, its limit "
                        "([capabilities.kv] max_keys); raise it, or delete keys",
                    )
            db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (namespace, key, value))

    def delete(self, namespace: str, key: bytes) -> None:
        with self._transaction() as db:
            removed = db.execute("DELETE FROM entries WHERE namespace = ? AND key = ?", (namespace, key)).rowcount
        if not removed:
            raise AbiFault(Status.NOT_FOUND)

    def keys(self, namespace: str, prefix: bytes) -> list[bytes]:
        with self._transaction() as db:
            return _matching_keys(db, namespace, prefix)

    def listing(self, namespace: str, prefix: bytes, room: int) -> tuple[int, list[bytes] | None]:
        """The bytes kv_list's listing of the keys takes, and the keys when they fit in `room` (else None): a listing
        that does not fit the guest's buffer is never read into the host."""
        with self._transaction() as db:
            matching = (namespace, len(prefix), prefix)
            (size,) = db.execute(f"SELECT COALESCE(SUM(4 + length(key)), 0) {_KEYS_WITH}", matching).fetchone()
            return size, _matching_keys(db, namespace, prefix) if size <= room else None

    # --- the imports -----------------------------------------------------------------------

    def granted(self, namespace: str) -> str:
        """The namespace, if the manifest grants it (else DENIED, and the operator is told)."""
        if namespace not in self.options.namespaces:
            self._refuse(
                Status.DENIED,
                f'namespace "{namespace}" refused: not in [capabilities.kv] namespaces; add it to allow it',
            )
        return namespace

    def checked_key(self, length: int, key: Callable[[], bytes]) -> bytes:
        if length == 0:
            self._refuse(Status.INVALID, "an empty key refused: a key is 1 to 1024 bytes")
        if length > MAX_KEY_BYTES:
            self._refuse(Status.TOO_LARGE, f"a key of {length} bytes refused: a key is 1 to {MAX_KEY_BYTES} bytes")
        return key()

    def named(self, length: int, namespace: Callable[[], str]) -> str:
        """The namespace of `length` bytes (read by `namespace`), if granted: one longer than any a manifest may name
        is refused before it is read (a core guest's length is its own, up to its whole memory)."""
        if length > MAX_NAMESPACE_BYTES:
            self._refuse(
                Status.TOO_LARGE,
                f"a namespace of {length} bytes refused: a namespace is at most {MAX_NAMESPACE_BYTES} bytes",
            )
        return self.granted(namespace())

    def checked_prefix(self, length: int) -> None:
        if length > MAX_KEY_BYTES:
            self._refuse(Status.TOO_LARGE, f"a prefix of {length} bytes refused: a key is 1 to {MAX_KEY_BYTES}")

    def given_namespace(self, namespace: str) -> str:
        """A component's namespace, checked as a core guest's is."""
        return self.named(utf8_length(namespace), lambda: namespace)

    def given_key(self, key: bytes) -> bytes:
        """A component's key, checked as a core guest's is."""
        return self.checked_key(len(key), lambda: key)

    def checked_value(self, length: int) -> None:
        if length > self.options.max_value_bytes:
            self._refuse(
                Status.TOO_LARGE,
                f"a value of {length} bytes refused: over [capabilities.kv] max_value_bytes "
                f"({self.options.max_value_bytes}); raise it to allow it",
            )

    def _refuse(self, status: Status, why: str) -> NoReturn:
        """Tells the operator why the guest's call is refused (a line of level host), and refuses it."""
        self.report(f"{self.guest}: kv: {why}")
        raise AbiFault(status)

    def _namespace(self, memory: GuestMemory, pointer: int, length: int) -> str:
        return self.named(length, lambda: read_utf8(memory, pointer, length))

    def _key(self, memory: GuestMemory, pointer: int, length: int) -> bytes:
        return self.checked_key(length, lambda: memory.read(pointer, length))

    def kv_get(
        self, memory: GuestMemory, ns: int, ns_length: int, key: int, key_length: int, buffer: int, size: int, out: int
    ) -> None:
        value = self.get(self._namespace(memory, ns, ns_length), self._key(memory, key, key_length))
        copy_out(memory, value, buffer, size, out)

    def kv_set(
        self, memory: GuestMemory, ns: int, ns_length: int, key: int, key_length: int, value: int, value_length: int
    ) -> None:
        self.checked_value(value_length)  # before the namespace and key are read: their lengths are the guest's
        namespace, name = self._namespace(memory, ns, ns_length), self._key(memory, key, key_length)
        self.set(namespace, name, memory.read(value, value_length))

    def kv_delete(self, memory: GuestMemory, ns: int, ns_length: int, key: int, key_length: int) -> None:
        self.delete(self._namespace(memory, ns, ns_length), self._key(memory, key, key_length))

    def kv_list(
        self,
        memory: GuestMemory,
        ns: int,
        ns_length: int,
        prefix: int,
        prefix_length: int,
        buffer: int,
        size: int,
        out: int,
    ) -> None:
        self.checked_prefix(prefix_length)
        needed, keys = self.listing(self._namespace(memory, ns, ns_length), memory.read(prefix, prefix_length), size)
        if keys is None:
            write_u32(memory, out, needed)
            raise AbiFault(Status.BUFFER_TOO_SMALL)
        copy_out(memory, b"".join(struct.pack("<I", len(k)) + k for k in keys), buffer, size, out)


# --- the capability --------------------------------------------------------------------------------


def _component(method: Callable[..., Any]) -> Binder:
    """A function of the `kv` interface: `method(store, *arguments)`, whose checks are a core guest's, in its order."""

    def bind(ctx: HostContext) -> ComponentFunction:
        def call(*arguments: Any) -> Any:
            store: KvStore = granted_state(ctx, "kv")
            return outcome(lambda: method(store, *arguments))

        return call

    return bind


def _get(store: KvStore, namespace: str, key: bytes) -> bytes:
    return store.get(store.given_namespace(namespace), store.given_key(key))


def _set(store: KvStore, namespace: str, key: bytes, value: bytes) -> None:
    store.checked_value(len(value))  # first, as kv_set checks it
    store.set(store.given_namespace(namespace), store.given_key(key), value)


def _delete(store: KvStore, namespace: str, key: bytes) -> None:
    store.delete(store.given_namespace(namespace), store.given_key(key))


def _keys(store: KvStore, namespace: str, prefix: bytes) -> list[bytes]:
    store.checked_prefix(len(prefix))  # first, as kv_list checks it
    return store.keys(store.given_namespace(namespace), prefix)


def _matching_keys(db: sqlite3.Connection, namespace: str, prefix: bytes) -> list[bytes]:
    rows = db.execute(f"SELECT key {_KEYS_WITH} ORDER BY key", (namespace, len(prefix), prefix)).fetchall()
    return [row[0] for row in rows]


@contextmanager
def _until(connection: sqlite3.Connection, ends_at: float) -> Iterator[None]:
    """Interrupts the connection's statements once `ends_at` (time.monotonic) has passed."""
    if ends_at == math.inf:
        yield
        return
    connection.set_progress_handler(lambda: time.monotonic() >= ends_at, STEPS_PER_LOOK)
    try:
        yield
    finally:
        connection.set_progress_handler(None, 0)


def _defend(connection: sqlite3.Connection) -> None:
    """Opens a file others may have prepared as SQLite advises: functions with side effects never run from its
    schema, every cell's size is checked, and on Python 3.12 and newer the defensive flag is on and no trigger or
    view runs (Python 3.10's sqlite3 has no setconfig)."""
    connection.execute("PRAGMA trusted_schema=OFF")
    connection.execute("PRAGMA cell_size_check=ON")
    if sys.version_info >= (3, 12):
        for name, on in _DEFENSIVE_CONFIG.items():
            option = getattr(sqlite3, name, None)  # each exists where the linked SQLite has it
            if option is not None:
                connection.setconfig(option, on)


def _check_objects(connection: sqlite3.Connection) -> None:
    """Refuses a file holding anything kv does not make; an empty one is a new store."""
    found = {tuple(row) for row in connection.execute("SELECT type, name, sql FROM sqlite_master")}
    foreign = [f"{kind} {name!r}" for kind, name, _ in sorted(found - _OBJECTS)]
    if foreign:
        named = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ForeignObjects(
            f"holds {named}, not as kv makes them (they could run code on the guest's data): "
            "move the file away for kv to start an empty store"
        )


def _open_state(options: KvOptions, context: HostContext, sandbox: Sandbox | None) -> KvStore:
    assert sandbox is not None  # needs_sandbox: opening the context refused a missing one
    return KvStore(
        options,
        sandbox.kv_database,
        guest=context.guest,
        report=context.output.host_says,
        call_ends_at=lambda: context.call_ends_at,
    )


_IMPORTS = (
    host_import("ngixi", "kv_get", " ".join(["i32"] * 7), "i32"),
    host_import("ngixi", "kv_set", " ".join(["i32"] * 6), "i32"),
    host_import("ngixi", "kv_delete", " ".join(["i32"] * 4), "i32"),
    host_import("ngixi", "kv_list", " ".join(["i32"] * 7), "i32"),
)

CAPABILITY = Capability(
    "kv",
    "a namespaced key-value store (SQLite, one file per tenant)",
    # Each import is the KvStore method of the same name.
    {i: state_method("kv", getattr(KvStore, i.name), host_failure) for i in _IMPORTS},
    parse_options=parse_kv,
    parse_ceiling=parse_kv_ceiling,
    open_state=_open_state,
    needs_sandbox=True,
    interface="kv",
    component_host={
        "get": _component(_get),
        "set": _component(_set),
        "delete": _component(_delete),
        "keys": _component(_keys),
    },
    component_types={
        "get": (("string", "list<u8>"), (fallible("list<u8>"),)),
        "set": (("string", "list<u8>", "list<u8>"), (fallible("_"),)),
        "delete": (("string", "list<u8>"), (fallible("_"),)),
        "keys": (("string", "list<u8>"), (fallible("list<list<u8>>"),)),
    },
)
