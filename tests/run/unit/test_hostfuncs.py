"""Host functions against a fake guest memory."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time

import pytest

from ngixi_runtime.capabilities.clock import EVENT, SUBSCRIPTION
from ngixi_runtime.capabilities.context import HOST_LOG_LEVEL, GuestExit, HostContext, LogLine, StdinState
from ngixi_runtime.capabilities.linking import core_imports
from ngixi_runtime.capabilities.registry import every_capability
from ngixi_runtime.capabilities.wasi_files import WasiFilesystem
from ngixi_runtime.cli import process_exit_code
from ngixi_runtime.errors import GuestError
from ngixi_runtime.files import write_by
from ngixi_runtime.spec.abi import MAX_IOVECS, RIGHT_FD_READ, AbiFault, Errno, gather
from tests.conftest import FakeMemory

GRANTS = frozenset({"log", "stdio", "clock", "random", "args", "env"})


def context(**overrides: object) -> HostContext:
    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(), grants=GRANTS)
    for name, value in overrides.items():
        setattr(ctx, name, value)
    return ctx


def host(ctx: HostContext, name: str):  # type: ignore[no-untyped-def]
    module, _, function = name.partition(".")
    ((_, linked),) = core_imports(ctx, [(module, function)])
    return linked


def test_every_registry_import_has_an_implementation() -> None:
    for capability in every_capability():
        for host_import, bind in capability.imports.items():
            assert callable(bind(context())), host_import.qualified


def test_log_decodes_utf8_and_enforces_its_quota() -> None:
    ctx = context(log_quota=10)
    ctx.mem.write(0, "héllo".encode())
    host(ctx, "ngixi.log")(2, 0, 6)
    assert (ctx.output.logs[0].level, ctx.output.logs[0].message) == ("info", "héllo")
    with pytest.raises(GuestError, match="log output exceeded its quota of 10 bytes"):
        host(ctx, "ngixi.log")(2, 0, 6)


@pytest.mark.parametrize(("level", "shown"), [(5, "5"), (-1, "-1"), (-(1 << 31), "-2147483648")])
def test_a_log_level_that_is_none_of_the_five_ends_the_call_in_one_line(level: int, shown: str) -> None:
    """It was logged as `level<N>`, and since host functions take their i32s unsigned a negative one showed as
    `level4294967295`, which told the operator nothing."""
    ctx = context()
    ctx.mem.write(0, b"hi")
    refusal = rf"^g: it logged at level {shown}, which is none of 0 trace, 1 debug, 2 info, 3 warn, 4 error$"
    with pytest.raises(GuestError, match=refusal) as refused:
        host(ctx, "ngixi.log")(level, 0, 2)
    assert refused.value.outcome == "trap" and ctx.output.logs == [] and ctx.output.log_bytes == 0
    host(ctx, "ngixi.log")(4, 0, 2)
    assert ctx.output.logs == [LogLine("error", "hi")]


def test_empty_log_lines_count_against_the_quota_too() -> None:
    ctx = context(log_quota=3)
    for _ in range(3):
        host(ctx, "ngixi.log")(2, 0, 0)
    with pytest.raises(GuestError, match="log output exceeded its quota of 3 bytes"):
        host(ctx, "ngixi.log")(2, 0, 0)
    assert len(ctx.output.logs) == 3


def test_fd_write_gathers_iovecs_and_reports_bytes_written() -> None:
    ctx = context()
    ctx.mem.write(100, b"hello ")
    ctx.mem.write(200, b"world")
    ctx.mem.write(0, struct.pack("<IIII", 100, 6, 200, 5))
    assert host(ctx, "wasi_snapshot_preview1.fd_write")(1, 0, 2, 300) == 0
    assert bytes(ctx.output.stdout) == b"hello world"
    assert struct.unpack("<I", ctx.mem.read(300, 4))[0] == 11
    assert host(ctx, "wasi_snapshot_preview1.fd_write")(7, 0, 2, 300) == 8  # EBADF


def test_fd_write_quota_covers_stdout_and_stderr() -> None:
    ctx = context(stdio_quota=8)
    ctx.mem.write(0, struct.pack("<II", 100, 6))
    host(ctx, "wasi_snapshot_preview1.fd_write")(2, 0, 1, 300)
    with pytest.raises(GuestError, match="exceeded its quota of 8 bytes"):
        host(ctx, "wasi_snapshot_preview1.fd_write")(1, 0, 1, 300)


class CountingMemory(FakeMemory):
    """Counts the bytes the host copies out of guest memory."""

    copied = 0

    def read(self, pointer: int, length: int) -> bytes:
        self.copied += length
        return super().read(pointer, length)


def test_gather_copies_no_more_than_its_limit() -> None:
    memory = CountingMemory(65536)
    memory.write(0, struct.pack("<II", 0, 65536) * 1024)
    assert len(gather(memory, 0, 1024, 1000)) == 1000
    assert memory.copied == 8 * 1024 + 1000


@pytest.mark.parametrize("count", [-1, MAX_IOVECS + 1, 1 << 30])
def test_iovec_arrays_longer_than_iov_max_are_inval(count: int) -> None:
    memory = CountingMemory(65536)
    with pytest.raises(AbiFault) as caught:
        gather(memory, 0, count, 10)
    assert caught.value.code == Errno.INVAL and memory.copied == 0


def test_fd_write_to_stdout_copies_at_most_the_quota_left() -> None:
    memory = CountingMemory(65536)
    ctx = context(stdio_quota=100, memory=memory)
    memory.write(0, struct.pack("<II", 0, 65536) * 16)
    with pytest.raises(GuestError, match="exceeded its quota of 100 bytes"):
        host(ctx, "wasi_snapshot_preview1.fd_write")(1, 0, 16, 300)
    assert memory.copied == 8 * 16 + 101
    assert host(ctx, "wasi_snapshot_preview1.fd_write")(1, 0, 4096, 300) == Errno.INVAL


def test_args_and_environ_tables() -> None:
    ctx = context(args=("a", "bc"), env={"K": "V"})
    assert host(ctx, "wasi_snapshot_preview1.args_sizes_get")(0, 4) == 0
    assert struct.unpack("<II", ctx.mem.read(0, 8)) == (3, len(b"g\0a\0bc\0"))
    host(ctx, "wasi_snapshot_preview1.args_get")(16, 64)
    pointers = struct.unpack("<III", ctx.mem.read(16, 12))
    assert [ctx.mem.read(p, 1) for p in pointers] == [b"g", b"a", b"b"]
    host(ctx, "wasi_snapshot_preview1.environ_get")(16, 128)
    assert ctx.mem.read(128, 4) == b"K=V\0"


def test_clock_random_and_exit() -> None:
    ctx = context()
    assert host(ctx, "wasi_snapshot_preview1.clock_time_get")(1, 0, 8) == 0
    assert struct.unpack("<Q", ctx.mem.read(8, 8))[0] > 0
    assert host(ctx, "wasi_snapshot_preview1.clock_time_get")(99, 0, 8) == 28
    assert host(ctx, "wasi_snapshot_preview1.random_get")(32, 16) == 0
    assert ctx.mem.read(32, 16) != bytes(16)
    for code, exit_code in ((3, 3), (256, 256), (-1, 0xFFFFFFFF)):  # an engine may hand the i32 signed
        with pytest.raises(GuestExit) as caught:
            host(ctx, "wasi_snapshot_preview1.proc_exit")(code)
        assert caught.value.code == exit_code


def test_proc_raise_is_not_supported_as_wasmtime_answers() -> None:
    """It was NOSYS, where Wasmtime's WASI says NOTSUP (found by test_wasi_differential)."""
    assert host(context(), "wasi_snapshot_preview1.proc_raise")(15) == Errno.NOTSUP


