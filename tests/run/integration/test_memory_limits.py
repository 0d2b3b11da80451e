"""Attacks on the memory limits and on host functions that copy: a hostile guest must not make the host allocate.

Memory is measured in a fresh process (its peak RSS) where the engine allocates, and with tracemalloc where
the host functions would (their copies are Python objects).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.capabilities.wasi_files import LISTINGS_BYTES
from ngixi_runtime.errors import GuestError, NgixiError, PolicyError
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, needs_wasmer
from tests.peak_rss import DEFINE_PEAK_RSS_KIB
from tests.run.unit.test_loader import host_artifact

wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler

MiB = 1 << 20
HUGE = 100_000_000  # table elements: about 1 GiB of host memory on Wasmtime, were it granted
INVAL = 28


def guest_manifest(exports: str, *, limits: str = "", capabilities: str = "") -> str:
    return (
        '[guest]\nname = "hostile"\nversion = "0.1.0"\n\n'
        + textwrap.dedent(exports)
        + textwrap.dedent(capabilities)
        + f"[limits]\n{textwrap.dedent(limits)}"
    )


SIZE_EXPORT = '[exports.size]\nresults = ["i32"]\n'
ONE_PAGE = guest_manifest(SIZE_EXPORT, limits="memory_pages = 1\n")


def hostile_bundle(tmp_path: Path, keys: KeyFiles, wat: str, manifest: str) -> Path:
    return make_bundle(tmp_path / "bundle", keys.key, wasm=wasmtime.wat2wasm(wat), manifest=manifest, guest="hostile")


def loaded(tmp_path: Path, keys: KeyFiles, wat: str, manifest: str, engine: str) -> Guest:
    bundle = read_bundle(hostile_bundle(tmp_path, keys, wat, manifest), load_trust(keys.trust))
    return open_guest(bundle, engine=engine)


_MEASURE = (
    DEFINE_PEAK_RSS_KIB
    + """
import json, sys
from pathlib import Path
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.capabilities.wasi_files import LISTINGS_BYTES
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.trust.signatures import load_trust
bundle, trust, engine = sys.argv[1:]
try:
    guest = open_guest(read_bundle(Path(bundle), load_trust(Path(trust))), engine=engine)
    outcome = {"size": guest.call("size", ())[0]}
except NgixiError as error:
    outcome = {"refused": str(error), "kind": type(error).__name__}
