"""What a capability module provides (its `Capability` record), and the helpers capability modules share.

A capability is one module of this package, named by one line of registry.py, whose `CAPABILITY`
says everything about it: the imports it grants with their host functions, how its
`[capabilities.<name>]` table is read and how an operator's policy caps it, the state it keeps per
instance, and for component guests its WIT interface and the WASI preview 2 functions it grants.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol

from ngixi_runtime.capabilities.context import CapabilityState, HostContext, HostFunction, Sandbox
from ngixi_runtime.errors import GuestError
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import FILETYPE_STREAM, AbiFault, Errno, Status, fdstat, write_u32
from ngixi_runtime.spec.schema import Problems, array, integer
from ngixi_runtime.spec.wasm import Signature

WASI = "wasi_snapshot_preview1"
_SHOWN_CHARACTERS = 60  # of a caller's value an error line shows

Mode = Literal["ro", "rw"]
MODES: tuple[Mode, ...] = ("ro", "rw")
CapabilityOptions = object  # each capability's options are a frozen record of its own
ComponentFunction = Callable[..., Any]
HostFunctionFactory = Callable[[HostContext], HostFunction]
Binder = Callable[[HostContext], ComponentFunction]
OptionsParser = Callable[[Mapping[str, Any], str, Problems], CapabilityOptions]
StateOpener = Callable[[Any, HostContext, Sandbox | None], CapabilityState]


class HostImport(NamedTuple):
    module: str
    name: str
    signature: Signature

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


def host_import(module: str, name: str, params: str, results: str = "") -> HostImport:
    """An import from its value types, space-separated: `host_import("ngixi", "log", "i32 i32 i32")`."""
    return HostImport(module, name, Signature(tuple(params.split()), tuple(results.split())))


def wasi_import(name: str, params: str) -> HostImport:
    """A WASI preview 1 function: each returns an errno."""
    return host_import(WASI, name, params, "i32")


# Granted by both stdio (fds 1 and 2) and fs (its files): each answers for its own descriptors.
FD_WRITE = wasi_import("fd_write", "i32 i32 i32 i32")
FD_FDSTAT_GET = wasi_import("fd_fdstat_get", "i32 i32")
# Granted by stdio and stdin for their streams too: C's buffered stdio imports them with printf or fgets.
FD_SEEK = wasi_import("fd_seek", "i32 i64 i32 i32")
FD_CLOSE = wasi_import("fd_close", "i32")


def stream_fdstat_get(fds: Collection[int], rights: int) -> HostFunctionFactory:
    """`fd_fdstat_get` for a capability's standard streams `fds`: each a stream with `rights`, inherited too (as
    Wasmtime says); any other descriptor is not this capability's to answer for."""
    record = fdstat(FILETYPE_STREAM, 0, rights, rights)

    def bound(ctx: HostContext) -> HostFunction:
        def fd_fdstat_get(fd: int, out: int) -> int:
            if fd not in fds:
                return Errno.BADF
            ctx.mem.write(out, record)
            return Errno.SUCCESS

        return fd_fdstat_get

    return bound


def stream_seek(fds: Collection[int]) -> HostFunctionFactory:
    """`fd_seek` for a capability's standard streams: SPIPE, as a pipe answers (and fs for these streams)."""

    def bound(ctx: HostContext) -> HostFunction:
        def fd_seek(fd: int, offset: int, whence: int, out: int) -> int:
            return Errno.SPIPE if fd in fds else Errno.BADF

        return fd_seek

    return bound


def stream_close(fds: Collection[int]) -> HostFunctionFactory:
    """`fd_close` for a capability's standard streams: done, as for a pipe; the host keeps the stream open, so a
    write after it is still captured (without fs there is no descriptor table to take it out of)."""

    def bound(ctx: HostContext) -> HostFunction:
        def fd_close(fd: int) -> int:
            return Errno.SUCCESS if fd in fds else Errno.BADF

        return fd_close

    return bound


def descriptor_methods(*methods: str) -> frozenset[str]:
    return frozenset(f"[method]descriptor.{m}" for m in methods)


# The WASI preview 2 functions the adapter imports behind stdout, granted by stdio and by fs: as
# `fd_write` for core guests, they are also the adapter's way to files, which only fs's preopens reach.
OUTPUT_WASI_P2: Mapping[str, frozenset[str]] = {
    "wasi:io/streams": frozenset(
        {
            "[method]output-stream.blocking-flush",
            "[method]output-stream.check-write",
            "[method]output-stream.write",
        }
    ),
    "wasi:cli/stdin": frozenset({"get-stdin"}),
    "wasi:cli/stdout": frozenset({"get-stdout"}),
    **{f"wasi:cli/terminal-{s}": frozenset({f"get-terminal-{s}"}) for s in ("stdin", "stdout", "stderr")},
    "wasi:filesystem/preopens": frozenset({"get-directories"}),
    "wasi:filesystem/types": frozenset({"filesystem-error-code"})
    | descriptor_methods("append-via-stream", "get-flags", "get-type", "stat", "write-via-stream"),
}


