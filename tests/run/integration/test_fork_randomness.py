"""Tenants forked from one fork server (loading/zygote.py) draw randomness of their own: nothing random is seeded
before the fork, so no two tenants, no two instances in one tenant and no instance made after a failed call repeat
another's draws (docs/host-policy.md, "Randomness in forked tenants")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from ngixi_runtime.errors import GuestError, NgixiError
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote import zygote_pids
from tests.conftest import KeyFiles, make_bundle

pytestmark = pytest.mark.integration

EXPORTS = '[exports.draw]\nresults = ["i64"]\n\n[exports.trap]\nresults = ["i32"]\n\n[capabilities.random]\n'
CORE_MANIFEST = f'[guest]\nname = "g"\nversion = "0.1.0"\n\n{EXPORTS}'
COMPONENT_MANIFEST = f'[guest]\nname = "g"\nversion = "0.1.0"\nabi = "component"\n\n{EXPORTS}'
# `draw` returns eight bytes of WASI's random_get; `trap` traps.
CORE = """(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "draw") (result i64) (drop (call $random_get (i32.const 0) (i32.const 8))) (i64.load (i32.const 0)))
  (func (export "trap") (result i32) unreachable))"""
# `draw` returns wasi:random/random's get-random-u64, or the eight bytes of its get-random-bytes (a list the host
# writes where the guest's bump allocator says); `trap` traps.
COMPONENT = """(component
  (import "wasi:random/random@0.2.0" (instance $random
    (export "get-random-u64" (func (result u64)))
    (export "get-random-bytes" (func (param "len" u64) (result (list u8))))))
  (core module $memory
    (memory (export "memory") 1 1)
    (global $free (mut i32) (i32.const 16))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (global.get $free) (global.set $free (i32.add (global.get $free) (local.get 3)))))
  (core instance $memory (instantiate $memory))
  (core func $u64 (canon lower (func $random "get-random-u64")))
  (core func $bytes (canon lower (func $random "get-random-bytes")
    (memory (core memory $memory "memory")) (realloc (core func $memory "realloc"))))
  (core instance $host (export "u64" (func $u64)) (export "bytes" (func $bytes)))
  (core module $m
    (import "random" "u64" (func $u64 (result i64)))
    (import "random" "bytes" (func $bytes (param i64 i32)))
    (import "memory" "memory" (memory 1 1))
    (func (export "draw") (result i64) DRAW)
    (func (export "trap") (result i32) unreachable))
  (core instance $i (instantiate $m (with "random" (instance $host)) (with "memory" (instance $memory))))
  (func (export "draw") (result s64) (canon lift (core func $i "draw")))
  (func (export "trap") (result s32) (canon lift (core func $i "trap"))))"""
DRAW_U64 = "(call $u64)"
DRAW_BYTES = "(call $bytes (i64.const 8) (i32.const 0)) (i64.load (i32.load (i32.const 0)))"


def _draws(tenant: IsolatedTenant) -> list[int]:
    """Two draws of one instance, then one of the fresh instance made after a failed call."""
    draws = [tenant.call("draw").values[0], tenant.call("draw").values[0]]
    with pytest.raises(GuestError, match="trap trapped"):
        tenant.call("trap")
    return [*draws, tenant.call("draw").values[0]]


GUESTS = {
    "core": (CORE, CORE_MANIFEST),
    "component-u64": (COMPONENT.replace("DRAW", DRAW_U64), COMPONENT_MANIFEST),
    "component-bytes": (COMPONENT.replace("DRAW", DRAW_BYTES), COMPONENT_MANIFEST),
}


def _bundle(keys: KeyFiles, directory: Path, kind: str) -> Path:
    wat, manifest = GUESTS[kind]
    return make_bundle(directory / "bundle", keys.key, wasm=bytes(wasmtime.wat2wasm(wat)), manifest=manifest, guest="g")


@pytest.mark.parametrize(
    ("kind", "engine"),
    [("core", "wasmer"), ("core", "wasmtime"), ("component-u64", "wasmtime"), ("component-bytes", "wasmtime")],
)
def test_tenants_forked_from_one_server_draw_apart(
    kind: str, engine: str, keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tenants of one fork server (and of two operators' customers, maybe) would share whatever the server had
    seeded before forking them: a guest's keys, tokens and nonces would be another's. Six draws, all different."""
    pytest.importorskip(engine)
    monkeypatch.setenv("NGIXI_ENGINE", engine)
    bundle = _bundle(keys, tmp_path, kind)
    draws: list[int] = []
    servers = []
    for _ in range(2):
        with open_tenant(bundle, trust_file=keys.trust) as tenant:
            assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
            servers.append(_parent_of(tenant.pid))
            draws += _draws(tenant)
    assert servers[0] == servers[1] and servers[0] in zygote_pids()  # both forked from one server
    assert len(set(draws)) == len(draws), draws


