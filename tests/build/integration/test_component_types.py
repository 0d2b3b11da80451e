"""A component guest exporting every WIT value type: generated glue, real asc, wasm-tools and Wasmtime."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.toolchains.component_world import read_component_world
from ngixi_build.toolchains.wit import wasm_tools
from ngixi_runtime.engines import wasmtime_component
from ngixi_runtime.errors import GuestError, InvalidInput, VerificationError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from ngixi_runtime.spec.wasm import nearest_f32
from tests import data_values
from tests.conftest import REPO
from tests.integration import copy_project, run, set_targets

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "fixtures"
GUEST = "typed"
BUNDLE = f"artifacts/bundles/{GUEST}-0.1.0.ngx"


def add_typed_guest(project: Path) -> None:
    shutil.copytree(FIXTURES / "guests" / GUEST, project / "guests" / GUEST)
    shutil.copy(FIXTURES / f"{GUEST}.toml", project / "manifests" / f"{GUEST}.toml")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_toolchain(state_dir=REPO / ".ngixi")
    root = copy_project(tmp_path_factory.mktemp("typed") / "project", toolchain_from=REPO)
    add_typed_guest(root)
    set_targets(root, [], ["host"])
    run(root, "doit", f"bundle:{GUEST}")
    return root


@pytest.fixture(scope="module", params=["in-process", "isolated"])
def tenant(project: Path, request: pytest.FixtureRequest) -> Iterator[InProcessTenant | IsolatedTenant]:
    trust = project / ".ngixi" / "trust.toml"
    with open_tenant(project / BUNDLE, trust_file=trust, isolated=request.param == "isolated") as opened:
        yield opened


@pytest.fixture(scope="module")
def call(project: Path) -> Iterator[Any]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    component = wc.Component.from_file(engine, str(project / "artifacts" / "wasm" / f"{GUEST}.wasm"))
    instance = wc.Linker(engine).instantiate(store, component)

    def invoke(name: str, *args: Any) -> Any:
        function = instance.get_func(store, name)
        assert function is not None
        return function(store, *args)

    yield invoke


def test_the_component_validates_and_exports_the_world(project: Path) -> None:
    wasm = project / "artifacts" / "wasm" / f"{GUEST}.wasm"
    subprocess.run([str(wasm_tools()), "validate", str(wasm)], check=True)
    wit = subprocess.run([str(wasm_tools()), "component", "wit", str(wasm)], check=True, capture_output=True, text=True)
    assert "export echoresult: func(v: result<list<string>, string>) -> result<list<string>, string>;" in wit.stdout
    # validate's view of the component is the engine's
    assert read_component_world(wasm) == wasmtime_component.prepare(guest=GUEST, wasm=wasm.read_bytes()).info


def test_strings_bytes_and_records_round_trip(call: Any) -> None:
    assert call("echostr", "héllo ✓ 𝄞") == "héllo ✓ 𝄞"
    assert call("echostr", "") == ""
    assert call("echobytes", b"\x00\xff" * 1000) == b"\x00\xff" * 1000
    point = call("echopoint", _record(x=-3, y=2**31 - 1, label="p"))
    assert (point.x, point.y, point.label) == (-3, 2**31 - 1, "p")
    points = call("echopoints", [_record(x=i, y=-i, label=str(i)) for i in range(100)])
    assert [(p.x, p.y, p.label) for p in points] == [(i, -i, str(i)) for i in range(100)]
    assert call("echopoints", []) == []


def test_options_results_variants_flags_enums_tuples(call: Any) -> None:
    for value in (wc.Variant("none"), wc.Variant("some", None), wc.Variant("some", 255)):
        assert call("echonested", value) == value
    # wasmtime-py passes a variant whose cases it can tell apart by Python type untagged (engines/wit_values.py)
    assert call("echoresult", ["a", "b"]) == ["a", "b"]
    assert call("echoresult", "bad") == "bad"
    for shape in (2.5, (3, 4), "name", None):
        assert call("echoshape", shape) == shape
    shapes = [wc.Variant("none"), wc.Variant("some", 1.5), wc.Variant("some", None), wc.Variant("some", "x")]
    assert call("echoshapes", shapes) == shapes
    assert call("echoperms", {"read", "exec"}) == {"read", "exec"}
    assert call("echocolor", "blue") == "blue"
    assert call("echotuple", (-(2**63), 1.25, True, "𝄞")) == (-(2**63), 1.25, True, "𝄞")
    assert call("echounit", wc.Variant("err")) == wc.Variant("err")


def test_scalars_many_parameters_and_no_result(call: Any) -> None:
    assert call("ints", 255, -128, 65535, -32768, 2**32 - 1, -(2**31)) == (
        255,
        -128,
        65535,
        -32768,
        2**32 - 1,
        -(2**31),
    )
    assert call("wide", 2**64 - 1, -(2**63), 0.5) == (2**64 - 1, -(2**63), 0.5)
    assert call("joined", *"abcdefghi") == "a|b|c|d|e|f|g|h|i"  # 18 core values: passed through memory
    assert call("count", ["x"] * 1000) == 1000
    assert call("nothing") is None


def test_many_calls_do_not_leak_guest_memory(call: Any) -> None:
    text = "x" * 4096
    for _ in range(2000):  # 8 MiB through a 1 MiB memory: what each call allocates is freed or collected
        assert call("echostr", text) == text


def test_garbage_is_collected_before_the_memory_runs_out(call: Any) -> None:
    """AssemblyScript's own runtime trapped when the memory could not grow, with earlier calls' garbage still held: a
    1 MB `toUpperCase` fit in 256 pages once and failed on a later call. A component compiles with the runtime core
    guests have, which collects first."""
    text = "abcdefghij" * 100_000
    for _ in range(20):
        assert call("upper", text) == text.upper()


def test_an_allocation_past_the_limit_names_the_limit_to_raise(tenant: InProcessTenant | IsolatedTenant) -> None:
    """The runtime's allocator traps in `~lib/ngixi-runtime/...`, read as the memory running out; the host cannot count
    a component's pages, so the line names the limit alone (it said `0 pages in use`)."""
    with pytest.raises(GuestError) as failed:
        tenant.call("upper", ["x" * 3_000_000])
    assert str(failed.value).startswith(
        "typed: upper ran out of memory (an allocation needed more than limits.memory_pages = 256 allows) "
    )
    assert failed.value.outcome == "memory"
    assert tenant.call("echostr", ["ok"]).values == ("ok",)


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record


