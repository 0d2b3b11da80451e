"""An isolated guest's output within its quotas: the tenant child's address-space cap counts them."""

from __future__ import annotations

from pathlib import Path

import wasmtime

from ngixi_runtime.loading.tenants import open_tenant
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle

MIB = 1 << 20
LOGGED_MIB = 24
LOGGER = bytes(
    wasmtime.wat2wasm(f"""(module
  (import "ngixi" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 16 16)
  (func (export "add") (param i32 i32) (result i32) (local $n i32)
    (memory.fill (i32.const 0) (i32.const 255) (i32.const {MIB}))
    (loop $more (call $log (i32.const 2) (i32.const 0) (i32.const {MIB}))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $n) (i32.const {LOGGED_MIB}))))
    (i32.const 0)))""")
)


def test_an_isolated_guest_may_log_all_its_log_bytes(tmp_path: Path, keys: KeyFiles) -> None:
    """Its log lines of bytes that are not UTF-8, within limits.log_bytes = 24 MiB: the child holds each as text and
    twice as JSON (`\\ufffd` per byte), which its address-space cap did not count, so the call failed as 'add ran out
    of memory (limits.memory_pages = 16)', a limit the guest had not reached (and stdout_bytes = 256 MiB likewise)."""
    limits = f"[limits]\ntimeout_ms = 60000\nlog_bytes = {LOGGED_MIB * MIB}\n\n[capabilities.log]"
    bundle = make_bundle(
        tmp_path / "out", keys.key, wasm=LOGGER, manifest=HELLO_MANIFEST.replace("[capabilities.log]", limits)
    )
    with open_tenant(bundle, trust_file=keys.trust, engine="wasmtime") as tenant:
        logs = tenant.call("add", (1, 2)).logs
    assert [len(line.message) for line in logs] == [MIB] * LOGGED_MIB
    assert logs[0].message == "\ufffd" * MIB
