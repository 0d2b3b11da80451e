"""What the host functions of one guest instance share: its memory, captured output, quotas and granted states.

The state of each granted capability (an open filesystem, an HTTP client, a store) is kept by the
capability's name; nothing here knows which capabilities exist.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.printable import clipped
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import GuestMemory
from ngixi_runtime.spec.sandbox_layout import KV_STORE

HostFunction = Callable[..., int | None]
Address = tuple[str, int]

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")  # a guest's log lines' levels
HOST_LOG_LEVEL = "host"  # log lines the host adds for the operator
# The host's own lines a call may add, and the characters of each: they count against no quota of the guest's, which
# chooses what they quote (a refused request's URL), and a guest asking again and again for a refused URL made a line
# of 8 KB each time (180 MB in 5 s in-process; isolated, its child was stopped as sending "a malformed reply").
HOST_LINES_PER_CALL = 100
# A guest's log lines in one call, whatever its log_bytes: each line costs the host memory beside its bytes, so an
# empty line (one byte of the quota) is not repeated without end under a large quota.
LOG_LINES_PER_CALL = 65536
HOST_LINE_CHARACTERS = 2000
# Standard input a caller gives a guest: the bytes, or a reader asked only when the guest is granted stdin
# (`ngixi run` reads its own stdin so, and never for a guest that may not read it) for at most `limit + 1` bytes by
# a deadline (time.monotonic), raising TimeoutError when its input has not ended by then (`files.read_by`).
StdinReader = Callable[[int, float], bytes]
Stdin = bytes | StdinReader


# Where a guest's stdout (1) and stderr (2) go as they are written, instead of into its call's result (`ngixi run`
# passes them on to its own): takes a write's bytes and the call's deadline (time.monotonic), by which a reader
# must take them, else TimeoutError; False when the stream's reader is gone (a closed pipe).
StdioSink = Callable[[int, bytes, float], bool]


def read_whole(reader: StdinReader, limit: int, timeout_ms: int, *, subject: str) -> bytes:
    """At most `limit + 1` bytes from `reader` (a `Stdin` reader), refused in one line naming `subject` and saying
    what to do when they have not ended within `timeout_ms`: a guest's granted stdin and `ngixi run --input -` alike
    (a file redirected to standard input serves both)."""
    try:
        return reader(limit, time.monotonic() + timeout_ms / 1000)
    except TimeoutError:
        raise InvalidInput(
            f"{subject} did not end within limits.timeout_ms = {timeout_ms} ms (it is read whole first); close it "
            "sooner (end of file), or redirect it from a file (< FILE)"
        ) from None


class StdinState:
    """The input of one instance, and how much of it the guest has read."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.position

    def read(self, length: int) -> bytes:
        chunk = self.data[self.position : self.position + length]
        self.position += len(chunk)
        return chunk

    def close(self) -> None:
        self.data = b""