# --- through the loader: Python values in, Python values out, in-process and in a tenant's child ---------


def test_python_values_round_trip_through_the_loader(tenant: InProcessTenant | IsolatedTenant) -> None:
    cases: list[tuple[str, Any]] = [
        ("echostr", "héllo ✓ 𝄞"),
        ("echobytes", bytes(range(256))),
        ("echopoint", {"x": -1, "y": 2, "label": ""}),
        ("echopoints", []),
        ("echonested", {"some": None}),
        ("echonested", {"some": 3}),
        ("echonested", None),
        ("echoresult", {"ok": ["a", "b"]}),
        ("echoresult", {"err": "bad"}),
        ("echoshape", {"rect": (1, 2)}),
        ("echoshape", {"empty": None}),
        ("echoshapes", [None, {"named": "x"}, {"circle": 0.5}]),
        ("echoperms", ["read", "exec"]),
        ("echocolor", "green"),
        ("echotuple", (-(2**63), 1.25, True, "𝄞")),
        ("echounit", {"err": None}),
    ]
    for export, value in cases:
        assert tenant.call(export, [value]).values == (value,), export
    assert tenant.call("ints", [255, -128, 65535, -32768, 2**32 - 1, -(2**31)]).values == (
        (255, -128, 65535, -32768, 2**32 - 1, -(2**31)),
    )
    assert tenant.call("joined", list("abcdefghi")).values == ("a|b|c|d|e|f|g|h|i",)
    assert tenant.call("nothing", []).values == ()


