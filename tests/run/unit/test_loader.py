"""The loader with real wasmer: compile fallback, native artifacts, linking only what is granted."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from ngixi_build.stages.bundle import ArtifactInput
from ngixi_build.stages.precompile import precompile_guest
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import GuestError, InvalidInput, VerificationError
from ngixi_runtime.guest.manifest import ExportDecl, parse_manifest
from ngixi_runtime.loading.loader import HostProfile, artifact_misfit, check_call, open_guest, parse_arguments
from ngixi_runtime.spec.bundle_format import ArtifactMeta
from ngixi_runtime.spec.targets import SUPPORTED_TARGETS, host_cpu_features, host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, WASMER_ENGINE, KeyFiles, make_bundle, needs_wasmer
from tests.wasmgen import ADD_BODY, Func, Imp, call_import, module

LOG = Imp("ngixi", "log", ["i32"] * 3)
ADD = Func("add", ["i32", "i32"], ["i32"], ADD_BODY)
GREET = Func("greet", body=call_import(0, 2, 0, 0))
TRAP = Func("trap", body=b"\x00")
MANIFEST = HELLO_MANIFEST + "[exports.greet]\n[exports.trap]\n"
WASM = module(imports=[LOG], functions=[ADD, GREET, TRAP])


def host_artifact(tmp_path: Path, wasm: bytes) -> ArtifactInput:
    wasm_path = tmp_path / "in.wasm"
    wasm_path.write_bytes(wasm)
    out = tmp_path / "host.wasmer"
    meta = precompile_guest(wasm_path=wasm_path, target=SUPPORTED_TARGETS[host_triple()], out_path=out)
    return ArtifactInput(out, meta)


@pytest.mark.usefixtures("engine_name")
def test_compiles_when_no_artifact_and_calls(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = read_bundle(make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST), load_trust(keys.trust))
    guest = open_guest(bundle)
    assert guest.origin.startswith("compiled from guest.wasm")
    assert guest.call("add", (2, 3)) == (5,)
    guest.call("greet", ())
    assert [(line.level, line.message) for line in guest.output.logs] == [("info", "")]


@needs_wasmer
def test_uses_the_native_artifact_for_this_host(tmp_path: Path, keys: KeyFiles) -> None:
    artifact = host_artifact(tmp_path, WASM)
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM, manifest=MANIFEST, artifacts=[artifact])
    guest = open_guest(read_bundle(path, load_trust(keys.trust)))
    assert guest.origin == f"artifact aot/{host_triple()}.wasmer"
    assert guest.call("add", (20, 22)) == (42,)


@pytest.mark.usefixtures("engine_name")
def test_a_failed_call_leaves_the_next_a_fresh_instance_and_the_kept_error_none(tmp_path: Path, keys: KeyFiles) -> None:
    """A trap leaves a toolchain's runtime as it was mid-call, so the next call runs in a new instance (its memory
    afresh); the error a caller keeps held the old instance through the engine's frames (4-6 GiB of address space
    each: 50 kept errors reserved 217 GiB on Wasmtime, 320 GiB on Wasmer)."""
    guest = open_guest(
        read_bundle(make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST), load_trust(keys.trust))
    )
    assert guest._instance is not None
    first = weakref.ref(guest._instance.memory)
    with pytest.raises(GuestError) as kept:
        guest.call("trap", ())
    assert guest.call("add", (2, 3)) == (5,)
    gc.collect()
    assert first() is None and kept.value.outcome == "trap"


@pytest.mark.usefixtures("engine_name")
def test_a_dropped_guest_frees_its_instance(tmp_path: Path, keys: KeyFiles) -> None:
    """Host functions are held by the engine; a strong link back to the instance would leak it for good."""
    guest = open_guest(
        read_bundle(make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST), load_trust(keys.trust))
    )
    guest.call("greet", ())
    assert guest._instance is not None
    memory = weakref.ref(guest._instance.memory)
    del guest
    gc.collect()
    assert memory() is None


@pytest.mark.usefixtures("engine_name")
def test_trap_becomes_a_guest_error(tmp_path: Path, keys: KeyFiles) -> None:
    guest = open_guest(
        read_bundle(make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST), load_trust(keys.trust))
    )
    with pytest.raises(GuestError, match="hello: trap trapped: unreachable"):
        guest.call("trap", ())
    assert guest.call("add", (1, 1)) == (2,)


@pytest.mark.usefixtures("engine_name")
def test_ungranted_import_is_refused_at_load(tmp_path: Path, keys: KeyFiles) -> None:
    manifest = HELLO_MANIFEST.replace("[capabilities.log]\n", "")
    path = make_bundle(tmp_path, keys.key, wasm=module(imports=[LOG], functions=[ADD]), manifest=manifest)
    with pytest.raises(VerificationError, match=r"import ngixi.log needs \[capabilities.log\]"):
        open_guest(read_bundle(path, load_trust(keys.trust)))


@needs_wasmer
def test_refuses_without_compiler_and_lists_why(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = host_artifact(tmp_path, WASM)
    foreign = artifact.meta._replace(triple="aarch64-apple-darwin", cpu_features=())
    path = make_bundle(
        tmp_path / "b", keys.key, wasm=WASM, manifest=MANIFEST, artifacts=[ArtifactInput(artifact.path, foreign)]
    )
    monkeypatch.setattr("ngixi_runtime.engines.wasmer.compiler_available", lambda: False)
    with pytest.raises(Exception, match=r"aot/aarch64-apple-darwin\.wasmer: built for aarch64-apple-darwin"):
        open_guest(read_bundle(path, load_trust(keys.trust)))


def meta(**changes: object) -> ArtifactMeta:
    ours = WASMER_ENGINE
    base = ArtifactMeta(
        ours.engine, ours.engine_version, ours.binding_version, ours.compiler, host_triple(), ("sse2",), "0" * 64
    )
    return base._replace(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"engine_version": "9.9.9"}, "built by wasmer 9.9.9"),
        ({"triple": "riscv64gc-unknown-linux-gnu"}, "built for riscv64gc-unknown-linux-gnu"),
        ({"cpu_features": ("sse2", "avx512-imaginary")}, "needs CPU features this host lacks: avx512-imaginary"),
        ({"compiler": "llvm"}, "built by wasmer/llvm"),
    ],
)
def test_artifact_misfit(changes: dict[str, object], reason: str | None) -> None:
    host = HostProfile(host_triple(), host_cpu_features() | {"sse2"}, WASMER_ENGINE)
    found = artifact_misfit(meta(**changes), host)
    assert found == reason if reason is None else reason in (found or "")


def test_parse_arguments_converts_and_checks() -> None:
    decl = ExportDecl("f", ("i32", "f64", "i64"), ())
    assert parse_arguments(decl, ["0x10", "1.5", "-3"], guest="g") == (16, 1.5, -3)
    with pytest.raises(InvalidInput, match="f takes 3 arguments"):
        parse_arguments(decl, ["1"], guest="g")
    with pytest.raises(InvalidInput, match="argument 1: 4294967296 does not fit in i32"):
        parse_arguments(decl, ["4294967296", "1", "1"], guest="g")
    with pytest.raises(InvalidInput, match="argument 1: 2147483648 does not fit in i32: give a whole number from "):
        parse_arguments(decl, ["2147483648", "1", "1"], guest="g")
    assert parse_arguments(decl, ["2147483647", "1", "-2147483648"], guest="g")[::2] == (2147483647, -2147483648)
    with pytest.raises(InvalidInput, match="argument 2: 'x' is not an f64"):
        parse_arguments(decl, ["1", "x", "1"], guest="g")


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        ((1.5, 2), None),
        ((2, 2), "g: f argument 1: 2 is not an f64 (a float); pass 2.0"),
        ((True, 2), "g: f argument 1: True is not an f64 (a float)"),
        (("1.5", 2), "g: f argument 1: '1.5' is not an f64 (a float)"),
        ((2.0**1023 * 2 - 1, 2), None),  # a float is as it is
        ((2**1024, 2), "g: f argument 1: an integer of 1025 bits is not an f64 (a float)"),
        ((1.5, 10**5000), "g: f argument 2: an integer of 16610 bits does not fit in i32: give a whole number from "),
    ],
)
def test_a_core_call_s_arguments_are_refused_before_any_engine_sees_them(
    args: tuple[object, ...], refused: str
) -> None:
    """Through the API, an int for an f64 reached the engine, which refused it as a trap (Wasmer) or a TypeError
    (Wasmtime), and only the isolated wire refused one beyond a double; an integer past Python's 4,300 digits for an
    i32 raised ValueError from the refusal itself. check_call runs in-process and in the isolated tenant's host."""
    manifest = parse_manifest(
        '[guest]\nname = "g"\nversion = "0.1.0"\n[exports.f]\nparams = ["f64", "i32"]\n', source="m", stem="g"
    )
    if refused is None:
        check_call(manifest, "f", args)
        return
    with pytest.raises(InvalidInput) as error:
        check_call(manifest, "f", args)
    assert str(error.value).startswith(refused)


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (3.4028235e38, None),  # rounds to the largest f32
        (-1e-46, None),  # rounds to -0.0
        (float("inf"), None),
        (3.4028236e38, "g: f argument 1: 3.4028236e+38 is beyond an f32's range (±3.4028234663852886e+38; pass inf"),
        (1e300, "g: f argument 1: 1e+300 is beyond an f32's range"),
    ],
)
def test_a_core_f32_argument_beyond_its_range_is_refused(value: float, refused: str | None) -> None:
    """Both engines made a finite double past the largest f32 infinity: `half(1e300)` ran on inf, where a component's
    f32 parameter refuses it."""
    manifest = parse_manifest(
        '[guest]\nname = "g"\nversion = "0.1.0"\n[exports.f]\nparams = ["f32"]\n', source="m", stem="g"
    )
    if refused is None:
        check_call(manifest, "f", (value,))
        return
    with pytest.raises(InvalidInput) as error:
        check_call(manifest, "f", (value,))
    assert str(error.value).startswith(refused)
