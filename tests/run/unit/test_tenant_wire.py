"""The frames between a tenant and its child: round trips, and what a child must not get away with sending."""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import re
import socket
import struct
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ngixi_runtime import errors
from ngixi_runtime.capabilities.context import HostContext, LogLine
from ngixi_runtime.capabilities.log import write_log
from ngixi_runtime.errors import OUTCOMES, GuestError
from ngixi_runtime.guest.manifest import Limits
from ngixi_runtime.loading import calls
from ngixi_runtime.loading.tenant_wire import (
    CALL,
    LOG_KIND,
    REPLY,
    REPLY_KIND,
    STDIO,
    Incoming,
    Reply,
    ReplyBounds,
    Streamed,
    WireError,
    call_frame,
    closed_frame,
    control_frame,
    log_frame,
    read_call,
    read_control,
    read_reply,
    reply_frame,
    stdio_frame,
    write_all,
)
from ngixi_runtime.loading.tenants import CallMetrics, CallResult, empty_result

LIMITS = Limits(memory_pages=1, timeout_ms=1000, log_bytes=100, stdout_bytes=64, output_bytes=1 << 20)
BOUNDS = ReplyBounds.of(LIMITS, wait_seconds=1.25)
PLAIN = CallResult((7,), None, (), b"", b"", CallMetrics(0.5, 1, {}, 0, "ok"))
FULL = CallResult(
    values=(-1, 2.5),
    exit_code=3,
    logs=(LogLine("info", "said\n\x00 \u00e9"), LogLine("host", "")),
    stdout=b"out\x00",
    stderr=b"err",
    metrics=CallMetrics(1.25, 1, {"log": 2, "fd_write": 1}, 30, "trap"),
    output=bytes(range(256)) * 4096,
)


def incoming(*parts: bytes) -> Iterator[Incoming]:
    """An Incoming over a file holding `parts` (a file: no pipe buffer to fill)."""
    with tempfile.TemporaryFile() as file:
        file.write(b"".join(parts))
        file.seek(0)
        yield Incoming(file.fileno())


def frame(parts: Sequence[bytes]) -> bytes:
    return b"".join(parts)


def test_a_plain_reply_is_its_header_and_values() -> None:
    parts = reply_frame(PLAIN)
    header = REPLY.pack(REPLY_KIND, 1, 0, 1, 0.5, 0, 0, 11, 0, 0, 0, 0, 0)
    assert parts == [header + b"N\x01q" + struct.pack("<q", 7)]  # one piece, written as it is
    for reading in incoming(frame(parts)):
        reply = read_reply(reading, BOUNDS)
        assert reply.ok and reply.values == (7,) and reply.exit_code is None and reply.output is None
        assert (reply.logs, reply.stdout, reply.stderr, reply.host_calls, reply.outcome) == ((), b"", b"", {}, "ok")
        assert (reply.duration_ms, reply.memory_pages, reply.output_bytes) == (0.5, 1, 0)


def test_a_failed_reply_keeps_every_part() -> None:
    for reading in incoming(frame(reply_frame(FULL, error="it trapped"))):
        reply = read_reply(reading, BOUNDS)
    assert not reply.ok and reply.error == "it trapped" and reply.error_exit_code is None
    assert reply.values == FULL.values and reply.exit_code == 3 and reply.logs == FULL.logs
    assert (reply.stdout, reply.stderr, reply.output) == (FULL.stdout, FULL.stderr, FULL.output)
    assert (reply.duration_ms, reply.memory_pages, reply.output_bytes) == (1.25, 1, 30)
    assert (reply.host_calls, reply.outcome) == ({"log": 2, "fd_write": 1}, "trap")


def test_a_refusal_carries_its_exit_code_and_typed_values_their_wire_form() -> None:
    typed = CallResult((b"\x00\xff", ("a", [1, {"k": b""}])), None, (), b"", b"", CallMetrics(0, 0, {}, 0, "ok"))
    for reading in incoming(
        frame(reply_frame(typed)), frame(reply_frame(empty_result("refused"), error="no", error_exit_code=2))
    ):
        assert read_reply(reading, BOUNDS).values == typed.values
        refusal = read_reply(reading, BOUNDS)
        assert (refusal.ok, refusal.error, refusal.error_exit_code, refusal.outcome) == (False, "no", 2, "refused")