outcome["peak_mib"] = peak_rss_kib() / 1024
print(json.dumps(outcome))
"""
)


def load_in_fresh_process(tmp_path: Path, keys: KeyFiles, wat: str, engine: str) -> dict[str, object]:
    """Loads the guest and calls `size` in a new process; what happened, and the process's peak RSS since it
    started."""
    bundle = hostile_bundle(tmp_path, keys, wat, ONE_PAGE)
    argv = [sys.executable, "-c", _MEASURE, str(bundle), str(keys.trust), engine]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome


def table_growing_start(declared: str) -> str:
    return f"""(module
      (memory (export "memory") 1 1)
      (table {declared} funcref)
      (func $grow (drop (table.grow (ref.null func) (i32.const {HUGE}))))
      (func (export "size") (result i32) (table.size))
      (start $grow))"""


@pytest.mark.parametrize("declared", ["1", f"1 {HUGE}"], ids=["no maximum", "a huge maximum"])
def test_a_start_function_growing_a_table_is_bounded_before_it_runs(
    tmp_path: Path, keys: KeyFiles, engine_name: str, declared: str
) -> None:
    outcome = load_in_fresh_process(tmp_path, keys, table_growing_start(declared), engine_name)
    assert float(str(outcome["peak_mib"])) < 300, outcome
    if engine_name == "wasmtime":
        assert outcome["size"] == 1  # the store refused the growth: table.grow returned -1
    else:  # Wasmer cannot cap growth: a table without a small enough maximum never runs
        assert outcome["kind"] == "PolicyError"
        assert "hostile: its table 0 " in str(outcome["refused"])
        assert "65536 elements a guest with limits.memory_pages = 1 may hold" in str(outcome["refused"])


def test_a_table_that_starts_huge_is_refused(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    wat = f"""(module
      (memory (export "memory") 1 1)
      (table {HUGE} funcref)
      (func (export "size") (result i32) (i32.const 0)))"""
    outcome = load_in_fresh_process(tmp_path, keys, wat, engine_name)
    assert "refused" in outcome and "hostile" in str(outcome["refused"]), outcome
    assert float(str(outcome["peak_mib"])) < 300, outcome


def test_a_table_with_a_small_declared_maximum_loads_on_both(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    guest = loaded(tmp_path, keys, table_growing_start("1 100"), ONE_PAGE, engine_name)
    assert guest.call("size", ()) == (1,)  # growing past the declared maximum fails in the guest


SECOND_MEMORY = """(module
  (memory (export "memory") 1 1)
  (memory $hidden 1 25600)
  (func $grow (drop (memory.grow $hidden (i32.const 25599))))
  (func (export "size") (result i32) (i32.const 0))
  (start $grow))"""


def test_a_second_memory_that_is_not_exported_is_refused(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    outcome = load_in_fresh_process(tmp_path, keys, SECOND_MEMORY, engine_name)
    assert "refused" in outcome, outcome
    assert str(outcome["refused"]).startswith("hostile: "), outcome
    assert float(str(outcome["peak_mib"])) < 300, outcome


def test_a_second_exported_memory_is_refused_by_name(tmp_path: Path, keys: KeyFiles) -> None:
    wat = SECOND_MEMORY.replace("(memory $hidden", '(memory $hidden (export "spare")')
    with pytest.raises(NgixiError, match="hostile: "):
        loaded(tmp_path, keys, wat, ONE_PAGE, "wasmtime")


def test_a_memory_in_a_start_function_cannot_grow_past_the_limit(
    tmp_path: Path, keys: KeyFiles, engine_name: str
) -> None:
    wat = """(module
      (memory (export "memory") 1 65536)
      (global $grown (mut i32) (i32.const 0))
      (func $grow (global.set $grown (memory.grow (i32.const 60000))))
      (func (export "size") (result i32) (global.get $grown))
      (start $grow))"""
    with pytest.raises(PolicyError) as refused:
        loaded(tmp_path, keys, wat, ONE_PAGE, engine_name)
    assert str(refused.value).startswith(
        "hostile: its memory may grow to 65536 pages, over its limits.memory_pages = 1; declare a maximum"
    )


# --- host functions that copy ------------------------------------------------------------------

SPRAY = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  ;; fd_write of `count` iovecs, each the whole 64 KiB memory
  (func (export "spray") (param $count i32) (result i32)
    (local $i i32)
    (block $done (loop $fill
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
      (i32.store offset=4 (i32.mul (local.get $i) (i32.const 8)) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fill)))
    (call $fd_write (i32.const 1) (i32.const 0) (local.get $count) (i32.const 65532)))
  (func (export "draw") (param i32 i32) (result i32) (call $random (local.get 0) (local.get 1))))"""
SPRAY_MANIFEST = guest_manifest(
    """\
    [exports.spray]
    params = ["i32"]
    results = ["i32"]
    [exports.draw]
    params = ["i32", "i32"]
    results = ["i32"]
    """,
    capabilities="[capabilities.stdio]\n[capabilities.random]\n",
    limits="memory_pages = 1\nstdout_bytes = 1048576\n",
)


@pytest.fixture
def sprayer(tmp_path: Path, keys: KeyFiles, engine_name: str) -> Guest:
    return loaded(tmp_path, keys, SPRAY, SPRAY_MANIFEST, engine_name)


def peak_python_allocation(call: object) -> int:
    assert callable(call)
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_more_iovecs_than_iov_max_are_inval_before_anything_is_copied(sprayer: Guest) -> None:
    results: list[tuple[object, ...]] = []
    peak = peak_python_allocation(lambda: results.append(sprayer.call("spray", (4096,))))
    assert results == [(INVAL,)]
    assert peak < MiB
    assert sprayer.output.stdout == b""


