"""A long-lived Node process that keeps the AssemblyScript compiler loaded, for watch mode and builds.

`node js/asc_server.mjs` answers one JSON line per request (see that file for the protocol);
a warm compile of a small guest costs a fraction of a fresh `asc` run, which pays Node
start-up and compiler loading every time. A process that dies is replaced on the next request.
A build's compiles share one per process (`shared_server`).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from ngixi_build.proc import limited, tool_limits
from ngixi_build.toolchains.assemblyscript import Toolchain
from ngixi_runtime.errors import ToolchainError
from ngixi_runtime.files import sha256_of

log = logging.getLogger(__name__)

_STDERR_LINES_KEPT = 20
_STOP_SECONDS = 3.0
# asc parses the whole standard library on every compile: a larger young generation spares V8
# most of its scavenges then (bench/watch_latency.py shows a dev compile's time).
_NODE_OPTIONS = ("--max-semi-space-size=64",)


class CompilerDied(ToolchainError):
    """The Node process exited before answering; the next request starts a new one."""


class CompileTimedOut(ToolchainError):
    """A compile did not finish in time; the Node process was stopped."""


@dataclass(frozen=True)
class AscReply:
    ok: bool
    diagnostics: str
    # Every file asc asked for (absolute path) → sha256 of the bytes it read, None if absent.
    inputs: Mapping[str, str | None]

    def still_current(self) -> bool:
        """Whether every file asc read still has the same contents (absent ones still absent)."""
        return all(sha256_of(Path(path)) == digest for path, digest in self.inputs.items())


def _reply(message: Mapping[str, object]) -> AscReply:
    diagnostics = str(message.get("diagnostics", ""))
    if message.get("fatal"):
        diagnostics = f"the AssemblyScript compiler crashed (it is restarted):\n{diagnostics}"
    inputs = message.get("inputs", {})
    assert isinstance(inputs, dict)
    return AscReply(ok=bool(message.get("ok")), diagnostics=diagnostics, inputs=inputs)


class _Connection:
    """One Node process, its pending requests and the threads that read its output."""

    def __init__(self, toolchain: Toolchain, project_root: Path, *, own_session: bool) -> None:
        script = resources.files("ngixi_build.toolchains") / "js" / "asc_server.mjs"
        # Bounded as a one-off asc run is; reaching the CPU limit (over many compiles) restarts it, as any death does.
        command = [str(toolchain.node), *_NODE_OPTIONS, str(script), str(toolchain.asc_module)]
        self.process = subprocess.Popen(
            limited(command, tool_limits()),
            cwd=project_root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=own_session,
        )
        log.debug("started the AssemblyScript compiler (node pid %d)", self.process.pid)
        self.pending: dict[int, Future[AscReply]] = {}
        self.alive = True
        self.lock = threading.Lock()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES_KEPT)
        self.threads = [
            threading.Thread(target=self._read_replies, name="asc-replies", daemon=True),
            threading.Thread(target=self._read_stderr, name="asc-stderr", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def send(self, request_id: int, argv: Sequence[str], cwd: Path | None) -> Future[AscReply]:
        future: Future[AscReply] = Future()
        with self.lock:
            if not self.alive:
                future.set_exception(CompilerDied("the AssemblyScript compiler is not running"))
                return future
            self.pending[request_id] = future
        request: dict[str, object] = {"id": request_id, "argv": list(argv)}
        if cwd is not None:
            request["cwd"] = str(cwd)
        line = json.dumps(request) + "\n"
        stdin = self.process.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):  # if it died, the reply reader fails every pending request
            stdin.write(line.encode())
            stdin.flush()
        return future

    def _read_replies(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr_tail.append(line.decode(errors="replace").rstrip())
                continue
            if "ready" in message:
                log.debug("AssemblyScript compiler %s ready", message.get("version"))
                continue
            with self.lock:
                future = self.pending.pop(message["id"], None) if message.get("id") is not None else None
            if future is not None:
                future.set_result(_reply(message))
        self._fail_pending()

    def _read_stderr(self) -> None:
        stderr: IO[bytes] | None = self.process.stderr
        assert stderr is not None
        for raw in stderr:
            self.stderr_tail.append(raw.decode(errors="replace").rstrip())

    def _fail_pending(self) -> None:
        code = self.process.wait()
        self.threads[1].join(timeout=_STOP_SECONDS)
        detail = "\n".join(self.stderr_tail)
        error = CompilerDied(
            f"the AssemblyScript compiler (node) exited with status {code}" + (f":\n{detail}" if detail else "")
        )
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        for future in pending.values():
            future.set_exception(error)

    def stop(self) -> None:
        """Ends the process: end of input first, then SIGTERM, then SIGKILL."""
        stdin = self.process.stdin
        assert stdin is not None
        with contextlib.suppress(OSError):
            stdin.close()
        for escalate in (self.process.terminate, self.process.kill):
            try:
                self.process.wait(timeout=_STOP_SECONDS)
                break
            except subprocess.TimeoutExpired:
                escalate()
        self.process.wait()
        for thread in self.threads:
            thread.join(timeout=_STOP_SECONDS)


class AscServer:
    """Compiles with a warm AssemblyScript compiler; requests are answered in submission order.

    `own_session` keeps the terminal's Ctrl-C from Node (watch mode stops it itself); without it, a signal to the
    build's process group reaches Node as it reached a one-off asc."""

    def __init__(self, toolchain: Toolchain, project_root: Path, *, own_session: bool = True) -> None:
        self._toolchain = toolchain
        self._project_root = project_root
        self._own_session = own_session
        self._connection: _Connection | None = None
        self._ids = itertools.count(1)
        self._starting = threading.Lock()

    def submit(self, argv: Sequence[str], *, cwd: Path | None = None) -> Future[AscReply]:
        """Sends one asc command line (relative paths are from `cwd`, by default the project root); starts Node if
        needed."""
        with self._starting:
            if self._connection is None or not self._connection.alive:
                self._connection = _Connection(self._toolchain, self._project_root, own_session=self._own_session)
            connection = self._connection
        return connection.send(next(self._ids), argv, cwd)

    def compile(self, argv: Sequence[str], *, timeout: float, retry: bool = True, cwd: Path | None = None) -> AscReply:
        """Compiles and waits; if Node dies meanwhile, retries once in a new process (with `retry`)."""
        try:
            return self._wait(self.submit(argv, cwd=cwd), timeout)
        except CompilerDied as died:
            if not retry:
                raise
            log.warning("%s; starting it again", died)
        return self._wait(self.submit(argv, cwd=cwd), timeout)

    def _wait(self, future: Future[AscReply], timeout: float) -> AscReply:
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise CompileTimedOut(f"asc did not finish within {timeout:.0f} s; the compiler was stopped") from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.stop()
            self._connection = None

    def __enter__(self) -> AscServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Shared:
    """The one warm compiler of this process's builds, for one toolchain at a time."""

    lock = threading.Lock()
    toolchain: Path | None = None
    owner = 0  # the process that started it: one inherited through a fork is its parent's
    server: AscServer | None = None


def shared_server(toolchain: Toolchain, project_root: Path) -> AscServer:
    """The warm compiler a build's AssemblyScript compiles share, whatever project each is of (a release builds in
    clean copies; give each compile its `cwd`): started on the first, stopped at exit (or when a compile in this
    process asks for another toolchain); Node also ends when this process dies, at the end of its input."""
    installed = toolchain.root.resolve()  # a release's clean copy links the project's
    with _Shared.lock:
        if _Shared.server is None or _Shared.toolchain != installed or _Shared.owner != os.getpid():
            stop_shared_server()
            _Shared.toolchain, _Shared.owner = installed, os.getpid()
            _Shared.server = AscServer(toolchain, project_root, own_session=False)
        return _Shared.server


@atexit.register
def stop_shared_server() -> None:
    """Stops this process's `shared_server`, if it started one (at exit; a test, between tests)."""
    if _Shared.server is not None and _Shared.owner == os.getpid():
        _Shared.server.close()
    _Shared.server = None