def test_clock_res_get_answers_each_host_clocks_own_resolution() -> None:
    """Found by CPython's time.clock_getres in a guest: it read 1 µs for clocks the host reads in 1 ns steps."""
    ctx = context()
    host_clocks = [time.CLOCK_REALTIME, time.CLOCK_MONOTONIC]
    host_clocks += [time.CLOCK_THREAD_CPUTIME_ID, time.CLOCK_THREAD_CPUTIME_ID]  # the instance's own calls
    for clock_id, host_clock in enumerate(host_clocks):
        assert host(ctx, "wasi_snapshot_preview1.clock_res_get")(clock_id, 8) == 0
        assert struct.unpack("<Q", ctx.mem.read(8, 8))[0] == max(1, round(time.clock_getres(host_clock) * 1e9))
    assert host(ctx, "wasi_snapshot_preview1.clock_res_get")(4, 8) == Errno.INVAL


def monotonic(ctx: HostContext) -> int:
    assert host(ctx, "wasi_snapshot_preview1.clock_time_get")(1, 0, 8) == Errno.SUCCESS
    return int(struct.unpack("<Q", ctx.mem.read(8, 8))[0])


def test_the_monotonic_clock_counts_from_the_instances_start_not_the_hosts_boot() -> None:
    """Found by CPython's time.monotonic() in a guest: it read the host's uptime (971 s), where Wasmtime's WASI (and
    a component guest's) reads the time since the instance started (0.06 s). A sleep until a time of that clock
    (ABSTIME, as clock_nanosleep asks it) still sleeps until then."""
    first = context()
    time.sleep(0.05)
    second = context()
    first_reads, second_reads = monotonic(first), monotonic(second)
    assert first_reads - second_reads >= 50_000_000 and second_reads < 10**9
    poll_oneoff = host(second, "wasi_snapshot_preview1.poll_oneoff")
    second.mem.write(0, SUBSCRIPTION.pack(7, 0, 1, monotonic(second) + 30_000_000, 0, 1))  # ABSTIME, 30 ms on
    started = time.monotonic()
    assert poll_oneoff(0, 100, 1, 200) == Errno.SUCCESS
    assert 0.03 <= time.monotonic() - started < 1


