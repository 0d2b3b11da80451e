"""The call data ABI, granted to every guest: a core guest reads its call's input and writes its output.

`ngixi.input_read(buf, buf_len, input_len)` writes the input's length to `input_len` and copies the
input to `buf` when it fits (else BUFFER_TOO_SMALL, as `kv_get`); `ngixi.output_write(ptr, len)`
appends to the call's output. Both check the guest's claimed ranges against its memory, and the
output against `[limits] output_bytes`, before copying a byte; either failure ends the call with a
one-line error naming the guest, the export and the limit. The host never allocates in guest memory.
"""

from __future__ import annotations

from ngixi_runtime.capabilities.base import Capability, ComponentFunction, host_import
from ngixi_runtime.capabilities.component import fallible
from ngixi_runtime.capabilities.context import HostContext, HostFunction
from ngixi_runtime.errors import GuestError
from ngixi_runtime.spec.abi import AbiFault, Status, copy_out


def _within_memory(ctx: HostContext, what: str, pointer: int, length: int) -> None:
    """A range the guest names must lie in its memory: a guest claiming more is refused before any copy. `what`
    says the range, formatted with `pointer` and `length` only for the refusal (this runs on every host call).
    An empty range names no bytes, wherever it points (an empty slice's pointer may dangle)."""
    size = ctx.mem.size_bytes
    if length and pointer + length > size:
        named = what.format(pointer, length)
        raise GuestError(
            f"{ctx.guest}: {ctx.data.export}: {named} names bytes outside its memory of {size} bytes",
            outcome="range",
        )


def _in_a_call(ctx: HostContext, function: str) -> None:
    """A call's data exists only while an export runs: not in the guest's start function."""
    if not ctx.data.export:
        raise GuestError(
            f"{ctx.guest}: {function} was called outside an export's call (in the module's start function); "
            "a call's input and output exist only while an export runs",
            outcome="range",
        )


def _check_output_room(ctx: HostContext, length: int, function: str = "output_write") -> None:
    _in_a_call(ctx, function)
    data = ctx.data
    if length > data.output_limit - len(data.output):
        raise GuestError(
            f"{ctx.guest}: {data.export} wrote more than its output limit of {data.output_limit} bytes "
            "(limits.output_bytes)",
            outcome="quota",
        )


def _input_read(ctx: HostContext) -> HostFunction:
    def input_read(buffer: int, buffer_size: int, length_pointer: int) -> int:
        _in_a_call(ctx, "input_read")
        _within_memory(ctx, "input_read({0}, {1})", buffer, buffer_size)
        _within_memory(ctx, "input_read's input_len pointer {0}", length_pointer, 4)
        try:
            copy_out(ctx.mem, ctx.data.input, buffer, buffer_size, length_pointer)
        except AbiFault as fault:
            return fault.code
        return Status.OK

    return input_read


def _output_write(ctx: HostContext) -> HostFunction:
    def output_write(pointer: int, length: int) -> int:
        _check_output_room(ctx, length)
        _within_memory(ctx, "output_write({0}, {1})", pointer, length)
        ctx.data.output += ctx.mem.read(pointer, length)
        return Status.OK

    return output_write


def _input(ctx: HostContext) -> ComponentFunction:
    def read_input() -> object:
        _in_a_call(ctx, "input")
        return ctx.data.input

    return read_input


def _output(ctx: HostContext) -> ComponentFunction:
    def output(data: bytes) -> object:
        _check_output_room(ctx, len(data), "output")
        ctx.data.output += data
        return None

    return output


CAPABILITY = Capability(
    "data",
    "granted to every guest: the call's input and output (the call data ABI)",
    {
        host_import("ngixi", "input_read", "i32 i32 i32", "i32"): _input_read,
        host_import("ngixi", "output_write", "i32 i32", "i32"): _output_write,
    },
    interface="data",
    component_host={"input": _input, "output": _output},
    component_types={"input": ((), (fallible("list<u8>"),)), "output": (("list<u8>",), (fallible("_"),))},
)