def _parent_of(pid: int) -> int:
    """The parent process id of `pid` (a tenant's: the fork server that forked it)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


# Draws in-process, then from two tenants forked under `tenants_forked_here` (as `ngixi run` forks its tenant): one
# line each.
AFTER_IN_PROCESS = """import sys
from pathlib import Path
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote_server import tenants_forked_here
bundle, trust = Path(sys.argv[1]), Path(sys.argv[2])
with open_tenant(bundle, trust_file=trust, isolated=False) as tenant:
    print(tenant.call("draw").values[0])
with tenants_forked_here():
    for _ in range(2):
        with open_tenant(bundle, trust_file=trust) as tenant:
            print(tenant.call("draw").values[0], tenant.call("draw").values[0])
"""


def test_a_host_that_drew_in_process_forks_no_tenant_sharing_its_generator(keys: KeyFiles, tmp_path: Path) -> None:
    """Wasmtime's WASI seeds each instance's generator from its thread's, which a fork copies: two children forked
    by a thread that had made a WASI instance drew the same numbers. A process makes each WASI instance just before
    it starts the epoch ticker's thread, which never ends, and `spawn_tenant` forks from this process only while it
    is single-threaded: the host's tenants then come from a fork server, which never made an instance."""
    bundle = _bundle(keys, tmp_path, "component-bytes")
    ran = subprocess.run(
        [sys.executable, "-I", "-c", AFTER_IN_PROCESS, str(bundle), str(keys.trust)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [line.split() for line in ran.stdout.splitlines()]
    assert len(rows) == 3, ran
    draws = [draw for row in rows for draw in row]
    assert len(set(draws)) == len(draws) == 5, rows


@pytest.mark.parametrize(
    ("interface", "function"), [("insecure", "get-insecure-random-u64"), ("insecure-seed", "insecure-seed")]
)
def test_wasmtime_s_insecure_random_is_no_guest_s(
    interface: str, function: str, keys: KeyFiles, tmp_path: Path
) -> None:
    """wasi:random/insecure and insecure-seed, which Wasmtime's WASI seeds for each instance, are no capability's:
    a component importing either is refused before it runs, so no tenant draws from them."""
    result = "u64" if interface == "insecure" else "(tuple u64 u64)"
    wat = f"""(component
  (import "wasi:random/{interface}@0.2.0" (instance $random (export "{function}" (func (result {result})))))
  (core module $m (func (export "draw") (result i64) (i64.const 0)) (func (export "trap") (result i32) unreachable))
  (core instance $i (instantiate $m))
  (func (export "draw") (result s64) (canon lift (core func $i "draw")))
  (func (export "trap") (result s32) (canon lift (core func $i "trap"))))"""
    wasm = bytes(wasmtime.wat2wasm(wat))
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=COMPONENT_MANIFEST, guest="g")
    with pytest.raises(NgixiError, match=f"the component imports wasi:random/{interface}@0.2.0, which no Ngixi"):
        open_tenant(bundle, trust_file=keys.trust, isolated=False)
