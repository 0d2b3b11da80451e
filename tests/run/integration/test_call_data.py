"""The call data ABI on real engines, in-process and isolated: input and output, bad input, the next call."""

from __future__ import annotations

import os
import random
import statistics
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.data import read_json
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallResult, InProcessTenant, TenantPool, open_tenant
from tests import data_values
from tests.conftest import make_bundle, make_key
from tests.wasmgen import DROP, Func, Imp, call_import, load_i32, module, push

pytestmark = pytest.mark.integration

IMPORTS = [
    Imp("ngixi", "input_read", ["i32"] * 3, ["i32"]),
    Imp("ngixi", "output_write", ["i32"] * 2, ["i32"]),
]
BUFFER = 1024
CALL_OUTPUT_WRITE = b"\x10\x01"
UNREACHABLE = b"\x00"
# Reads the input's length into address 0, the input at BUFFER, and writes it back.
ECHO = call_import(0, BUFFER, 0, 0) + DROP + push(BUFFER) + load_i32(0) + push(0) + b"\x10\x00" + DROP
ECHO += push(BUFFER) + load_i32(0) + CALL_OUTPUT_WRITE + DROP
MANIFEST = """\
[guest]
name = "echo"
version = "0.1.0"

[exports.echo]
input = "text"
output = "text"

[exports.json]
input = "json"
output = "json"

[exports.flood]
output = "bytes"

[exports.overclaim]
output = "bytes"

[exports.broken]
output = "json"

[exports.lenptr]
input = "bytes"

[exports.trickle]
output = "bytes"

[exports.partial]
output = "text"

[exports.dangling]
input = "text"
output = "text"

[limits]
memory_pages = 2
input_bytes = 4096
output_bytes = 4096
"""
WASM = module(
    imports=IMPORTS,
    functions=[
        Func("echo", body=ECHO),
        Func("json", body=ECHO),
        Func("flood", body=push(0, 4097) + CALL_OUTPUT_WRITE + DROP),
        Func("overclaim", body=push(2 * 65536 - 10, 20) + CALL_OUTPUT_WRITE + DROP),
        Func("broken", body=push(BUFFER, 1) + CALL_OUTPUT_WRITE + DROP),
        Func("lenptr", body=call_import(0, 0, 0, 2 * 65536 - 2) + DROP),
        Func("trickle", body=(push(0, 4000) + CALL_OUTPUT_WRITE + DROP) + (push(0, 97) + CALL_OUTPUT_WRITE + DROP)),
        Func("partial", body=push(BUFFER, 10) + CALL_OUTPUT_WRITE + DROP + UNREACHABLE),
        # Empty ranges at the pointer Zig gives an empty slice (0xffffffff): they name no bytes.
        Func("dangling", body=call_import(0, -1, 0, 0) + DROP + push(-1, 0) + CALL_OUTPUT_WRITE + DROP),
    ],
    memory=(2, 2),
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("echo")
    keys = make_key(directory / "keys")
    return make_bundle(directory, keys.key, wasm=WASM, manifest=MANIFEST, guest="echo"), keys.trust


@pytest.fixture(params=["in-process", "isolated"])
def tenant(
    request: pytest.FixtureRequest, engine_name: str, bundle: tuple[Path, Path]
) -> Iterator[InProcessTenant | IsolatedTenant]:
    path, trust = bundle
    with open_tenant(path, trust_file=trust, isolated=request.param == "isolated", engine=engine_name) as opened:
        yield opened


def test_text_and_json_cross_both_ways(tenant: InProcessTenant | IsolatedTenant) -> None:
    result = tenant.call("echo", input="héllo wörld")
    assert (result.data, result.output, result.output_kind) == ("héllo wörld", "héllo wörld".encode(), "text")
    assert tenant.call("json", input={"words": ["a", "b"], "n": 2}).data == {"words": ["a", "b"], "n": 2}
    assert tenant.call("echo", input="").data == ""
    assert tenant.call("dangling", input="ignored").data == ""


def test_calls_from_several_threads_take_turns(tenant: InProcessTenant | IsolatedTenant, engine_name: str) -> None:
    def echo_many(thread: int) -> list[str]:  # without turns, Wasmtime's store panicked and ended the process
        sent = [f"{thread}-{call}-" + "x" * thread * 100 for call in range(50)]
        return [text for text in sent if tenant.call("echo", input=text).data != text]

    with ThreadPoolExecutor(4) as pool:
        if engine_name == "wasmer" and isinstance(tenant, InProcessTenant):  # its objects panic in another thread
            with pytest.raises(InvalidInput, match="echo: an in-process tenant on Wasmer can be called only from"):
                list(pool.map(echo_many, range(4)))
        else:
            assert [wrong for wrong in pool.map(echo_many, range(4)) if wrong] == []
    assert tenant.call("echo", input="still here").data == "still here"


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("export", "value", "error", "message"),
    [
        ("echo", b"\xff\xfe", InvalidInput, "echo: echo takes text input, and this is not valid UTF-8 (byte 0)"),
        ("json", b"{'a': 1}", InvalidInput, "echo: json takes JSON input, and this is not valid JSON: Expecting"),
        # deeper than json.dumps recurses: a RecursionError came out of the call
        (
            "json",
            _nested(5000),
            InvalidInput,
            "echo: json takes JSON input, and this is JSON nested more than 512 deep",
        ),
        ("echo", "x" * 4097, InvalidInput, "echo: echo: the input is 4097 bytes, over its limit of 4096"),
        ("flood", None, GuestError, "echo: flood wrote more than its output limit of 4096 bytes (limits.output_bytes)"),
        ("overclaim", None, GuestError, "echo: overclaim: output_write(131062, 20) names bytes outside its memory"),
        ("broken", None, GuestError, 'echo: broken declares output = "json", but wrote not valid JSON'),
        ("lenptr", b"", GuestError, "echo: lenptr: input_read's input_len pointer 131070 names bytes outside"),
        ("trickle", None, GuestError, "echo: trickle wrote more than its output limit of 4096 bytes"),
        ("partial", None, GuestError, "echo: partial trapped: unreachable"),
    ],
)
def test_bad_data_is_one_line_and_the_next_call_works(
    tenant: InProcessTenant | IsolatedTenant, export: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        tenant.call(export, input=value)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert tenant.call("echo", input="still here").data == "still here"


LARGE = 160 << 20  # beyond what an isolated tenant's heap allowance holds without counting the call data
LARGE_WAT = f"""(module
  (import "ngixi" "input_read" (func $read (param i32 i32 i32) (result i32)))
  (import "ngixi" "output_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "large") (local $written i32)
    (loop $more
      (drop (call $write (i32.const 0) (i32.const 65536)))
      (local.set $written (i32.add (local.get $written) (i32.const 65536)))
      (br_if $more (i32.lt_u (local.get $written) (i32.const {LARGE})))))
  (func (export "size") (result i32)
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 0)))
    (i32.load (i32.const 0))))"""
LARGE_MANIFEST = f"""\
[guest]
name = "large"
version = "0.1.0"

[exports.large]
output = "bytes"

[exports.size]
input = "bytes"
results = ["i32"]

[limits]
memory_pages = 1
timeout_ms = 60000
input_bytes = {LARGE}
output_bytes = {LARGE}
"""


def test_an_isolated_tenant_takes_and_gives_call_data_up_to_its_limits(engine_name: str, tmp_path: Path) -> None:
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    keys = make_key(tmp_path / "keys")
    path = make_bundle(tmp_path, keys.key, wasm=wasmtime.wat2wasm(LARGE_WAT), manifest=LARGE_MANIFEST, guest="large")
    with open_tenant(path, trust_file=keys.trust, isolated=True, engine=engine_name) as tenant:
        assert len(tenant.call("large").output or b"") == LARGE
        assert tenant.call("size", input=bytes(LARGE)).values == (LARGE,)


MIB_ECHO_WAT = """(module
  (import "ngixi" "input_read" (func $read (param i32 i32 i32) (result i32)))
  (import "ngixi" "output_write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 18 18)
  (func (export "echo")
    (drop (call $read (i32.const 16) (i32.const 1048576) (i32.const 0)))
    (drop (call $write (i32.const 16) (i32.load (i32.const 0))))))"""
MIB_ECHO_MANIFEST = """\
[guest]
name = "mib"
version = "0.1.0"

[exports.echo]
input = "bytes"
output = "bytes"

[limits]
memory_pages = 18
input_bytes = 2097152
output_bytes = 2097152
"""


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[7])


