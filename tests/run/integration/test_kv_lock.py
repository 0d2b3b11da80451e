"""A kv call waiting for another instance's transaction ends with its own call's limits.timeout_ms, as a timeout,
in-process and isolated, on both engines: SQLite's 5 s busy timeout held it past the call's deadline."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from ngixi_runtime.spec.abi import Status
from tests.conftest import KeyFiles, make_bundle
from tests.run.unit.test_enforcement import KV_MANIFEST, KV_WASM


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_kv_call_waiting_for_another_transaction_ends_at_its_timeout(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    manifest = KV_MANIFEST.replace("max_keys = 1", "max_keys = 5") + "[limits]\ntimeout_ms = 400\n"
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=KV_WASM, manifest=manifest, guest="probe")
    sandboxes = tmp_path / "sandboxes"
    with open_tenant(
        bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, sandboxes=sandboxes
    ) as tenant:
        assert tenant.call("set_a", ()).values == (Status.OK,)
        (database,) = sandboxes.glob("**/kv.sqlite3")
        with sqlite3.connect(database, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(CallFailed, match=r"reached its limits\.timeout_ms while waiting for another") as late:
                tenant.call("set_b", ())
            assert late.value.outcome == "timeout" and time.monotonic() - started < 2.5
            other.execute("ROLLBACK")