class Ceiling(Protocol):
    def exceeded(self, options: Any, field: str) -> list[str]:
        """One line per option of a granted capability that asks for more than this ceiling."""
        ...


CeilingParser = Callable[[Mapping[str, Any], str, Problems], Ceiling]


class NoOptions:
    """A capability that takes no options (one instance: a record with no fields would be an empty, false tuple)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NoOptions()"


_NO_OPTIONS = NoOptions()


def no_options(raw: Mapping[str, Any], field: str, problems: Problems) -> NoOptions:
    for key in raw:
        problems.add(f"{field}.{key}", f"unknown key; [{field}] takes no options")
    return _NO_OPTIONS


class NoCeiling:
    """A capability without options: allowing it is all there is to say (one instance, as `NoOptions`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NoCeiling()"

    def exceeded(self, options: object, field: str) -> list[str]:
        return []


_NO_CEILING = NoCeiling()


def no_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> NoCeiling:
    no_options(raw, field, problems)
    return _NO_CEILING


class Capability:
    """Everything about one capability; `imports` maps each import it grants to its host function's factory.

    One record per capability module, so two are equal only if they are the same (a plain class: identity
    equality and hashing).
    """

    __slots__ = (
        "component_host",
        "component_types",
        "descriptor_table",
        "imports",
        "interface",
        "name",
        "needs_sandbox",
        "open_state",
        "parse_ceiling",
        "parse_options",
        "summary",
        "wasi_p2",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        summary: str,
        imports: Mapping[HostImport, HostFunctionFactory],
        *,
        parse_options: OptionsParser = no_options,
        parse_ceiling: CeilingParser = no_ceiling,  # the operator policy's ceilings on those options
        open_state: StateOpener | None = None,  # its state in one instance, from its options
        needs_sandbox: bool = False,  # whether that state lives in the tenant's sandbox
        # Whether its state is the instance's whole WASI descriptor table (fs): granted, it answers alone for
        # every descriptor, stdio's included, in the imports it shares with other capabilities.
        descriptor_table: bool = False,
        interface: str | None = None,  # its interface in the WIT catalog (wit/), for component guests
        component_host: Mapping[str, Binder] = MappingProxyType({}),  # that interface's functions
        # and their WIT param and result types, which a component's import of each must have
        component_types: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = MappingProxyType({}),
        wasi_p2: Mapping[str, frozenset[str]] = MappingProxyType({}),  # WASI preview 2 functions it grants
    ) -> None:
        self.name = name
        self.summary = summary
        self.imports = imports
        self.parse_options = parse_options
        self.parse_ceiling = parse_ceiling
        self.open_state = open_state
        self.needs_sandbox = needs_sandbox
        self.descriptor_table = descriptor_table
        self.interface = interface
        self.component_host = component_host
        self.component_types = component_types
        self.wasi_p2 = wasi_p2

    def __repr__(self) -> str:
        return f"Capability({self.name!r})"


class Mount(NamedTuple):
    """A preopened directory: the path the guest sees, and the host directory it resolved to in the sandbox."""

    guest_path: str
    mode: Mode
    host_path: Path


# --- options and ceilings ------------------------------------------------------------------------


class Bounds(NamedTuple):
    """An integer option's default and its allowed range."""

    default: int
    low: int
    high: int


def bounded(raw: Mapping[str, Any], key: str, field: str, problems: Problems, bounds: Bounds) -> int:
    """The integer option `field.key`, its default when absent."""
    return integer(raw, key, f"{field}.{key}", problems, default=bounds.default, low=bounds.low, high=bounds.high)


def ceiling_bound(raw: Mapping[str, Any], key: str, field: str, problems: Problems, bounds: Bounds) -> int | None:
    """A policy's ceiling on the integer option `key`; None (no ceiling) when absent."""
    if key not in raw:
        return None
    return integer(raw, key, f"{field}.{key}", problems, default=0, low=bounds.low, high=bounds.high)


def optional_array(
    raw: Mapping[str, Any], key: str, field: str, problems: Problems, item: Callable[[object, str, Problems], Any]
) -> tuple[Any, ...] | None:
    """A policy's list of allowed values for `key`; None (anything) when absent."""
    return array(raw, key, f"{field}.{key}", problems, item=item, identity=str) if key in raw else None


def at_most(field: str, asked: int | None, ceiling: int | None, *, default: int | None) -> list[str]:
    """`asked` None is an optional limit left unset, so unlimited: over any ceiling. An `asked` equal to the field's
    `default` (None: it has none) is said to be it: a manifest that sets no quota of a capability it never uses
    still asks for it."""
    if ceiling is None or (asked is not None and asked <= ceiling):
        return []
    if asked is None:
        return [f"{field}: not set, so unlimited; the policy allows at most {ceiling}"]
    which = " (the default, unless the manifest sets it)" if asked == default else ""
    return [f"{field}: asks for {asked}{which}, the policy allows at most {ceiling}"]


def listing(items: Sequence[object]) -> str:
    return ", ".join(str(item) for item in items) or "none"


def members(
    field: str, asked: Sequence[str], allowed: Sequence[str] | None, *, default: Sequence[str] | None
) -> list[str]:
    """A line for each asked value the policy's `allowed` list leaves out (None allows anything); `asked` equal to
    the field's `default` (None: it has none) is said to be it, as `at_most` says."""
    if allowed is None:
        return []
    which = (
        " (the default, unless the manifest sets it)" if default is not None and tuple(asked) == tuple(default) else ""
    )
    return [
        f'{field}[{index}]: "{item}"{which} is not allowed by the policy (it allows: {listing(allowed)})'
        for index, item in enumerate(asked)
        if item not in allowed
    ]


# --- host functions ------------------------------------------------------------------------------


def state_method(
    capability: str, method: Callable[..., None], os_error: Callable[[HostContext, OSError], int]
) -> HostFunctionFactory:
    """A host function calling `method(state, memory, *args)` on the capability's state: 0 on success,
    else the code of the `AbiFault` it raised, or what `os_error` makes of an `OSError`."""

    def bind(ctx: HostContext) -> HostFunction:
        def call(*args: int) -> int:
            target = ctx.states.get(capability)
            if target is None:
                raise GuestError(f"{ctx.guest}: called a host function of a capability it was not granted")
            try:
                method(target, ctx.mem, *args)
            except AbiFault as fault:
                return fault.code
            except OSError as error:
                return os_error(ctx, error)
            return 0

        return call

    return bind


def host_failure(ctx: HostContext, error: OSError) -> int:
    """An `ngixi.*` import's OSError: the operator is told, the guest gets HOST_FAILURE."""
    ctx.output.host_says(f"{ctx.guest}: host failure: {error}")
    return Status.HOST_FAILURE


def wasi_string_problem(value: str) -> str | None:
    """Why `value` cannot be one of WASI's NUL-terminated UTF-8 strings (an argument, a variable's value), or None:
    a NUL would cut it short, and a lone surrogate (a command line's bytes that are not UTF-8) has no UTF-8."""
    if "\0" in value:
        return "holds a NUL character"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid UTF-8 (WASI strings are UTF-8)"
    return None


def wasi_string_shown(value: str) -> str:
    """A value `wasi_string_problem` refused, as its one line shows it: its repr, escaped for the terminal; of a
    long one (a file's text passed as an argument), the part around the first character WASI cannot carry."""
    if len(value) <= _SHOWN_CHARACTERS:
        return printable(repr(value))
    first = next((i for i, c in enumerate(value) if c == "\0" or "\ud800" <= c <= "\udfff"), 0)
    start = max(0, min(first - _SHOWN_CHARACTERS // 2, len(value) - _SHOWN_CHARACTERS))
    end = start + _SHOWN_CHARACTERS
    excerpt = f"{'...' if start else ''}{value[start:end]!r}{'...' if end < len(value) else ''}"
    return printable(f"{excerpt} ({len(value)} characters)")


def string_table(name: str, items: Callable[[HostContext], list[bytes]]) -> dict[HostImport, HostFunctionFactory]:
    """The WASI `<name>_sizes_get` / `<name>_get` pair for a list of NUL-terminated strings."""

    def sizes(ctx: HostContext) -> HostFunction:
        def sizes_get(count_pointer: int, size_pointer: int) -> int:
            values = items(ctx)
            write_u32(ctx.mem, count_pointer, len(values))
            write_u32(ctx.mem, size_pointer, sum(len(v) for v in values))
            return Errno.SUCCESS

        return sizes_get

    def get(ctx: HostContext) -> HostFunction:
        def table_get(pointers: int, buffer: int) -> int:
            for index, value in enumerate(items(ctx)):
                write_u32(ctx.mem, pointers + 4 * index, buffer)
                ctx.mem.write(buffer, value)
                buffer += len(value)
            return Errno.SUCCESS

        return table_get

    return {wasi_import(f"{name}_sizes_get", "i32 i32"): sizes, wasi_import(f"{name}_get", "i32 i32"): get}
