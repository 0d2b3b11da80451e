"""The frames a tenant and its child process exchange over their pipes (the protocol: `tenant_child`'s docstring).

Every frame starts with a fixed `struct` header giving its kind and the size of each section that
follows; bytes (input, output, stdout, stderr) and a core guest's numbers travel raw, and JSON only
carries what is small or rare (arguments, a component's values, logs, host call counts, an error).
A frame goes out in one write and is read with as few reads as the pipe allows. The parent never
trusts what its child sends: each size is held to what the manifest's limits allow before anything
is read for it, every number is held to the range it can have, and anything malformed is a `WireError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import select
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ngixi_runtime.capabilities.context import (
    HOST_LINE_CHARACTERS,
    HOST_LINES_PER_CALL,
    HOST_LOG_LEVEL,
    LOG_LEVELS,
    LOG_LINES_PER_CALL,
    LogLine,
)
from ngixi_runtime.errors import ERROR_EXIT_CODES, OUTCOMES
from ngixi_runtime.guest.data import MAX_JSON_DEPTH
from ngixi_runtime.guest.manifest import Limits
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.wit_json import from_wire, to_wire

if TYPE_CHECKING:
    from ngixi_runtime.loading.calls import CallMetrics, CallResult

CONTROL = struct.Struct("<BxxxI")  # kind, size of the JSON document
CALL = struct.Struct("<BBxxIII")  # kind, flags, sizes of the export's name, the JSON arguments and the input
# kind, ok, flags, memory pages, duration in ms, output_bytes, exit code; sizes of the values (packed numbers
# or JSON), meta (JSON), logs (JSON), stdout, stderr and output
REPLY = struct.Struct("<BBBxIdQq6I")
STDIO = struct.Struct("<BBxxI")  # kind, stream (1 stdout, 2 stderr; 0 for a log line), size of the bytes that follow
CONTROL_KIND, CALL_KIND, REPLY_KIND, STDIO_KIND, CLOSED_KIND, LOG_KIND = 0x43, 0x52, 0x41, 0x4F, 0x50, 0x4C
STDIO_STREAMS = (1, 2)
HAS_INPUT = HAS_EXIT_CODE = 1
HAS_OUTPUT = 2
# A frame up to this size is written in one piece.
_WRITE_BYTES = 1 << 16
# What a read of a frame asks for: a frame up to this size arrives whole in one read.
_RECEIVE_BYTES = 16 << 10
# A section larger than the buffer is read in pieces of at most this (what a pipe holds), joined once at the end.
_PIECE_BYTES = 1 << 16
# A JSON document can take up to 6 bytes per byte it holds (a control character's \u0000 escape).
_JSON_INFLATION = 6
# The small JSON sections of a reply: room for an error message and host call counts.
_META_BYTES = 4 << 20
# Room beside the log quota's bytes for the lines' structure and the host's own lines among them.
_LOG_STRUCTURE_BYTES = 16 << 20
# The host's lines of a call, and the one that says the rest are left out.
_MOST_HOST_LINES = HOST_LINES_PER_CALL + 1
# A host line's characters: a clipped one's note of what it left out (`printable.clipped`) beside them.
_HOST_LINE_MOST_CHARACTERS = HOST_LINE_CHARACTERS + 64
# Room for JSON values beyond what a guest's whole memory can hold.
_VALUES_BASE_BYTES = 1 << 20
# Room for the Python heap beside the guest's own memory under a tenant child's RLIMIT_AS.
CHILD_HEAP_HEADROOM_BYTES = 256 * 1024 * 1024
# Wasmtime's copies of a component's values in one call, beside the guest's memory: a result lifted as up to 128 MiB
# of 48-byte values (its hostcall fuel), the C API's array of them (32 bytes each), and the arguments as much again.
COMPONENT_VALUE_BYTES = 512 * 1024 * 1024
# A JSON string: the brackets and commas in it are its characters, not values.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# What the child's Python held at least for each JSON list or object (an empty list) and each value in one (its
# place there): values that cost the parent more than they could have cost the child were never lifted by it.
_CONTAINER_BYTES, _ELEMENT_BYTES = 56, 8
# A control frame from the child: how its start-up went.
_CONTROL_BYTES = 1 << 20
_PAGE_BYTES = 65536
# A core guest's results: integers (i32, i64) and floats (f32, f64) as struct codes.
_NUMBER_CODES = {int: "q", float: "d"}
_MAX_PACKED = 255
_ONE_INTEGER = struct.Struct("<3sq")  # `N`, a count of 1, the code `q`, the integer
_ONE_INTEGER_CODES = b"N\x01q"
# The reply to most calls: a success whose one value is an integer, with nothing else to carry.
_PLAIN_REPLY = struct.Struct(REPLY.format + "3sq")
_NO_SECTIONS = (0, 0, 0, 0, 0)  # the sizes of a plain success's meta, logs, stdout, stderr and output
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_U32_MAX = (1 << 32) - 1  # a guest's exit code: WASI's exitcode is a u32

# A call's arguments and results nest as call data JSON may, plus the list that holds them.
_WIRE_LEVELS = MAX_JSON_DEPTH + 1


class WireError(Exception):
    """A frame that is not what the protocol allows: the peer is treated as crashed."""


class CallRequest(NamedTuple):
    export: str
    args: list[Any]
    input: bytes | None


class ReplyBounds(NamedTuple):
    """The most each section of a call's reply may hold, and each of its numbers be, under a guest's limits."""

    values: int
    logs: int
    stdio: int  # stdout and stderr together
    output: int
    memory_pages: int
    duration_ms: float  # the parent waits no longer than this for a reply
    output_bytes: int  # logs, stdout, stderr and output as the call counted them
    log_quota: int  # the characters of the guest's log lines (each at least one): at most one per byte it logged
    log_lines: int  # the guest's log lines
    host_lines: int  # the host's own lines
    held_values: int  # what a call's values took the child's Python at most: all the heap its address space allows

    @classmethod
    def of(cls, limits: Limits, wait_seconds: float) -> ReplyBounds:
        memory = limits.memory_pages * _PAGE_BYTES
        logs = _JSON_INFLATION * limits.log_bytes + _LOG_STRUCTURE_BYTES
        return cls(
            values=_JSON_INFLATION * memory + _VALUES_BASE_BYTES,
            logs=logs,
            stdio=limits.stdout_bytes,
            output=limits.output_bytes,
            memory_pages=limits.memory_pages,
            duration_ms=wait_seconds * 1000,
            output_bytes=logs + limits.stdout_bytes + limits.output_bytes,
            log_quota=limits.log_bytes,
            log_lines=LOG_LINES_PER_CALL,
            host_lines=_MOST_HOST_LINES,
            held_values=memory + CHILD_HEAP_HEADROOM_BYTES + COMPONENT_VALUE_BYTES,
        )


class Streamed(NamedTuple):
    """Where the frames a child streams before a reply go: stdio frames to `stdio`, log frames to `logs` (None: the
    child was not asked for them)."""

    stdio: Callable[[int, bytes], object] | None
    logs: Callable[[LogLine], object] | None


class Reply(NamedTuple):
    """A call's reply as read: the `CallResult`'s parts (isolated.py assembles it) and an error, if it failed."""

    ok: bool
    values: tuple[Any, ...]
    exit_code: int | None
    logs: tuple[LogLine, ...]
    stdout: bytes
    stderr: bytes
    duration_ms: float
    memory_pages: int
    host_calls: dict[str, int]
    output_bytes: int
    outcome: str
    output: bytes | None
    error: str | None
    error_exit_code: int | None  # an error refused before the guest ran: which NgixiError


def write_all(descriptor: int, parts: Sequence[bytes | memoryview], deadline: float | None = None) -> None:
    """Writes `parts` in order, in one system call when the pipe takes them; by `deadline` if one is given
    (`descriptor` then non-blocking), else TimeoutError."""
    if len(parts) == 1:  # a small frame built whole (a plain reply, a call without data)
        total = len(parts[0])
    else:
        total = sum(map(len, parts))
        if total <= _WRITE_BYTES:  # small: one copy beats a vector of pieces
            parts = [b"".join(parts)]
    written = _write_now(descriptor, parts)
    if written < total:
        _write_rest(descriptor, parts, written, deadline)


def _write_rest(descriptor: int, parts: Sequence[bytes | memoryview], written: int, deadline: float | None) -> None:
    """Writes what the pipe did not take at once (`written` bytes of `parts` went): the pipe is full, so each
    further write waits for room first rather than trying in vain."""
    pending = [memoryview(part) for part in parts if part]
    writable = select.poll()
    writable.register(descriptor, select.POLLOUT)
    while True:
        while written and written >= len(pending[0]):
            written -= len(pending.pop(0))
        if written:
            pending[0] = pending[0][written:]
        if not pending:
            return
        _wait(writable, deadline)
        written = _write_now(descriptor, pending)


def _write_now(descriptor: int, parts: Sequence[bytes | memoryview]) -> int:
    try:
        return os.writev(descriptor, parts) if len(parts) > 1 else os.write(descriptor, parts[0])
    except BlockingIOError:
        return 0


def _wait(poll: select.poll, deadline: float | None) -> None:
    """Waits until `poll`'s descriptor is ready, or raises TimeoutError at `deadline` (None: the caller blocks)."""
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not poll.poll(math.ceil(remaining * 1000)):
        raise TimeoutError


