"""What the component side of every capability shares: the world record, WIT names, results, and WASI.

A component guest's functions are thin adapters: the engine lifts strings, byte lists and enums
into Python values, and each capability's binding calls the same implementation a core guest's
import does, turning an `AbiFault` status into the WIT `error` case.

Its WASI preview 1 imports are adapted to WASI preview 2 at build time (the pinned adapter), and
Wasmtime's WASI implementation serves them (docs/components.md says why), set up here from the
instance's context alone: the caller's args and env, the preopens resolved and checked under the
tenant's sandbox exactly as for core guests, stdout and stderr captured within the same quota, the
caller's stdin when granted (else an empty one) and no network.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from ngixi_runtime.capabilities.base import Mount
from ngixi_runtime.capabilities.context import HostContext
from ngixi_runtime.errors import GuestError
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, Status

HOST_PACKAGE = "ngixi:host"
HOST_VERSION = "0.1.0"
# Interfaces that only define types; any component may import them.
TYPE_INTERFACES = frozenset({"types"})
# The manifest's core value types as the WIT types of a component's exports.
WIT_VALUE_TYPES = {"i32": "s32", "i64": "s64", "f32": "f32", "f64": "f64"}
# What libc++ writes on stderr before it aborts when `operator new` finds no memory (a JavaScript component's engine
# making an argument too large for its memory): the host cannot see a component's memory, nor name its functions.
_NO_MEMORY_FOR_NEW = b"bad_alloc was thrown"
# What a command component exports, its `_start` adapted: a function in an exported instance.
RUN_EXPORT = r"^wasi:cli/run@0\.2\.\d+#run\Z"  # a pattern, compiled by `re` when a component is first read
_WASI_NAME = r"^(wasi:[a-z][a-z-]*/[a-z][a-z-]*)@0\.2\.\d+\Z"  # as RUN_EXPORT

WitTypes = tuple[tuple[str, ...], tuple[str, ...]]
# The catalog's `types.error`, as `engines.wit_values.render` writes it: how a fallible host function fails.
ERROR_TYPE = (
    "enum { denied, address-refused, method-not-allowed, invalid, too-large, timeout, unreachable, "
    "too-many-redirects, not-found, quota-exceeded, host-failure }"
)


def fallible(ok: str) -> str:
    """The WIT result type of a host function that returns `ok` or fails with the catalog's error."""
    return f"result<{ok}, {ERROR_TYPE}>"


class ComponentInfo(NamedTuple):
    """What a component imports (interface → its functions) and exports (name → WIT param and result types).

    A function of an exported instance is named `instance#function`, like `wasi:cli/run@0.2.12#run`.
    """

    imports: Mapping[str, frozenset[str]]
    exports: Mapping[str, WitTypes]
    # interface → function → its WIT param and result types, as the component declares them (which need not be
    # the host's: an import is linked by name, and the host function is handed what the component's types lift to)
    import_types: Mapping[str, Mapping[str, WitTypes]] = MappingProxyType({})
    # export → why the host cannot call it (async; it passes a resource handle, stream or future), as the build
    # reads it from the component's WIT
    uncallable: Mapping[str, str] = MappingProxyType({})

    def to_json(self) -> dict[str, Any]:
        return {
            "imports": {name: sorted(functions) for name, functions in sorted(self.imports.items())},
            "exports": {name: {"params": list(p), "results": list(r)} for name, (p, r) in sorted(self.exports.items())},
        }

    def lines(self) -> list[str]:
        """The world for people: one line per imported interface and per exported function."""
        imports = [f"import {name}: {', '.join(sorted(f)) or '(types)'}" for name, f in sorted(self.imports.items())]
        return [*imports, *(f"export {name}: {wit_signature(types)}" for name, types in sorted(self.exports.items()))]


def wit_signature(types: WitTypes) -> str:
    return f"({', '.join(types[0])}) -> ({', '.join(types[1])})"


def text_positions(params: Sequence[str]) -> frozenset[int]:
    """Which of a function's parameters (counted from 1) are WIT `string`s: there a command-line argument is its
    text."""
    return frozenset(position for position, wit in enumerate(params, start=1) if wit.strip() == "string")