def test_an_isolated_tenant_keeps_the_memory_of_a_large_call_for_the_next(engine_name: str, tmp_path: Path) -> None:
    """A MiB in and out does not fault a MiB of pages in again on every call (256 pages; it cost more than
    the call's copies). The median call, since the allocator may give a MiB back now and then (once in
    ten calls, seen under a loaded suite)."""
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    keys = make_key(tmp_path / "keys")
    path = make_bundle(
        tmp_path, keys.key, wasm=wasmtime.wat2wasm(MIB_ECHO_WAT), manifest=MIB_ECHO_MANIFEST, guest="mib"
    )
    data = os.urandom(1 << 20)
    with open_tenant(path, trust_file=keys.trust, isolated=True, engine=engine_name) as tenant:
        for _ in range(3):
            assert tenant.call("echo", input=data).output == data
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        assert statistics.median(_faults_of_a_call(tenant, data) for _ in range(15)) < 16


def _faults_of_a_call(tenant: IsolatedTenant, data: bytes) -> int:
    assert tenant.pid is not None
    before = _minor_faults(tenant.pid)
    tenant.call("echo", input=data)
    return _minor_faults(tenant.pid) - before


def test_a_pool_passes_each_call_its_input(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """`TenantPool.call` takes an input, but `call_many` was typed for (name, export, args) alone: a service
    answering requests of data exports concurrently could not pass their inputs (a type error under mypy)."""
    path, trust = bundle
    with TenantPool(trust_file=trust, state_dir=tmp_path / "state") as pool:
        pool.add("a", path)
        pool.add("b", path)
        results = pool.call_many([("a", "echo", (), "to a"), ("b", "json", (), {"to": "b"}), ("a", "echo", (), "")])
    assert [result.data for result in results if isinstance(result, CallResult)] == ["to a", {"to": "b"}, ""]


def test_seeded_text_and_json_come_back_as_they_went(tenant: InProcessTenant | IsolatedTenant) -> None:
    """The data fuzzer's bounded form, on each engine in-process and isolated: text of every plane (NUL, BOM,
    combining marks), JSON documents with escapes, big integers, -0.0 and duplicate keys, as str, as bytes and as
    Python values; what the echo gives is what was sent, as Python reads it."""
    rng = random.Random(19)
    for _ in range(40):
        text = data_values.text(rng, 60)
        assert tenant.call("echo", input=text).data == text
        document = data_values.document(rng)
        value = read_json(document)
        assert data_values.same(tenant.call("json", input=document.encode()).data, value), document
        if value is not None:  # None is no input
            assert data_values.same(tenant.call("json", input=value).data, value), document
