"""`ngixi new NAME --wasm FILE`: a WASI command another toolchain built, copied in with a manifest granting what it
imports, which the build's validation then passes; what is not such a command is refused, writing nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ngixi_build.cli import cmd_new
from ngixi_build.project import Project, find_project
from ngixi_build.stages.validate import validate
from ngixi_build.workflows.prebuilt_guest import MEMORY_PAGES, new_prebuilt_guest
from ngixi_build.workflows.scaffold import init_project
from ngixi_runtime.capabilities.fs import FsOptions
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.kind import infer_language
from ngixi_runtime.guest.manifest import load_manifest

wasmtime = pytest.importorskip("wasmtime")

WASI = "wasi_snapshot_preview1"
SIGNATURES = {  # as wasi-libc imports them
    "fd_write": "(param i32 i32 i32 i32) (result i32)",
    "fd_read": "(param i32 i32 i32 i32) (result i32)",
    "fd_seek": "(param i32 i64 i32 i32) (result i32)",
    "fd_close": "(param i32) (result i32)",
    "args_get": "(param i32 i32) (result i32)",
    "environ_get": "(param i32 i32) (result i32)",
    "clock_time_get": "(param i32 i64 i32) (result i32)",
    "random_get": "(param i32 i32) (result i32)",
    "path_open": "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
    "proc_exit": "(param i32)",
}


def module(imports: list[str], *, exports: str = '(func (export "_start"))', memory: str = "2") -> bytes:
    imported = "".join(f'(import "{WASI}" "{name}" (func {SIGNATURES[name]}))' for name in imports)
    return bytes(wasmtime.wat2wasm(f'(module {imported} (memory (export "memory") {memory}) {exports})'))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    init_project(tmp_path / "author")
    return find_project(tmp_path / "author")


def written_module(tmp_path: Path, data: bytes, name: str = "program.wasm") -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def test_a_wasi_command_gets_each_grant_its_imports_need_and_passes_validation(
    project: Project, tmp_path: Path
) -> None:
    data = module(list(SIGNATURES), memory="2 4096")  # the build gives one without a maximum the limit's
    guest = new_prebuilt_guest(project, "tool", written_module(tmp_path, data))
    assert guest.grants == ("stdio", "stdin", "clock", "random", "args", "env", "fs")
    wasm = project.guests_dir / "tool" / "tool.wasm"
    assert guest.written == [wasm, project.manifest_path("tool")] and wasm.read_bytes() == data
    manifest = validate(manifest_path=project.manifest_path("tool"), wasm_path=wasm)
    assert (manifest.guest.type.kind, infer_language(["tool.wasm"])) == ("command", "wasm")
    fs = manifest.options(FsOptions)
    assert fs is not None and [(p.guest, p.host, p.mode) for p in fs.preopens] == [("/work", "work", "rw")]
    assert manifest.limits.memory_pages == MEMORY_PAGES


def test_a_function_several_capabilities_grant_takes_the_standard_streams_first(
    project: Project, tmp_path: Path
) -> None:
    new_prebuilt_guest(project, "seeker", written_module(tmp_path, module(["fd_seek", "fd_close"])))
    assert set(load_manifest(project.manifest_path("seeker")).capabilities) == {"stdio"}
    new_prebuilt_guest(project, "reader", written_module(tmp_path, module(["fd_read", "fd_close", "proc_exit"])))
    assert set(load_manifest(project.manifest_path("reader")).capabilities) == {"stdin"}


@pytest.mark.parametrize(("memory", "pages"), [("2", MEMORY_PAGES), ("5000", 5000), ("2 100", 100), ("300 300", 300)])
def test_the_memory_limit_holds_the_modules_memory_within_its_own_maximum(
    project: Project, tmp_path: Path, memory: str, pages: int
) -> None:
    new_prebuilt_guest(project, "m", written_module(tmp_path, module(["fd_write"], memory=memory)))
    assert load_manifest(project.manifest_path("m")).limits.memory_pages == pages


def test_what_is_no_wasi_command_is_refused_naming_the_file_and_writing_nothing(
    project: Project, tmp_path: Path
) -> None:
    reactor = module(["fd_write"], exports='(func (export "_initialize")) (func (export "redact"))')
    other_host = bytes(wasmtime.wat2wasm('(module (import "env" "now" (func)) (func (export "_start")))'))
    component = b"\0asm\x0d\x00\x01\x00"
    crafted = module([], exports='(func (export "_start"))' + "(func)" * 60_000)  # 4 bytes a function
    cases = [
        (crafted, "it declares more than 50000 functions, types, element segments and globals"),
        (reactor, "exports no _start, so it is no WASI command (a reactor: it exports _initialize)"),
        (other_host, "imports func env.now, which no Ngixi capability provides"),
        (component, "a component, not a core module"),
        (b'{"not": "wasm"}', "not a WebAssembly module"),
    ]
    for data, reason in cases:
        path = written_module(tmp_path, data)
        with pytest.raises(InvalidInput) as refused:
            new_prebuilt_guest(project, "g", path)
        assert str(refused.value).startswith(f"{path}: {reason}")
        assert not (project.guests_dir / "g").exists() and not project.manifest_path("g").exists()
    with pytest.raises(InvalidInput, match="cannot read the module: No such file or directory"):
        new_prebuilt_guest(project, "g", tmp_path / "missing.wasm")


def test_a_taken_name_keeps_the_guest_there(project: Project, tmp_path: Path) -> None:
    path = written_module(tmp_path, module(["fd_write"]))
    new_prebuilt_guest(project, "g", path)
    manifest = project.manifest_path("g").read_bytes()
    with pytest.raises(InvalidInput, match="guest 'g' is taken"):
        new_prebuilt_guest(project, "g", written_module(tmp_path, module(["fd_read"]), "other.wasm"))
    assert project.manifest_path("g").read_bytes() == manifest
    assert (project.guests_dir / "g" / "g.wasm").read_bytes() == path.read_bytes()


def test_ngixi_new_wasm_refuses_a_language_kind_or_abi_and_says_how_to_run_it(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = written_module(tmp_path, module(["fd_write", "path_open"]))
    monkeypatch.chdir(project.root)

    def new(**given: object) -> int:
        options = {"lang": None, "kind": None, "abi": None, **given}
        return cmd_new(argparse.Namespace(name="tool", wasm=path, project=None, state_dir=None, **options))

    with pytest.raises(InvalidInput, match="--kind comes from the module itself; leave it out"):
        new(kind="command")
    assert not project.manifest_path("tool").exists()
    assert new() == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "ok: prebuilt command guest tool (core module), granted stdio, fs:"
    assert said[-2:] == [
        "build it with `doit build`, run it with `ngixi run artifacts/bundles/tool-0.1.0.ngx -- ARGS...`",
        "its /work is .ngixi/sandbox/dev/default/tool/files/work (the dev bundle's; made at its first run)",
    ]