def test_an_empty_output_is_not_no_output() -> None:
    for reading in incoming(frame(reply_frame(CallResult((), None, (), b"", b"", PLAIN.metrics, b"")))):
        assert read_reply(reading, BOUNDS).output == b""


@pytest.mark.parametrize(
    ("data", "args"),
    [
        (None, ()),
        (b"", (1, 2)),
        (b"x" * 100_000, (b"\x01", (2, "three"), [4.5])),
        (None, ("\ud800\udc00", ["a\udfff"], {"\ud83d\ude00": "x"})),  # JSON's reader joined the pairs
    ],
)
def test_call_requests_round_trip(data: bytes | None, args: tuple[object, ...]) -> None:
    for reading in incoming(frame(call_frame("export-\u00e9", args, data)), frame(call_frame("next", (), None))):
        request = read_call(reading)
        assert request is not None
        assert (request.export, tuple(request.args), request.input) == ("export-\u00e9", args, data)
        assert read_call(reading) == ("next", [], None)
        assert read_call(reading) is None  # the parent closed its end


def test_control_frames_round_trip_and_are_bounded() -> None:
    message = {"ok": True, "origin": "artifact", "released": datetime.date(1970, 1, 2)}  # a TOML date
    for reading in incoming(control_frame(message), control_frame({"big": "x" * 100})):
        assert read_control(reading) == {"ok": True, "origin": "artifact", "released": "1970-01-02"}
        with pytest.raises(WireError, match="over its limit of 50"):
            read_control(reading, limit=50)


def header(
    *,
    ok: int = 1,
    flags: int = 0,
    sizes: Sequence[int] = (0,) * 6,
    kind: int = REPLY_KIND,
    numbers: tuple[int, float, int, int] = (1, 0.0, 0, 0),  # memory pages, duration, output bytes, exit code
) -> bytes:
    return REPLY.pack(kind, ok, flags, *numbers, *sizes)


def section(index: int, body: bytes) -> bytes:
    """A reply whose only section is `body`, at `index` (values, meta, logs, stdout, stderr, output)."""
    sizes = [0] * 6
    sizes[index] = len(body)
    return header(sizes=sizes) + body


@pytest.mark.parametrize(
    ("sizes", "what"),
    [
        ((0, 0, 0, 40, 40, 0), "stdout and stderr of 80 bytes is over its limit of 64"),
        ((0, 0, 0, 0, 0, (1 << 20) + 1), "output of 1048577 bytes"),
        ((0, 1 << 30, 0, 0, 0, 0), "meta of 1073741824 bytes"),
        ((0, 0, 0xFFFFFFFF, 0, 0, 0), "logs of 4294967295 bytes"),
        ((0xFFFFFFFF, 0, 0, 0, 0, 0), "values of 4294967295 bytes"),
    ],
)
def test_a_size_over_the_limits_is_refused_before_it_is_read(sizes: Sequence[int], what: str) -> None:
    for reading in incoming(header(flags=2, sizes=sizes)):  # nothing follows: reading it would be EOFError
        with pytest.raises(WireError, match=what):
            read_reply(reading, BOUNDS)


