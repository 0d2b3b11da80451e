"""The build bounds a core module's memory by limits.memory_pages, and validation refuses what a load would."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages.memory import bound_memory
from ngixi_build.stages.validate import validate
from ngixi_build.workflows.pipeline import compile_guest
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.limits import MIN_ENTRIES, table_elements
from ngixi_runtime.guest.manifest import ManifestError
from ngixi_runtime.spec.wasm import MemoryLimits, read_module_info, uleb128
from tests.conftest import HELLO_MANIFEST
from tests.run.unit.test_loader import ADD
from tests.wasmgen import module

LIMITED = HELLO_MANIFEST + "[limits]\nmemory_pages = 16\n"
TOOLCHAIN_FIXES = (
    "--maximumMemory 16",
    "-Wl,--max-memory=1048576",
    "build-exe --max-memory=1048576",
    "-C link-arg=--max-memory=1048576",
    "raise limits.memory_pages",
)


def write_wasm(tmp_path: Path, wasm: bytes) -> Path:
    path = tmp_path / "hello.wasm"
    path.write_bytes(wasm)
    return path


def test_a_module_without_a_maximum_gets_the_manifests_limit(tmp_path: Path) -> None:
    path = write_wasm(tmp_path, module(functions=[ADD], memory=(2, None)))
    assert bound_memory(wasm_path=path, memory_pages=16)
    assert read_module_info(path.read_bytes(), source="w").memories == (MemoryLimits(2, 16),)
    assert not bound_memory(wasm_path=path, memory_pages=16)  # already bounded: left as it is
    assert [p.name for p in tmp_path.iterdir()] == ["hello.wasm"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("memory", "refusal"),
    [((1, 64), "may grow to 64 pages, over limits.memory_pages = 16"), ((32, None), "starts at 32 pages")],
)
def test_a_memory_beyond_the_limit_is_refused_with_how_to_fix_it(
    tmp_path: Path, memory: tuple[int, int | None], refusal: str
) -> None:
    wasm = module(functions=[ADD], memory=memory)
    path = write_wasm(tmp_path, wasm)
    with pytest.raises(InvalidInput, match=refusal) as refused:
        bound_memory(wasm_path=path, memory_pages=16)
    if memory[1] is not None:
        assert all(fix in str(refused.value) for fix in TOOLCHAIN_FIXES)
    else:  # a guest compiled from source may be rebuilt with a smaller initial memory
        assert "--initial-memory=" in str(refused.value)
    assert path.read_bytes() == wasm


def test_a_prebuilt_module_starting_above_the_limit_is_told_to_raise_it_in_its_manifest(tmp_path: Path) -> None:
    # Someone else's .wasm cannot be rebuilt: only its manifest's limit can make room for its memory.
    project = Project(tmp_path)
    project.manifests_dir.mkdir()
    (project.guests_dir / "g").mkdir(parents=True)
    (project.guests_dir / "g" / "g.wasm").write_bytes(module(functions=[ADD], memory=(32, None)))
    manifest = project.manifest_path("g")
    manifest.write_text('[guest]\nname = "g"\nversion = "0.1.0"\nlanguage = "wasm"\n[limits]\nmemory_pages = 16\n')
    with pytest.raises(InvalidInput) as refused:
        compile_guest(project, read_guest(project, "g"))
    assert str(refused.value) == (
        f"{manifest}: limits.memory_pages = 16, but its prebuilt module starts with 32 pages of memory; "
        "raise it to at least 32"
    )  # the manifest named once: it was named again, in full, before the number


def validation_problems(tmp_path: Path, wasm: bytes, manifest: str = LIMITED) -> str:
    manifest_path = tmp_path / "hello.toml"
    manifest_path.write_text(manifest)
    with pytest.raises(ManifestError) as refused:
        validate(manifest_path=manifest_path, wasm_path=write_wasm(tmp_path, wasm))
    return str(refused.value)


def test_validation_refuses_a_memory_without_a_maximum_saying_how_to_fix_it(tmp_path: Path) -> None:
    problems = validation_problems(tmp_path, module(functions=[ADD], memory=(1, None)))
    assert problems.startswith(f"{tmp_path / 'hello.toml'}: limits.memory_pages: its memory declares no maximum")
    assert all(fix in problems for fix in TOOLCHAIN_FIXES)


def test_validation_and_loads_tell_a_memory_starting_above_the_limit_to_raise_it(tmp_path: Path) -> None:
    # no maximum of at most limits.memory_pages could fit it, so none is suggested
    problems = validation_problems(tmp_path, module(functions=[ADD], memory=(32, 64)))
    assert problems == (
        f"{tmp_path / 'hello.toml'}: limits.memory_pages: its memory starts at 32 pages, over limits.memory_pages = "
        "16; raise limits.memory_pages to at least 32"
    )


def test_validation_refuses_what_a_load_on_any_engine_refuses(tmp_path: Path) -> None:
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    wasm = wasmtime.wat2wasm(
        '(module (import "env" "m" (memory 1)) (func (export "add") (param i32 i32) (result i32) i32.const 0)'
        " (table 1 funcref) (table 1 1 funcref))"
    )
    lines = validation_problems(tmp_path, wasm).splitlines()
    assert [line.split(": ", 2)[1:] for line in lines] == [
        ["capabilities", "the guest imports memory env.m; only host functions can be imported"],
        ["exports", 'the .wasm must export its memory as "memory"'],
        ["limits.memory_pages", lines[2].split(": ", 2)[2]],
        [
            "limits.memory_pages",
            "its table 0 declares no maximum, which Wasmer needs: at most the 65536 elements "
            "a guest with limits.memory_pages = 16 may hold",
        ],
    ]
    assert lines[2].split(": ", 2)[2].startswith("its memory declares no maximum")  # the imported one


def test_a_table_without_a_maximum_gets_the_most_elements_the_guests_tables_may_hold(tmp_path: Path) -> None:
    """PyPI pii-shield-wasi's Go module declares no table maximum, which Wasmer needs: the build refused it."""
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    wat = '(module (memory (export "memory") 1 16) (table 3 funcref) (table 2 8 externref) (func (export "f")))'
    path = write_wasm(tmp_path, bytes(wasmtime.wat2wasm(wat)))
    assert bound_memory(wasm_path=path, memory_pages=16)
    tables = read_module_info(path.read_bytes(), source="w").tables
    assert [(t.minimum_elements, t.maximum_elements) for t in tables] == [(3, table_elements(16)), (2, 8)]
    assert not bound_memory(wasm_path=path, memory_pages=16)
    wasmtime.Module(wasmtime.Engine(), path.read_bytes())  # still a valid module


def test_validation_refuses_a_module_of_more_functions_than_its_size_allows(tmp_path: Path) -> None:
    """As a load does before compiling it (tests/run/integration/test_hostile11_modules.py)."""
    count = MIN_ENTRIES + 1
    functions = uleb128(count) + b"\x00" * count
    wasm = module(functions=[ADD]) + b"\x03" + uleb128(len(functions)) + functions  # a second function section
    manifest_path = tmp_path / "hello.toml"
    manifest_path.write_text(HELLO_MANIFEST)
    with pytest.raises(ManifestError, match=f"hello.wasm: it declares more than {MIN_ENTRIES} functions, types"):
        validate(manifest_path=manifest_path, wasm_path=write_wasm(tmp_path, wasm))
