"""A component guest after a failed call, and a call whose result is lifted past its deadline, in-process and
isolated: Wasmtime never enters a component instance again once a call into it failed (the component model's
rule), so the tenant must not keep serving that instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from tests.conftest import make_bundle, make_key

pytestmark = pytest.mark.integration

# `logs(n)` logs "hello" n times; `trap` traps; `spin` loops until its deadline.
COMPONENT = """(component
  (import "ngixi:host/log@0.1.0" (instance $log (export "write" (func (param "message" string)))))
  (core module $memory (memory (export "memory") 1 1) (data (i32.const 0) "hello"))
  (core instance $memory (instantiate $memory))
  (core func $write (canon lower (func $log "write") (memory (core memory $memory "memory"))))
  (core instance $host (export "write" (func $write)))
  (core module $m
    (import "log" "write" (func $log (param i32 i32)))
    (func (export "logs") (param $n i32) (result i32) (local $i i32)
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $log (i32.const 0) (i32.const 5))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (local.get $n))
    (func (export "trap") (result i32) unreachable)
    (func (export "spin") (result i32) (loop $again (br $again)) (i32.const 0)))
  (core instance $i (instantiate $m (with "log" (instance $host))))
  (func (export "logs") (param "n" u32) (result u32) (canon lift (core func $i "logs")))
  (func (export "trap") (result u32) (canon lift (core func $i "trap")))
  (func (export "spin") (result u32) (canon lift (core func $i "spin"))))"""
MANIFEST = """[guest]
name = "g"
version = "0.1.0"
abi = "component"

[exports.logs]
[exports.trap]
[exports.spin]

[capabilities.log]

[limits]
memory_pages = 1
log_bytes = 100
timeout_ms = 300
"""
# `bytes(n)` returns a list<bool> of n falses, which Wasmtime lifts one value at a time, in the host, and wasmtime-py
# converts one at a time (a list<u8> is copied in bulk: wasmtime_fastpath.components.component_export).
LIST_COMPONENT = """(component
  (core module $m (memory (export "memory") 16 16)
    (func (export "bytes") (param $n i32) (result i32)
      (i32.store (i32.const 0) (i32.const 8)) (i32.store (i32.const 4) (local.get $n)) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func (export "bytes") (param "n" u32) (result (list bool))
    (canon lift (core func $i "bytes") (memory (core memory $i "memory")))))"""
LIST_MANIFEST = '[guest]\nname = "g"\nversion = "0.1.0"\nabi = "component"\n\n[exports.bytes]\n\n'
LIST_MANIFEST += "[limits]\nmemory_pages = 16\ntimeout_ms = 200\n"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    directory = tmp_path_factory.mktemp("components")
    keys = make_key(directory / "keys")
    failing = make_bundle(
        directory / "failing", keys.key, wasm=bytes(wasmtime.wat2wasm(COMPONENT)), manifest=MANIFEST, guest="g"
    )
    listing = make_bundle(
        directory / "list", keys.key, wasm=bytes(wasmtime.wat2wasm(LIST_COMPONENT)), manifest=LIST_MANIFEST, guest="g"
    )
    return failing, listing, keys.trust


@pytest.fixture(params=["in-process", "isolated"])
def tenant(
    request: pytest.FixtureRequest, bundles: tuple[Path, Path, Path]
) -> Iterator[InProcessTenant | IsolatedTenant]:
    failing, _, trust = bundles
    with open_tenant(failing, trust_file=trust, isolated=request.param == "isolated") as opened:
        yield opened


def test_the_call_after_a_failed_one_runs_a_fresh_instance(tenant: InProcessTenant | IsolatedTenant) -> None:
    """After a quota, a trap or a timeout, every later call failed with `wasm trap: cannot enter component instance`,
    in-process and isolated (the child was kept), and a timeout read `spin trapped: interrupt` (outcome trap)."""
    assert tenant.call("logs", (1,)).values == (1,)
    failures = []
    for export, args in (("logs", (100,)), ("trap", ()), ("spin", ())):
        with pytest.raises(GuestError) as failed:
            tenant.call(export, args)
        failures.append((failed.value.outcome, str(failed.value)))
        assert tenant.call("logs", (2,)).values == (2,)
    if isinstance(tenant, IsolatedTenant):  # a loaded host may meet its own deadline before the child's reply
        failures[-1] = (failures[-1][0], failures[-1][1].removesuffix("; the tenant was stopped"))
    assert failures == [
        ("quota", "g: log output exceeded its quota of 100 bytes (limits.log_bytes)"),
        ("trap", "g: trap trapped: unreachable"),
        ("timeout", "g: spin exceeded its 300 ms timeout (limits.timeout_ms)"),
    ]


def test_a_result_lifted_past_the_deadline_is_a_timeout_in_process(bundles: tuple[Path, Path, Path]) -> None:
    """Wasmtime lifts a list<bool> result into one value per element, and wasmtime-py makes a Python bool of each, in
    the host where no epoch deadline reaches: a million of them took about a second, and the call came back a success
    long past its timeout. The calls of three elements around it must end within that timeout on a loaded machine."""
    _, listing, trust = bundles
    with open_tenant(listing, trust_file=trust, isolated=False) as tenant:
        assert tenant.call("bytes", (3,)).values == ([False] * 3,)
        with pytest.raises(GuestError, match=r"^g: bytes exceeded its 200 ms timeout \(limits.timeout_ms\)$") as late:
            tenant.call("bytes", (600_000,))
        assert late.value.outcome == "timeout"
        assert tenant.call("bytes", (3,)).values == ([False] * 3,)
