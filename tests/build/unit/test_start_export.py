"""The build exports a core library's start function as `_initialize` (a start section runs before the loader has
linked the instance's memory to the host functions it may call), keeping a dev build's source map on its code."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages.start import export_start
from ngixi_build.workflows.pipeline import fit_core_module
from ngixi_runtime.spec.sourcemap import SOURCE_MAP_SECTION, trap_location, vlq
from ngixi_runtime.spec.wasm import custom_section, function_bodies, read_module_info
from tests.conftest import HELLO_MANIFEST

wasmtime = pytest.importorskip("wasmtime")  # its WAT assembler
WAT = '(module (memory (export "memory") 1 1) (func $init) (start $init) (func (export "run") unreachable))'


def with_map(wasm: bytes) -> bytes:
    """The module with a source map placing `run`'s first instruction at line 7, column 3 of index.ts."""
    start, _ = function_bodies(wasm, source="m.wasm")[1]
    mapping = {"version": 3, "sources": ["index.ts"], "mappings": vlq(start + 1) + "AMEE"}
    return wasm + custom_section(SOURCE_MAP_SECTION, json.dumps(mapping).encode())


def test_a_librarys_start_function_becomes_its_initializer_and_its_source_map_moves_with_its_code(
    tmp_path: Path,
) -> None:
    """The export section grows and the start section goes, so the code moves: a dev bundle's trap would have been
    placed 11 bytes off, at the wrong line or none."""
    original = with_map(bytes(wasmtime.wat2wasm(WAT)))
    path = tmp_path / "guest.wasm"
    path.write_bytes(original)
    assert export_start(wasm_path=path, library=True)
    exported = path.read_bytes()
    assert read_module_info(exported, source="m.wasm").export("_initialize") is not None
    before, after = function_bodies(original, source="m")[1][0], function_bodies(exported, source="m")[1][0]
    assert after != before
    where = trap_location(original, [(1, before + 1)], source="m")
    assert where is not None and "index.ts:7:3" in where
    assert trap_location(exported, [(1, after + 1)], source="m") == where


def test_a_command_keeps_its_start_section(tmp_path: Path) -> None:
    path = tmp_path / "guest.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(WAT)))
    assert not export_start(wasm_path=path, library=False)
    assert path.read_bytes() == bytes(wasmtime.wat2wasm(WAT))


@pytest.mark.parametrize(
    "wat",
    [
        '(module (import "env" "f" (func $f)) (start $f))',  # no code: the start was the last known section
        '(module (import "env" "f" (func $f)) (start $f) (func (export "run")))',
        '(module (func $init) (start $init) (data "x") (memory 1))',
    ],
)
def test_a_start_function_is_exported_whatever_sections_follow_it(tmp_path: Path, wat: str) -> None:
    """The export section was added before the first known section after it: a module whose start section came
    last (an imported start function, no code) lost its start function and exported nothing."""
    path = tmp_path / "guest.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    assert export_start(wasm_path=path, library=True)
    exported = path.read_bytes()
    wasmtime.Module.validate(wasmtime.Engine(), exported)
    initializer = read_module_info(exported, source="m.wasm").export("_initialize")
    assert initializer is not None and initializer.kind == "func"


@pytest.mark.parametrize(("language", "said"), [("assemblyscript", False), ("wasm", True)])
def test_the_start_function_note_is_for_another_toolchains_module_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, language: str, said: bool
) -> None:
    """Every AssemblyScript library `ngixi new` made said `its start function is exported as _initialize` at each
    build and twice in a release: asc's own top-level code, which its author cannot act on."""
    project = Project(tmp_path)
    project.manifests_dir.mkdir()
    manifest = HELLO_MANIFEST.replace('version = "0.1.0"', f'version = "0.1.0"\nlanguage = "{language}"')
    project.manifest_path("hello").write_text(manifest)
    wasm = tmp_path / "hello.wasm"
    wasm.write_bytes(bytes(wasmtime.wat2wasm(WAT)))
    caplog.set_level(logging.INFO)
    fit_core_module(project, wasm, read_guest(project, "hello"))
    assert read_module_info(wasm.read_bytes(), source="m.wasm").export("_initialize") is not None
    note = "hello: its start function is exported as _initialize, run once its memory is linked"
    assert [record.getMessage() for record in caplog.records] == ([note] if said else [])