def test_ngixi_run_exits_with_the_guests_code_or_1_for_one_no_process_can_exit_with() -> None:
    codes = [0, 7, 255, 256, 512, 0xFFFFFFFF]
    assert [process_exit_code(code) for code in codes] == [0, 7, 255, 1, 1, 1]  # 256 would read as success


def test_a_sleep_past_the_calls_end_ends_the_call_as_a_timeout() -> None:
    """Waking early would let the guest believe it slept; a sleep that fits is slept whole."""
    ctx = context(call_ends_at=time.monotonic() + 0.3)
    poll_oneoff = host(ctx, "wasi_snapshot_preview1.poll_oneoff")
    ctx.mem.write(0, SUBSCRIPTION.pack(7, 0, 1, 20_000_000, 0, 0))  # the monotonic clock, 20 ms from now
    started = time.monotonic()
    assert poll_oneoff(0, 100, 1, 200) == Errno.SUCCESS
    assert time.monotonic() - started >= 0.02
    ctx.mem.write(0, SUBSCRIPTION.pack(7, 0, 1, 3600 * 10**9, 0, 0))  # an hour
    with pytest.raises(GuestError, match=r"g: reached its limits\.timeout_ms while sleeping") as stopped:
        poll_oneoff(0, 100, 1, 200)
    assert stopped.value.outcome == "timeout" and time.monotonic() - started < 2


def poll(ctx: HostContext, *subscriptions: tuple[int, int, int]) -> int:
    """poll_oneoff's errno for subscriptions of (userdata, event type, clock id or fd), its events at 300."""
    ctx.mem.write(
        0, b"".join(SUBSCRIPTION.pack(userdata, tag, which, 0, 0, 0) for userdata, tag, which in subscriptions)
    )
    return int(host(ctx, "wasi_snapshot_preview1.poll_oneoff")(0, 300, len(subscriptions), 500))