class Incoming:
    """Frames read from one descriptor; with a `deadline` (time.monotonic), each read waits at most until it."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor
        self.deadline: float | None = None
        self._buffer = b""  # what was read and not yet taken: self._buffer[self._at :]
        self._at = 0
        self._poll = select.poll()
        self._poll.register(descriptor, select.POLLIN)

    def peek(self) -> int:
        """The next byte, left to be taken; EOFError if the stream ends first, TimeoutError at the deadline."""
        if self._at == len(self._buffer):
            self._buffer, self._at = self._read(_RECEIVE_BYTES), 0
        return self._buffer[self._at]

    def ready(self) -> bool:
        """Whether a byte (or the end of the stream) can be read now, without waiting."""
        return self._at < len(self._buffer) or bool(self._poll.poll(0))

    def take(self, size: int) -> bytes:
        """The next `size` bytes; EOFError if the stream ends first, TimeoutError at the deadline."""
        available = len(self._buffer) - self._at
        if size <= available:
            start = self._at
            self._at += size
            return self._buffer[start : self._at]
        if size > _RECEIVE_BYTES:
            return self._take_large(size)
        if not available:  # the common case: the next frame, which arrives whole in one read
            chunk = self._read(_RECEIVE_BYTES)
            if len(chunk) >= size:
                self._buffer, self._at = chunk, size
                return chunk[:size]
            pieces, available = [chunk], len(chunk)
        else:
            pieces = [self._buffer[self._at :]]
        while available < size:
            pieces.append(self._read(_RECEIVE_BYTES))
            available += len(pieces[-1])
        whole = b"".join(pieces)
        self._buffer, self._at = whole, size
        return whole[:size]

    def _take_large(self, size: int) -> bytes:
        """Reads a section larger than a read takes in pieces of up to a pipe's size, each one allocated only once
        the one before it is full (never the size a peer claims before it sends it, nor an object per read however
        little each read brings), and joins them once."""
        pieces: list[bytes | bytearray] = [self._buffer[self._at :]]
        missing = size - len(pieces[0])
        self._buffer, self._at = b"", 0
        while missing:
            piece = bytearray(min(missing, _PIECE_BYTES))
            self._fill(piece)
            pieces.append(piece)
            missing -= len(piece)
        return b"".join(pieces)

    def _fill(self, piece: bytearray) -> None:
        filled = 0
        with memoryview(piece) as view:
            while filled < len(piece):
                _wait(self._poll, self.deadline)
                count = os.readv(self.descriptor, [view[filled:]])
                if not count:
                    raise EOFError
                filled += count

    def _read(self, most: int) -> bytes:
        if self.deadline is not None:  # else the read blocks (a child's, which waits for its next request)
            _wait(self._poll, self.deadline)
        chunk = os.read(self.descriptor, most)
        if not chunk:
            raise EOFError
        return chunk


def control_frame(message: Mapping[str, Any]) -> bytes:
    document = json.dumps(message, default=str).encode()  # default: TOML dates
    return CONTROL.pack(CONTROL_KIND, len(document)) + document


def read_control(incoming: Incoming, limit: int = _CONTROL_BYTES) -> dict[str, Any]:
    """The next frame, which must be a control document of at most `limit` bytes."""
    kind, size = CONTROL.unpack(incoming.take(CONTROL.size))
    if kind != CONTROL_KIND:
        raise WireError(f"expected a control frame, got kind {kind:#x}")
    if size > limit:
        raise WireError(f"a control frame of {size} bytes is over its limit of {limit}")
    document = _json(incoming.take(size), "control frame")
    if not isinstance(document, dict):
        raise WireError("a control frame is not a JSON object")
    return document


def stdio_frame(stream: int, data: bytes) -> list[bytes]:
    """What a guest wrote to stdout (1) or stderr (2), sent by the child as it is written, before the reply."""
    return [STDIO.pack(STDIO_KIND, stream, len(data)), data]


def closed_frame(stream: int) -> bytes:
    """The parent's notice, on the request pipe during a call, that the reader of stdout (1) or stderr (2) is
    gone: the child fails the guest's later writes to it (EPIPE). A call frame's header with no sections."""
    return CALL.pack(CLOSED_KIND, stream, 0, 0, 0)


def read_closed(incoming: Incoming) -> int:
    """The stream a `closed_frame` names, which must come next."""
    kind, stream, *sizes = CALL.unpack(incoming.take(CALL.size))
    if kind != CLOSED_KIND or stream not in STDIO_STREAMS or any(sizes):
        raise WireError(f"expected a closed-stream notice, got kind {kind:#x}")
    return int(stream)


def log_frame(line: LogLine) -> list[bytes]:
    """A log line, sent by the child as it is logged, before the reply: a stdio frame's header of kind `L` and
    stream 0, then the line as JSON `[level, message]`."""
    document = json.dumps([line.level, line.message]).encode()
    return [STDIO.pack(LOG_KIND, 0, len(document)), document]


def forward_streamed(incoming: Incoming, bounds: ReplyBounds, streamed: Streamed) -> ReplyBounds:
    """Passes the stdio and log frames that come next on as `streamed` says, stopping before any other frame;
    `bounds` less what they held, which must fit them (what the guest's stdout and log quotas leave)."""
    stdio, logs = bounds.stdio, bounds.logs
    while (kind := incoming.peek()) in (STDIO_KIND, LOG_KIND):
        _, stream, size = STDIO.unpack(incoming.take(STDIO.size))
        if kind == LOG_KIND:
            logs -= size
            if streamed.logs is None or stream or logs < 0:
                raise WireError(f"a log frame of {size} bytes where none, or none so large, may come")
            (line,) = _log_lines([_json(incoming.take(size), "log line")])
            bounds = _counted((line,), bounds)
            streamed.logs(line)
            continue
        if streamed.stdio is None or stream not in STDIO_STREAMS:
            raise WireError(f"a stdio frame for stream {stream} where none may come")
        if not size:  # the child sends none: empty ones, never counted against the quota, would come without end
            raise WireError("an empty stdio frame")
        stdio -= size
        if stdio < 0:
            raise WireError(f"stdout and stderr of over {bounds.stdio} bytes, their limit")
        streamed.stdio(stream, incoming.take(size))
    return bounds._replace(stdio=stdio, logs=logs)


def _counted(lines: Sequence[LogLine], bounds: ReplyBounds) -> ReplyBounds:
    """`bounds` less `lines`, held to what the host functions let a call log (`capabilities.log.write_log`,
    `HostContext.host_says`): a child sends no more lines, characters or host lines than its guest could make."""
    quota, guest_lines, host_lines = bounds.log_quota, bounds.log_lines, bounds.host_lines
    for line in lines:
        if line.level in LOG_LEVELS:
            quota -= max(len(line.message), 1)
            guest_lines -= 1
        elif line.level == HOST_LOG_LEVEL and len(line.message) <= _HOST_LINE_MOST_CHARACTERS:
            host_lines -= 1
        else:
            raise WireError(
                f"a log line at level {line.level[:16]!r} of {len(line.message)} characters, not one the host makes"
            )
    if quota < 0 or guest_lines < 0 or host_lines < 0:
        raise WireError("more log lines than its guest's limits.log_bytes and the host's lines of a call allow")
    return bounds._replace(log_quota=quota, log_lines=guest_lines, host_lines=host_lines)


def call_frame(export: str, args: Sequence[Any], data: bytes | None) -> list[bytes]:
    """A call request as the parts to write: header, export name, arguments, input; ValueError (saying what the
    arguments hold) if they cannot cross as JSON, nested at most MAX_JSON_DEPTH deep as call data is."""
    name = export.encode()
    arguments = json.dumps(to_wire(list(args), _WIRE_LEVELS)).encode() if args else b""
    flags = 0 if data is None else HAS_INPUT
    header = CALL.pack(CALL_KIND, flags, len(name), len(arguments), len(data or b""))
    return [header, name, arguments, data or b""]


def read_call(incoming: Incoming, on_closed: Callable[[int], None] = lambda stream: None) -> CallRequest | None:
    """The next call request, a child reads it from its parent; None when the parent closed the pipe. A
    closed-stream notice that comes first goes to `on_closed`."""
    try:
        while incoming.peek() == CLOSED_KIND:
            on_closed(read_closed(incoming))
        header = incoming.take(CALL.size)
    except EOFError:
        return None
    kind, flags, name_size, args_size, input_size = CALL.unpack(header)
    if kind != CALL_KIND:
        raise WireError(f"expected a call frame, got kind {kind:#x}")
    export = incoming.take(name_size).decode()
    args = from_wire(_json(incoming.take(args_size), "arguments"), _WIRE_LEVELS) if args_size else []
    data = incoming.take(input_size) if flags & HAS_INPUT else None
    return CallRequest(export, args, data)


def reply_frame(result: CallResult, *, error: str | None = None, error_exit_code: int | None = None) -> list[bytes]:
    """A call's reply as the parts to write: ok without `error`. The common case (no logs, output or error)
    has no JSON but its values; a success with one integer and nothing else is one piece."""
    metrics = result.metrics
    values = result.values
    if (
        _one_integer(values)
        and error is None
        and error_exit_code is None
        and metrics.outcome == "ok"
        and not (metrics.host_calls or result.logs or result.stdout or result.stderr)
        and result.exit_code is None
        and result.output is None
    ):  # the header and its value in one piece
        pages, duration, output_bytes = metrics.memory_pages, metrics.duration_ms, metrics.output_bytes
        sizes = (_ONE_INTEGER.size, *_NO_SECTIONS)
        return [
            _PLAIN_REPLY.pack(
                REPLY_KIND, True, 0, pages, duration, output_bytes, 0, *sizes, _ONE_INTEGER_CODES, values[0]
            )
        ]
    encoded = _encoded_values(values) if values else b""
    plain = metrics.outcome == "ok" and not metrics.host_calls and error is None and error_exit_code is None
    meta = b"" if plain else _meta(metrics, error, error_exit_code)
    logs = json.dumps([[line.level, line.message] for line in result.logs]).encode() if result.logs else b""
    output = result.output
    flags = (0 if result.exit_code is None else HAS_EXIT_CODE) | (0 if output is None else HAS_OUTPUT)
    header = REPLY.pack(
        REPLY_KIND,
        error is None,
        flags,
        metrics.memory_pages,
        metrics.duration_ms,
        metrics.output_bytes,
        result.exit_code or 0,
        len(encoded),
        len(meta),
        len(logs),
        len(result.stdout),
        len(result.stderr),
        0 if output is None else len(output),
    )
    return [header, encoded, meta, logs, result.stdout, result.stderr, output or b""]


def _one_integer(values: tuple[Any, ...]) -> bool:
    """Whether `values` is one integer that fits an i64, the result most calls give."""
    return len(values) == 1 and type(values[0]) is int and _I64_MIN <= values[0] <= _I64_MAX


def _encoded_values(values: tuple[Any, ...]) -> bytes:
    """A core guest's numbers packed (`N`, their count, a struct code each, the numbers); other values as JSON."""
    if _one_integer(values):  # the common result
        return _ONE_INTEGER.pack(_ONE_INTEGER_CODES, values[0])
    codes = "".join(_NUMBER_CODES.get(type(value), "?") for value in values)
    if "?" not in codes and len(codes) <= _MAX_PACKED:
        with contextlib.suppress(struct.error):  # an integer beyond 64 bits
            return b"N" + bytes([len(codes)]) + codes.encode() + struct.pack("<" + codes, *values)
    return json.dumps(to_wire(list(values))).encode()


def _meta(metrics: CallMetrics, error: str | None, error_exit_code: int | None) -> bytes:
    fields = {
        "outcome": None if metrics.outcome == "ok" else metrics.outcome,
        "host_calls": dict(metrics.host_calls) or None,
        "error": error,
        "exit_code": error_exit_code,
    }
    return json.dumps({name: value for name, value in fields.items() if value is not None}).encode()


def read_reply(incoming: Incoming, bounds: ReplyBounds, streamed: Streamed | None = None) -> Reply:
    """The next call reply, each size checked against `bounds` before its bytes are read. With `streamed`, the
    guest's stdout, stderr and log frames before it go there (within the same bounds as the reply's own)."""
    if streamed is not None:
        bounds = forward_streamed(incoming, bounds, streamed)
    header = REPLY.unpack(incoming.take(REPLY.size))
    kind, ok, flags, pages, duration, output_bytes, exit_code = header[:7]
    if kind == REPLY_KIND and duration > bounds.duration_ms and _read_late(incoming):
        # The parent was not scheduled by its deadline; on time, it would have met the deadline, not this reply
        raise TimeoutError(f"the call took {duration} ms, longer than the parent waits for it")
    if kind == REPLY_KIND and not (
        pages <= bounds.memory_pages
        and 0.0 <= duration <= bounds.duration_ms  # not NaN either
        and output_bytes <= bounds.output_bytes
        and (0 <= exit_code <= _U32_MAX if flags & HAS_EXIT_CODE else exit_code == 0)
    ):
        raise _out_of_range(header[3:7], bounds)
    if kind == REPLY_KIND and ok == 1 and not flags and header[8:] == _NO_SECTIONS and header[7] <= bounds.values:
        # a plain success (most calls): its values and nothing else
        values = _decoded_values(incoming.take(header[7]), bounds) if header[7] else ()
        return Reply(True, values, None, (), b"", b"", duration, pages, {}, output_bytes, "ok", None, None, None)
    values_size, meta_size, logs_size, stdout_size, stderr_size, output_size = header[7:]
    if (
        kind != REPLY_KIND
        or ok > 1
        or flags & ~(HAS_EXIT_CODE | HAS_OUTPUT)
        or (output_size and not flags & HAS_OUTPUT)
    ):
        raise WireError(f"a call reply's header is not one the protocol allows: {kind, ok, flags}")
    if (
        values_size > bounds.values
        or meta_size > _META_BYTES
        or logs_size > bounds.logs
        or stdout_size + stderr_size > bounds.stdio
        or output_size > bounds.output
    ):
        raise _oversized(header[7:], bounds)
    values = _decoded_values(incoming.take(values_size), bounds) if values_size else ()  # the sections in order
    meta = _checked_meta(_json(incoming.take(meta_size), "meta")) if meta_size else {}
    logs = _logs_section(incoming.take(logs_size)) if logs_size else ()
    _counted(logs, bounds)
    return Reply(
        bool(ok),
        values,
        exit_code if flags & HAS_EXIT_CODE else None,
        logs,
        incoming.take(stdout_size) if stdout_size else b"",
        incoming.take(stderr_size) if stderr_size else b"",
        duration,
        pages,
        meta.get("host_calls", {}),
        output_bytes,
        meta.get("outcome", "ok"),
        incoming.take(output_size) if flags & HAS_OUTPUT else None,
        meta.get("error"),
        meta.get("exit_code"),
    )


def _read_late(incoming: Incoming) -> bool:
    return incoming.deadline is not None and time.monotonic() > incoming.deadline


def _decoded_values(raw: bytes, bounds: ReplyBounds) -> tuple[Any, ...]:
    if raw[:3] == _ONE_INTEGER_CODES and len(raw) == _ONE_INTEGER.size:
        return _ONE_INTEGER.unpack(raw)[1:]
    if raw[:1] == b"N":
        count = raw[1] if len(raw) > 1 else 0
        codes = raw[2 : 2 + count]
        try:
            if len(codes) != count or codes.strip(b"qd"):
                raise struct.error
            return struct.unpack("<" + codes.decode(), raw[2 + count :])
        except struct.error:
            raise WireError("a call reply's packed values are not what the protocol allows") from None
    held = _held_bytes(raw, bounds.held_values)
    if held > bounds.held_values:
        raise WireError(
            f"a call reply's values would take {held} bytes of objects, more than its child could hold"
            f" ({bounds.held_values})"
        )
    values = _json(raw, "values")
    if not isinstance(values, list):
        raise WireError("a call reply's values are not a list")
    try:
        return tuple(from_wire(values, _WIRE_LEVELS))
    except (TypeError, ValueError, RecursionError):  # a $bytes or $tuple that is not one, or nesting too deep
        raise WireError("a call reply's values are not in the wire form of values") from None


def _held_bytes(document: bytes, most: int) -> int:
    """The least a JSON document's lists, objects and their values take as Python objects, counted in its text
    before it is parsed (parsing a few bytes a value, `[[],[],…]`, costs twenty times their size), outside its
    strings when counting them too would make it more than `most`."""
    held = _least_objects(document)
    return held if held <= most else _least_objects(_JSON_STRING.sub(b"", document))


def _least_objects(text: bytes) -> int:
    containers, separators = _structure(text)
    return containers * _CONTAINER_BYTES + (containers + separators) * _ELEMENT_BYTES


def _structure(text: bytes) -> tuple[int, int]:
    """How many lists and objects JSON text opens, and how many commas separate values (strings' included)."""
    return text.count(b"[") + text.count(b"{"), text.count(b",")


def _oversized(sizes: Sequence[int], bounds: ReplyBounds) -> WireError:
    values, meta, logs, stdout, stderr, output = sizes
    limits = (
        ("values", values, bounds.values),
        ("meta", meta, _META_BYTES),
        ("logs", logs, bounds.logs),
        ("stdout and stderr", stdout + stderr, bounds.stdio),
        ("output", output, bounds.output),
    )
    name, size, limit = next(entry for entry in limits if entry[1] > entry[2])
    return WireError(f"a call reply's {name} of {size} bytes is over its limit of {limit}")


def _out_of_range(numbers: Sequence[Any], bounds: ReplyBounds) -> WireError:
    pages, duration, output_bytes, exit_code = numbers
    if pages > bounds.memory_pages:
        return WireError(f"a call reply's {pages} memory pages are over the limit of {bounds.memory_pages}")
    if not 0.0 <= duration <= bounds.duration_ms:
        return WireError(f"a call reply's duration of {duration} ms is not between 0 and {bounds.duration_ms:g}")
    if output_bytes > bounds.output_bytes:
        return WireError(f"a call reply's {output_bytes} output bytes are over the limit of {bounds.output_bytes}")
    return WireError(f"a call reply's exit code {exit_code} is not a guest's exit code")


def _checked_meta(meta: Any) -> dict[str, Any]:
    expected: dict[str, type] = {"outcome": str, "host_calls": dict, "error": str, "exit_code": int}
    if not isinstance(meta, dict) or any(type(meta[key]) is not expected.get(key) for key in meta):
        raise WireError("a call reply's meta is not what the protocol allows")
    if meta.get("outcome", "ok") not in OUTCOMES or meta.get("exit_code", 1) not in ERROR_EXIT_CODES:
        raise WireError("a call reply's outcome or error exit code is not one the protocol allows")
    counts = meta.get("host_calls", {})
    if not all(isinstance(name, str) and type(count) is int and count >= 0 for name, count in counts.items()):
        raise WireError("a call reply's host call counts are not names and numbers")
    return meta


def _logs_section(document: bytes) -> tuple[LogLine, ...]:
    """A reply's log lines, their count checked in the text before it is parsed (a list of pairs of strings)."""
    most = 1 + LOG_LINES_PER_CALL + _MOST_HOST_LINES  # the list of lines and each line's
    if _structure(document)[0] > most and _structure(_JSON_STRING.sub(b"", document))[0] > most:
        raise WireError(f"a call reply has more than {LOG_LINES_PER_CALL + _MOST_HOST_LINES} log lines")
    return _log_lines(_json(document, "logs"))


def _log_lines(raw: Any) -> tuple[LogLine, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(line, list) and len(line) == 2 and all(isinstance(part, str) for part in line) for line in raw
    ):
        raise WireError("a call reply's logs are not [level, message] pairs")
    return tuple(LogLine(level, message) for level, message in raw)


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError too; RecursionError: nested too deep
        raise WireError(f"a frame's {what}: not JSON ({error})") from None
