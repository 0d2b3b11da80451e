"""A component guest exporting every WIT value type: generated glue, real asc, wasm-tools and Wasmtime."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.toolchains.wit import wasm_tools
from ngixi_build.workflows import pipeline
from tests.conftest import REPO
from tests.integration import copy_project

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[2] / "fixtures"
GUEST = "typed"


def add_typed_guest(project: Path) -> None:
    shutil.copytree(FIXTURES / "guests" / GUEST, project / "guests" / GUEST)
    shutil.copy(FIXTURES / f"{GUEST}.toml", project / "manifests" / f"{GUEST}.toml")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_toolchain(state_dir=REPO / ".ngixi")
    root = copy_project(tmp_path_factory.mktemp("typed") / "project", toolchain_from=REPO)
    add_typed_guest(root)
    built = Project(root)
    from ngixi_build.stages.component import generate_bindings

    generate_bindings(built)
    pipeline.compile_guest(built, read_guest(built, GUEST))
    return root


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


def _record(**fields: Any) -> wc.Record:
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name, value)
    return record
