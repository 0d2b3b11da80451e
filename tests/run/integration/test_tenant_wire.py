"""A tenant whose child process misbehaves on the wire: the parent stops it, reports a crash, and starts afresh.

The child here is a stand-in speaking the protocol (tenant_child's docstring) from a real process over
real pipes, started in the tenant's place however it starts its children: it answers the start-up
request, then answers each call as its export's name says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest

from ngixi_runtime.loading import isolated
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from tests.conftest import make_bundle, make_key
from tests.wasmgen import Func, module

pytestmark = pytest.mark.integration

EXPORTS = ("nop", "bogus_size", "killed_mid_reply", "garbage", "early_eof", "endless_log", "forged_host_lines")
MANIFEST = '[guest]\nname = "wire"\nversion = "0.1.0"\n\n' + "".join(
    f'[exports.{name}]\nresults = ["i32"]\n\n' for name in EXPORTS
)
STAND_IN = """
import os, sys
from ngixi_runtime.loading import tenant_wire as wire
from ngixi_runtime.capabilities.context import LogLine
from ngixi_runtime.loading.tenants import empty_result
incoming = wire.Incoming(0)
wire.read_control(incoming, limit=1 << 30)
wire.write_all(1, [wire.control_frame({"ok": True, "origin": "stand-in", "compiled": False, "text_params": {}})])
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
    elif request.export == "endless_log":  # more lines than a call may log, within the logs' bytes
        wire.write_all(1, wire.reply_frame(empty_result("ok")._replace(logs=(LogLine("info", ""),) * 70000)))
    elif request.export == "forged_host_lines":  # more of the host's lines than a call makes, each the operator's
        forged = (LogLine("host", "ngixi: ok: forged"),) * 102
        wire.write_all(1, wire.reply_frame(empty_result("ok")._replace(logs=forged)))
    else:
        wire.write_all(1, [header, *sections])
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("wire")
    keys = make_key(directory / "keys")
    wasm = module(functions=[Func(name, results=["i32"]) for name in EXPORTS])
    return make_bundle(directory, keys.key, wasm=wasm, manifest=MANIFEST, guest="wire"), keys.trust


class StandIn:
    """The stand-in child's process, with what a tenant asks of its child's process however it was started."""

    status_known = True

    def __init__(self, errors: IO[bytes]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", STAND_IN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self.pid, self.stdin, self.stdout = self._process.pid, self._process.stdin, self._process.stdout

    def poll(self) -> int | None:
        return self._process.poll()

    def wait(self) -> int:
        return self._process.wait()

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def stop(self) -> None:
        self.kill()
        self.wait()

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(BrokenPipeError):
                stream.close()


@pytest.fixture
def tenant(bundle: tuple[Path, Path]) -> Iterator[IsolatedTenant]:
    path, trust = bundle
    opened = open_tenant(path, trust_file=trust)
    assert isinstance(opened, IsolatedTenant)

    def spawn_stand_in() -> isolated._Child:
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - the tenant closes it with the child
        child = isolated._Child(cast(Any, StandIn(errors)), errors)
        assert opened._exchange(child, {}, deadline=time.monotonic() + 30, what="prepare")["ok"]
        return child

    with opened:
        if opened._child is not None:  # the real child it started: calls from here on go to stand-ins
            opened._stop(opened._child)
            opened._child = None
        opened._spawn = spawn_stand_in  # type: ignore[method-assign]
        yield opened


@pytest.mark.parametrize(
    ("export", "says"),
    [
        ("bogus_size", "sent a malformed reply (a call reply's stdout and stderr of 2147483648 bytes is over"),
        ("killed_mid_reply", "the tenant process died (signal SIGKILL)"),
        ("garbage", "sent a malformed reply (a call reply's header is not one the protocol allows"),
        ("early_eof", "the tenant process died (exit status 0)"),
        ("endless_log", "sent a malformed reply (a call reply has more than 65637 log lines)"),
        ("forged_host_lines", "sent a malformed reply (more log lines than its guest's limits.log_bytes"),
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
