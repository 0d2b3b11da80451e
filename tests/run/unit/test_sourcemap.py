"""A trap names the guest's own source line (a dev build's embedded source map) or its function (names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.engines.wasmtime import failure_summary
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec import sourcemap
from ngixi_runtime.spec.sourcemap import (
    SOURCE_MAP_SECTION,
    component_trap_location,
    function_names,
    moved_source_map,
    named_location,
    parse_source_map,
    trap_location,
    vlq,
)
from ngixi_runtime.spec.wasm import (
    MAX_SECTIONS,
    custom_section,
    custom_sections,
    function_bodies,
    read_module_info,
    section_spans,
    uleb128,
)
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import Func, Imp, call_import, module

UNREACHABLE = b"\x00"
MANIFEST = """[guest]
name = "hello"
version = "0.1.0"

[exports.fails]
"""


def _names(names: dict[int, str]) -> bytes:
    entries = b"".join(uleb128(i) + uleb128(len(n)) + n.encode() for i, n in names.items())
    subsection = uleb128(len(names)) + entries
    return custom_section("name", b"\x01" + uleb128(len(subsection)) + subsection)


def _source_map(mappings: list[tuple[int, int, int, int]], sources: list[str]) -> bytes:
    """Segments (module offset, source index, 0-based line, 0-based column), deltas as a source map has them."""
    previous = [0, 0, 0, 0]
    segments = []
    for mapping in mappings:
        segments.append("".join(vlq(v - p) for v, p in zip(mapping, previous, strict=True)))
        previous = list(mapping)
    document = {"version": 3, "sources": sources, "mappings": ",".join(segments)}
    return custom_section(SOURCE_MAP_SECTION, json.dumps(document).encode())


BASE = module(functions=[Func("helper", body=UNREACHABLE), Func("fails", body=b"\x10\x00")])  # fails calls helper


def _with_debug_info(*, source_map: bool) -> bytes:
    bodies = function_bodies(BASE, source="test")
    (helper_start, _), (fails_start, _) = bodies[0], bodies[1]
    wasm = BASE + _names({0: "~lib/helper", 1: "assembly/index/fails"})
    if source_map:
        mappings = [(helper_start + 2, 0, 9, 4), (fails_start + 2, 1, 11, 2)]
        wasm += _source_map(mappings, ["~lib/array.ts", "guests/hello/assembly/index.ts"])
    return wasm


def test_the_source_map_names_the_first_frame_in_the_guests_own_code() -> None:
    wasm = _with_debug_info(source_map=True)
    bodies = function_bodies(wasm, source="test")
    frames = ((0, bodies[0][0] + 2), (1, bodies[1][0] + 3))
    assert trap_location(wasm, frames, source="test") == (
        "at guests/hello/assembly/index.ts:12:3 (in assembly/index/fails)"
    )


def test_an_engine_reporting_a_functions_first_byte_still_gets_its_line() -> None:
    wasm = _with_debug_info(source_map=True)
    bodies = function_bodies(wasm, source="test")
    assert trap_location(wasm, ((1, bodies[1][0]),), source="test") == (
        "at guests/hello/assembly/index.ts:12:3 (in assembly/index/fails)"
    )


def test_a_components_backtrace_is_located_in_its_core_module_that_has_a_source_map() -> None:
    adapter = module(functions=[Func("shim", body=UNREACHABLE)]) + _names({0: "shim"})
    guest = _with_debug_info(source_map=True)
    sections = [bytes([1]) + uleb128(len(m)) + m for m in (adapter, guest)]  # two core module sections
    component = b"\0asm\x0d\x00\x01\x00" + b"".join(sections)
    guest_start = component.index(guest)
    fails_start = function_bodies(guest, source="test")[1][0]
    # Wasmtime names a component's frames by function and counts their offsets from the component's start.
    frames = (("shim", 3), ("assembly/index/fails", guest_start + fails_start + 3), ("unknown", 9))
    assert component_trap_location(component, frames, source="test") == (
        "at guests/hello/assembly/index.ts:12:3 (in assembly/index/fails)"
    )
    assert component_trap_location(b"\0asm\x0d\x00\x01\x00" + sections[0], frames, source="test") is None


def test_a_source_map_past_the_limit_is_read_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a source map costs the host CPU at every trap (about half a second a MiB, in-process the host's own),
    and a signer may put one of hundreds of MiB in a module: past `SOURCE_MAP_LIMIT` the function's name is said."""
    wasm = _with_debug_info(source_map=True)
    frames = ((0, 0), (1, function_bodies(wasm, source="test")[1][0]))
    size = len(custom_sections(wasm, source="test")[SOURCE_MAP_SECTION])
    monkeypatch.setattr(sourcemap, "SOURCE_MAP_LIMIT", size)
    assert (
        trap_location(wasm, frames, source="test") == "at guests/hello/assembly/index.ts:12:3 (in assembly/index/fails)"
    )
    monkeypatch.setattr(sourcemap, "SOURCE_MAP_LIMIT", size - 1)
    assert trap_location(wasm, frames, source="test") == "in assembly/index/fails"