def polled(ctx: HostContext, *subscriptions: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """poll_oneoff's events, by userdata: each as (userdata, errno, nbytes)."""
    assert poll(ctx, *subscriptions) == Errno.SUCCESS
    count = len(subscriptions)
    events = sorted(EVENT.unpack_from(ctx.mem.read(300 + i * EVENT.size, EVENT.size)) for i in range(count))
    return [(userdata, error, nbytes) for userdata, error, _, nbytes, _ in events]


def test_an_undefined_clock_or_event_type_is_inval_and_stdio_counts_its_bytes() -> None:
    """Where Wasmtime traps the guest (README's WASI section), and fails the whole poll_oneoff as Wasmtime fails it
    for a clock it lacks; a writable stream's event counts the bytes its output quota still takes, stdin's the
    bytes left to read (witx: the bytes available), without fs as with it."""
    ctx = context()
    ctx.states["stdin"] = StdinState(b"abcde")
    ctx.capture_stdio(1, b"x" * 40)
    assert host(ctx, "wasi_snapshot_preview1.clock_time_get")(99, 0, 0) == Errno.INVAL
    assert host(ctx, "wasi_snapshot_preview1.clock_res_get")(99, 0) == Errno.INVAL
    along = [(3, 2, 1), (4, 1, 0)]
    for undefined in [(1, 0, 99), (2, 7, 1)]:  # clock 99, event type 7
        assert poll(ctx, undefined, *along) == Errno.INVAL
    assert polled(ctx, *along) == [(3, Errno.SUCCESS, 60), (4, Errno.SUCCESS, 5)]


def test_the_first_subscription_that_cannot_be_waited_on_answers_for_the_whole_poll() -> None:
    """In the guest's order, as Wasmtime's WASI answers: a clock it lacks before a closed descriptor is INVAL, not
    the descriptor's BADF that was looked at first (found by test_wasi_differential)."""
    ctx = context()
    closed, undefined_clock = (1, 1, 99), (2, 0, 99)
    assert poll(ctx, undefined_clock, closed) == Errno.INVAL
    assert poll(ctx, closed, undefined_clock) == Errno.BADF


@pytest.mark.parametrize("with_fs", [False, True])
def test_stdio_polled_against_its_direction_is_badf_with_fs_or_without(with_fs: bool) -> None:
    """Reading stdout or writing stdin is no event of theirs: the whole call fails with BADF, as Wasmtime's (and its
    p1_poll_oneoff_files for a closed descriptor); with fs granted its table answered them with stdin's bytes left
    and stdout's room."""
    ctx = context()
    ctx.states["stdin"] = StdinState(b"abcde")
    if with_fs:
        ctx.states["fs"] = WasiFilesystem.over([], guest="g", console=ctx, stdin=b"abcde")
    along = [(1, 2, 1), (2, 1, 0)]  # write stdout, read stdin
    for against in [(3, 1, 1), (4, 2, 0), (5, 1, 99)]:  # read stdout, write stdin, read a closed descriptor
        assert poll(ctx, *along, against) == Errno.BADF
    assert polled(ctx, *along) == [(1, Errno.SUCCESS, 100), (2, Errno.SUCCESS, 5)]


def test_a_descriptor_whose_poll_right_was_dropped_is_not_polled() -> None:
    """fd_fdstat_set_rights narrows every call a right names: poll_oneoff's is POLL_FD_READWRITE, which a file or
    stream dropped still answered for (NOTCAPABLE, as each dropped right's call answers)."""
    ctx = context()
    ctx.states["stdin"] = StdinState(b"abcde")
    filesystem = WasiFilesystem.over([], guest="g", console=ctx, stdin=b"abcde")
    ctx.states["fs"] = filesystem
    assert polled(ctx, (1, 1, 0)) == [(1, Errno.SUCCESS, 5)]
    filesystem.fd_fdstat_set_rights(ctx.mem, 0, RIGHT_FD_READ, 0)
    assert poll(ctx, (1, 1, 0)) == Errno.NOTCAPABLE


def test_abort_reads_assemblyscript_strings() -> None:
    ctx = context()
    message = "boom".encode("utf-16-le")
    ctx.mem.write(60, struct.pack("<I", len(message)) + message)
    host(ctx, "env.abort")(64, 0, 3, 4)  # returns: the trap that follows ends the call, with this message
    assert ctx.aborted == "g: guest aborted: boom (at ?:3:4)"  # no export yet: a start function
    ctx.data.begin("run", b"")
    host(ctx, "env.abort")(64, 0, 0, 0)  # AssemblyScript's abort("boom"), and a Zig panic: no file, no line
    assert ctx.aborted == "g: run aborted: boom"
    host(ctx, "env.abort")(64, 0, -1, 1 << 31)  # a line and column are u32s in AssemblyScript's and Zig's abort
    assert ctx.aborted == "g: run aborted: boom (at ?:4294967295:2147483648)"


def test_a_sink_gets_each_write_with_the_calls_deadline_and_a_reader_past_it_ends_the_call() -> None:
    """An empty write is passed on to no sink (an isolated child would send a frame its parent refuses); the
    deadline is the call's, and a reader that took nothing by then ends the call as a timeout."""
    passed: list[tuple[int, bytes, float]] = []
    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(), grants=GRANTS)

    def keep(stream: int, data: bytes, deadline: float) -> bool:
        passed.append((stream, data, deadline))
        return True

    ctx.on_stdio = keep
    ctx.call_ends_at = 12.5
    assert ctx.capture_stdio(1, b"") and ctx.capture_stdio(2, b"e")
    assert passed == [(2, b"e", 12.5)]

    def never_read(stream: int, data: bytes, deadline: float) -> bool:
        raise TimeoutError

    ctx.on_stdio = never_read
    with pytest.raises(GuestError, match=r"limits\.timeout_ms while the reader of its stdout") as raised:
        ctx.capture_stdio(1, b"x")
    assert raised.value.outcome == "timeout"