def run_export(info: ComponentInfo) -> str | None:
    """A command component's `wasi:cli/run` function, as `wasi:cli/run@0.2.12#run`."""
    return next((name for name in info.exports if re.match(RUN_EXPORT, name)), None)


def interface_import(interface: str) -> str:
    """The name a component imports an interface by: `ngixi:host/kv@0.1.0`."""
    return f"{HOST_PACKAGE}/{interface}@{HOST_VERSION}"


def interface_of(name: str) -> str | None:
    """`ngixi:host/kv@0.1.0` → "kv"; None for anything else."""
    prefix, suffix = f"{HOST_PACKAGE}/", f"@{HOST_VERSION}"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    return name[len(prefix) : -len(suffix)]


def error_case(status: int) -> str:
    """The WIT `error` case of an Ngixi status: TOO_LARGE → "too-large"."""
    return Status(status).name.lower().replace("_", "-")


def outcome(call: Callable[[], Any]) -> Any:
    """The `result<T, error>` of a capability call: its value, or the error case of the status it raised."""
    try:
        return call()
    except AbiFault as fault:
        return error_case(fault.code)


def utf8_length(text: str) -> int:
    """A lifted string's length in UTF-8 bytes, as a core guest passes it: the bound a host function checks. An ASCII
    string's is its length (no copy of a long one only to be refused)."""
    return len(text) if text.isascii() else len(text.encode())


def granted_state(ctx: HostContext, capability: str) -> Any:
    """The capability's state, for a function of its interface; a component without the grant traps."""
    state = ctx.states.get(capability)
    if state is None:
        raise GuestError(f"{ctx.guest}: called {capability} without [capabilities.{capability}]")
    return state


# --- WASI preview 2 --------------------------------------------------------------------------------


def wasi_interface(name: str) -> str | None:
    """`wasi:cli/stdout@0.2.12` → "wasi:cli/stdout"; None for anything that is not WASI preview 2."""
    match = re.match(_WASI_NAME, name)
    return match.group(1) if match else None


def imports_wasi(imports: Iterable[str]) -> bool:
    return any(wasi_interface(name) for name in imports)


@runtime_checkable
class Preopening(Protocol):
    """A capability state that preopens directories for the guest (fs's)."""

    @property
    def mounts(self) -> Sequence[Mount]: ...


class StdioSink:
    """Where a component's WASI stdout and stderr go: the context's captured output, within its quota.

    Wasmtime calls a writer from inside the guest and cannot take an exception, so a refused write
    is an error to the guest (WASI then closes that stream for good) and the refusal is raised by
    `raise_refusal` once the call is back in the host.
    """

    def __init__(self, context: HostContext) -> None:
        self._context = context
        self._refusal: GuestError | None = None

    def writer(self, fd: int) -> Callable[[bytes], int]:
        """The writer of stdout (1) or stderr (2): bytes taken, or minus an errno."""

        def write(data: bytes) -> int:
            if "stdio" not in self._context.grants:
                return -errno.EBADF  # as for a core guest without [capabilities.stdio]
            self._context.output.host_calls["stdio"] += 1
            if fd == 2 and _NO_MEMORY_FOR_NEW in data:
                self._context.out_of_memory = True
            try:
                delivered = self._context.capture_stdio(fd, data)
            except GuestError as refusal:
                self._refusal = self._refusal or refusal
                return -errno.EDQUOT
            return len(data) if delivered else -errno.EPIPE

        return write

    def raise_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise refusal


class WasiSetup(NamedTuple):
    """All a component guest's WASI sees; nothing else of the host (its env, stdin, network) reaches it."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    stdio: StdioSink
    stdin: bytes = b""  # the caller's input, for a guest granted stdin (capabilities/stdin.py)


def wasi_setup(context: HostContext) -> WasiSetup:
    """WASI as a core guest's host functions would give it: argv is the guest's name, then the caller's args;
    the environment in the same order (the manifest's fixed variables, then the caller's)."""
    preopening = [state for state in context.states.values() if isinstance(state, Preopening)]
    return WasiSetup(
        args=(context.guest, *context.args),
        env=tuple(context.env.items()),
        mounts=tuple(mount for state in preopening for mount in state.mounts),
        stdio=StdioSink(context),
        stdin=context.stdin,
    )