def test_without_a_source_map_the_guests_function_is_named() -> None:
    wasm = _with_debug_info(source_map=False)
    assert trap_location(wasm, ((0, 0), (1, 0)), source="test") == "in assembly/index/fails"
    assert trap_location(BASE, ((0, 0), (1, 0)), source="test") is None


def test_a_trap_the_engine_names_is_placed_in_the_guests_innermost_own_function() -> None:
    """A load that no longer has the module's bytes (in-process, from an artifact) has the engine's names alone."""
    assert named_location(["", "~lib/helper", "abort", "main"]) == "in main"  # C's abort is libc's, not the guest's
    rust = ["core::panicking::panic_fmt", "<std::io::Stdout as std::io::Write>::write", "__rust_start_panic", "run"]
    assert named_location(rust) == "in run"
    assert named_location(["~lib/helper", ""]) is None
    assert named_location(["fails\nngixi: ok"]) == "in fails\\nngixi: ok"
    zig_panic = ["ngixi.panicToHost", "debug.FullPanic((function 'panicToHost')).integerOverflow", "main.area"]
    assert named_location(zig_panic) == "in main.area"  # past the bindings' panic handler: the guest's function


def test_the_guests_names_are_shown_escaped() -> None:
    """A name or source file is the guest's to choose; the trap's one line of error shows it escaped."""
    wasm = BASE + _names({0: "~lib/helper", 1: "fails\nngixi: ok\x1b[2J"})
    assert trap_location(wasm, ((0, 0), (1, 0)), source="test") == "in fails\\nngixi: ok\\x1b[2J"


def test_the_guests_long_names_are_cut_in_the_middle() -> None:
    """A name section's or source map's names are of any length: one of 100,000 characters made a trap's error
    line that long, on both engines, isolated and in-process (`ngixi run`, `--json`)."""
    long_name, long_file = "f" * 100_000, "guests/" + "d/" * 50_000 + "index.ts"
    shown_name = "f" * 100 + "…(99800 characters left out)…" + "f" * 100
    wasm = BASE + _names({0: "~lib/helper", 1: long_name})
    assert trap_location(wasm, ((0, 0), (1, 0)), source="test") == f"in {shown_name}"
    assert named_location([long_name]) == f"in {shown_name}"
    bodies = function_bodies(BASE, source="test")
    wasm += _source_map([(bodies[1][0] + 2, 0, 11, 2)], [long_file])
    where = trap_location(wasm, ((0, 0), (1, bodies[1][0] + 2)), source="test")
    assert where is not None and len(where) < 500 and where.endswith(f"index.ts:12:3 (in {shown_name})")
    backtrace = f"error while executing at wasm backtrace:\n    0:   0x2a - <unknown>!{long_name}\n"
    assert failure_summary(RuntimeError(backtrace)) == f"error while executing at wasm backtrace: (in {shown_name})"


def test_a_source_map_nested_past_what_json_decodes_is_no_source_map() -> None:
    """The section is the module's author's: 100,000 `[` made a trap a Python traceback (isolated) or an
    "unexpected RecursionError" (in-process), and the build's move of a start function's map failed likewise."""
    nested = b"[" * 100_000
    wasm = _with_debug_info(source_map=False) + custom_section(SOURCE_MAP_SECTION, nested)
    assert parse_source_map(nested) is None and moved_source_map(nested, by=5) == nested
    assert trap_location(wasm, ((0, 0), (1, 0)), source="test") == "in assembly/index/fails"