class GuestExit(Exception):
    """Raised by proc_exit to unwind the guest; carries its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit {code}")
        self.code = code


class LogLine(NamedTuple):
    level: str
    message: str


# Where a guest's log lines (and the host's own for the operator) go as they are logged, instead of into its call's
# result (`ngixi run` shows them on its stderr, in order with the guest's stdout and stderr), with the call's deadline
# (time.monotonic), by which a sink that cannot pass a line on raises TimeoutError, as a `StdioSink` does.
LogSink = Callable[[LogLine, float], None]


class GuestOutput:
    """What the guest logged, printed and called in the current call."""

    __slots__ = (
        "host_calls",
        "host_lines",
        "log_bytes",
        "log_lines",
        "logs",
        "on_log",
        "stderr",
        "stdout",
        "streamed",
    )

    def __init__(
        self,
        logs: list[LogLine] | None = None,
        stdout: bytearray | None = None,
        stderr: bytearray | None = None,
        log_bytes: int = 0,
        host_calls: Counter[str] | None = None,
        *,
        streamed: int = 0,
        on_log: Callable[[LogLine], None] | None = None,
    ) -> None:
        self.on_log = on_log  # where log lines go as they are logged, instead of into `logs`
        self.logs = [] if logs is None else logs
        self.stdout = bytearray() if stdout is None else stdout
        self.stderr = bytearray() if stderr is None else stderr
        self.log_bytes = log_bytes
        self.host_calls = Counter() if host_calls is None else host_calls
        self.streamed = streamed  # stdout and stderr bytes passed on as written (`StdioSink`), not kept here
        self.host_lines = 0  # the host's own lines of this call, shown or not
        self.log_lines = 0  # the guest's log lines of this call, kept or passed on

    def take(self) -> GuestOutput:
        """Everything one call produced, leaving this empty: output quotas apply per call."""
        taken = GuestOutput(
            self.logs, self.stdout, self.stderr, self.log_bytes, self.host_calls, streamed=self.streamed
        )
        self.logs, self.stdout, self.stderr, self.log_bytes, self.host_calls, self.streamed = (
            [],
            bytearray(),
            bytearray(),
            0,
            Counter(),
            0,
        )
        self.host_lines = self.log_lines = 0
        return taken

    @property
    def stdio_bytes(self) -> int:
        """What stdout and stderr took in this call, kept or passed on."""
        return len(self.stdout) + len(self.stderr) + self.streamed

    @property
    def size(self) -> int:
        return self.log_bytes + self.stdio_bytes

    @property
    def empty(self) -> bool:
        """Whether nothing was logged, printed or called since the last `take`."""
        return not (self.logs or self.stdout or self.stderr or self.host_calls or self.log_bytes or self.streamed)

    def log(self, line: LogLine) -> None:
        """Keeps a log line, or passes it on to `on_log` (the quota was checked)."""
        if self.on_log is None:
            self.logs.append(line)
        else:
            self.on_log(line)

    def host_says(self, message: str) -> None:
        """A line from the host for the operator (a refused request, a storage failure), among the logs: the first
        `HOST_LINES_PER_CALL` of a call, each cut in the middle past `HOST_LINE_CHARACTERS`, then one that says
        the rest are left out."""
        self.host_lines += 1
        if self.host_lines <= HOST_LINES_PER_CALL:
            self.log(LogLine(HOST_LOG_LEVEL, clipped(message, HOST_LINE_CHARACTERS)))
        elif self.host_lines == HOST_LINES_PER_CALL + 1:
            left_out = f"this call's further lines from the host are left out (at most {HOST_LINES_PER_CALL} a call)"
            self.log(LogLine(HOST_LOG_LEVEL, left_out))


class CallData:
    """The current call's input and the output the guest wrote, for the call data ABI (capabilities/data.py)."""

    __slots__ = ("export", "input", "input_limit", "output", "output_limit")

    def __init__(self, input_limit: int = 1 << 20, output_limit: int = 1 << 20) -> None:
        self.input_limit = input_limit
        self.output_limit = output_limit
        self.export = ""
        self.input = b""
        self.output = bytearray()

    def begin(self, export: str, data: bytes) -> None:
        self.export, self.input = export, data
        if self.output:
            self.output = bytearray()

    def take_output(self) -> bytes:
        """What the guest wrote in this call, leaving nothing behind (the input too is let go)."""
        self.input = b""
        if not self.output:
            return b""
        taken, self.output = bytes(self.output), bytearray()
        return taken