def test_iovecs_repeating_one_region_copy_no_more_than_the_quota(sprayer: Guest) -> None:
    def spray() -> None:
        with pytest.raises(GuestError, match="stdout/stderr exceeded its quota of 1048576 bytes"):
            sprayer.call("spray", (1024,))  # 64 MiB asked for

    assert peak_python_allocation(spray) < 4 * MiB


def test_iovecs_within_the_quota_are_written_whole(sprayer: Guest) -> None:
    assert sprayer.call("spray", (8,)) == (0,)
    assert len(sprayer.output.stdout) == 8 * 65536


@pytest.mark.parametrize("pointer, length", [(0, 1 << 30), (0, -(1 << 31)), (0, -1), (-16, 8), (65530, 16)])
def test_random_get_outside_the_memory_traps_before_anything_is_drawn(
    sprayer: Guest, pointer: int, length: int
) -> None:
    """As under Wasmtime: a buffer of 2 GiB or more (a negative i32 to the engine, a u32 to WASI) or one ending past
    the memory traps the guest; it answered INVAL to the first, and drew into the memory up to its end."""

    def draw() -> None:
        with pytest.raises(GuestError, match="outside the guest's memory"):
            sprayer.call("draw", (pointer, length))

    memory = sprayer._context.mem
    before = memory.read(0, 65536)
    assert peak_python_allocation(draw) < MiB
    assert memory.read(0, 65536) == before
    assert sprayer.call("draw", (0, 65536)) == (0,)
    assert sprayer._context.mem.read(0, 65536) != before  # the instance after the trap's: a new one, with its memory


# `list(count)` opens the preopen's root `count` times more and lists each from cookie 0 into a 64-byte buffer.
LISTER = """(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 0) ".")
  (func (export "list") (param $count i32) (result i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      ;; path_open(3, 0, ".", 1, DIRECTORY, FD_READDIR, 0, 0, &fd) with the new descriptor at 16
      (br_if $done (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 2)
        (i64.const 0x4000) (i64.const 0) (i32.const 0) (i32.const 16)))
      (drop (call $readdir (i32.load (i32.const 16)) (i32.const 64) (i32.const 64) (i64.const 0) (i32.const 20)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i)))"""
LISTER_MANIFEST = guest_manifest(
    '[exports.list]\nparams = ["i32"]\nresults = ["i32"]\n',
    capabilities='[capabilities.fs]\npreopens = [{ guest = "/data", host = "data" }]\n',
    limits="memory_pages = 1\ntimeout_ms = 60000\n",  # its time is not what the test checks
)


