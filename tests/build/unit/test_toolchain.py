"""Toolchain bootstrap bookkeeping (the real install runs in the integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.toolchains import assemblyscript as toolchain
from ngixi_runtime.errors import ToolchainError


def test_failed_install_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_install(chain: toolchain.Toolchain) -> None:
        (chain.root / "node_modules").mkdir()
        raise ToolchainError("npm ci failed")

    monkeypatch.setattr(toolchain, "_install", broken_install)
    with pytest.raises(ToolchainError):
        toolchain.ensure_toolchain(state_dir=tmp_path)
    assert not toolchain.toolchain_for(tmp_path).root.exists()


def test_complete_install_is_reused_and_stale_ones_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_install(chain: toolchain.Toolchain) -> None:
        calls.append(chain.root)
        (chain.root / ".complete").write_text("x")

    stale = tmp_path / "toolchain" / "0000000000000000"
    stale.mkdir(parents=True)
    monkeypatch.setattr(toolchain, "_install", fake_install)
    first = toolchain.ensure_toolchain(state_dir=tmp_path)
    second = toolchain.ensure_toolchain(state_dir=tmp_path)
    assert first == second and len(calls) == 1
    assert not stale.exists()


def test_half_done_install_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = toolchain.toolchain_for(tmp_path)
    (chain.root / "node_modules").mkdir(parents=True)
    monkeypatch.setattr(toolchain, "_install", lambda c: (c.root / ".complete").write_text("x"))
    toolchain.ensure_toolchain(state_dir=tmp_path)
    assert chain.complete and not (chain.root / "node_modules").exists()


def test_pins_key_changes_with_the_lock_file(monkeypatch: pytest.MonkeyPatch) -> None:
    before = toolchain.toolchain_key()
    real = toolchain.pin_bytes()
    monkeypatch.setattr(toolchain, "pin_bytes", lambda: {**real, "package-lock.json": b"{}"})
    assert toolchain.toolchain_key() != before
