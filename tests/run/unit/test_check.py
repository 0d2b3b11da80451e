"""The .wasm ↔ manifest cross-check, on generated modules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import VerificationError
from ngixi_runtime.guest.check import check_module
from ngixi_runtime.guest.manifest import parse_manifest
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.wasm import read_module_info
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle
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
    wasm = module(imports=[Imp("mystery", "f"), Imp("ngixi", "telepathy")], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f'{F}: capabilities: the guest imports mystery.f from unknown module "mystery": it was built for another host;'
        " a core guest imports only wasi_snapshot_preview1, ngixi and env.abort (docs/host-abi.md)",
        f"{F}: capabilities: the guest imports ngixi.telepathy, which no Ngixi capability provides",
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
        f"{F}: exports.greet: declared as (i64) -> (), but the .wasm exports () -> (); declare params = [], "
        "results = [] under [exports.greet], or change the guest's function to match the manifest",
    ]


def test_a_signature_mismatch_says_what_to_declare_or_that_the_host_cannot_pass_it() -> None:
    text = HELLO_MANIFEST + '[exports.greet]\nparams = ["i32"]\n[exports.sum]\n'
    wasm = module(imports=[LOG], functions=[ADD, Func("greet", ["i64", "f64"], ["i32"]), Func("sum", ["v128"])])
    assert problems(text, wasm) == [
        f"{F}: exports.greet: declared as (i32) -> (), but the .wasm exports (i64, f64) -> (i32); declare params = "
        '["i64", "f64"], results = ["i32"] under [exports.greet], or change the guest\'s function to match the '
        "manifest",
        f"{F}: exports.sum: declared as () -> (), but the .wasm exports (v128) -> (); the host passes only i32, i64, "
        "f32, f64: change the guest's function",
    ]


def test_command_needs_start_and_memory_must_be_exported() -> None:
    text = HELLO_MANIFEST.replace('version = "0.1.0"', 'version = "0.1.0"\nkind = "command"')
    assert problems(text, module(imports=[LOG], functions=[ADD], export_memory=False)) == [
        f"{F}: guest.kind: a command guest must export _start: () -> ();"
        " build it as a WASI program with main (AssemblyScript: with the WASI shim)",
        f'{F}: exports: the .wasm must export its memory as "memory"',
    ]


def test_a_reactor_declared_as_a_command_is_told_to_be_a_library() -> None:
    """npm @ruby/3.3-wasm-wasi's ruby.wasm is a reactor: the AssemblyScript hint alone misled."""
    text = HELLO_MANIFEST.replace('version = "0.1.0"', 'version = "0.1.0"\nkind = "command"')
    assert problems(text, module(imports=[LOG], functions=[ADD, Func("_initialize")]))[0] == (
        f"{F}: guest.kind: a command guest must export _start: () -> ();"
        ' this .wasm is a WASI reactor (it exports _initialize): declare kind = "library" and its exports'
    )


FD_WRITE = Imp("wasi_snapshot_preview1", "fd_write", ["i32"] * 4, ["i32"])
PATH_OPEN = Imp("wasi_snapshot_preview1", "path_open", ["i32"] * 5 + ["i64", "i64", "i32", "i32"], ["i32"])


def test_an_import_two_capabilities_grant_names_both() -> None:
    wasm = module(imports=[FD_WRITE], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f"{F}: capabilities.stdio: import wasi_snapshot_preview1.fd_write needs [capabilities.stdio] or "
        "[capabilities.fs]; grant it in the manifest or remove the import"
    ]
    assert problems(HELLO_MANIFEST + "[capabilities.stdio]\n", wasm) == []


@pytest.mark.parametrize("preopens", ['preopens = [{ guest = "/d", host = "d" }]\n', "", "preopens = []\n"])
def test_fs_without_stdio_is_refused_for_a_guest_that_writes(preopens: str) -> None:
    """fds 1 and 2 are stdio's: fs's fd_write alone would lose the guest's stdout and stderr without a word."""
    wasm = module(imports=[FD_WRITE], functions=[ADD])
    with_fs = HELLO_MANIFEST + "[capabilities.fs]\n" + preopens
    assert problems(with_fs, wasm) == [
        f"{F}: capabilities.stdio: the guest imports wasi_snapshot_preview1.fd_write, and its writes to stdout and "
        "stderr (fds 1 and 2) need [capabilities.stdio], which fs does not grant; grant it (its output is captured "
        "within limits.stdout_bytes)"
    ]
    assert problems(with_fs + "[capabilities.stdio]\n", wasm) == []
    assert problems(with_fs, module(imports=[PATH_OPEN], functions=[ADD])) == []


def test_path_open_needs_fs() -> None:
    wasm = module(imports=[PATH_OPEN], functions=[ADD])
    assert problems(HELLO_MANIFEST + "[capabilities.stdio]\n", wasm) == [
        f"{F}: capabilities.fs: import wasi_snapshot_preview1.path_open needs [capabilities.fs]; "
        "grant it in the manifest or remove the import"
    ]