def test_directories_held_open_hold_one_listing_in_the_host(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    """fd_readdir kept each descriptor's whole listing until it was closed: a guest of one page listing a ro preopen
    of 5,000 long names through 125 descriptors held 200 MB in the host (in-process; an isolated child ran out of
    memory at 10,000), limits.open_files times what one listing holds. Those read least recently are let go past
    LISTINGS_BYTES."""
    sandbox = Sandbox.under(tmp_path / "sandbox")
    data = sandbox.files / "data"
    data.mkdir(parents=True)
    for number in range(500):
        (data / f"{number:04}{'x' * 200}").touch()
    bundle = read_bundle(hostile_bundle(tmp_path, keys, LISTER, LISTER_MANIFEST), load_trust(keys.trust))
    with open_guest(bundle, engine=engine_name, sandbox=sandbox) as guest:
        results: list[tuple[object, ...]] = []
        peak = peak_python_allocation(lambda: results.append(guest.call("list", (120,))))
        assert results == [(120,)]
        assert peak < LISTINGS_BYTES + MiB  # one listing of 500 names is about 130 KiB; 120 of them, 16 MiB


@needs_wasmer
def test_wasmer_checks_the_wasm_even_when_it_loads_an_artifact(tmp_path: Path, keys: KeyFiles) -> None:
    """Wasmer shows only what an artifact exports: the signed .wasm says what the artifact's module holds."""
    wasm = wasmtime.wat2wasm(table_growing_start("1"))
    artifact = host_artifact(tmp_path, wasm)
    path = make_bundle(
        tmp_path / "bundle", keys.key, wasm=wasm, manifest=ONE_PAGE, guest="hostile", artifacts=[artifact]
    )
    with pytest.raises(PolicyError, match="hostile: its table 0 declares no maximum"):
        open_guest(read_bundle(path, load_trust(keys.trust)), engine="wasmer")


HIGH = 0x90000000  # 2.25 GiB: an i32 the engines hand over negative
HIGH_WRITER = f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 37000 37000)
  (data (i32.const {HIGH + 16}) "high")
  (func (export "write") (result i32)
    (i32.store (i32.const {HIGH}) (i32.const {HIGH + 16}))
    (i32.store (i32.const {HIGH + 4}) (i32.const 4))
    (call $fd_write (i32.const 1) (i32.const {HIGH}) (i32.const 1) (i32.const {HIGH + 8})))
  (func (export "draw") (result i32) (call $random (i32.const {HIGH + 32}) (i32.const 16))))"""


def test_host_functions_take_pointers_above_2_gib(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    """A memory over 2 GiB (limits.memory_pages up to 65536) has addresses an i32 holds negative: host functions
    read them as the u32s they are, as Wasmtime does, where they trapped as outside the memory."""
    exports = '[exports.write]\nresults = ["i32"]\n[exports.draw]\nresults = ["i32"]\n'
    manifest = guest_manifest(
        exports, capabilities="[capabilities.stdio]\n[capabilities.random]\n", limits="memory_pages = 37000\n"
    )
    with loaded(tmp_path, keys, HIGH_WRITER, manifest, engine_name) as guest:
        assert guest.call("write", ()) == (0,)
        assert guest.output.stdout == b"high"
        assert guest._context.mem.read(HIGH + 8, 4) == b"\x04\0\0\0"
        assert guest.call("draw", ()) == (0,)


# --- the GC heap ---------------------------------------------------------------------------------

_PAYLOAD = 128  # i64 values an exception carries: 1 KiB


def exception_hoarder(count: int) -> str:
    """A guest whose `fill` throws `count` exceptions of 1 KiB each and keeps every one alive in a table."""
    values = " ".join(["(i64.const 7)"] * _PAYLOAD)
    return f"""(module
      (tag $big (param {" ".join(["i64"] * _PAYLOAD)}))
      (table $held {count} exnref)
      (memory (export "memory") 1 1)
      (func (export "fill") (result i32)
        (local $i i32)
        (loop $throw
          (table.set $held (local.get $i)
            (block $caught (result exnref) (try_table (catch_all_ref $caught) (throw $big {values})) unreachable))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $throw (i32.lt_u (local.get $i) (i32.const {count}))))
        (local.get $i)))"""


HOARDER_MANIFEST = guest_manifest('[exports.fill]\nresults = ["i32"]\n', limits="memory_pages = 16\n")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_exceptions_kept_alive_are_held_to_memory_pages_on_wasmtime(
    tmp_path: Path, keys: KeyFiles, isolated: bool
) -> None:
    """Wasmtime keeps exception objects in a GC heap beside the memory, capped by the store as a memory is
    (docs/host-policy.md, 'Memory'): 0.75 MiB of them fit in a guest of 1 MiB, 1.5 MiB stop with a clear error."""
    for count, held in ((768, True), (1536, False)):
        bundle = hostile_bundle(tmp_path / str(count), keys, exception_hoarder(count), HOARDER_MANIFEST)
        sandboxes = tmp_path / "sandboxes"
        with open_tenant(
            bundle, trust_file=keys.trust, isolated=isolated, sandboxes=sandboxes, engine="wasmtime"
        ) as tenant:
            if held:
                assert tenant.call("fill").values == (count,)
            else:
                with pytest.raises(GuestError, match=r"^hostile: fill failed: GC heap out of memory"):
                    tenant.call("fill")
