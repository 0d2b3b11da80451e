"""The host API: load verified bundles as tenants, call them, and measure every call.

    with open_tenant(Path("hello-0.1.0.ngx"), trust_file=Path("trust.toml")) as tenant:
        result = tenant.call("add", (2, 3))      # result.values == (5,), result.metrics.duration_ms
        words = tenant.call("words", input="to be or not")  # an export declaring input/output: words.data

A tenant runs isolated by default: its own child process with its own store, under a memory
rlimit, a CPU rlimit and a wall-clock deadline from the manifest's [limits]. A trap, timeout,
crash or out-of-memory becomes a `GuestError` naming the guest and the limit; the next call
starts a fresh child. `isolated=False` runs the guest in this process (fast, for trusted guests).

A tenant runs exactly what was checked. The bundle is opened once, and the signature, trust
scope, rollback state and policy are checked on that open file; every child, the first and each
restarted one, inherits the same open file (never the path, which may since name another file)
and is handed the signed index's bytes checked here, which it refuses the file unless its index
has (it does not check the signature again). Its members are held to that index's digests as they
are read, so a file changed in place is refused, never run. Before each restarted child the trust file,
the rollback state and the policy file are read again: a key removed or narrowed since, a newer sequence
accepted, or a ceiling lowered below what the manifest asks refuses the restart; native code taken from the
key is not run.

The child is a clean room: `python -I` (no working directory, user site or PYTHON* variables on
its path), started in `/`, with an environment of only `CHILD_ENVIRONMENT`'s variables that the
host has set (what the interpreter needs to start and to decode file names as the host does, and the
certificates OpenSSL trusts),
the host AOT cache this process uses (`NGIXI_AOT_CACHE`, named absolutely), plus what the operator
passes as `child_env`. It opens no path but its sandbox's, made absolute:
the bundle is the inherited file, and the index it holds the file to is the one verified here.
Opening it (instantiation, start function included) is held to the guest's limits.timeout_ms.

Each tenant has an id (`tenant=`, default "default"; in a `TenantPool`, the tenant's name): a
guest granted fs or kv keeps its state in `sandboxes/<tenant id>/<guest>/`, so two tenants
running the same guest never see each other's files or kv data; and only bundles of the key recorded there
when it was first used (`local_paths.sandbox_signer`) use it, so neither do two signers of one guest name.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from pathlib import Path
from threading import get_ident
from typing import TYPE_CHECKING, Any, Protocol

from ngixi_runtime.bundles.reader import open_bundle_file, read_bundle
from ngixi_runtime.capabilities.context import LogSink, Sandbox, Stdin, StdioSink
from ngixi_runtime.capabilities.linking import (
    caller_arguments,
    caller_environment,
    caller_stdin,
    keeps_sandbox_state,
)
from ngixi_runtime.engines.base import interrupts
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import not_a_directory
from ngixi_runtime.guest.data import DataValue
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.loading.calls import (
    THIS_PROCESS,
    CallFailed,
    CallMetrics,
    CallResult,
    TenantClosed,
    closed_tenant,
    empty_result,
    forked_tenant,
    measure,
)
from ngixi_runtime.loading.loader import (
    Guest,
    compile_seconds,
    encoded_input,
    guarding_own_state,
    guest_engine,
    has_preopens,
    likely_artifacts,
    open_guest,
    verified_manifest,
)
from ngixi_runtime.loading.watchdog import ProcessWatchdog
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import RETURN_RESERVE_SECONDS
from ngixi_runtime.spec.bundle_format import BundleIndex
from ngixi_runtime.trust.local_paths import (
    SANDBOX_SIGNER,
    enclosing_sandbox,
    redirected_below,
    sandbox_signer,
    sandbox_within,
)
from ngixi_runtime.trust.minisign_format import FormatError, public_key_from_base64
from ngixi_runtime.trust.project_trust import chosen_trust
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import TrustedKey, key_id_of, still_trusted

if TYPE_CHECKING:
    from ngixi_runtime.loading.isolated import IsolatedTenant
    from ngixi_runtime.trust.policy import Policy

# The call results are part of this module's API (`open_tenant`'s tenants return them).
__all__ = [
    "DEFAULT_TENANT",
    "CallFailed",
    "CallMetrics",
    "CallResult",
    "InProcessTenant",
    "PoolCall",
    "Tenant",
    "TenantPool",
    "check_tenant_id",
    "empty_result",
    "measure",
    "open_tenant",
]

_TENANT_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TENANT_CHARACTERS = _TENANT_FIRST | {"-", "_"}
# How long after limits.timeout_ms the watchdog of a component waiting in Wasmtime's WASI ends the process: a guest
# still in its own code is ended by Wasmtime's deadline first, with the timeout as the call's outcome.
_HOST_WAIT_GRACE = 1.0  # seconds
# How long after limits.timeout_ms the watchdog of a guest on an engine that cannot interrupt it ends the process: a
# host function that waits until the call's deadline (a sleep in poll_oneoff, kv's lock) ends the call itself then,
# with the timeout as the call's outcome; the watchdog stopped the process at that same moment. An HTTP request ends
# there with TIMEOUT, and the guest has RETURN_RESERVE_SECONDS more to return.
_HOST_RETURN_GRACE = 0.25 + RETURN_RESERVE_SECONDS  # seconds
DEFAULT_TENANT = "default"


class Tenant(Protocol):
    manifest: Manifest
    origin: str  # which artifact was loaded, or why the guest was compiled
    compiled: bool

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult: ...

    def text_parameters(self, export: str) -> frozenset[int]:
        """Which of a component export's parameters (from 1) its WIT types as strings: where the command line's
        argument is its text."""
        ...

    def run(self) -> CallResult: ...

    def close(self) -> None: ...


class InProcessTenant:
    """A guest in this process: no isolation; for trusted guests. Only Wasmtime enforces a deadline here, unless
    a `watchdog` ends the whole process when a call on another engine outlives limits.timeout_ms.

    Calls from several threads take turns: an engine's store (and the call's data) serves one call at a time.
    """

    def __init__(self, guest: Guest, watchdog: ProcessWatchdog | None = None) -> None:
        self._guest = guest
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self._owner = get_ident() if guest.thread_bound else None
        self._closed = False
        self._opened_in = THIS_PROCESS.id  # Wasmtime's deadline thread is this process's
        self.manifest = guest.manifest
        self.origin = guest.origin
        self.compiled = guest.compiled

    def call(self, export: str, args: Sequence[Any] = (), *, input: DataValue | None = None) -> CallResult:
        """Calls `export`; `input` (bytes, str or a JSON value) for an export that declares one."""
        if THIS_PROCESS.id != self._opened_in:
            raise forked_tenant(self.manifest.guest.name, self._opened_in)
        data = None if input is None else encoded_input(self.manifest, export, input)
        if self._owner is not None and get_ident() != self._owner:
            self._refuse_thread()
        with self._lock:
            if self._closed:
                raise closed_tenant(self.manifest.guest.name)
            if self._watchdog is None:
                return measure(self._guest, export, args, data)
            with _watched(self._watchdog, self.manifest, export):
                return measure(self._guest, export, args, data)

    def text_parameters(self, export: str) -> frozenset[int]:
        return self._guest.text_parameters(export)

    def run(self) -> CallResult:
        return self.call("_start")

    def _refuse_thread(self) -> None:
        raise InvalidInput(
            f"{self.manifest.guest.name}: an in-process tenant on Wasmer can be called only from the thread "
            "that opened it; open it isolated, or on Wasmtime, to call it from other threads"
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._guest.close()
        if self._watchdog is not None:
            self._watchdog.close()

    def __enter__(self) -> InProcessTenant:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _watched(watchdog: ProcessWatchdog, manifest: Manifest, what: str) -> AbstractContextManager[None]:
    timeout = manifest.limits.timeout_ms
    if _waits_uninterrupted(manifest):  # Wasmtime's own deadline ends a guest in its code: the watchdog only after
        seconds = timeout / 1000 + _HOST_WAIT_GRACE
        why = (
            "Wasmtime's WASI, which serves a component's files and clocks, cannot be interrupted while it waits in "
            "the host (as it does opening a FIFO or device someone put in a preopen, or sleeping), so the process was "
            "stopped: run it isolated (without --in-process)"
        )
    else:
        seconds = timeout / 1000 + _HOST_RETURN_GRACE
        why = (
            "its engine cannot interrupt a guest in this process, so the process was stopped: run it isolated "
            "(without --in-process) or on wasmtime"
        )
    message = f"{manifest.guest.name}: {what} exceeded its {timeout} ms timeout (limits.timeout_ms); {why}"
    return watchdog.limit(seconds, message)


def _opened_watched(
    opening: Callable[..., Guest], watchdog: ProcessWatchdog, manifest: Manifest, engine: str
) -> InProcessTenant:
    """The guest opened by `opening` (`open_guest`) in a process the watchdog ends when a compile of its .wasm
    outlives `compile_seconds` (as an isolated child is stopped), or a guest that would not be stopped at
    limits.timeout_ms in this process (`_stoppable`) outlives it in its start function or a call."""
    stoppable = _stoppable(engine, manifest)
    try:
        with ExitStack() as starting:  # the start's deadline runs from instantiation, never through a compile

            def instantiating() -> None:
                if not stoppable:
                    starting.enter_context(_watched(watchdog, manifest, "start"))

            guest = opening(compiling=partial(_compiling, watchdog, manifest), on_instantiate=instantiating)
    except BaseException:  # its watcher ended before the failure is told (`ProcessWatchdog.close`)
        watchdog.close()
        raise
    if stoppable:
        watchdog.close()  # forked only if the guest was compiled
        return InProcessTenant(guest)
    return InProcessTenant(guest, watchdog)


def _compiling(watchdog: ProcessWatchdog, manifest: Manifest, wasm_bytes: int) -> AbstractContextManager[None]:
    seconds = compile_seconds(wasm_bytes)
    message = (
        f"{manifest.guest.name}: compiling its .wasm ({wasm_bytes} bytes) took over {seconds:.0f} s, the most a module"
        " of its size may take, so the process was stopped; a module crafted to be slow to"
        " compile takes the engines time in the square of a function's size"
    )
    return watchdog.limit(seconds, message)


def _stoppable(engine: str, manifest: Manifest) -> bool:
    """Whether a guest is stopped at limits.timeout_ms in this process: not on an engine that cannot interrupt it,
    nor a component granted preopens or clocks (`_waits_uninterrupted`)."""
    return interrupts(engine) and not _waits_uninterrupted(manifest)


def _waits_uninterrupted(manifest: Manifest) -> bool:
    """Whether the guest's calls may wait in the host where no deadline reaches: a component's files and clocks are
    Wasmtime's WASI, which opens whatever a guest names in a preopen, a FIFO (until a writer comes) or device
    included, and sleeps as long as a guest granted `clock` asks (a core guest's `poll_oneoff` ends at the call's
    deadline); an epoch deadline ends neither wait."""
    return manifest.guest.type.is_component and (has_preopens(manifest) or "clock" in manifest.capabilities)


def check_tenant_id(tenant: str, *, given_as: str = "tenant") -> None:
    """A tenant id names its sandbox directory, so it must be one safe path component; `given_as`: the keyword
    or option that gave it, which the refusal names."""
    if not (0 < len(tenant) <= 64 and tenant[0] in _TENANT_FIRST and _TENANT_CHARACTERS.issuperset(tenant)):
        raise InvalidInput(
            f'{given_as}: {tenant!r} is not a tenant id; use 1 to 64 lowercase letters, digits, "-" and "_", '
            "starting with a letter or digit"
        )


def open_tenant(
    bundle: Path,
    *,
    trust_file: Path,
    policy: Policy | None = None,
    isolated: bool = True,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stdin: Stdin | None = None,
    rollback: RollbackGuard | None = None,
    sandboxes: Path | None = None,
    sandboxes_refused: str | None = None,
    tenant: str = DEFAULT_TENANT,
    engine: str | None = None,
    child_env: Mapping[str, str] | None = None,
    sandbox_per_channel: bool = False,
    project_trust: bool = False,
    watch_in_process: bool = False,
    watchdog_report: Callable[[str], str] | None = None,
    stdio: StdioSink | None = None,
    logs: LogSink | None = None,
) -> InProcessTenant | IsolatedTenant:
    """Verifies a bundle, checks it against the operator's policy, and loads it as a tenant.

    With `rollback`, a lower sequence than already accepted is refused.
    A guest granted fs or kv keeps its state under `sandboxes/<tenant>/<guest>`: tenants with
    different ids never share files or kv data, even when they run the same guest. With
    `sandbox_per_channel`, under `sandboxes/<channel>/<tenant>/<guest>`: dev and release bundles apart.
    `sandboxes_refused`: why no guest may keep state under `sandboxes` (a default another user could change), the
    refusal of a guest that would.
    `engine` picks the engine ("wasmer", "wasmtime", "auto"; see `chosen_engine`); with Wasmtime
    the timeout, memory and fuel limits also hold in-process. An engine that cannot meter fuel runs
    a guest with limits.fuel only isolated, where its CPU time is capped by limits.timeout_ms instead.
    `env` is what the caller sets of the variables the guest's env capability allows; `stdin`, its standard
    input (bytes, or a reader asked only when the guest is granted stdin): each instance, a restarted child's
    too, reads it from the start. A name or input the manifest does not take is refused. `child_env`: variables
    an isolated tenant's child process gets beside `isolated.CHILD_ENVIRONMENT`'s (the guest never sees them).
    `project_trust`: `trust_file` is a project's dev trust file found, not named (`choice.is_implicit_choice`):
    trusted for the dev channel only, native code only as `project_trust.project_trust_table` says.
    `watch_in_process`: in-process, on an engine that cannot interrupt the guest (Wasmer), this whole process is
    ended when the guest's instantiation or a call outlives limits.timeout_ms (`watchdog.py`); for a process
    that exists to run this guest, such as `ngixi run --in-process`. `watchdog_report` makes what is written to
    stdout then from the error line written to stderr (`ngixi run --json`'s failure document, exit status 137).
    `stdio`: where the guest's stdout and stderr go as it writes them (`ngixi run` passes them on to its own, in
    the order written), held to limits.stdout_bytes as ever; without it they are kept in each call's result.
    `logs`: where the guest's log lines go as it logs them (the host's own lines for the operator too), in order
    with what `stdio` gets, held to limits.log_bytes as ever; without it they are kept in each call's result.
    """
    check_tenant_id(tenant)
    trust = chosen_trust(trust_file, found=project_trust)
    descriptor = open_bundle_file(bundle)
    owned_by_tenant = False
    try:
        verified = read_bundle(
            bundle,
            trust,
            rollback=rollback,
            defer_members=True,
            prefetch=() if isolated else likely_artifacts(engine),
            descriptor=descriptor,
        )
        manifest = verified_manifest(verified)
        if policy is not None:
            policy.check(manifest)
        caller_environment(manifest.guest.name, manifest.capabilities, env or {})  # refused before any child starts
        caller_arguments(manifest.guest.name, manifest.capabilities, args)
        data = caller_stdin(manifest.guest.name, manifest.capabilities, stdin, timeout_ms=manifest.limits.timeout_ms)
        channel = verified.index.channel if sandbox_per_channel else None  # last: a sandbox used is claimed
        sandbox = _sandbox(sandboxes, channel, tenant, manifest, signer=verified.signer, refused=sandboxes_refused)
        if sandbox is not None:
            rollback_state = None if rollback is None else rollback.state_file.parent
            policy_file = None if policy is None else Path(policy.source)
            sandbox = guarding_own_state(sandbox, manifest, trust_file, rollback_state, policy_file)
            sandbox = sandbox._replace(host_roots=None if policy is None else policy.host_roots)
        if not isolated:  # open_guest reads all it needs of the bundle now
            chosen = guest_engine(manifest, engine, verified.index.artifact_engines)
            opening = partial(
                open_guest,
                verified,
                args=args,
                env=env,
                stdin=data,
                on_stdio=stdio,
                on_log=logs,
                sandbox=sandbox,
                engine=chosen,
            )
            if not watch_in_process:
                return InProcessTenant(opening())
            return _opened_watched(opening, ProcessWatchdog(watchdog_report), manifest, chosen)
        options = {
            "args": list(args),
            "env": dict(env or {}),
            "stdin": base64.b64encode(data).decode(),
            "sandbox": sandbox.to_json() if sandbox else None,
        }
        # here: a tenant in this process imports none of the child process machinery
        from ngixi_runtime.loading.isolated import CheckedBundle, IsolatedTenant, child_environment, isolated_engine

        loaded = IsolatedTenant(
            CheckedBundle.of(verified, descriptor),
            manifest,
            {**options, "engine": isolated_engine(manifest, engine, verified.index.artifact_engines)},
            child_environment(child_env),
            stdio=stdio,
            logs=logs,
            recheck=_Recheck(
                verified.index,
                verified.signer,
                verified.source,
                trust_file.absolute(),  # read again at each restart, wherever this process has moved to since
                project_trust,
                rollback,
                claimed=_state_kept_in(sandbox, manifest),
                manifest=manifest,
                policy_file=None if policy is None else Path(policy.source).absolute(),
            ).request_now,
        )
        owned_by_tenant = True
    finally:
        if not owned_by_tenant:
            os.close(descriptor)
    try:
        loaded.start()
    except BaseException:
        loaded.close()
        raise
    return loaded


def _state_kept_in(sandbox: Sandbox | None, manifest: Manifest) -> Path | None:
    """The sandbox directory the guest keeps state in, claimed for its signer (`_check_signer`); None: it keeps none."""
    if sandbox is None or not keeps_sandbox_state(manifest.capabilities):
        return None
    return sandbox.files.parent


def _policy_now(policy_file: Path | None) -> Policy | None:
    """The operator's policy as its file says now: one tightened since holds every restart and tenant added."""
    if policy_file is None:
        return None
    from ngixi_runtime.trust.policy import load_policy  # here: a host without a policy imports none

    return load_policy(policy_file)


