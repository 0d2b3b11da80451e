"""Linking a core guest's imports: each function once, and a refusal to link is one line naming what failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.base import FD_WRITE
from ngixi_runtime.capabilities.context import HostContext
from ngixi_runtime.capabilities.linking import core_imports
from ngixi_runtime.engines.base import engine_named
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import FakeMemory, KeyFiles, make_bundle
from tests.run.unit.test_loader import ADD
from tests.wasmgen import module

FD_WRITE_KEY = (FD_WRITE.module, FD_WRITE.name)


def test_a_function_imported_twice_is_linked_once() -> None:
    ctx = HostContext(guest="g", log_quota=10, stdio_quota=10, memory=FakeMemory(), grants=frozenset({"stdio"}))
    linked = core_imports(ctx, [FD_WRITE_KEY, ("wasi_snapshot_preview1", "proc_exit"), FD_WRITE_KEY])
    assert [host_import.qualified for host_import, _ in linked] == [
        "wasi_snapshot_preview1.fd_write",
        "wasi_snapshot_preview1.proc_exit",
    ]


def test_wasmtimes_refusal_to_link_names_the_guest_and_the_import() -> None:
    wasmtime = pytest.importorskip("wasmtime")
    from ngixi_runtime.engines.wasmtime import Deadline, _define_imports

    imports = [(FD_WRITE, lambda *_: 0)] * 2
    with pytest.raises(NgixiError) as refused:
        _define_imports(wasmtime.Linker(wasmtime.Engine()), imports, Deadline("probe", 1000))
    message = str(refused.value)
    assert message.startswith("probe: cannot link its import wasi_snapshot_preview1.fd_write: ")
    assert "\n" not in message


def test_an_engines_unexpected_failure_to_link_is_one_line(
    tmp_path: Path, keys: KeyFiles, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise KeyError(7)

    monkeypatch.setattr(engine_named(engine_name), "instantiate", broken)
    bundle = read_bundle(make_bundle(tmp_path, keys.key, wasm=module(functions=[ADD])), load_trust(keys.trust))
    with pytest.raises(NgixiError, match=r"^hello: cannot link the guest: KeyError: 7$"):
        open_guest(bundle)
