"""The .wasm ↔ manifest cross-check, on generated modules."""

from __future__ import annotations

from ngixi_build.runtime.check import check_module
from ngixi_build.runtime.manifest import parse_manifest
from ngixi_build.runtime.wasm import read_module_info
from tests.conftest import HELLO_MANIFEST
from tests.wasmgen import ADD_BODY, Func, Imp, module

F = "manifests/hello.toml"
LOG = Imp("ngixi", "log", ["i32", "i32", "i32"])
ADD = Func("add", ["i32", "i32"], ["i32"], ADD_BODY)


def problems(manifest_text: str, wasm: bytes) -> list[str]:
    manifest = parse_manifest(manifest_text, source=F, stem="hello")
    return check_module(manifest, read_module_info(wasm, source="hello.wasm"))


def test_matching_module_passes() -> None:
    assert problems(HELLO_MANIFEST, module(imports=[LOG], functions=[ADD])) == []


def test_import_without_its_capability_names_the_grant() -> None:
    text = HELLO_MANIFEST.replace("[capabilities.log]\n", "")
    assert problems(text, module(imports=[LOG], functions=[ADD])) == [
        f"{F}: capabilities.log: import ngixi.log needs [capabilities.log]; "
        "grant it in the manifest or remove the import"
    ]


def test_wrong_import_signature() -> None:
    wasm = module(imports=[Imp("ngixi", "log", ["i32"])], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f"{F}: capabilities: the guest imports ngixi.log as (i32) -> (), but the host provides (i32, i32, i32) -> ()"
    ]


def test_unknown_module_and_unknown_function() -> None:
    wasm = module(imports=[Imp("mystery", "f"), Imp("ngixi", "http_fetch")], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f'{F}: capabilities: the guest imports mystery.f from unknown module "mystery"',
        f"{F}: capabilities: the guest imports ngixi.http_fetch, which no Ngixi capability provides",
    ]


def test_wasi_import_needs_its_capability() -> None:
    wasm = module(imports=[Imp("wasi_snapshot_preview1", "random_get", ["i32", "i32"], ["i32"])], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f"{F}: capabilities.random: import wasi_snapshot_preview1.random_get needs [capabilities.random]; "
        "grant it in the manifest or remove the import"
    ]


def test_baseline_imports_need_no_grant() -> None:
    wasm = module(imports=[Imp("env", "abort", ["i32"] * 4)], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == []


def test_missing_export_and_wrong_export_signature() -> None:
    text = HELLO_MANIFEST + '[exports.greet]\nparams = ["i64"]\n'
    wasm = module(imports=[LOG], functions=[Func("greet")])
    assert problems(text, wasm) == [
        f"{F}: exports.add: the .wasm has no function export 'add'; it exports: greet",
        f"{F}: exports.greet: declared as (i64) -> (), but the .wasm exports () -> ()",
    ]


def test_command_needs_start_and_memory_must_be_exported() -> None:
    text = HELLO_MANIFEST.replace('version = "0.1.0"', 'version = "0.1.0"\nkind = "command"')
    assert problems(text, module(imports=[LOG], functions=[ADD], export_memory=False)) == [
        f"{F}: guest.kind: a command guest must export _start: () -> (); build it with the WASI shim",
        f'{F}: exports: the .wasm must export its memory as "memory"',
    ]