class Sandbox(NamedTuple):
    """Where one tenant's guest may touch the host: the root its fs preopens live under, its kv database.

    `http_routes` are the operator's overrides of where a (host, port) connects, like curl's
    --connect-to; the allowlist is still checked against the URL the guest asked for.
    """

    files: Path
    kv_database: Path
    http_routes: Mapping[Address, Address] = MappingProxyType({})
    # ngixi's own state (the trust file, rollback state, the AOT cache and this user's keys, a project's .ngixi/),
    # which no preopen may hold: a guest there could change what this host trusts and runs. None: the loader's.
    state_paths: tuple[str, ...] | None = None
    # The operator's policy's capabilities.fs.host_roots, which each preopen must lie within once resolved too (a
    # symbolic link the guest made under one could lead elsewhere in its files); None: no such ceiling.
    host_roots: tuple[str, ...] | None = None

    @classmethod
    def under(cls, directory: Path) -> Sandbox:
        """The layout of a sandbox directory: `files/` and `kv.sqlite3`."""
        return cls(directory / "files", directory / KV_STORE)

    def to_json(self) -> dict[str, Any]:
        routes = [[*source, *target] for source, target in self.http_routes.items()]
        state = None if self.state_paths is None else list(self.state_paths)
        roots = None if self.host_roots is None else list(self.host_roots)
        return {
            "files": str(self.files),
            "kv_database": str(self.kv_database),
            "http_routes": routes,
            "state": state,
            "host_roots": roots,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sandbox:
        routes = {(host, port): (address, target) for host, port, address, target in raw["http_routes"]}
        state = None if raw.get("state") is None else tuple(raw["state"])
        roots = None if raw.get("host_roots") is None else tuple(raw["host_roots"])
        return cls(Path(raw["files"]), Path(raw["kv_database"]), routes, state, roots)


class CapabilityState(Protocol):
    """A granted capability's state in one instance (its open files, its client, its store)."""

    def close(self) -> None: ...


DEFAULT_OPEN_FILES = 128  # limits.open_files unless the manifest says otherwise
# Directories one path's resolution holds open at once (capabilities/wasi_paths.py), each a host descriptor; a call
# resolving two paths (a rename, a link) holds twice as many.
MAX_PATH_DEPTH = 256


def no_engine_deadline() -> None:
    """The `engine_reserve` of a guest that no engine deadline stops (on Wasmer, or before it is instantiated)."""


class HostContext:
    """What host functions of one instance share: its memory, quotas, captured output and capability states."""

    __slots__ = (
        "aborted",
        "args",
        "call_ends_at",
        "clock_origin_ns",
        "closers",
        "data",
        "engine_reserve",
        "env",
        "grants",
        "guest",
        "log_quota",
        "memory",
        "on_stdio",
        "open_files",
        "out_of_memory",
        "output",
        "states",
        "stdin",
        "stdio_quota",
    )  # fmt: skip

    def __init__(
        self,
        guest: str,
        log_quota: int,
        stdio_quota: int,
        *,
        memory: GuestMemory | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] = MappingProxyType({}),
        stdin: bytes = b"",  # what the caller gave the guest to read on fd 0 (capabilities/stdin.py)
        on_log: LogSink | None = None,
        grants: frozenset[str] = frozenset(),
        open_files: int = DEFAULT_OPEN_FILES,
        on_stdio: StdioSink | None = None,
    ) -> None:
        self.guest = guest
        self.log_quota = log_quota
        self.stdio_quota = stdio_quota
        self.memory = memory
        self.args = args
        self.env = env
        self.stdin = stdin
        self.output = GuestOutput(on_log=None if on_log is None else self._by_the_deadline(on_log))
        self.on_stdio = on_stdio
        self.grants = grants
        self.open_files = open_files  # limits.open_files: WASI descriptors open at once
        self.states: dict[str, CapabilityState] = {}  # by capability name
        self.closers: list[Callable[[], None]] = []  # run first by close()
        self.call_ends_at = math.inf  # when the current call reaches limits.timeout_ms (time.monotonic)
        self.engine_reserve: Callable[[], None] = no_engine_deadline  # the instance's `reserve_return_time`
        self.clock_origin_ns = time.monotonic_ns()  # where the guest's monotonic clock reads 0 (capabilities/clock.py)
        self.data = CallData()
        self.aborted: str | None = None  # the guest's abort message in the current call (its trap follows)
        # Whether a component's runtime said it ran out of memory in the current call (log.py, component.py).
        self.out_of_memory = False

    @property
    def mem(self) -> GuestMemory:
        if self.memory is None:
            raise GuestError(f"{self.guest}: called a host function before its memory was linked")
        return self.memory

    def reserve_return_time(self) -> None:
        """For a host function that answered TIMEOUT because call_ends_at came: the guest is left time to take it and
        return (RETURN_RESERVE_SECONDS, once per call), where its engine would stop it at the deadline."""
        self.engine_reserve()

    def stdio_room(self) -> int:
        """How many more bytes stdout and stderr may take in this call."""
        return max(0, self.stdio_quota - self.output.stdio_bytes)

    def capture_stdio(self, fd: int, data: bytes) -> bool:
        """Keeps what the guest wrote to stdout (1) or stderr (2), or passes it on to `on_stdio`, within its quota
        (core and component guests); False if the stream's reader is gone (the guest's write fails with EPIPE)."""
        if len(data) > self.stdio_room():
            raise GuestError(
                f"{self.guest}: stdout/stderr exceeded its quota of {self.stdio_quota} bytes (limits.stdout_bytes)",
                outcome="quota",
            )
        if self.on_stdio is None:
            (self.output.stdout if fd == 1 else self.output.stderr).extend(data)
            return True
        if not data:
            return True
        self.output.streamed += len(data)
        try:
            return self.on_stdio(fd, data, self.call_ends_at)
        except TimeoutError:
            raise self._reader_too_slow("stdout" if fd == 1 else "stderr") from None

    def _by_the_deadline(self, sink: LogSink) -> Callable[[LogLine], None]:
        """Passes log lines on to `sink` by the call's deadline: a reader that takes nothing by then ends the call."""

        def pass_on(line: LogLine) -> None:
            try:
                sink(line, self.call_ends_at)
            except TimeoutError:
                raise self._reader_too_slow("log lines") from None

        return pass_on

    def _reader_too_slow(self, output: str) -> GuestError:
        """The call's end as a timeout: the reader of the guest's `output` took nothing by the call's deadline
        (a sink's TimeoutError)."""
        return GuestError(
            f"{self.guest}: reached its limits.timeout_ms while the reader of its {output} took nothing",
            outcome="timeout",
        )

    def close(self) -> None:
        """Releases the instance (what registered in `closers`), then each capability's state."""
        for closer in self.closers:
            closer()
        for state in self.states.values():
            state.close()
