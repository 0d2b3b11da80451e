"""Host functions that could outlive a guest's call: a guest inside one is past the engine's deadline, so each ends its
own work at the call's deadline."""

from __future__ import annotations

import math
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.capabilities.fs import FsOptions, Preopen
from ngixi_runtime.capabilities.kv import KvOptions, KvStore
from ngixi_runtime.capabilities.linking import core_imports, open_context
from ngixi_runtime.capabilities.wasi_paths import MAX_SYMLINKS
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import LOOKUP_SYMLINK_FOLLOW, Errno, Status
from tests.conftest import FakeMemory

DATA, BUFFER, OUT = 3, 1024, 512


def readdir(ctx: HostContext) -> int:
    ((_, fd_readdir),) = core_imports(ctx, [("wasi_snapshot_preview1", "fd_readdir")])
    result = fd_readdir(DATA, BUFFER, 2048, 0, OUT)
    assert isinstance(result, int)
    return result


def test_fd_readdir_ends_at_the_calls_deadline(tmp_path: Path) -> None:
    """A directory of a million names (an operator's ro preopen, or the guest's own under max_files = 1000000) took
    seconds to read and sort in one fd_readdir, past timeout_ms; it looks at the call's deadline every 1,024 entries
    now, as random_get does, so the host stops reading there."""
    (tmp_path / "files" / "data").mkdir(parents=True)
    for index in range(3):
        (tmp_path / "files" / "data" / f"{index}.txt").write_text("x")
    options = FsOptions((Preopen("/data", "data", "ro"),))
    ctx = open_context("g", {"fs": options}, log_quota=0, stdio_quota=0, sandbox=Sandbox.under(tmp_path))
    ctx.memory = FakeMemory(8192)
    try:
        ctx.call_ends_at = math.inf
        assert readdir(ctx) == Errno.SUCCESS
        ctx.call_ends_at = time.monotonic() - 0.001
        with pytest.raises(GuestError, match=r"^g: reached its limits.timeout_ms while reading a directory") as ended:
            readdir(ctx)
        assert ended.value.outcome == "timeout"
    finally:
        ctx.close()


@pytest.fixture
def large_store(tmp_path: Path) -> Iterator[HostContext]:
    """A guest's kv store of 5,000 keys of 1,000 bytes (a max_keys of 1,000,000 allows a million)."""
    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(8192), grants=frozenset({"kv"}))
    store = KvStore(
        KvOptions(("c",), 64, 1_000_000), tmp_path / "kv.sqlite3", guest="g", call_ends_at=lambda: ctx.call_ends_at
    )
    ctx.states["kv"] = store
    store.set("c", b"k", b"v")
    assert store._connection is not None
    with store._connection as db:
        db.execute("BEGIN")
        db.executemany("INSERT INTO entries VALUES ('c', ?, x'00')", ((b"%04d" % i * 250,) for i in range(5000)))
    ctx.mem.write(0, b"cnew")
    yield ctx
    ctx.close()


def kv(ctx: HostContext, name: str, *args: int) -> int:
    ((_, function),) = core_imports(ctx, [("ngixi", name)])
    result = function(*args)
    assert isinstance(result, int)
    return result


def test_a_kv_query_ends_at_the_calls_deadline(large_store: HostContext) -> None:
    """Each new key counts the store's keys (max_keys), and kv_list reads every matching key: in a large store each
    took a long host call, past the guest's timeout_ms (docs/host-abi.md). SQLite looks at the call's deadline every
    10,000 steps now; the interrupted transaction leaves the store as it was."""
    large_store.call_ends_at = time.monotonic() - 0.001
    with pytest.raises(GuestError, match=r"^g: reached its limits.timeout_ms in a kv query of its store$") as ended:
        kv(large_store, "kv_set", 0, 1, 1, 3, 1, 3)
    assert ended.value.outcome == "timeout"
    with pytest.raises(GuestError, match="in a kv query"):
        kv(large_store, "kv_list", 0, 1, 0, 0, 64, 8000, 32)
    large_store.call_ends_at = math.inf
    assert kv(large_store, "kv_get", 0, 1, 1, 3, 64, 64, 32) == Status.NOT_FOUND
    assert kv(large_store, "kv_set", 0, 1, 1, 3, 1, 3) == Status.OK
    assert kv(large_store, "kv_get", 0, 1, 1, 3, 64, 64, 32) == Status.OK


def test_a_kv_listing_larger_than_the_guests_buffer_is_never_read_into_the_host(large_store: HostContext) -> None:
    """kv_list read every key into the host, then answered BUFFER_TOO_SMALL: a guest asking with a buffer of 0 bytes
    made the host hold the whole listing (up to a GB under max_keys = 1000000) twice at each call."""
    tracemalloc.start()
    try:
        assert kv(large_store, "kv_list", 0, 1, 0, 0, 64, 0, 32) == Status.BUFFER_TOO_SMALL
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert struct.unpack("<I", large_store.mem.read(32, 4))[0] == 5001 * 4 + 1 + 5000 * 1000
    assert peak < 1 << 20


def test_a_path_walks_a_bounded_number_of_names(tmp_path: Path) -> None:
    """32 links of 4 KiB, each `x/../` again and again, made one path_open walk about 55,000 names (a readlink and an
    open or close each) before its LOOP, a long host call past timeout_ms; a path of more than 8,192 names, its links
    expanded, is NAMETOOLONG. A guest makes such links itself (path_symlink)."""
    data = tmp_path / "files" / "data"
    (data / "x").mkdir(parents=True)
    for index in range(1, MAX_SYMLINKS + 2):
        (data / f"l{index}").symlink_to("x/../" * 816 + f"l{index + 1}")
    options = FsOptions((Preopen("/data", "data", "ro"),))
    ctx = open_context("g", {"fs": options}, log_quota=0, stdio_quota=0, sandbox=Sandbox.under(tmp_path))
    ctx.memory = FakeMemory(8192)
    ctx.mem.write(0, b"l1")
    ((_, path_open),) = core_imports(ctx, [("wasi_snapshot_preview1", "path_open")])
    try:
        assert path_open(DATA, LOOKUP_SYMLINK_FOLLOW, 0, 2, 0, 0, 0, 0, OUT) == Errno.NAMETOOLONG
    finally:
        ctx.close()
