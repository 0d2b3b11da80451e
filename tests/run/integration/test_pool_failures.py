"""A TenantPool serving several tenants: what fails one tenant's call stays that tenant's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from ngixi_runtime.errors import InvalidInput, NgixiError, VerificationError
from ngixi_runtime.loading import tenants
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, CallResult, InProcessTenant, TenantPool, open_tenant
from tests.conftest import KeyFiles, make_bundle
from tests.integration import descriptors_of

pytestmark = pytest.mark.integration

WAT = """(module (memory (export "memory") 1 1)
  (func (export "run") (result i32) (i32.const 1))
  (func $recurse (export "recurse") (result i32) (call $recurse)))"""
MANIFEST = """[guest]
name = "g"
version = "0.1.0"

[exports.run]
results = ["i32"]

[exports.recurse]
results = ["i32"]
"""


def test_one_tenant_that_cannot_restart_fails_its_own_call_alone(tmp_path: Path, keys: KeyFiles) -> None:
    """call_many caught only GuestError: a tenant whose next child could not start (its bundle file rewritten in
    place since it was verified) raised out of call_many, and every other tenant's result of that batch was lost."""
    wasm = bytes(wasmtime.wat2wasm(WAT))
    first = make_bundle(tmp_path / "a", keys.key, wasm=wasm, manifest=MANIFEST, guest="g")
    second = make_bundle(tmp_path / "b", keys.key, wasm=wasm, manifest=MANIFEST, guest="g")
    other = make_bundle(tmp_path / "c", keys.key, wasm=wasm, manifest=MANIFEST, guest="g", sequence=2)
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:
        pool.add("a", first)
        pool.add("b", second)
        with pytest.raises(CallFailed, match="call stack exhausted"):
            pool.call("a", "recurse")  # its child is replaced, on either engine: the next call starts another
        with open(first, "r+b") as rewritten:  # as `cp` writes over a file: in place
            rewritten.write(other.read_bytes())
            rewritten.truncate()
        refused, served = pool.call_many([("a", "run", ()), ("b", "run", ())])
    assert isinstance(refused, VerificationError)
    assert "the bundle changed since it was verified" in str(refused)
    assert isinstance(served, CallResult) and served.values == (1,)


def test_one_name_added_from_two_threads_at_once_opens_one_tenant(tmp_path: Path, keys: KeyFiles) -> None:
    """add looked for the name, then opened the tenant and stored it: two threads adding one name at once both opened
    one, and the first stored was replaced and never closed (its child process ran on until the host ended). An
    unknown name was a KeyError, which call_many let out, losing the batch."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    both = threading.Barrier(2)
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:

        def add(_: int) -> str:
            both.wait(timeout=10)
            try:
                pool.add("a", bundle)
            except InvalidInput as refused:
                return str(refused)
            return "added"

        with ThreadPoolExecutor(2) as threads:
            outcomes = sorted(threads.map(add, range(2)))
        assert outcomes == ["added", "tenant 'a' is already in the pool; close the pool or use another name"]
        unknown, served = pool.call_many([("b", "run", ()), ("a", "run", ())])
    assert isinstance(unknown, NgixiError) and str(unknown).startswith("tenant 'b' is not in the pool")
    assert isinstance(served, CallResult) and served.values == (1,)


def test_a_tenant_whose_pool_closed_while_it_opened_is_closed_too(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() closed the tenants it found, and add() then stored the one it was opening: its child process and
    bundle descriptor lived until the host ended (close() also iterated the names while add() changed them)."""
    bundle = make_bundle(tmp_path, keys.key, wasm=bytes(wasmtime.wat2wasm(WAT)), manifest=MANIFEST, guest="g")
    pool = TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state")
    before = descriptors_of().items()

    def closing_meanwhile(*args: Any, **kwargs: Any) -> IsolatedTenant | InProcessTenant:
        opened = open_tenant(*args, **kwargs)
        assert opened.call("run").values == (1,)  # its child is running
        pool.close()
        return opened

    monkeypatch.setattr(tenants, "open_tenant", closing_meanwhile)
    with pytest.raises(InvalidInput, match=r"^tenant 'a': the pool was closed while it was being added$"):
        pool.add("a", bundle)
    assert descriptors_of().items() - before == set()  # its bundle and its child's pipes (others may have closed)
    with pytest.raises(InvalidInput, match=r"^tenant 'b': the pool is closed; add tenants to a new one$"):
        pool.add("b", bundle)
