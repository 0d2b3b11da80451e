"""What instances of one guest running at once over one sandbox share: its disk quota."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NoReturn

import pytest

from ngixi_runtime.capabilities.wasi_quota import DiskQuota
from ngixi_runtime.loading.tenants import TenantPool, open_tenant
from ngixi_runtime.spec.abi import OFLAG_CREAT, Errno
from ngixi_runtime.spec.abi import RIGHT_FD_WRITE as WRITE_RIGHT
from tests.conftest import KeyFiles, make_bundle
from tests.run.unit.test_wasi_fs import DATA, OPTIONS, Guest, granted
from tests.wasmgen import I64, Func, Imp, call_import, load_i32, module, push

pytestmark = pytest.mark.integration

MAX_BYTES = 1000
WRITTEN = 600  # each instance's file: two of them are past max_bytes
MANIFEST = f"""\
[guest]
name = "filler"
version = "0.1.0"

[exports.fill]
params = ["i32"]
results = ["i32"]

[capabilities.stdio]

[capabilities.fs]
preopens = [{{ guest = "/data", host = "data", mode = "rw" }}]
max_bytes = {MAX_BYTES}
max_files = 10
"""
PATH_OPEN, FD_WRITE = 0, 1
QUOTA = OPTIONS._replace(max_bytes=100, max_files=3)
NAME_AT, OPENED_AT, IOV_AT, WRITTEN_AT, DATA_AT = 500, 504, 508, 516, 1024
CREAT, RIGHT_FD_WRITE, DQUOT = 1, 1 << 6, 19
STORE_BYTE, CALL_FD_WRITE = b"\x3a\x00\x00", b"\x10\x01"
# fill(name): creates the file whose one-letter name is the byte `name` in /data and writes WRITTEN bytes to it;
# returns fd_write's errno.
FILLER = module(
    imports=[
        Imp("wasi_snapshot_preview1", "path_open", ["i32"] * 5 + ["i64", "i64", "i32", "i32"], ["i32"]),
        Imp("wasi_snapshot_preview1", "fd_write", ["i32"] * 4, ["i32"]),
    ],
    functions=[
        Func(
            "fill",
            ["i32"],
            ["i32"],
            push(NAME_AT)
            + b"\x20\x00"  # local.get 0
            + STORE_BYTE
            + call_import(PATH_OPEN, 3, 0, NAME_AT, 1, CREAT, I64(RIGHT_FD_WRITE), I64(0), 0, OPENED_AT)
            + b"\x1a"  # drop: a refused open leaves descriptor 0, whose write fails
            + load_i32(OPENED_AT)
            + push(IOV_AT, 1, WRITTEN_AT)
            + CALL_FD_WRITE,
        )
    ],
    data=[(IOV_AT, struct.pack("<II", DATA_AT, WRITTEN))],
)


@pytest.fixture
def bundle(tmp_path: Path, keys: KeyFiles) -> Path:
    return make_bundle(tmp_path / "bundle", keys.key, wasm=FILLER, manifest=MANIFEST, guest="filler")


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_instances_running_at_once_share_one_disk_quota(
    tmp_path: Path, keys: KeyFiles, bundle: Path, isolated: bool
) -> None:
    """Each instance measured the sandbox when it opened and counted its own writes alone: two instances of one
    tenant (two `ngixi run`, several host processes, a pool's tenants with one id) each wrote max_bytes, N
    instances N times it. Now the second's write past what both hold together is DQUOT, and what the first frees
    the second may use."""
    sandboxes = tmp_path / "sandboxes"
    with (
        open_tenant(bundle, trust_file=keys.trust, sandboxes=sandboxes, isolated=isolated) as first,
        open_tenant(bundle, trust_file=keys.trust, sandboxes=sandboxes, isolated=isolated) as second,
    ):
        assert first.call("fill", (ord("a"),)).values == (0,)
        assert second.call("fill", (ord("b"),)).values == (DQUOT,)
    files = sandboxes / "default" / "filler" / "files" / "data"
    assert sum(f.stat().st_size for f in files.iterdir()) == WRITTEN


def test_a_load_after_an_isolated_tenant_reads_its_count_without_walking_the_sandbox(
    tmp_path: Path, keys: KeyFiles, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant's child is killed when the tenant closes: the count is stamped exact again after each change, not
    when an instance ends, so the next load still reads it rather than walking the sandbox."""
    sandboxes = tmp_path / "sandboxes"
    with open_tenant(bundle, trust_file=keys.trust, sandboxes=sandboxes) as tenant:
        assert tenant.call("fill", (ord("a"),)).values == (0,)
    monkeypatch.setattr(DiskQuota, "_walk", lambda *_: pytest.fail("walked the sandbox"))
    with open_tenant(bundle, trust_file=keys.trust, sandboxes=sandboxes, isolated=False) as tenant:
        assert tenant.call("fill", (ord("b"),)).values == (DQUOT,)  # a's bytes counted


def test_a_pools_tenants_of_one_id_share_one_disk_quota(tmp_path: Path, keys: KeyFiles, bundle: Path) -> None:
    with TenantPool(trust_file=keys.trust, sandboxes=tmp_path / "sandboxes") as pool:
        pool.add("one", bundle, tenant="shop")
        pool.add("two", bundle, tenant="shop")
        pool.add("apart", bundle, tenant="other")  # another sandbox: a quota of its own
        fills = (("one", "a"), ("two", "b"), ("apart", "a"))
        filled = [pool.call(name, "fill", (ord(file),)).values for name, file in fills]
        assert filled == [(0,), (DQUOT,), (0,)]


@pytest.mark.parametrize("change", ["write", "name"])
def test_an_instance_killed_while_changing_a_file_leaves_the_count_high(tmp_path: Path, change: str) -> None:
    """The shared count was written back once a change was made: an instance killed after its write(2) or mkdir(2)
    and before that (a timeout's SIGKILL) left the count without what it made, so each such kill let the guest keep
    one more write past max_bytes while other instances ran. What a change may take is counted before it is made."""
    sandbox = tmp_path / "sandbox"
    (sandbox / "data").mkdir(parents=True)
    for guest in granted(sandbox, "fs", options=QUOTA):  # running throughout: the count is read, not measured
        child = os.fork()
        if child == 0:
            _killed_while_changing(sandbox, change)
        assert os.waitpid(child, 0)[1] == 0
        if change == "write":
            assert (sandbox / "data" / "a").stat().st_size == 60
            assert guest.write(_created(guest, "b"), b"b" * 60) == Errno.DQUOT
        else:
            assert (sandbox / "data" / "dir").is_dir()
            made = [guest.call("path_create_directory", DATA, *guest.path(name)) for name in "bcd"]
            assert made == [Errno.SUCCESS, Errno.SUCCESS, Errno.DQUOT]  # QUOTA's three names: dir, b, c


def test_a_count_an_instance_killed_may_have_left_high_is_measured_at_the_next_load(tmp_path: Path) -> None:
    """The last instance to end stamps the count exact, and the next load trusts it rather than walking the sandbox;
    one killed leaves it unstamped, so the next load to find no other running walks the sandbox."""
    sandbox = tmp_path / "sandbox"
    for guest in granted(sandbox, "fs", options=QUOTA):
        assert guest.write(_created(guest, "a"), b"a" * 10) == Errno.SUCCESS
    child = os.fork()
    if child == 0:  # killed once its write's 60 bytes are counted, before the write
        killed = next(granted(sandbox, "fs", options=QUOTA))
        file = _created(killed, "b")
        os.write = lambda *_: os._exit(0)
        killed.write(file, b"b" * 60)
        os._exit(1)
    assert os.waitpid(child, 0)[1] == 0
    for guest in granted(sandbox, "fs", options=QUOTA):  # a, 10 bytes, and b, empty
        assert guest.write(_created(guest, "c"), b"c" * 91) == Errno.DQUOT
        assert guest.write(_created(guest, "c"), b"c" * 90) == Errno.SUCCESS


def _killed_while_changing(sandbox: Path, change: str) -> NoReturn:
    """Another instance, whose process ends right after its write(2) or mkdir(2) is made, as SIGKILL ends it."""
    killed = next(granted(sandbox, "fs", options=QUOTA))
    made = os.write if change == "write" else os.mkdir
    setattr(os, made.__name__, lambda *arguments, **options: (made(*arguments, **options), os._exit(0)))
    if change == "write":
        killed.write(_created(killed, "a"), b"a" * 60)
    else:
        killed.call("path_create_directory", DATA, *killed.path("dir"))
    os._exit(1)


def _created(guest: Guest, name: str) -> int:
    return guest.open(DATA, name, OFLAG_CREAT, WRITE_RIGHT)
