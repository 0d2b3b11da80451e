"""A WASI reactor (a library guest exporting `_initialize`) is initialized once, before its first export runs:
PyPI pii-shield-wasi's Go module trapped in every export ("wasmexport function called before runtime
initialization"), and a C guest's constructors never ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle

pytestmark = pytest.mark.usefixtures("engine_name")
wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler

REACTOR = """(module
  (memory (export "memory") 1 1)
  (global $runs (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $runs (i32.add (global.get $runs) (i32.const 1))) {body})
  (func (export "runs") (result i32) (global.get $runs)))"""


def manifest(kind: str = "library") -> str:
    return f'[guest]\nname = "reactor"\nversion = "0.1.0"\nkind = "{kind}"\n\n[exports.runs]\nresults = ["i32"]\n'


def load(tmp_path: Path, keys: KeyFiles, *, body: str = "") -> Guest:
    wasm = bytes(wasmtime.wat2wasm(REACTOR.replace("{body}", body)))
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=manifest(), guest="reactor")
    return open_guest(read_bundle(bundle, load_trust(keys.trust)))


def test_a_reactor_is_initialized_once_before_its_exports(tmp_path: Path, keys: KeyFiles) -> None:
    with load(tmp_path, keys) as guest:
        assert guest.call("runs", ()) == (1,)
        assert guest.call("runs", ()) == (1,)


def test_a_reactor_whose_initialize_traps_is_not_loaded(tmp_path: Path, keys: KeyFiles) -> None:
    with pytest.raises(GuestError, match="reactor: _initialize trapped: unreachable"):
        load(tmp_path, keys, body="(unreachable)")
