"""The baseline, granted to every guest: abort with a message (AssemblyScript's `env.abort`), exit, and
WASI's `sched_yield` (nothing to yield to: a guest has one thread) and `proc_raise` (refused: NOTSUP, as
Wasmtime's WASI answers)."""

from __future__ import annotations

from ngixi_runtime.capabilities.base import WASI, Capability, host_import, wasi_import
from ngixi_runtime.capabilities.context import GuestExit, HostContext, HostFunction
from ngixi_runtime.printable import printable
from ngixi_runtime.spec.abi import Errno, read_u32


def _abort(ctx: HostContext) -> HostFunction:
    def read_string(pointer: int) -> str:
        if pointer == 0:
            return "?"
        size = read_u32(ctx.mem, pointer - 4)
        return printable(ctx.mem.read(pointer, min(size, 4096)).decode("utf-16-le", errors="replace"))

    def abort(message: int, file_name: int, line: int, column: int) -> None:
        # Returns: the compiler's `unreachable` after the call traps with the guest's frames, which say
        # where in its own code it was; the loader reports the trap with this message.
        what = f"{ctx.guest}: {ctx.data.export or 'guest'} aborted"  # no export yet: its start function
        where = f" (at {read_string(file_name)}:{line}:{column})" if file_name or line or column else ""
        ctx.aborted = f"{what}: {read_string(message)}{where}"

    return abort


def _proc_exit(ctx: HostContext) -> HostFunction:
    def proc_exit(code: int) -> None:
        raise GuestExit(code & 0xFFFFFFFF)  # witx: an exitcode is a u32, whichever way the engine hands an i32

    return proc_exit


def _sched_yield(ctx: HostContext) -> HostFunction:
    def sched_yield() -> int:
        return Errno.SUCCESS

    return sched_yield


def _proc_raise(ctx: HostContext) -> HostFunction:
    def proc_raise(signal: int) -> int:
        return Errno.NOTSUP

    return proc_raise


CAPABILITY = Capability(
    "baseline",
    "granted to every guest: abort with a message, and exit",
    {
        host_import("env", "abort", "i32 i32 i32 i32"): _abort,
        host_import(WASI, "proc_exit", "i32"): _proc_exit,
        wasi_import("sched_yield", ""): _sched_yield,
        wasi_import("proc_raise", "i32"): _proc_raise,
    },
    # The adapter reports its own faults on stderr, so every adapted component imports that.
    wasi_p2={
        "wasi:cli/exit": frozenset({"exit"}),
        "wasi:cli/stderr": frozenset({"get-stderr"}),
        "wasi:io/streams": frozenset({"[method]output-stream.blocking-write-and-flush"}),
        "wasi:io/error": frozenset(),
        "wasi:cli/terminal-input": frozenset(),
        "wasi:cli/terminal-output": frozenset(),
    },
)