@pytest.mark.parametrize(
    ("frame_bytes", "what"),
    [
        (header(kind=0x43), "header is not one the protocol allows"),
        (header(ok=2), "header"),
        (header(flags=4), "header"),
        (section(5, b"x"), "header"),  # output without its flag
        (section(0, b"["), "values: not JSON"),
        (section(0, b"{}"), "values are not a list"),
        (section(0, b"N\x02q"), "packed values"),
        (section(0, b"N\x01x" + bytes(8)), "packed values"),
        (section(0, b"N\x01q" + bytes(7)), "packed values"),
        (section(0, b"N\x01\xff" + bytes(8)), "packed values"),
        (section(1, b"[]"), "meta is not what"),
        (section(1, b'{"outcome": 1}'), "meta is not what"),
        (section(1, b'{"other": ""}'), "meta is not what"),
        (section(1, b'{"exit_code": true}'), "meta is not what"),
        (section(1, b'{"host_calls": {"log": ""}}'), "host call counts"),
        (section(1, b'{"host_calls": {"log": -1}}'), "host call counts"),
        (section(1, b'{"outcome": "fine"}'), "outcome or error exit code"),
        (section(1, b'{"exit_code": -2}'), "outcome or error exit code"),
        (section(1, b'{"exit_code": 0}'), "outcome or error exit code"),
        (header(numbers=(1, float("nan"), 0, 0)), "duration of nan ms is not between 0 and 1250"),
        (header(numbers=(1, float("inf"), 0, 0)), "duration of inf ms"),
        (header(numbers=(1, -0.5, 0, 0)), "duration of -0.5 ms"),
        (header(numbers=(1, 1250.5, 0, 0)), "duration of 1250.5 ms"),  # longer than the parent waits, read in time
        (header(numbers=(2, 0.0, 0, 0)), "2 memory pages are over the limit of 1"),
        (header(numbers=(1, 0.0, 1 << 63, 0)), "output bytes are over the limit of"),
        (header(numbers=(1, 0.0, 0, 3)), "exit code 3 is not"),  # without its flag
        (header(flags=1, numbers=(1, 0.0, 0, -1)), "exit code -1 is not"),
        (header(flags=1, numbers=(1, 0.0, 0, 1 << 32)), "exit code 4294967296 is not"),
        (section(2, b'[["a"]'), "logs: not JSON"),
        (section(2, b'[["a"]]'), "logs are not"),
        (section(2, b'[["a", 1]] '), "logs are not"),
        (section(2, b"\xff\xfe[]"), "logs: not JSON"),
        (section(0, b"[" * 100_000 + b"]" * 100_000), "values: not JSON"),  # deeper than the decoder recurses
        (section(0, b"[" * 1200 + b"]" * 1200), "values"),  # too deep for the decoder or for from_wire
        (section(0, b'[{"a":' * 600 + b"1" + b"}]" * 600), "values"),
        (section(0, b'[{"$bytes": 5}]'), "values are not"),
        (section(0, b'[{"$bytes": "abc"}]'), "values are not"),  # not base64
        (section(0, b'[{"$tuple": 5}]'), "values are not"),
        (section(0, b'[{"$iterable": []}]'), "values are not"),  # no type name
        (section(0, b'[{"$iterable": [5, 1]}]'), "values are not"),
        (section(0, b'[{"$mapping": [[[1], 2]]}]'), "values are not"),  # an unhashable key
        (section(0, b'[{"$mapping": [[1, 2, 3]]}]'), "values are not"),
        (section(0, b'[{"$bytearray": "abc"}]'), "values are not"),
        (section(0, b'[{"$nan": "7ff8"}]'), "values are not"),  # not its 16 digits
        (section(0, b'[{"$nan": "3ff0000000000000"}]'), "values are not"),  # 1.0, not a NaN
        (section(0, b'[{"$nan": 5}]'), "values are not"),
        (section(0, b'[{"$nan": "zzzzzzzzzzzzzzzz"}]'), "values are not"),
        (section(1, b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "meta: not JSON"),
        (section(2, b"[" * 60_000 + b"]" * 60_000), "logs: not JSON"),
    ],
)
def test_a_malformed_reply_is_a_wire_error(frame_bytes: bytes, what: str) -> None:
    for reading in incoming(frame_bytes):
        with pytest.raises(WireError, match=what):
            read_reply(reading, BOUNDS)


def test_a_reply_timed_past_the_parents_wait_is_the_timeout_the_parent_would_have_met() -> None:
    """A loaded host took a spinning guest's reply 4 ms after its own deadline (descheduled between reading the
    clock and polling, its poll's timeout ended late): the child's duration was past the bound, and the tenant was
    stopped as a malformed reply (outcome crash) instead of a timeout. Taken before the deadline, such a duration is
    malformed (the case in test_a_malformed_reply_is_a_wire_error)."""
    for reading in incoming(header(numbers=(1, 1250.5, 0, 0))):
        reading.peek()  # read in time (poll said ready), then taken after the deadline
        reading.deadline = time.monotonic() - 0.004
        with pytest.raises(TimeoutError, match=r"took 1250\.5 ms"):
            read_reply(reading, BOUNDS)


def test_numbers_at_the_ends_of_their_ranges_are_taken() -> None:
    most = (LIMITS.memory_pages, 1250.0, BOUNDS.output_bytes, (1 << 32) - 1)
    for reading in incoming(header(flags=1, numbers=most), header(numbers=(0, 0.0, 0, 0))):
        assert read_reply(reading, BOUNDS)[6:10] == (1250.0, 1, {}, BOUNDS.output_bytes)
        assert read_reply(reading, BOUNDS).duration_ms == 0.0


def test_a_call_stopped_at_its_log_quota_crosses_the_wire() -> None:
    """The log line that went over the quota was counted though never kept: a guest logging 2 GiB at once (its
    length alone, nothing read) made its call's output bytes far over what a reply may say, and the isolated
    child's reply was taken for a crash's, not the call's quota failure."""
    ctx = HostContext(guest="g", log_quota=LIMITS.log_bytes, stdio_quota=LIMITS.stdout_bytes, grants=frozenset())
    write_log(ctx, 2, 60, lambda: "x" * 60)
    with pytest.raises(GuestError, match="exceeded its quota") as refused:
        write_log(ctx, 2, 1 << 31, lambda: pytest.fail("read"))
    result = calls._result(
        values=(),
        exit_code=None,
        output=ctx.output,
        nanoseconds=0,
        pages=0,
        failure=refused.value,
        written=None,
        output_kind=None,
    )
    assert result.metrics.output_bytes == 60
    for reading in incoming(frame(reply_frame(result, error=str(refused.value)))):
        assert read_reply(reading, BOUNDS).outcome == "quota"


def test_every_outcome_the_run_side_names_can_cross_the_wire() -> None:
    """An outcome missing from errors.OUTCOMES would make a real child's reply a wire error."""
    sources = Path(errors.__file__).parent.rglob("*.py")
    named = {name for path in sources for name in re.findall(r'outcome="(\w+)"', path.read_text())}
    assert named and named <= OUTCOMES


@pytest.mark.parametrize("cut", [1, REPLY.size - 1, REPLY.size + 1, REPLY.size + 5])
def test_a_truncated_reply_is_the_end_of_the_stream(cut: int) -> None:
    whole = frame(reply_frame(CallResult((1,), None, (), b"abcdef", b"", PLAIN.metrics)))
    for reading in incoming(whole[:cut]):
        with pytest.raises(EOFError):
            read_reply(reading, BOUNDS)


def test_random_bytes_are_never_taken_for_a_reply() -> None:
    for seed in range(200):
        garbage = os.urandom(REPLY.size + seed)
        for reading in incoming(garbage):
            with pytest.raises((WireError, EOFError)):
                read_reply(reading, BOUNDS)


def test_a_silent_peer_times_out_on_read_and_write() -> None:
    read_end, write_end = os.pipe()
    try:
        reading = Incoming(read_end)
        reading.deadline = time.monotonic() + 0.05
        with pytest.raises(TimeoutError):
            read_reply(reading, BOUNDS)
        os.set_blocking(write_end, False)
        with pytest.raises(TimeoutError):  # more than the pipe holds, and nobody reads it
            write_all(write_end, [b"x" * (1 << 20)], time.monotonic() + 0.05)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_write_in_pieces_arrives_whole() -> None:
    read_end, write_end = os.pipe()
    try:
        os.set_blocking(write_end, False)
        write_all(write_end, [CALL.pack(0x52, 1, 1, 0, 3), b"f", b"", b"a", b"bc"], time.monotonic() + 1)
        assert read_call(Incoming(read_end)) == ("f", [], b"abc")
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_large_frame_is_read_in_pieces() -> None:
    data = os.urandom((17 << 20) + 5)  # many times what a pipe holds, and not a whole number of pieces
    for reading in incoming(frame(call_frame("e", (), data)), struct.pack("<I", 7)):
        request = read_call(reading)
        assert request is not None and request.input == data
        assert reading.take(4) == struct.pack("<I", 7)


@pytest.mark.parametrize(
    "values", [(1, -(1 << 63), 0.5, float("inf")), (1 << 64,), (True, 2), tuple(range(256)), ("text", 1)]
)
def test_values_round_trip_packed_or_as_json(values: tuple[object, ...]) -> None:
    packed = all(type(value) in (int, float) for value in values) and len(values) < 256 and values[0] != 1 << 64
    parts = reply_frame(CallResult(values, None, (), b"", b"", PLAIN.metrics))
    assert parts[1].startswith(b"N" if packed else b"[")
    for reading in incoming(frame(parts)):
        decoded = read_reply(reading, BOUNDS).values
    assert decoded == values and [type(value) for value in decoded] == [type(value) for value in values]


@contextlib.contextmanager
def trickling(whole: bytes, piece: int) -> Iterator[Incoming]:
    """An Incoming over a pipe that a thread writes `whole` to, `piece` bytes at a time, then closes."""
    read_end, write_end = os.pipe()

    def trickle() -> None:
        for at in range(0, len(whole), piece):
            os.write(write_end, whole[at : at + piece])
        os.close(write_end)

    writer = threading.Thread(target=trickle)
    writer.start()
    try:
        reading = Incoming(read_end)
        reading.deadline = time.monotonic() + 30
        yield reading
    finally:
        writer.join()
        os.close(read_end)


def test_a_frame_trickling_in_byte_by_byte_is_read_whole() -> None:
    whole = frame(reply_frame(FULL, error="late")) + frame(reply_frame(PLAIN))
    with trickling(whole, 997) as reading:
        assert read_reply(reading, BOUNDS).output == FULL.output
        assert read_reply(reading, BOUNDS).values == (7,)


def test_a_large_section_cut_short_is_the_end_of_the_stream() -> None:
    whole = frame(reply_frame(FULL))
    for reading in incoming(whole[: len(whole) // 2]):
        with pytest.raises(EOFError):
            read_reply(reading, BOUNDS)


def test_frames_straddling_the_receive_buffer_arrive_whole() -> None:
    """Sections of every size around the buffer's, in frames that arrive in uneven pieces, come back intact."""
    sizes = [0, 1, 4095, 16 << 10, (16 << 10) + 1, 40_000, 70_000]
    frames = [frame(call_frame("e", (), os.urandom(size))) for size in sizes]
    with trickling(b"".join(frames), 6007) as reading:
        for size, sent in zip(sizes, frames, strict=True):
            request = read_call(reading)
            assert request is not None and request.input is not None and len(request.input) == size
            assert sent.endswith(request.input)
        assert read_call(reading) is None


def test_a_section_sent_a_byte_per_write_costs_its_bytes_not_an_object_each() -> None:
    """A hostile child sends a large section one byte per packet (each read then returns one byte): the parent
    holds about the section's bytes, not a Python object per read (about 40 times as much)."""
    size = 20_000
    limits = Limits(memory_pages=1, timeout_ms=1000, log_bytes=100, stdout_bytes=64, output_bytes=size)
    output = os.urandom(size)
    header = frame(reply_frame(CallResult((), None, (), b"", b"", PLAIN.metrics, output)))[: -size or None]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    single_bytes = [output[at : at + 1] for at in range(size)]  # made before tracing, as the child's are

    def send_bytewise() -> None:
        send = theirs.send
        send(header)
        for byte in single_bytes:
            send(byte)

    writer = threading.Thread(target=send_bytewise)
    writer.start()
    reading = Incoming(ours.fileno())
    reading.deadline = time.monotonic() + 60
    tracemalloc.start()
    try:
        reply = read_reply(reading, ReplyBounds.of(limits, wait_seconds=60))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.join()
        ours.close()
        theirs.close()
    assert reply.output == output
    assert peak < 3 * size + (256 << 10)


def test_stdio_frames_before_a_reply_are_passed_on_in_order_and_held_to_the_stdout_quota() -> None:
    shown: list[tuple[int, bytes]] = []
    written = [*stdio_frame(1, b"out "), *stdio_frame(2, b"err"), *stdio_frame(1, b"!")]
    for frames in incoming(*written, frame(reply_frame(FULL._replace(output=None)))):
        reply = read_reply(frames, BOUNDS, Streamed(lambda stream, data: shown.append((stream, data)), None))
    assert shown == [(1, b"out "), (2, b"err"), (1, b"!")]
    assert (reply.stdout, reply.stderr) == (b"out\x00", b"err")
    ignored = Streamed(lambda stream, data: None, None)
    for frames in incoming(*stdio_frame(3, b"x"), frame(reply_frame(PLAIN))):
        with pytest.raises(WireError, match="for stream 3"):
            read_reply(frames, BOUNDS, ignored)
    # empty frames count nothing against the quota: a child could send them without end
    for frames in incoming(frame([*stdio_frame(1, b"")] * 1000 + reply_frame(PLAIN))):
        with pytest.raises(WireError, match="an empty stdio frame"):
            read_reply(frames, BOUNDS, ignored)
    over = [*stdio_frame(1, b"x" * 60), *stdio_frame(2, b"y" * 5)]  # 65 bytes against a quota of 64
    for frames in incoming(*over, frame(reply_frame(PLAIN))):
        with pytest.raises(WireError, match="over 64 bytes"):
            read_reply(frames, BOUNDS, ignored)
    too_much = [*stdio_frame(1, b"x" * 60), *reply_frame(FULL._replace(output=None))]  # the reply's 7 on top
    for frames in incoming(frame(too_much)):
        with pytest.raises(WireError, match="stdout and stderr of 7 bytes is over its limit of 4"):
            read_reply(frames, BOUNDS, ignored)
    without_streaming = [*stdio_frame(1, b"x"), *reply_frame(PLAIN)]  # a host that did not ask for them
    for frames in incoming(frame(without_streaming)):
        with pytest.raises(WireError):
            read_reply(frames, BOUNDS)


def test_log_frames_come_in_order_with_stdio_frames_held_to_the_log_quota() -> None:
    shown: list[object] = []
    streamed = Streamed(lambda stream, data: shown.append((stream, data)), shown.append)
    written = [*stdio_frame(1, b"out"), *log_frame(LogLine("info", "\x1b[2J")), *stdio_frame(2, b"err")]
    for frames in incoming(*written, frame(reply_frame(PLAIN))):
        assert read_reply(frames, BOUNDS, streamed).values == (7,)
    assert shown == [(1, b"out"), LogLine("info", "\x1b[2J"), (2, b"err")]  # escaped where shown, not here
    line = log_frame(LogLine("info", "x" * 20))
    for frames in incoming(*line, frame(reply_frame(PLAIN))):  # over what the log quota allows
        with pytest.raises(WireError, match="log frame"):
            read_reply(frames, BOUNDS._replace(logs=20), streamed)
    for frames in incoming(*line, frame(reply_frame(PLAIN))):  # a host that did not ask for them
        with pytest.raises(WireError, match="log frame"):
            read_reply(frames, BOUNDS, Streamed(lambda stream, data: None, None))
    not_a_line = STDIO.pack(LOG_KIND, 0, 8) + b'["info"]'
    for frames in incoming(not_a_line, frame(reply_frame(PLAIN))):
        with pytest.raises(WireError):
            read_reply(frames, BOUNDS, streamed)


def test_closed_stream_notices_before_a_call_are_read_with_it() -> None:
    told: list[int] = []
    for frames in incoming(closed_frame(1), closed_frame(2), frame(call_frame("f", (), b""))):
        request = read_call(frames, told.append)
    assert told == [1, 2] and request is not None and request.export == "f"


def _double(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def _bits(number: object) -> int:
    assert isinstance(number, float)
    return int(struct.unpack("<Q", struct.pack("<d", number))[0])


NANS = [0xFFF8000000000000, 0x7FF8000000000123, 0x7FF4000000000000]  # a sign, a payload, a signalling NaN


def test_a_nan_crosses_with_its_sign_and_payload() -> None:
    """JSON writes every NaN as NaN, which reads back as Python's own: an isolated f64 argument or component result
    of 0xfff8000000000123 arrived as 0x7ff8000000000000, where in-process the engines pass its bits."""
    args = (*map(_double, NANS), [_double(NANS[1]), 1.5], math.nan)
    for reading in incoming(frame(call_frame("f", args, None))):
        request = read_call(reading)
        assert request is not None
        crossed = (*request.args[:3], request.args[3][0], request.args[4])
        assert [_bits(value) for value in crossed] == [*NANS, NANS[1], _bits(math.nan)]
    values = (_double(NANS[1]), "text", (_double(NANS[0]),))
    result = CallResult(values, None, (), b"", b"", CallMetrics(0, 0, {}, 0, "ok"))
    for reading in incoming(frame(reply_frame(result))):
        reply = read_reply(reading, BOUNDS)
        assert [_bits(reply.values[0]), _bits(reply.values[2][0])] == [NANS[1], NANS[0]]


def _most_a_call_may_log() -> list[LogLine]:
    """The lines of a call that logged all its guest could (limits.log_bytes, one of them empty) and met the host's
    every refusal, each quoting a long value, made by the host functions themselves."""
    ctx = HostContext(guest="g", log_quota=LIMITS.log_bytes, stdio_quota=LIMITS.stdout_bytes, grants=frozenset())
    ctx.output.on_log = None
    write_log(ctx, 0, 0, lambda: "")
    write_log(ctx, 4, 3 * 33, lambda: "\ufffd" * 99)  # 99 bytes not UTF-8, each replaced
    for _ in range(200):
        ctx.output.host_says("refused: " + "u" * 10_000)
    return ctx.output.logs


@pytest.mark.parametrize("streamed", [True, False])
def test_log_lines_are_held_to_what_the_host_functions_let_a_call_log(streamed: bool) -> None:
    """A child sends no more log lines than its guest could make: each streamed log frame was held only to the log
    section's bytes (16 MiB beside limits.log_bytes), so a hand-made child under `log_bytes = 100` had its host
    print 397,312 lines `host: ngixi: ok: …` in one call, where the host functions allow 100 bytes of the guest's
    lines and 101 of the host's, at the guest's levels and the host's."""
    honest = _most_a_call_may_log()
    shown: list[LogLine] = []

    def sent(lines: Sequence[LogLine]) -> list[bytes]:
        result = FULL._replace(logs=() if streamed else tuple(lines), output=None)
        frames = [part for line in lines for part in log_frame(line)] if streamed else []
        return [*frames, frame(reply_frame(result))]

    def read(lines: Sequence[LogLine]) -> Reply:
        for frames in incoming(*sent(lines)):
            return read_reply(frames, BOUNDS, Streamed(None, shown.append) if streamed else None)
        raise AssertionError

    assert read(honest).logs == (() if streamed else tuple(honest))
    assert shown == (honest if streamed else [])
    for forged in ([*honest, LogLine("host", "ngixi: ok")], [*honest, LogLine("info", "x")]):
        with pytest.raises(WireError, match="more log lines than"):
            read(forged)
    for level, message in (("ngixi", "ok"), ("host", "x" * 3000)):
        with pytest.raises(WireError, match="a log line at level"):
            read([LogLine(level, message)])


def test_values_that_would_cost_the_parent_more_than_the_child_could_hold_are_refused_unparsed() -> None:
    """A values section was held to its bytes only (six times the guest's memory and 1 MiB), and `[[],[],…]` costs
    twenty times its bytes as objects: a hand-made child of a guest of 256 pages (16 MiB) sent 97 MiB of empty
    lists and its parent took 4.8 GB more memory and 137 s to read them. What a reply's values take as objects is
    now counted from the text first, and held to what the child's own address space allowed its Python heap."""
    limits = LIMITS._replace(memory_pages=100)
    bounds = ReplyBounds.of(limits, wait_seconds=60)
    brackets = "[" * (bounds.held_values // 56)  # what would be too many lists, but in a string
    for honest in (([[], [True] * 3, {"k": "[],[],[]"}] * 10_000,), (brackets, [brackets])):
        for frames in incoming(frame(reply_frame(FULL._replace(values=honest, output=None)))):
            assert read_reply(frames, bounds).values == honest
    forged = b"[" + b"[]," * ((bounds.values - 4) // 3) + b"[]]"
    header = REPLY.pack(REPLY_KIND, 1, 0, 1, 1.0, 0, 0, len(forged), 0, 0, 0, 0, 0)
    for frames in incoming(header, forged):
        started = time.monotonic()
        with pytest.raises(WireError, match="more than its child could hold"):
            read_reply(frames, bounds)
        assert time.monotonic() - started < 5


def test_a_logs_section_of_more_lines_than_a_call_may_log_is_refused_unparsed() -> None:
    """The logs section (16 MiB beside six times limits.log_bytes) was parsed before its lines were counted: 16 MiB
    of empty lists took the parent 443 MiB and 2.9 s to refuse."""
    forged = b"[" + b"[]," * ((BOUNDS.logs - 4) // 3) + b"[]]"
    header = REPLY.pack(REPLY_KIND, 1, 0, 1, 1.0, 0, 0, 0, 0, len(forged), 0, 0, 0)
    for frames in incoming(header, forged):
        tracemalloc.start()
        try:
            with pytest.raises(WireError, match="more than 65637 log lines"):
                read_reply(frames, BOUNDS)
            assert tracemalloc.get_traced_memory()[1] < 3 * len(forged)
        finally:
            tracemalloc.stop()