def test_megabytes_of_bytes_cross_up_to_wasmtime_s_limit_and_one_more_byte_is_told_in_one_line(
    tenant: InProcessTenant | IsolatedTenant,
) -> None:
    largest = random.Random(7).randbytes(2_796_202)  # Wasmtime lifts at most 128 MiB of 48-byte values
    assert tenant.call("echobytes", [largest]).values == (largest,)  # an isolated child had no room for its copies
    assert tenant.call("echobytes", [b""]).values == (b"",)
    with pytest.raises(GuestError) as failed:
        tenant.call("echobytes", [largest + b"."])
    assert str(failed.value) == (
        "typed: echobytes failed: too much data is being copied between the host and the guest: Wasmtime takes at"
        " most 2,796,202 values (a list<u8> of as many bytes) from a guest at once, as a result or a host call's"
        ' arguments; return large data in parts, or use a core guest\'s call data (input/output = "bytes")'
    )
    assert tenant.call("echobytes", [b"\x00\xff"]).values == (b"\x00\xff",)


def test_a_bad_argument_is_refused_before_the_call_and_the_next_call_works(
    tenant: InProcessTenant | IsolatedTenant,
) -> None:
    with pytest.raises(InvalidInput, match=r"^typed: echostr's v expects a string, got 3$"):
        tenant.call("echostr", [3])
    with pytest.raises(InvalidInput, match=r"typed: ints's a expects a u8, got 256 \(out of range: u8 is 0 to 255\)"):
        tenant.call("ints", [256, 0, 0, 0, 0, 0])
    with pytest.raises(InvalidInput, match=r"typed: echopoint's v expects a record .* \(missing label\)"):
        tenant.call("echopoint", [{"x": 1, "y": 2}])
    assert tenant.call("echostr", ["ok"]).values == ("ok",)


def test_arguments_past_the_fixed_limits_are_refused_alike_in_process_and_isolated(
    tenant: InProcessTenant | IsolatedTenant,
) -> None:
    deep: list[Any] = ["x"]
    for _ in range(510):
        deep = [deep]
    too_deep: Any = deep
    for _ in range(100_000):  # the isolated wire's own stack gave way
        too_deep = [too_deep]
    not_a_string = r"^typed: echostr's (v expects a string, got list|arguments nest lists, tuples or records more "
    with pytest.raises(InvalidInput, match=not_a_string + r"than 512 deep)"):
        tenant.call("echostr", [too_deep])
    with pytest.raises(InvalidInput, match=r"^typed: echostr's v expects a string, got \[\["):
        tenant.call("echostr", [deep])  # within the limit, it reaches the type check (in the child, when isolated)
    huge = r"^typed: ints's (a expects a u8, got int|arguments hold an integer of 16610 bits)"
    with pytest.raises(InvalidInput, match=huge):
        tenant.call("ints", [10**5000, 0, 0, 0, 0, 0])  # JSON refuses to write it, Python to show it
    assert tenant.call("echoperms", [{"read"}]).values == (["read"],)  # flags: any iterable, isolated too
    least_beyond_a_double = 2**1024 - 2**970  # one test of a double's range on both paths (spec/doubles.py)
    largest = 1.7976931348623157e308
    assert tenant.call("echofloats", [0.5, least_beyond_a_double - 1]).values == ((0.5, largest),)
    beyond = r"^typed: echofloats's (b expects an f64, got \d+\.\.\. \(|arguments hold an integer of 1024 bits, )"
    with pytest.raises(InvalidInput, match=beyond + r"beyond a double's range"):
        tenant.call("echofloats", [0.5, least_beyond_a_double])


def test_what_the_component_receives_is_the_case_named_or_the_argument_is_refused(
    tenant: InProcessTenant | IsolatedTenant,
) -> None:
    assert tenant.call("received", [{"num": 1}]).values == ("num 1",)
    assert tenant.call("echoambiguous", [{"num": 0}]).values == ({"num": 0},)
    # wasmtime-py would pass True as num(1): refused rather than delivered as another case
    with pytest.raises(
        InvalidInput, match=r"^typed: received's v: case flag of variant \{ num\(s32\), flag\(bool\) \}"
    ):
        tenant.call("received", [{"flag": True}])
    values: list[tuple[str, dict[str, Any]]] = [
        ("echounpassable", {"maybe": None}),
        ("echounpassable", {"maybe": 7}),
        ("echoerr", {"ok": None}),
        ("echoerr", {"err": "é𝄞"}),
        ("echook", {"ok": 255}),
        ("echook", {"err": None}),
    ]
    for export, value in values:
        assert tenant.call(export, [value]).values == (value,), export
    with pytest.raises(InvalidInput, match=r"case text of variant .* would pass this value as case maybe"):
        tenant.call("echounpassable", [{"text": "x"}])
    (floats,) = tenant.call("echofloats", ["NaN", "-Infinity"]).values
    assert math.isnan(floats[0]) and floats[1] == -math.inf
    assert tenant.call("echostr", ["received"]).values == ("received",)


