"""What one call of a guest may take of its host beside its memory and time: log lines, descriptors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.capabilities.context import LOG_LINES_PER_CALL, MAX_PATH_DEPTH
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import I64, Func, Imp, call_import, load_i32, module, push

pytestmark = pytest.mark.integration

OPEN_FILES = 16
MANIFEST = f"""\
[guest]
name = "hoarder"
version = "0.1.0"

[exports.flood]

[exports.hoard]
results = ["i32"]

[capabilities.log]

[capabilities.fs]
preopens = [{{ guest = "/data", host = "data", mode = "rw" }}]

[limits]
log_bytes = 1048576
open_files = {OPEN_FILES}
"""
LOG, PATH_OPEN = 0, 1
ERRNO_AT, DOT_AT, LINE_AT = 800, 510, 520
FOREVER = b"\x03\x40"  # loop
BLOCK, END, BR_IF_OUT_OF_LOOP, BR_TO_LOOP, I32_STORE = b"\x02\x40", b"\x0b", b"\x0d\x01", b"\x0c\x00", b"\x36\x02\x00"
OPEN_DOT = push(ERRNO_AT) + call_import(PATH_OPEN, 3, 0, DOT_AT, 1, 2, I64(0), I64(0), 0, 700) + I32_STORE
WASM = module(
    imports=[
        Imp("ngixi", "log", ["i32"] * 3),
        Imp("wasi_snapshot_preview1", "path_open", ["i32"] * 5 + ["i64", "i64", "i32", "i32"], ["i32"]),
    ],
    functions=[
        # Empty log lines without end: one byte of the quota each.
        Func("flood", body=FOREVER + call_import(LOG, 2, 0, 0) + BR_TO_LOOP + END),
        # Opens the preopen's "." until refused, logs a line and returns the errno it was refused with.
        Func(
            "hoard",
            results=["i32"],
            body=BLOCK
            + FOREVER
            + OPEN_DOT
            + load_i32(ERRNO_AT)
            + BR_IF_OUT_OF_LOOP
            + BR_TO_LOOP
            + END
            + END
            + call_import(LOG, 2, LINE_AT, 2)
            + load_i32(ERRNO_AT),
        ),
    ],
    data=[(DOT_AT, b"."), (LINE_AT, b"ok")],
)
MFILE = 33
# The descriptors a tenant child keeps for a call's own beside those it held when the guest opened: 64, and the
# directories of the two paths a rename resolves.
HOST_ROOM = 64 + 2 * MAX_PATH_DEPTH


@pytest.fixture
def bundle(tmp_path: Path, keys: KeyFiles) -> Path:
    return make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST, guest="hoarder")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_call_logs_a_bounded_number_of_lines_whatever_its_log_quota(
    bundle: Path, keys: KeyFiles, tmp_path: Path, isolated: bool
) -> None:
    """A million empty lines fit a 1 MiB quota, and would take the host tens of MB; the call stops at the cap."""
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, sandboxes=tmp_path / "sandboxes") as tenant:
        with pytest.raises(GuestError, match=f"hoarder: log output exceeded {LOG_LINES_PER_CALL} lines in one call"):
            tenant.call("flood")
        result = tenant.call("hoard")
    assert result.values == (MFILE,) and [line.message for line in result.logs] == ["ok"]


def _max_open_files(pid: int) -> int:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if line.startswith("Max open"))
    return int(line.split()[3])


def test_a_tenant_child_holds_descriptors_for_itself_and_its_guests_open_files_only(
    bundle: Path, keys: KeyFiles, tmp_path: Path, engine_name: str
) -> None:
    """The child's RLIMIT_NOFILE is what it holds (a few dozen at most) + the host's room + limits.open_files, which is
    what bounds a component (whose WASI files nothing else counts); a core guest at its open_files still gets its own
    error (MFILE), its log line and its reply."""
    with open_tenant(bundle, trust_file=keys.trust, isolated=True, sandboxes=tmp_path / "sandboxes") as tenant:
        result = tenant.call("hoard")
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        assert _max_open_files(tenant.pid) - HOST_ROOM - OPEN_FILES in range(3, 32)
        assert tenant.call("hoard").values == (MFILE,)
    assert result.values == (MFILE,) and [line.message for line in result.logs] == ["ok"]
