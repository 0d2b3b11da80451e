"""A guest's lengths of 2^31 or more: the engines hand each i32 over signed, so such a length arrived negative and
passed every `length > limit` check before the host read it (a log line past `limits.log_bytes`, a kv key or value
past its limit), on both engines."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.capabilities.http import parse_http
from ngixi_runtime.capabilities.kv import KvOptions, KvStore
from ngixi_runtime.capabilities.linking import core_imports, open_context
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.abi import Status
from ngixi_runtime.spec.schema import Problems
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import Func, Imp, call_import, module, push

I32 = "i32"
ALL_OF_IT = -1  # 0xFFFFFFFF as the engines hand it over
LOG = Imp("ngixi", "log", [I32] * 3)
KV_SET = Imp("ngixi", "kv_set", [I32] * 6, [I32])
KV_LIST = Imp("ngixi", "kv_list", [I32] * 7, [I32])
HTTP_FETCH = Imp("ngixi", "http_fetch", [I32] * 11, [I32])
NS, KEY = 0, 16
WASM = module(
    imports=[LOG, KV_SET, KV_LIST, HTTP_FETCH],
    functions=[
        Func("log_all", (), [I32], call_import(0, 2, 0, ALL_OF_IT) + push(0)),
        Func("key_all", (), [I32], call_import(1, NS, 8, KEY, ALL_OF_IT, KEY, 1)),
        Func("value_all", (), [I32], call_import(1, NS, 8, KEY, 1, KEY, ALL_OF_IT)),
        Func("namespace_all", (), [I32], call_import(1, NS, ALL_OF_IT, KEY, 1, KEY, 1)),
        Func("prefix_all", (), [I32], call_import(2, NS, 8, KEY, ALL_OF_IT, 64, 64, 128)),
        Func("url_all", (), [I32], call_import(3, KEY, 3, KEY, ALL_OF_IT, 0, 0, 0, 0, 64, 64, 128)),
    ],
    memory=(1, 1),
    data=[(NS, b"counters"), (KEY, b"GET")],
)
EXPORTS = ("log_all", "key_all", "value_all", "namespace_all", "prefix_all", "url_all")
MANIFEST = (
    '[guest]\nname = "probe"\nversion = "0.1.0"\n\n[limits]\nlog_bytes = 1024\n\n'
    + "".join(f'[exports.{name}]\nresults = ["i32"]\n' for name in EXPORTS)
    + '[capabilities.log]\n[capabilities.kv]\nnamespaces = ["counters"]\n'
    + '[capabilities.http]\nallow = ["https://example.org"]\n'
)


@pytest.mark.usefixtures("engine_name")
def test_a_length_of_2_gib_or_more_is_held_to_its_limit_on_both_engines(tmp_path: Path, keys: KeyFiles) -> None:
    """Before, each was read (in a memory of 2 GiB or more: a 2 GiB log line counted as one byte of log_bytes,
    on Wasmer) or failed as outside memory (Wasmer) or as a host bug (Wasmtime's
    `Negative size passed to PyBytes_FromStringAndSize`, "report it")."""
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST, guest="probe")
    with open_guest(read_bundle(bundle, load_trust(keys.trust)), sandbox=Sandbox.under(tmp_path / "sb")) as guest:
        with pytest.raises(GuestError, match=r"^probe: log output exceeded its quota of 1024 bytes") as refused:
            guest.call("log_all", ())
        assert refused.value.outcome == "quota"
        statuses = {name: guest.call(name, ())[0] for name in EXPORTS[1:]}
    assert statuses == dict.fromkeys(EXPORTS[1:], Status.TOO_LARGE)


class VastMemory:
    """A guest memory of 4 GiB, of which the host may read no more than a few bytes at a time here."""

    size_bytes = 1 << 32

    def __init__(self) -> None:
        self.low = bytearray(4096)
        self.written: dict[int, bytes] = {}

    def read(self, pointer: int, length: int) -> bytes:
        assert min(pointer, length) >= 0, "a host function read a signed i32"
        assert length <= len(self.low), f"the host read {length} bytes"
        return bytes(self.low[pointer : pointer + length])

    def write(self, pointer: int, data: bytes) -> None:
        self.written[pointer] = data


def test_a_buffer_of_2_gib_or_more_takes_a_kv_value(tmp_path: Path) -> None:
    """An output buffer's size is unsigned too: one of 2 GiB or more was smaller than any value (BUFFER_TOO_SMALL)."""
    memory = VastMemory()
    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=memory, grants=frozenset({"kv"}))
    ctx.states["kv"] = KvStore(KvOptions(("counters",), 64, 10), tmp_path / "kv.sqlite3", guest="g")
    kv = dict((i.name, f) for i, f in core_imports(ctx, [("ngixi", "kv_set"), ("ngixi", "kv_get")]))
    memory.low[0:9] = b"countersk"
    assert kv["kv_set"](0, 8, 8, 1, 0, 8) == Status.OK
    assert kv["kv_get"](0, 8, 8, 1, 1 << 20, -(1 << 31), 64) == Status.OK
    ctx.close()
    assert memory.written == {64: struct.pack("<I", 8), 1 << 20: b"counters"}


def test_a_refused_request_is_refused_before_its_body_is_read() -> None:
    """http_fetch read the body, up to the guest's whole memory, before the allowlist refused the URL: a guest
    granted one origin made the host copy gigabytes per call to be told DENIED."""
    memory = VastMemory()
    options = parse_http({"allow": ["https://example.org"]}, "capabilities.http", Problems("test"))
    ctx = open_context("g", {"http": options}, log_quota=0, stdio_quota=0, sandbox=None)
    ctx.memory = memory
    url = b"https://elsewhere.example/"
    memory.low[0 : 3 + len(url)] = b"GET" + url
    ((_, fetch),) = core_imports(ctx, [("ngixi", "http_fetch")])
    assert fetch(0, 3, 3, len(url), 0, 0, 1 << 20, 1 << 31, 64, 64, 128) == Status.DENIED
    assert fetch(3, 3, 3, len(url), 0, 0, 1 << 20, 1 << 31, 64, 64, 128) == Status.METHOD_NOT_ALLOWED
    ctx.close()