# --- the CLI: JSON arguments, JSON results -------------------------------------------------------------


def test_the_cli_takes_json_arguments_and_prints_json_results(project: Path) -> None:
    point = run(project, "ngixi", "run", BUNDLE, "echopoint", '{"x": 1, "y": -2, "label": "é"}')
    assert point.stdout == '{"x": 1, "y": -2, "label": "é"}\n'
    assert run(project, "ngixi", "run", BUNDLE, "echostr", "two words").stdout == '"two words"\n'
    assert run(project, "ngixi", "run", BUNDLE, "echobytes", "[1, 2]").stdout == "[1, 2]\n"
    assert run(project, "ngixi", "run", BUNDLE, "nothing").stdout == ""
    extremes = run(project, "ngixi", "run", BUNDLE, "wide", str(2**64 - 1), str(-(2**63)), "-0.5")
    assert extremes.stdout == f"[{2**64 - 1}, {-(2**63)}, -0.5]\n"
    assert run(project, "ngixi", "run", BUNDLE, "echostr", '""').stdout == '""\n'
    assert run(project, "ngixi", "run", BUNDLE, "echopoints", "[]").stdout == "[]\n"
    assert run(project, "ngixi", "run", BUNDLE, "echotuple", '[0, 1, false, "𝄞"]').stdout == '[0, 1.0, false, "𝄞"]\n'
    floats = run(project, "ngixi", "run", BUNDLE, "echofloats", "Infinity", '"NaN"', "--json")
    assert json.loads(floats.stdout)["values"] == [["Infinity", "NaN"]]  # JSON has no NaN: a string, as accepted


def test_an_argument_the_components_wit_types_as_a_string_is_its_text(project: Path) -> None:
    """`echostr` leaves its types to the WIT (no params in the manifest): `echostr 3` was refused ("expects a
    string, got 3") though `greet 3` passes "3" where the manifest declares `params = ["string"]`. The tenant
    says which parameters its component types as strings, isolated or in this process."""
    for where in ((), ("--in-process",)):
        assert run(project, "ngixi", "run", *where, BUNDLE, "echostr", "3").stdout == '"3"\n'
        assert run(project, "ngixi", "run", *where, BUNDLE, "echostr", "null").stdout == '"null"\n'
        assert run(project, "ngixi", "run", *where, BUNDLE, "echostr", '"4"').stdout == '"4"\n'


def test_the_cli_refuses_a_bad_argument_in_one_line(project: Path) -> None:
    refused = run(project, "ngixi", "run", BUNDLE, "echobytes", "3", check=False)
    assert (refused.returncode, refused.stderr) == (2, "ngixi: error: typed: echobytes's v expects a list<u8>, got 3\n")
    wrapped = run(project, "ngixi", "run", BUNDLE, "ints", "1", "2", "3", "4", "5", str(2**31), check=False)
    assert "ints's f expects an s32, got 2147483648 (out of range: s32 is -2147483648 to 2147483647)" in wrapped.stderr
    assert "Traceback" not in refused.stderr + wrapped.stderr
    nested = run(project, "ngixi", "run", BUNDLE, "echopoints", '[{"x": 1, "y": 2, "label": 3}]', check=False)
    assert nested.stderr == "ngixi: error: typed: echopoints's v[0].label expects a string, got 3\n"
    char = run(project, "ngixi", "run", BUNDLE, "echotuple", '[0, 1, true, "ab"]', check=False)
    assert 'echotuple\'s v[3] expects a char, got "ab" (a char is one character)' in char.stderr