def test_a_write_passed_on_waits_for_its_reader_until_the_deadline_only() -> None:
    """ngixi run's write of a guest's output to its own (a blocking descriptor, as a shell leaves it): all of it, in
    order, to a reader that drains a full pipe late; TimeoutError at the deadline when the reader takes nothing."""
    reader, writer = os.pipe()
    data = bytes(range(256)) * 1024  # 256 KiB: four times a pipe's buffer
    try:
        with pytest.raises(TimeoutError):
            write_by(writer, data, time.monotonic() + 0.2)
        drained = bytearray()

        def drain_all() -> None:
            while piece := os.read(reader, 1 << 16):
                drained.extend(piece)

        drain = threading.Thread(target=drain_all)
        drain.start()
        write_by(writer, data, time.monotonic() + 30)
        os.close(writer)
        drain.join()
    finally:
        os.close(reader)
        with contextlib.suppress(OSError):
            os.close(writer)
    assert drained.endswith(data) and len(drained) < 2 * len(data)


def test_a_log_line_gets_the_calls_deadline_and_a_reader_past_it_ends_the_call() -> None:
    """Log lines passed on as logged (`ngixi run`) wait for their reader as stdout and stderr do: no longer than the
    call's deadline, after which the call ends as a timeout."""
    passed: list[tuple[LogLine, float]] = []
    ctx = HostContext(
        guest="g",
        log_quota=100,
        stdio_quota=100,
        memory=FakeMemory(),
        grants=GRANTS,
        on_log=lambda line, deadline: passed.append((line, deadline)),
    )
    ctx.call_ends_at = 12.5
    ctx.output.host_says("refused")
    assert passed == [(LogLine(HOST_LOG_LEVEL, "refused"), 12.5)]

    def never_read(line: LogLine, deadline: float) -> None:
        raise TimeoutError

    ctx = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(), grants=GRANTS, on_log=never_read)
    with pytest.raises(GuestError, match=r"limits\.timeout_ms while the reader of its log lines") as raised:
        ctx.output.host_says("refused")
    assert raised.value.outcome == "timeout"