class _Recheck(NamedTuple):
    """What the host of an isolated tenant checks again before each restarted child (`request_now`)."""

    bundle_index: BundleIndex
    signer: TrustedKey
    source: str  # the bundle's path, to name it
    trust_file: Path
    found: bool  # a project's dev trust file found, not named (`chosen_trust`)
    rollback: RollbackGuard | None
    claimed: Path | None  # the sandbox directory whose signer record must still name the key (state kept there)
    manifest: Manifest
    policy_file: Path | None  # the operator's policy, read again: a ceiling lowered since holds the restart

    def request_now(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The first child's `request` for a restarted one: its signer as trusted now (`signer_now`), refused when the
        policy file, read again, refuses the manifest, and its preopens held to that policy's host roots."""
        signer = self.signer_now()
        sandbox = request.get("sandbox")
        policy = _policy_now(self.policy_file)
        if policy is not None:
            policy.check(self.manifest)
            if sandbox is not None:
                sandbox = {**sandbox, "host_roots": None if policy.host_roots is None else list(policy.host_roots)}
        return {**request, "bundle": {**request["bundle"], "signer": signer}, "sandbox": sandbox}

    def signer_now(self) -> dict[str, Any]:
        """How the trust file, read again, trusts the key that signed the bundle (`signatures.still_trusted`), checked
        against the rollback state and the sandbox's signer record as they are now: the signer the child is given."""
        trust = chosen_trust(self.trust_file, found=self.found)
        key = still_trusted(self.bundle_index, self.signer, trust, source=self.source)
        if self.rollback is not None:
            self.rollback.check(self.bundle_index, source=self.source)
        if self.claimed is not None:
            _check_signer(self.claimed, self.bundle_index.guest, self.signer)
        return key.to_table()


def _sandbox(
    sandboxes: Path | None,
    channel: str | None,
    tenant: str,
    manifest: Manifest,
    *,
    signer: TrustedKey,
    refused: str | None,
) -> Sandbox | None:
    """The guest's sandbox under the operator's `sandboxes` directory, refused if a symbolic or hard link below it
    (one left in a directory someone else prepared) would take the guest's files or kv database elsewhere, or if
    it holds the state of another key's bundles (the same guest name on another channel, or signed by another
    key the trust file allows to sign that name), or lies in another guest's files."""
    if sandboxes is None:
        return None
    unusable = not_a_directory(sandboxes)
    if unusable is not None:
        raise InvalidInput(f"sandboxes {sandboxes}: it {unusable}; name a directory (it is made if missing)")
    base = sandboxes.absolute()
    directory = base / (channel or "") / tenant / manifest.guest.name
    problem = redirected_below(base, directory)
    if problem is not None:
        raise InvalidInput(
            f"{manifest.guest.name}: {problem}: a guest's sandbox under {base} must be real directories and files "
            "that no one but this user can change; remove it, or choose another --sandbox"
        )
    if keeps_sandbox_state(manifest.capabilities):
        if refused is not None:
            raise InvalidInput(refused)
        _refuse_enclosed(directory, manifest.guest.name)
        if not (directory / SANDBOX_SIGNER).exists():  # claimed now: what its files/ holds is the guest's from now on
            _refuse_enclosing(directory, manifest.guest.name)
        _check_signer(directory, manifest.guest.name, signer)
    return Sandbox.under(directory)


def _refuse_enclosed(directory: Path, guest: str) -> None:
    """Refuses a sandbox inside another guest's files (`local_paths.enclosing_sandbox`)."""
    enclosing = enclosing_sandbox(directory)
    if enclosing is not None:
        raise InvalidInput(
            f"{guest}: its sandbox {directory} lies in {enclosing / 'files'}, where the guest of the sandbox "
            f"{enclosing} keeps its files and could change this guest's files and kv data; choose a --sandbox apart "
            "from every guest's sandbox"
        )


def _refuse_enclosing(directory: Path, guest: str) -> None:
    """Refuses to claim a sandbox whose files/ already holds another guest's sandbox (`local_paths.sandbox_within`)."""
    inner = sandbox_within(directory / "files")
    if inner is not None:
        raise InvalidInput(
            f"{guest}: its sandbox {directory} holds the sandbox {inner} of another guest in its files, which this "
            "guest could change (its files, kv data and signer record) through its preopens; choose a --sandbox "
            "apart from every guest's sandbox"
        )


def _check_signer(directory: Path, guest: str, signer: TrustedKey) -> None:
    """Refuses a bundle whose signer is not the key whose bundles' state `directory` holds (recorded on first use,
    by its public key: another key may carry the same id)."""
    public_key = signer.public_key.to_base64().decode("ascii")
    try:
        recorded = sandbox_signer(directory, public_key, signer.key_id)
    except OSError as error:
        raise InvalidInput(
            f"{guest}: cannot use {directory} as its sandbox: {error.strerror}; choose a directory this user can write "
            "(--sandbox DIR, sandboxes=DIR in the API)"
        ) from None
    if recorded != public_key:
        raise InvalidInput(
            f"{guest}: its sandbox {directory} holds the state of bundles signed by {_recorded_key(recorded)}, and "
            f"key {signer.key_id} (public key {public_key}) signed this one: a guest's files and kv data are its "
            f"signer's alone; run it as another tenant (--tenant) or with another --sandbox, or remove "
            f"{directory / SANDBOX_SIGNER} to give that state to key {signer.key_id}"
        )


def _recorded_key(recorded: str) -> str:
    """The key a sandbox's signer record names, as an operator compares it with a trust file's entries."""
    try:
        return f"key {key_id_of(public_key_from_base64(recorded.encode()))} (public key {recorded})"
    except FormatError:  # a record of a key id alone, from before records named the public key
        return f"key {printable(recorded)}"


# One call of `TenantPool.call_many`: the tenant's name, the export, its arguments and, for an export declaring one,
# its input.
PoolCall = tuple[str, str, Sequence[Any]] | tuple[str, str, Sequence[Any], DataValue]


class TenantPool:
    """Several tenants at once, each in its own process; calls to different tenants run concurrently.

    Its tenants are held to the same rollback state as `ngixi run` with that trust file: under `state_dir`,
    by default `default_state_dir()` ($NGIXI_STATE_DIR, ...); `allow_downgrade` accepts lower sequences.
    Each `add` reads the trust file and `policy`'s file as they are then, as each restarted child does.
    """

    def __init__(
        self,
        *,
        trust_file: Path,
        policy: Policy | None = None,
        workers: int = 16,
        sandboxes: Path | None = None,
        state_dir: Path | None = None,
        allow_downgrade: bool = False,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidInput(
                f"TenantPool workers={workers!r}: the calls it runs at once must be a whole number, at least 1"
            )
        # Absolute now: each add (and restart) reads them again, whatever directory this process has moved to since.
        self._trust_file = trust_file.absolute()
        self._policy_file = None if policy is None else Path(policy.source).absolute()
        self._sandboxes = None if sandboxes is None else sandboxes.absolute()
        self._rollback = RollbackGuard.for_trust_file(
            self._trust_file, state_dir=state_dir, allow_downgrade=allow_downgrade
        )
        self._tenants: dict[str, IsolatedTenant | InProcessTenant | None] = {}  # None: being added
        self._names = threading.Lock()  # held to claim or give up a name, never while a tenant opens
        self._closed = False
        self._made_in = THIS_PROCESS.id  # its threads and tenants are this process's
        from concurrent.futures import ThreadPoolExecutor  # here: a one-shot run makes no pool

        self._executor = ThreadPoolExecutor(max_workers=workers)

    def add(
        self,
        name: str,
        bundle: Path,
        *,
        isolated: bool = True,
        tenant: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        stdin: Stdin | None = None,
        engine: str | None = None,
        child_env: Mapping[str, str] | None = None,
    ) -> None:
        """Loads a bundle as tenant `name`; its sandbox id is `tenant`, by default `name` itself. `args`, `env`,
        `stdin`, `engine` and `child_env` are `open_tenant`'s, checked as there. The name is claimed before the
        bundle is opened: of two threads adding one name at once, the second is refused, and no tenant is opened
        only to be lost."""
        self._refuse_forked()
        if tenant is None:
            check_tenant_id(name, given_as="name (the tenant id unless tenant= gives one)")
        with self._names:
            if self._closed:
                raise _pool_closed(name)
            if name in self._tenants:
                raise InvalidInput(f"tenant {name!r} is already in the pool; close the pool or use another name")
            self._tenants[name] = None
        try:
            opened = open_tenant(
                bundle,
                trust_file=self._trust_file,
                policy=_policy_now(self._policy_file),
                isolated=isolated,
                rollback=self._rollback,
                sandboxes=self._sandboxes,
                tenant=name if tenant is None else tenant,
                args=args,
                env=env,
                stdin=stdin,
                engine=engine,
                child_env=child_env,
            )
        except BaseException:
            with self._names:
                del self._tenants[name]
            raise
        with self._names:
            closed = self._closed
            if not closed:
                self._tenants[name] = opened
        if closed:  # closed while it opened: nothing would ever close it
            opened.close()
            raise InvalidInput(f"tenant {name!r}: the pool was closed while it was being added")

    def call(self, name: str, export: str, args: Sequence[Any] = (), input: DataValue | None = None) -> CallResult:
        tenant = self._tenant(name)
        with _closed_by_the_pool(name):
            return tenant.call(export, args, input=input)

    def run(self, name: str) -> CallResult:
        """Runs tenant `name`, a command guest, with the arguments, environment and stdin its `add` gave."""
        tenant = self._tenant(name)
        with _closed_by_the_pool(name):
            return tenant.run()

    def _refuse_forked(self) -> None:
        """A pool serves the process that made it alone: a fork has none of its threads, and its tenants' children
        answer the process that opened them."""
        if THIS_PROCESS.id != self._made_in:
            raise InvalidInput(
                f"this TenantPool was made in process {self._made_in}, and this process was forked from it; make "
                "the pool after forking, in each worker"
            )

    def _tenant(self, name: str) -> IsolatedTenant | InProcessTenant:
        self._refuse_forked()
        found = self._tenants.get(name)
        if found is None:
            if self._closed:
                raise _pool_closed(name)
            state = "is still being added" if name in self._tenants else "is not in the pool"
            raise InvalidInput(f"tenant {name!r} {state}; add it (pool.add) before calling it")
        return found

    def call_many(self, calls: Sequence[PoolCall]) -> list[CallResult | NgixiError]:
        """Dispatches calls concurrently, each `(name, export, args)` or `(name, export, args, input)`; each entry is
        its result or the error it raised: a GuestError, or another NgixiError (a tenant whose new child could not
        start, arguments refused), which fails that call alone."""

        def one(call: PoolCall) -> CallResult | NgixiError:
            try:
                return self.call(*call)
            except NgixiError as error:
                return error

        self._refuse_forked()
        return list(self._executor.map(one, calls))

    def close(self) -> None:
        """Closes every tenant; one still being added is closed when its opening ends."""
        with self._names:
            self._closed = True
            tenants = [tenant for tenant in self._tenants.values() if tenant is not None]
            self._tenants.clear()
        for tenant in tenants:
            tenant.close()
        self._executor.shutdown()

    def __enter__(self) -> TenantPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@contextmanager
def _closed_by_the_pool(name: str) -> Iterator[None]:
    """A tenant's refusal of a call after its `close` (the pool's, as the call reached it), said as the pool's."""
    try:
        yield
    except TenantClosed:
        raise _pool_closed(name) from None


def _pool_closed(name: str) -> InvalidInput:
    return InvalidInput(f"tenant {name!r}: the pool is closed; add it to a new TenantPool (pool.add) to call it")