# --- host functions taking and returning the same types (the import side of the bindings) ---------------

PROBE_WIT = """package ngixi:host@0.1.0;

interface probe {
  record point { x: s32, label: string }
  variant shape { circle(f32), big(u64), named(string), empty }
  echo: func(s: shape, p: option<point>, r: result<f32, u8>) -> tuple<shape, option<point>, result<f32, u8>>;
}

world guest {
  import probe;
  export run: func() -> u32;
}
"""
PROBE_GUEST = """import { probe, Option, Result } from "ngixi-host";

function same(a: probe.Shape, b: probe.Shape): bool {
  if (a.tag != b.tag) return false;
  if (a.tag == probe.ShapeTag.Circle) return a.circle == b.circle;
  if (a.tag == probe.ShapeTag.Big) return a.big == b.big;
  if (a.tag == probe.ShapeTag.Named) return a.named == b.named;
  return true;
}

/** How many of the values the host echoed came back different. */
export function run(): u32 {
  const shapes = [
    probe.Shape.circle(-1.5), probe.Shape.big(0xfedcba9876543210), probe.Shape.named("hé𝄞"), probe.Shape.empty(),
  ];
  let wrong: u32 = 0;
  for (let i = 0; i < shapes.length; i++) {
    const label = "p" + i.toString();
    const point = i % 2 == 0 ? Option.some<probe.Point>(new probe.Point(-7, label)) : Option.none<probe.Point>();
    const result = i % 2 == 0 ? Result.ok<f32, u8>(2.5) : Result.err<f32, u8>(200);
    const back = probe.echo(shapes[i], point, result);
    if (!same(back.f0, shapes[i])) wrong++;
    if (back.f1.isSome != point.isSome) wrong++;
    if (point.isSome && (back.f1.value.x != -7 || back.f1.value.label != point.value.label)) wrong++;
    if (back.f2.isOk != result.isOk || (result.isOk ? back.f2.value != 2.5 : back.f2.error != 200)) wrong++;
  }
  return wrong;
}
"""


def test_host_functions_take_and_return_variants_options_and_records(tmp_path: Path) -> None:
    from ngixi_build.toolchains.asbindings import CABI, write_bindings
    from ngixi_build.toolchains.wit import load_catalog

    ensure_toolchain(state_dir=REPO / ".ngixi")
    wit = tmp_path / "wit"
    wit.mkdir()
    (wit / "host.wit").write_text(PROBE_WIT)
    write_bindings(load_catalog(wit), tmp_path / "bindings")
    (tmp_path / "guest.ts").write_text(PROBE_GUEST)
    asc = next((REPO / ".ngixi" / "toolchain").glob("*/node_modules/.bin/asc"))
    core, embedded, component = (tmp_path / n for n in ("core.wasm", "embedded.wasm", "component.wasm"))
    cabi = str(tmp_path / "bindings" / CABI)
    subprocess.run(
        [str(asc), "guest.ts", cabi, "--path", "bindings", "--use", "abort=", "-o", str(core)], cwd=tmp_path, check=True
    )
    tools = str(wasm_tools())
    subprocess.run(
        [tools, "component", "embed", str(wit), "--world", "guest", str(core), "-o", str(embedded)], check=True
    )
    subprocess.run([tools, "component", "new", str(embedded), "-o", str(component)], check=True)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wc.Linker(engine)
    seen: list[Any] = []

    def echo(_store: Any, *values: Any) -> tuple[Any, ...]:
        seen.append(values)
        return values

    with linker.root() as root, root.add_instance("ngixi:host/probe@0.1.0") as probe:
        probe.add_func("echo", echo)
    instance = linker.instantiate(store, wc.Component.from_file(engine, str(component)))
    run_export = instance.get_func(store, "run")
    assert run_export is not None
    assert run_export(store) == 0
    assert [values[0] for values in seen] == [-1.5, 0xFEDCBA9876543210, "hé𝄞", None]  # untagged by wasmtime-py
    assert seen[0][1].label == "p0" and seen[1][1] is None