def test_the_imports_of_a_module_no_capability_has_make_one_line() -> None:
    """npm @ruby/3.3-wasm-wasi's ruby.wasm imports 21 functions of "rb-js-abi-host": 21 lines were noise."""
    imports = [Imp("rb-js-abi-host", name) for name in ("eval-js", "is-js", "global-this", "typeof")]
    wasm = module(imports=[LOG, *imports, Imp("canonical_abi", "drop")], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f'{F}: capabilities: the guest imports 4 functions from unknown module "rb-js-abi-host"'
        " (eval-js, is-js, global-this, ...): it was built for another host; a core guest imports only"
        " wasi_snapshot_preview1, ngixi and env.abort (docs/host-abi.md)",
        f'{F}: capabilities: the guest imports canonical_abi.drop from unknown module "canonical_abi": it was built'
        " for another host; a core guest imports only wasi_snapshot_preview1, ngixi and env.abort (docs/host-abi.md)",
    ]


def test_the_imports_one_grant_would_cover_make_one_line() -> None:
    """CPython's python.wasm imports 45 WASI functions: with nothing granted, a line for each hid all but the first
    20 (args, env, clock and most of fs) behind "… and 17 more problems", and stdin and random were found only at
    the next build."""
    wasi = "wasi_snapshot_preview1"
    fs = [Imp(wasi, name, ["i32", "i32"], ["i32"]) for name in ("fd_prestat_get", "fd_filestat_get")]
    fs += [PATH_OPEN, Imp(wasi, "fd_sync", ["i32"], ["i32"]), Imp(wasi, "fd_datasync", ["i32"], ["i32"])]
    environ = [Imp(wasi, name, ["i32", "i32"], ["i32"]) for name in ("environ_sizes_get", "environ_get")]
    random = Imp(wasi, "random_get", ["i32", "i32"], ["i32"])
    wasm = module(imports=[LOG, environ[0], *fs[:2], random, *fs[2:], environ[1]], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f"{F}: capabilities.env: 2 imports of {wasi} (environ_sizes_get, environ_get) need [capabilities.env]; a "
        "language's standard library may import them (Rust's std, wasi-libc): grant it in the manifest, where a bare "
        "[capabilities.env] passes no variables, or remove the imports",
        f"{F}: capabilities.fs: 5 imports of {wasi} (fd_prestat_get, fd_filestat_get, path_open, ...) need "
        "[capabilities.fs]; grant it in the manifest or remove the imports",
        f"{F}: capabilities.random: import {wasi}.random_get needs [capabilities.random]; grant it in the manifest "
        "or remove the import",
    ]
    assert problems(HELLO_MANIFEST + "[capabilities.env]\n[capabilities.fs]\n[capabilities.random]\n", wasm) == []


def test_a_module_of_an_older_wasi_is_told_to_rebuild_for_preview_1() -> None:
    """WASI snapshot 0 (`wasi_unstable`, old wasi-sdk and Rust's wasm32-wasi before 2020) has the same functions
    under another module name, some with other signatures."""
    wasm = module(imports=[Imp("wasi_unstable", "fd_write", ["i32"] * 4, ["i32"])], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f'{F}: capabilities: the guest imports wasi_unstable.fd_write from unknown module "wasi_unstable": not WASI'
        " preview 1 (wasi_snapshot_preview1), the one WASI a core guest may import; rebuild it for wasm32-wasip1"
    ]


@pytest.mark.parametrize("command", ["verify", "load"])
def test_a_module_of_many_long_imports_is_refused_in_a_bounded_message(
    command: str, tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """The import names are the module's author's: 20,000 imports printed 20,000 lines (2.7 MB) at `ngixi verify`
    and an in-process load, and an isolated one reported a "malformed reply" (its 2.8 MB error was over the wire's
    limit); one name of 100,000 characters made a line of that length. As a manifest's: 20 lines, each cut."""
    imports = [Imp("ngixi", "x" * 100_000), *(Imp("ngixi", f"a{n}") for n in range(2_000))]
    bundle = make_bundle(tmp_path, keys.key, wasm=module(imports=imports, functions=[ADD]))
    if command == "verify":
        assert exit_code(["verify", str(bundle), "--trust", str(keys.trust)]) == 3
        message = capsys.readouterr().err
    else:
        with pytest.raises(VerificationError) as refused:
            open_guest(read_bundle(bundle, load_trust(keys.trust)), engine="wasmtime")
        message = str(refused.value)
    lines = message.splitlines()
    assert len(lines) == 21 and max(map(len, lines)) < 2_100
    assert re.search(r"imports ngixi\.x+…\(\d+ characters left out\)…x+, which no Ngixi capability provides$", lines[0])
    assert lines[-1] == "… and 1981 more problems in the same file: fix those above first"


@pytest.mark.parametrize(
    ("capability", "imported", "passes"),
    [("env", "environ_get", "passes no variables"), ("args", "args_get", "passes only the arguments a caller gives")],
)
def test_an_import_every_standard_library_makes_says_a_bare_grant_passes_nothing(
    capability: str, imported: str, passes: str
) -> None:
    """Rust's std imports environ_get in every program: "remove the import" asked the impossible."""
    wasm = module(imports=[Imp("wasi_snapshot_preview1", imported, ["i32", "i32"], ["i32"])], functions=[ADD])
    assert problems(HELLO_MANIFEST, wasm) == [
        f"{F}: capabilities.{capability}: import wasi_snapshot_preview1.{imported} needs [capabilities.{capability}]; "
        f"a language's standard library may import it (Rust's std, wasi-libc): grant it in the manifest, where a bare "
        f"[capabilities.{capability}] {passes}, or remove the import"
    ]
    assert problems(HELLO_MANIFEST + f"[capabilities.{capability}]\n", wasm) == []
