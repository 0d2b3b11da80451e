"""Host functions that could outlive a guest's call: a guest inside one is past the engine's deadline, so each ends its
own work at the call's deadline."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.capabilities.fs import FsOptions, Preopen
from ngixi_runtime.capabilities.linking import core_imports, open_context
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import Errno
from tests.conftest import FakeMemory

DATA, BUFFER, OUT = 3, 1024, 512


def readdir(ctx: HostContext) -> int:
    ((_, fd_readdir),) = core_imports(ctx, [("wasi_snapshot_preview1", "fd_readdir")])
    result = fd_readdir(DATA, BUFFER, 2048, 0, OUT)
    assert isinstance(result, int)
    return result


def test_fd_readdir_ends_at_the_calls_deadline(tmp_path: Path) -> None:
    """A directory of a million names (an operator's ro preopen, or the guest's own under max_files = 1000000) took
    seconds to read and sort in one fd_readdir, past timeout_ms; it looks at the call's deadline every 1,024 entries
    now, as random_get does, so the host stops reading there."""
    (tmp_path / "files" / "data").mkdir(parents=True)
    for index in range(3):
        (tmp_path / "files" / "data" / f"{index}.txt").write_text("x")
    options = FsOptions((Preopen("/data", "data", "ro"),))
    ctx = open_context("g", {"fs": options}, log_quota=0, stdio_quota=0, sandbox=Sandbox.under(tmp_path))
    ctx.memory = FakeMemory(8192)
    try:
        ctx.call_ends_at = math.inf
        assert readdir(ctx) == Errno.SUCCESS
        ctx.call_ends_at = time.monotonic() - 0.001
        with pytest.raises(GuestError, match=r"^g: reached its limits.timeout_ms while reading a directory") as ended:
            readdir(ctx)
        assert ended.value.outcome == "timeout"
    finally:
        ctx.close()
