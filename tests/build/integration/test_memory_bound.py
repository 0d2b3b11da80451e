"""A prebuilt module without a memory maximum, built into a bundle and run; validation refuses what a load would."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages.memory import bound_memory
from ngixi_build.stages.validate import validate_guest
from ngixi_build.workflows import pipeline as stages
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.manifest import ManifestError
from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle
from tests.run.unit.test_loader import ADD
from tests.wasmgen import module

wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
LIMITED = HELLO_MANIFEST + "[limits]\nmemory_pages = 4\n"


@pytest.fixture(scope="module")
def prebuilt_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A guest whose .wasm came from elsewhere, declaring no memory maximum, built the way the build does."""
    project = Project(tmp_path_factory.mktemp("project"))
    project.manifests_dir.mkdir()
    project.manifest_path("hello").write_text(LIMITED)
    wasm_path = project.wasm_path("hello")
    wasm_path.parent.mkdir(parents=True)
    wasm_path.write_bytes(module(functions=[ADD], memory=(1, None)))
    assert bound_memory(wasm_path=wasm_path, memory_pages=4)
    stages.validate(project, "hello")
    return stages.bundle(project, read_guest(project, "hello"), []), project.dev_trust_file


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_a_prebuilt_module_without_a_maximum_runs_once_built(
    prebuilt_bundle: tuple[Path, Path], engine_name: str, isolated: bool
) -> None:
    bundle, trust = prebuilt_bundle
    with open_tenant(bundle, trust_file=trust, isolated=isolated, engine=engine_name) as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)


MODULES = {
    "bounded": '(memory (export "memory") 1 4)',
    "no maximum": '(memory (export "memory") 1)',
    "maximum over the limit": '(memory (export "memory") 1 5)',
    "two memories": '(memory (export "memory") 1 4) (memory 1 1)',
    "imported memory": '(import "env" "m" (memory 1 4)) (export "memory" (memory 0))',
    "table without a maximum": '(memory (export "memory") 1 4) (table 1 funcref)',
    "table over the cap": '(memory (export "memory") 1 4) (table 70000 funcref)',
}


@pytest.mark.parametrize("declares", MODULES.values(), ids=MODULES.keys())
def test_validation_refuses_exactly_what_a_load_on_some_engine_refuses(
    tmp_path: Path, keys: KeyFiles, declares: str
) -> None:
    wasm = wasmtime.wat2wasm(
        f'(module {declares} (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    )
    refused_by = []
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=LIMITED)
    for engine in ("wasmer", "wasmtime"):
        try:
            with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine) as tenant:
                tenant.call("add", (1, 2))
        except NgixiError:
            refused_by.append(engine)
    (tmp_path / "hello.toml").write_text(LIMITED)
    (tmp_path / "hello.wasm").write_bytes(wasm)
    try:
        validate_guest(
            manifest_path=tmp_path / "hello.toml", wasm_path=tmp_path / "hello.wasm", record_path=tmp_path / "r"
        )
        validated = True
    except ManifestError:
        validated = False
    assert validated == (refused_by == [])
