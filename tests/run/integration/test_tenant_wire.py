"""A tenant whose child process misbehaves on the wire: the parent stops it, reports a crash, and starts afresh.

The child here is a stand-in speaking the protocol (tenant_child's docstring) from a real process over
real pipes: it answers the start-up request, then answers each call as its export's name says.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime.loading.tenants import CallFailed, IsolatedTenant, open_tenant
from tests.conftest import make_bundle, make_key
from tests.wasmgen import Func, module

pytestmark = pytest.mark.integration

EXPORTS = ("nop", "bogus_size", "killed_mid_reply", "garbage", "early_eof")
MANIFEST = '[guest]\nname = "wire"\nversion = "0.1.0"\n\n' + "".join(
    f'[exports.{name}]\nresults = ["i32"]\n\n' for name in EXPORTS
)
STAND_IN = """
import os, sys
from ngixi_runtime.loading import tenant_wire as wire
from ngixi_runtime.loading.tenants import empty_result
incoming = wire.Incoming(0)
wire.read_control(incoming, limit=1 << 30)
wire.write_all(1, [wire.control_frame({"ok": True, "origin": "stand-in", "compiled": False})])
while (request := wire.read_call(incoming)) is not None:
    header, *sections = wire.reply_frame(empty_result("ok"))
    fields = list(wire.REPLY.unpack(header))
    if request.export == "bogus_size":
        fields[-3] = 1 << 31  # stdout
        os.write(1, wire.REPLY.pack(*fields))
    elif request.export == "killed_mid_reply":
        fields[-3] = 10
        os.write(1, wire.REPLY.pack(*fields) + b"half")
        os.kill(os.getpid(), 9)
    elif request.export == "garbage":
        os.write(1, b"not a frame at all " * 10)
    elif request.export == "early_eof":
        sys.exit(0)
    else:
        wire.write_all(1, [header, *sections])
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("wire")
    keys = make_key(directory / "keys")
    wasm = module(functions=[Func(name, results=["i32"]) for name in EXPORTS])
    return make_bundle(directory, keys.key, wasm=wasm, manifest=MANIFEST, guest="wire"), keys.trust


@pytest.fixture
def tenant(bundle: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[IsolatedTenant]:
    popen = subprocess.Popen

    def stand_in(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        if argv[-1] == "ngixi_runtime.loading.tenant_child":
            argv = [sys.executable, "-I", "-c", STAND_IN]
        return popen(argv, **options)

    monkeypatch.setattr(subprocess, "Popen", stand_in)  # only the tenant child is replaced
    path, trust = bundle
    opened = open_tenant(path, trust_file=trust)
    assert isinstance(opened, IsolatedTenant) and opened.origin == "stand-in"
    with opened:
        yield opened


@pytest.mark.parametrize(
    ("export", "says"),
    [
        ("bogus_size", "sent a malformed reply (a call reply's stdout and stderr of 2147483648 bytes is over"),
        ("killed_mid_reply", "the tenant process died (signal SIGKILL)"),
        ("garbage", "sent a malformed reply (a call reply's header is not one the protocol allows"),
        ("early_eof", "the tenant process died (exit status 0)"),
    ],
)
def test_a_child_misbehaving_on_the_wire_is_a_crash_and_the_next_call_starts_afresh(
    tenant: IsolatedTenant, export: str, says: str
) -> None:
    assert tenant.call("nop").values == ()
    first = tenant.pid
    with pytest.raises(CallFailed) as failure:
        tenant.call(export)
    assert failure.value.outcome == "crash" and str(failure.value).startswith(f"wire: {export}: ")
    assert says in str(failure.value)
    assert tenant.pid is None
    assert tenant.call("nop").metrics.outcome == "ok" and tenant.pid not in {None, first}
