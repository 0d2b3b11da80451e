"""The host AOT cache's limit in real loads, in this process and in an isolated tenant's child (the unit tests are
tests/run/unit/test_aot_cache_limit.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ngixi_runtime.loading.aot_cache import LIMIT_VARIABLE
from tests.conftest import exit_code, make_bundle, make_key
from tests.run.unit.test_aot_cache_limit import AN_HOUR_AGO
from tests.run.unit.test_native_code import HONEST, cache_entries

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("isolated", [False, True])
def test_a_load_keeps_its_code_within_the_limit(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path, capsys: pytest.CaptureFixture[str], isolated: bool
) -> None:
    """A real compile at load, in this process and in a tenant's child: an old entry that would take the cache past
    its limit goes; with a limit of 0 nothing is kept, and the note says why."""
    keys = make_key(tmp_path / "keys", native_code=False)
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST)
    old = aot_cache_dir / f"{'0' * 64}.aot"
    old.write_bytes(bytes(1 << 20))
    os.utime(old, (AN_HOUR_AGO, AN_HOUR_AGO))
    run = ["-v", "run", str(bundle), "add", "2", "3", "--trust", str(keys.trust), "--engine", engine_name]
    run += [] if isolated else ["--in-process"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LIMIT_VARIABLE, "1")
        assert exit_code(run) == 0
        assert "kept in the host AOT cache" in capsys.readouterr().err
        [entry] = cache_entries(aot_cache_dir)
        assert entry != old
        entry.unlink()
        patch.setenv(LIMIT_VARIABLE, "0")
        assert exit_code(run) == 0
        assert "not kept in the host AOT cache: its " in capsys.readouterr().err
        assert cache_entries(aot_cache_dir) == []
