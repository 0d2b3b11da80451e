"""The host side of one guest instance: its context, holding the state of each granted capability, and the
host functions linked for what its code imports (core guests) or its world imports (component guests).

Only the capabilities the instance is granted (and the baseline) are asked for, so only their
modules are imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ngixi_runtime.capabilities.base import (
    CapabilityOptions,
    ComponentFunction,
    HostImport,
    wasi_string_problem,
    wasi_string_shown,
)
from ngixi_runtime.capabilities.component import interface_import
from ngixi_runtime.capabilities.context import (
    DEFAULT_OPEN_FILES,
    GuestExit,
    HostContext,
    HostFunction,
    LogSink,
    Sandbox,
    Stdin,
    StdioSink,
)
from ngixi_runtime.capabilities.registry import capability, provisions
from ngixi_runtime.errors import GuestError, InvalidInput, NgixiError
from ngixi_runtime.spec.abi import U32, Errno

Result = TypeVar("Result")


def open_context(
    guest: str,
    grants: Mapping[str, CapabilityOptions],
    *,
    log_quota: int,
    stdio_quota: int,
    sandbox: Sandbox | None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: bytes = b"",
    on_log: LogSink | None = None,
    open_files: int = DEFAULT_OPEN_FILES,
    on_stdio: StdioSink | None = None,
) -> HostContext:
    """The host side of one instance, with the state of each capability granted (name → its options).

    `env` is what the caller gives, refused unless the grants take it (`caller_environment`); `stdin`, the input
    `caller_stdin` took.
    """
    context = HostContext(
        guest=guest,
        log_quota=log_quota,
        stdio_quota=stdio_quota,
        args=caller_arguments(guest, grants, args),
        env=caller_environment(guest, grants, env or {}),
        stdin=stdin,
        on_log=on_log,
        grants=frozenset(grants),
        open_files=open_files,
        on_stdio=on_stdio,
    )
    if sandbox is None and keeps_sandbox_state(grants):
        kept = [name for name, options in grants.items() if _needs_sandbox(name, options)]
        which = f"{kept[0]} capability keeps" if len(kept) == 1 else f"{' and '.join(kept)} capabilities keep"
        raise InvalidInput(
            f"{guest}: its {which} state in a sandbox directory: give one (ngixi run --sandbox DIR; "
            "sandboxes=DIR to open_tenant or TenantPool)"
        )
    try:
        for name, options in grants.items():
            opener = capability(name).open_state
            if opener is not None:
                context.states[name] = opener(options, context, sandbox)
    except BaseException:
        context.close()
        raise
    return context


def caller_environment(guest: str, grants: Mapping[str, CapabilityOptions], given: Mapping[str, str]) -> dict[str, str]:
    """The environment variables the guest sees: its manifest's fixed ones, and those the caller gives, each
    of which the manifest must allow (capabilities/env.py)."""
    if "env" not in grants and not given:
        return {}
    from ngixi_runtime.capabilities import env  # only for a guest granted env, or given variables to refuse

    options = grants.get("env")
    return env.guest_environment(guest, options if isinstance(options, env.EnvOptions) else None, given)


def caller_arguments(guest: str, grants: Mapping[str, CapabilityOptions], given: Sequence[str]) -> tuple[str, ...]:
    """The command-line arguments the guest sees: those the caller gives to a guest granted `args`, each refused
    if WASI cannot pass it (a NUL-terminated UTF-8 string); none for a guest not granted it, which cannot read them
    (nor are they handed to a component's WASI, which would have to encode them)."""
    if "args" not in grants:
        return ()
    for position, argument in enumerate(given, start=1):
        problem = wasi_string_problem(argument)
        if problem is not None:
            raise InvalidInput(f"{guest}: argument {position}, {wasi_string_shown(argument)}, {problem}")
    return tuple(given)


def caller_stdin(guest: str, grants: Mapping[str, CapabilityOptions], given: Stdin | None, *, timeout_ms: int) -> bytes:
    """The standard input the guest reads: what the caller gives, within the manifest's grant
    (capabilities/stdin.py); a reader is asked only when the guest is granted stdin, for input that ends within
    `timeout_ms` (limits.timeout_ms)."""
    if "stdin" not in grants and (not given or callable(given)):
        return b""
    from ngixi_runtime.capabilities import stdin  # only for a guest granted stdin, or given bytes to refuse

    options = grants.get("stdin")
    granted = options if isinstance(options, stdin.StdinOptions) else None
    return stdin.caller_input(guest, granted, given, timeout_ms=timeout_ms)


def keeps_sandbox_state(grants: Mapping[str, CapabilityOptions]) -> bool:
    """Whether a capability granted keeps state in the tenant's sandbox (kv does; fs without preopens does not)."""
    return any(_needs_sandbox(name, options) for name, options in grants.items())


def _needs_sandbox(name: str, options: CapabilityOptions) -> bool:
    """Whether the capability keeps this grant's state in the tenant's sandbox (fs without preopens does not)."""
    return capability(name).needs_sandbox and getattr(options, "needs_sandbox", True)


def counting_calls(
    function: Callable[..., Result], capability: str, context: HostContext, params: Sequence[str] = ()
) -> Callable[..., Result]:
    """The host function, counting its calls under its capability in the guest's output; an exception no
    check foresaw (a bug) ends the call as a one-line trap on every engine, never with a traceback.

    A core host function's `params` (its value types) are given: its i32 arguments are passed on as the u32s they
    are (pointers, lengths, descriptors and flags: witx types every i32 parameter of WASI's so, and the `ngixi`
    imports take pointers and lengths). The engines hand an i32 over signed, so a length of 2^31 or more arrived
    negative, and a check such as `length > limit` passed it to a read of gigabytes. i64 arguments are passed as
    they come (a file delta is signed); arguments none of which is negative, nearly every call's, as they are."""
    output = context.output
    masks = [U32 if kind == "i32" else None for kind in params] if "i32" in params else None

    def counted(*args: Any) -> Result:
        output.host_calls[capability] += 1
        try:
            if masks is not None and min(args) < 0:
                return function(*[value if m is None else value & m for value, m in zip(args, masks, strict=True)])
            return function(*args)
        except (NgixiError, GuestExit):
            raise
        except Exception as error:
            raise host_failure(context.guest, capability, error) from error

    return counted


def host_failure(guest: str, capability: str, error: Exception) -> GuestError:
    return GuestError(
        f"{guest}: a host function of capability {capability} failed ({type(error).__name__}: {error}); the "
        "call was stopped: report it with the guest and its input",
        outcome="trap",
    )


def per_descriptor(functions: Sequence[HostFunction]) -> HostFunction:
    """One WASI function on a descriptor that several granted capabilities implement (fd_write: stdio's
    fds 1 and 2, fs's files): each answers for the descriptors it owns and BADF for any other."""

    def first_owner(fd: int, *args: int) -> int | None:
        for function in functions:
            answer = function(fd, *args)
            if answer != Errno.BADF:
                return answer
        return Errno.BADF

    return first_owner


def core_imports(context: HostContext, imports: Iterable[tuple[str, str]]) -> list[tuple[HostImport, HostFunction]]:
    """The host function of each (module, name) a core module imports, checked against the grants beforehand
    (guest/check.py): its calls are counted under the first granting capability in registry order.

    A function imported twice (valid wasm: AssemblyScript's WASI shim does it) is linked once.
    """
    granted = provisions(context.grants)
    linked = []
    for key in dict.fromkeys(imports):
        found = granted[key]
        host_import = found.host_import
        owners = [c for c in found.capabilities if c.descriptor_table] or found.capabilities
        functions = [c.imports[host_import](context) for c in owners]
        function = functions[0] if len(functions) == 1 else per_descriptor(functions)
        capability_name = found.capabilities[0].name
        linked.append((host_import, counting_calls(function, capability_name, context, host_import.signature.params)))
    return linked


def component_functions(
    context: HostContext, imports: Mapping[str, frozenset[str]]
) -> dict[str, dict[str, ComponentFunction]]:
    """The host functions of each granted interface a component imports (guest/check.py refused the rest)."""
    linked = {}
    for name in sorted(context.grants):
        granted = capability(name)
        interface = interface_import(granted.interface or "")
        if granted.interface is None or interface not in imports:
            continue
        binders = granted.component_host
        linked[interface] = {f: counting_calls(binders[f](context), name, context) for f in imports[interface]}
    return linked