def test_validate_refuses_a_broken_component_in_one_line(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wasm"
    broken.write_bytes((project / "artifacts" / "wasm" / f"{GUEST}.wasm").read_bytes()[:-100])
    with pytest.raises(VerificationError, match=r"broken\.wasm: not a valid component: \S") as caught:
        read_component_world(broken)
    assert "\n" not in str(caught.value)


def test_each_capability_declares_the_catalogs_types_of_its_component_functions(tmp_path: Path) -> None:
    """The host checks a component's imports against each capability's `component_types`: they are the WIT
    catalog's, as Wasmtime (at load) and wasm-tools (at build) read a component importing every interface."""
    from ngixi_build.project import PACKAGED_WIT
    from ngixi_runtime.capabilities.component import interface_import
    from ngixi_runtime.capabilities.registry import every_capability

    wit = tmp_path / "wit"
    wit.mkdir()
    catalog = (PACKAGED_WIT / "host.wit").read_text()
    (wit / "host.wit").write_text(catalog + "\nworld everything { import log; import http; import kv; import data; }\n")
    tools, core, component = str(wasm_tools()), tmp_path / "core.wasm", tmp_path / "component.wasm"
    embed = [tools, "component", "embed", "--dummy", str(wit), "--world", "everything", "-o", str(core)]
    subprocess.run(embed, check=True)
    subprocess.run([tools, "component", "new", str(core), "-o", str(component)], check=True)
    engine = wasmtime.Engine()
    at_load = wasmtime_component.component_info(wc.Component.from_file(engine, str(component)), engine)
    at_build = read_component_world(component)
    declared = {interface_import(c.interface): dict(c.component_types) for c in every_capability() if c.interface}
    declared = {name: types for name, types in declared.items() if types}
    assert set(declared) == {interface_import(name) for name in ("log", "http", "kv", "data")}
    for name, types in declared.items():
        assert at_load.import_types[name] == types
        assert at_build.import_types[name] == types


# --- the data fuzzer's bounded form: seeded values at their types' edges, in-process and isolated ---------------

_DOUBLES = [0.0, -0.0, math.inf, -math.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3]


def _double(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return rng.choice(_DOUBLES)
    bits = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    return bits if not math.isnan(bits) else 0.5


def _edge(rng: random.Random, low: int, high: int) -> int:
    return rng.choice([low, high, 0, min(2**53 + 1, high), rng.randint(low, high)])


def _seeded_calls(rng: random.Random) -> list[tuple[str, tuple[Any, ...], tuple[Any, ...]]]:
    """(export, arguments, the values it gives back): an echo of each, a float32 rounded."""
    text = data_values.text(rng, 30)
    char = rng.choice(["\x00", "\U0010ffff", "\ufeff", "é", "\U0001f600"])
    wide, signed, small, double = _edge(rng, 0, 2**64 - 1), _edge(rng, -(2**63), 2**63 - 1), _double(rng), _double(rng)
    rounded = nearest_f32(small)
    if rounded is None:
        small = rounded = math.copysign(3.4028235e38, small)  # past the range: refused (test_wit_values)
    points = [{"x": _edge(rng, -(2**31), 2**31 - 1), "y": 0, "label": data_values.text(rng, 5)} for _ in range(3)]
    nested = rng.choice([None, {"some": None}, {"some": rng.randint(0, 255)}])
    outcome = rng.choice([{"ok": [text, ""]}, {"err": text}, {"ok": []}])
    return [
        ("echostr", (text,), (text,)),
        ("echobytes", (data_values.data(rng, 200),), ()),
        ("echopoints", (points,), (points,)),
        ("echotuple", ((signed, double, True, char),), ((signed, double, True, char),)),
        ("wide", (wide, signed, small), ((wide, signed, nearest_f32(rounded)),)),
        ("echofloats", (small, double), ((nearest_f32(rounded), double),)),
        ("echonested", (nested,), (nested,)),
        ("echoresult", (outcome,), (outcome,)),
    ]


def test_seeded_values_come_back_as_their_types_give_them(tenant: InProcessTenant | IsolatedTenant) -> None:
    rng = random.Random(19)
    for _ in range(25):
        for export, arguments, expected in _seeded_calls(rng):
            values = tenant.call(export, arguments).values
            assert data_values.same(values, expected or arguments), (export, arguments)