def test_a_damaged_source_map_is_ignored() -> None:
    assert parse_source_map(b"{not json") is None
    assert parse_source_map(json.dumps({"version": 3, "sources": ["a"], "mappings": "!!"}).encode()) is not None
    assert custom_sections(_with_debug_info(source_map=True), source="test").keys() == {"name", SOURCE_MAP_SECTION}


@pytest.mark.parametrize("engine", ["wasmtime", "wasmer"])
def test_a_trap_through_the_loader_names_the_line(engine: str, tmp_path: Path, keys: KeyFiles) -> None:
    pytest.importorskip(engine)
    bundle = make_bundle(tmp_path, keys.key, wasm=_with_debug_info(source_map=True), manifest=MANIFEST)
    guest = open_guest(read_bundle(bundle, load_trust(keys.trust)), engine=engine)
    with guest, pytest.raises(GuestError) as caught:
        guest.call("fails", ())
    assert str(caught.value) == (
        "hello: fails trapped: unreachable at guests/hello/assembly/index.ts:12:3 (in assembly/index/fails)"
    )


@pytest.mark.parametrize("engine", ["wasmtime", "wasmer"])
def test_an_abort_reports_its_message_at_load_and_in_a_call(engine: str, tmp_path: Path, keys: KeyFiles) -> None:
    pytest.importorskip(engine)
    aborting = call_import(0, 0, 0, 3, 4) + UNREACHABLE  # as AssemblyScript compiles a throw
    returning = call_import(0, 0, 0, 5, 6)  # a guest that returns from its abort
    abort = [Imp("env", "abort", ["i32"] * 4)]
    manifest = MANIFEST + "[exports.returns]\n"
    calls = module(imports=abort, functions=[Func("fails", body=aborting), Func("returns", body=returning)])
    bundle = make_bundle(tmp_path / "calls", keys.key, wasm=calls, manifest=manifest)
    guest = open_guest(read_bundle(bundle, load_trust(keys.trust)), engine=engine)
    with guest:
        with pytest.raises(GuestError, match=r"^hello: fails aborted: \? \(at \?:3:4\)$"):
            guest.call("fails", ())
        with pytest.raises(GuestError, match=r"^hello: returns aborted: \? \(at \?:5:6\)$"):
            guest.call("returns", ())
    at_start = module(imports=abort, functions=[Func("boot", body=aborting), Func("fails")], start="boot")
    bundle = make_bundle(tmp_path / "start", keys.key, wasm=at_start, manifest=MANIFEST)
    with pytest.raises(GuestError, match=r"^hello: guest aborted: \? \(at \?:3:4\)$"):
        open_guest(read_bundle(bundle, load_trust(keys.trust)), engine=engine)


def test_a_trap_reads_no_more_names_than_it_needs_or_names_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `name` section of millions of entries (2 bytes each) took the host seconds at every trap, in Python: a trap
    reads its frames' names only, and at most `NAMES_READ` entries, past which it places the trap without them."""
    wasm = _with_debug_info(source_map=False)
    assert function_names(custom_sections(wasm, source="test")["name"], {1}) == {1: "assembly/index/fails"}
    monkeypatch.setattr(sourcemap, "NAMES_READ", 1)  # helper's name is read, fails' is not
    assert trap_location(wasm, ((0, 0), (1, 0)), source="test") is None


def test_a_module_of_more_sections_than_any_toolchain_writes_is_refused() -> None:
    """A million empty custom sections (3 bytes each) took 1.8 s at each load and 5 s at each trap to read."""
    at_most = BASE + b"\x00\x01\x00" * (MAX_SECTIONS - len(list(section_spans(BASE, source="test"))))
    assert read_module_info(at_most, source="test").exports
    with pytest.raises(InvalidInput, match=f"test: it has more than {MAX_SECTIONS} sections"):
        read_module_info(at_most + b"\x00\x01\x00", source="test")
