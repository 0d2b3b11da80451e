"""What one call of a guest may take of its host beside its memory and time: log lines, descriptors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.capabilities.context import LOG_LINES_PER_CALL
from ngixi_runtime.errors import GuestError
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
