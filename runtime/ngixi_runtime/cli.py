"""The `ngixi` command: run, verify and inspect bundles, plus the commands other installed distributions add.

A distribution adds commands by naming `Command` objects in the `ngixi.commands` entry-point group, e.g.
`[project.entry-points."ngixi.commands"]` `validate = "ngixi_build.cli:VALIDATE"`. They are looked up only
when the command line names none of this module's commands, so `ngixi run` reads no package metadata.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from ngixi_runtime.errors import InvalidInput, NgixiError, unexpected
from ngixi_runtime.files import not_a_directory, resolved, write_by
from ngixi_runtime.printable import printable, printable_json, printable_lines
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.trust.choice import (
    DEV_TRUST_FILE,
    TRUST_VARIABLE,
    chosen_trust_file,
    is_implicit_choice,
    state_override,
)

if TYPE_CHECKING:
    from ngixi_runtime.bundles.reader import VerifiedBundle
    from ngixi_runtime.capabilities.context import LogLine, LogSink, StdioSink
    from ngixi_runtime.guest.manifest import Manifest
    from ngixi_runtime.loading.tenants import CallResult
    from ngixi_runtime.spec.bundle_format import Member
    from ngixi_runtime.trust.policy import Policy
    from ngixi_runtime.trust.rollback import RollbackGuard
    from ngixi_runtime.trust.signatures import TrustStore

COMMAND_GROUP = "ngixi.commands"
# What `ngixi pull` imports from the `pull` extra (ngixi-runtime[pull]): missing, the command says to install it.
PULL_DEPENDENCIES = ("oras", "requests", "urllib3")


class Command(NamedTuple):
    """One `ngixi` subcommand: `arguments` declares its options on its parser; `handler` returns the exit code."""

    help: str
    handler: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]


class _GuestStderr:
    """Whether the guest's stderr, passed on as it writes it, was left in the middle of a line (a prompt, or a
    terminal colour code with no newline after it): ngixi's own lines after it begin a line of their own."""

    mid_line = False


def _own_line() -> str:
    """What goes before a line of ngixi's own on stderr: a newline ending the guest's unfinished line, if any."""
    left, _GuestStderr.mid_line = _GuestStderr.mid_line, False
    return "\n" if left else ""


def fail(error: NgixiError) -> NoReturn:
    print(f"{_own_line()}ngixi: error: {printable_lines(str(error))}", file=sys.stderr)
    sys.exit(error.exit_code)


def add_trust_option(parser: argparse.ArgumentParser, *, sandboxes: bool = False) -> None:
    """--trust and --project; `sandboxes`: the command also takes --project's sandboxes (`ngixi run`)."""
    parser.add_argument(
        "--trust",
        type=Path,
        help=f"trust file (default: ${TRUST_VARIABLE}, else {DEV_TRUST_FILE} of the project at or above"
        " --project or the working directory; never one near the bundle)",
    )
    parser.add_argument(
        "--project",
        type=Path,
        help="the project whose dev trust file (unless --trust or $NGIXI_TRUST names one)"
        + (" and sandboxes (unless --sandbox)" if sandboxes else "")
        + " to use (default: the one at or above the cwd); refused where it would choose neither",
    )


def trust_file(args: argparse.Namespace, *, existing: bool = True) -> Path:
    """The trust file the options choose (`add_trust_option`'s); `existing`: one they name must be there."""
    _refuse_unused_project(args)
    return chosen_trust_file(args.trust, project=args.project, existing=existing)


def _refuse_unused_project(args: argparse.Namespace) -> None:
    """--project chooses a project's dev trust file and, for `ngixi run` without --sandbox, its sandboxes: given
    where --trust or $NGIXI_TRUST names the trust file and nothing else is chosen, it would be ignored silently."""
    sandbox = getattr(args, "sandbox", False)  # False: the command has no sandboxes
    if args.project is None or is_implicit_choice(args.trust) or sandbox is None:
        return
    if args.trust is not None:
        named, undo, and_sandbox = f"--trust {args.trust}", "--trust", " and --sandbox"
    else:
        named, undo = f"${TRUST_VARIABLE} ({os.environ[TRUST_VARIABLE]})", f"unset {TRUST_VARIABLE}"
        and_sandbox = " and drop --sandbox"
    chosen, given = "dev trust file", ""
    if sandbox:
        chosen, given, undo = (
            "dev trust file and sandboxes",
            f" and --sandbox {sandbox} the sandboxes",
            undo + and_sandbox,
        )
    raise InvalidInput(
        f"--project {args.project}: it would choose the project's {chosen}, but {named} names the trust file{given}; "
        f"drop --project, or {undo} to use the project's"
    )


def trusted_keys(args: argparse.Namespace) -> TrustStore:
    """The keys the options' trust file trusts, scoped as a found project's dev trust file is: every command
    that verifies a bundle reads them so (`run`, `verify`, `inspect`, `pull`)."""
    return _chosen_trust(args, trust_file(args))


def _check_bundle_path(path: Path) -> None:
    """A path that names no bundle file is told first, before any trust file is looked for: a mistyped path is
    the likelier mistake, and "no trust file" would send the user the wrong way."""
    from ngixi_runtime.bundles.reader import open_bundle_file

    os.close(open_bundle_file(path))


def _chosen_trust(args: argparse.Namespace, path: Path) -> TrustStore:
    """The keys the trust file `trust_file(args)` chose trusts, scoped as a found project's dev trust file is."""
    from ngixi_runtime.trust.project_trust import chosen_trust

    return chosen_trust(path, found=is_implicit_choice(args.trust))


def _given_directory(option: str, path: Path | None) -> Path | None:
    """The directory an option names (--sandbox, --state-dir), refused if it, or the nearest of the directories
    above it that exists, is not one."""
    what = None if path is None else not_a_directory(path)
    if what is not None:
        raise InvalidInput(f"{option} {path}: it {what}; name a directory (it is made if missing)")
    return path


def _default_sandboxes(args: argparse.Namespace, trust: Path) -> tuple[Path, str | None]:
    """The sandboxes of the trust file in use, and why no guest may keep state there, if another user could change
    them (or a directory above, or the project): the project's (`_sandboxes_project`), else the user's state
    directory's. A project someone else made (an unpacked tarball) thus chooses no state for a bundle another trust
    file verified: its shipped `.ngixi/sandbox/`, with a `signer` record naming a trusted key (a public key), handed
    that key's guest the kv data and files its author planted, whenever the operator ran it from there."""
    from ngixi_runtime.spec.project import PROJECT_FILE, SANDBOX_NAME
    from ngixi_runtime.trust.local_paths import unsafe_because
    from ngixi_runtime.trust.rollback import default_state_dir, is_dev_trust_file

    # No project file above the cwd is read for a trust file that is no project's: not even a broken one.
    project = _sandboxes_project(args, trust) if args.project is not None or is_dev_trust_file(trust) else None
    state = default_state_dir() if project is None else project[1]
    problem = (project and unsafe_because(project[0] / PROJECT_FILE)) or unsafe_because(state)
    refusal = None if problem is None else f"{state / SANDBOX_NAME}: not used for the guest's sandbox: {problem}"
    return state / SANDBOX_NAME, refusal and f"{refusal}; pass --sandbox DIR"


def _sandboxes_project(args: argparse.Namespace, trust: Path) -> tuple[Path, Path] | None:
    """The root and state directory of the project whose sandboxes a guest's state goes to: the one --project names,
    or the one above the cwd when `trust` is its own dev trust file; None for any other."""
    from ngixi_runtime.spec.project import DEV_TRUST_NAME, PROJECT_FILE, find_project_root, project_state_dir

    root = find_project_root(args.project or Path.cwd())
    if root is None and args.project is not None:
        raise InvalidInput(
            f"--project {args.project}: no ngixi project at or above it (a {PROJECT_FILE} with [tool.ngixi]); name "
            "the project's folder, or drop --project"
        )
    if root is None:
        return None
    state = project_state_dir(root, state_override())
    if args.project is None and resolved(trust) != resolved(state / DEV_TRUST_NAME):
        return None
    return root, state


def _rollback_guard(args: argparse.Namespace, trust_file: Path) -> RollbackGuard:
    from ngixi_runtime.trust.rollback import RollbackGuard

    state_dir = _given_directory("--state-dir", args.state_dir)
    return RollbackGuard.for_trust_file(trust_file, state_dir=state_dir, allow_downgrade=args.allow_downgrade)


def _show(result: CallResult, *, as_json: bool, output_file: Path | None = None) -> None:
    """Prints a call's output: values on stdout, logs and guest stderr on stderr (or one JSON document); the
    call data ABI's output as `call_io.write_output` shows it."""
    with _reader_may_go():
        _write_call(result, as_json=as_json, output_file=output_file)


def _write_call(result: CallResult, *, as_json: bool, output_file: Path | None) -> None:
    from ngixi_runtime.call_io import write_output

    if as_json:  # the output file, if any, is written (`_run`)
        print(printable_json({"ok": True, **_call_document(result)}, indent=2))
        return
    for line in result.logs:  # none, when they were passed on as logged
        print(printable(f"{line.level}: {line.message}"), file=sys.stderr)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    if result.values:
        from ngixi_runtime.spec.wit_json import shown

        print(" ".join(shown(v) for v in result.values))
    if result.output is not None and result.output_kind is not None:
        sys.stdout.flush()
        write_output(
            result.output, result.output_kind, to_file=output_file, stdout=sys.stdout.buffer, stderr=sys.stderr
        )


def _call_document(result: CallResult) -> dict[str, Any]:
    """A call's fields in `ngixi run --json`'s document, whether it succeeded or failed."""
    from ngixi_runtime.call_io import json_output
    from ngixi_runtime.spec.wit_json import to_json

    document = result.to_json()
    document["values"] = to_json(list(result.values))
    document["stdout"], document["stderr"] = (
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )
    return document | json_output(result.output, result.output_kind, result.data)


def _show_failure(error: Exception) -> None:
    """`ngixi run --json`'s one document for a run that failed, wherever it did (bad options, the bundle refused,
    the load or the call): what failed, with the call's fields when the call ran."""
    from ngixi_runtime.loading.calls import CallFailed

    reported = error if isinstance(error, NgixiError) else unexpected(error)
    called = _call_document(error.result) if isinstance(error, CallFailed) else {}
    _print_failure(reported.kind, str(reported), reported.exit_code, called)


def failure_document(kind: str, message: str, exit_code: int, called: Mapping[str, Any] = MappingProxyType({})) -> str:
    """`ngixi run --json`'s document for a run that failed, with the call's fields (`called`) when it ran."""
    failure = {"kind": kind, "message": message, "exit_code": exit_code}
    return printable_json({"ok": False, "error": failure, **called}, indent=2)


def _print_failure(kind: str, message: str, exit_code: int, called: Mapping[str, Any] = MappingProxyType({})) -> None:
    with _reader_may_go():
        print(failure_document(kind, message, exit_code, called))


@contextmanager
def _reader_may_go() -> Iterator[None]:
    """`ngixi run`'s own writes to stdout (values, output, --json), stopped quietly when its reader went away (`ngixi
    run B | head -1`): the exit code stays the run's, as when the guest's own writes found the reader gone, and
    whether the reader left before or after a write does not change it."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _discarded(sys.stdout.fileno())


class _StderrMayGo:
    """`ngixi run`'s stderr: once its reader is gone (`ngixi run B 2>&1 | head -1`), what ngixi still writes there
    (a note, the error line) goes nowhere, and the run ends with its own exit code, as when stdout's reader went."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _discarded(self._stream.fileno())
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _discarded(self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def cmd_run(args: argparse.Namespace) -> int:
    if args.own_process:
        sys.stderr = cast("TextIO", _StderrMayGo(sys.stderr))
    try:
        result = _run_isolating(args)
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:  # `main` ends as Ctrl-C ends a shell's command
        if args.json:
            _print_failure("interrupted", "interrupted (SIGINT)", INTERRUPTED_STATUS)
        raise
    except Exception as error:  # the error line on stderr follows (`main`), with the same exit code
        if args.json:
            _show_failure(error)
        raise
    # Out of the try: --json's one document has begun, and what ends the run while it is written (Ctrl-C, a write
    # that fails) is told on stderr alone, never as a second document after part of the first.
    _show(result, as_json=args.json, output_file=args.output)
    code = result.exit_code or 0
    if process_exit_code(code) != code:  # Rust's process::exit(-1) is proc_exit(4294967295)
        note = f"note: the guest exited with status {code}, outside 0-255: ngixi run exits 1"
        print(f"{_own_line()}{note}", file=sys.stderr)
    return process_exit_code(code)


def _run_isolating(args: argparse.Namespace) -> CallResult:
    if args.in_process:
        with _ctrl_c_interrupts_wasmtime(own_process=args.own_process):
            return _run(args)
    from ngixi_runtime.loading.zygote_server import tenants_forked_here

    with tenants_forked_here():  # one tenant: not worth starting a fork server for
        return _run(args)


@contextmanager
def _ctrl_c_interrupts_wasmtime(*, own_process: bool) -> Iterator[None]:
    """Ctrl-C ends a Wasmtime call in the guest's own code at once, not at its deadline: Python raises
    KeyboardInterrupt only once the call has returned, so a thread woken by the signal (Python's wakeup fd, set in
    the command's own process alone, from its main thread) makes the call's deadline come now."""
    if not own_process:
        yield
        return
    import _thread  # threading.Thread's start() would wait for the thread to run, in every run
    import signal

    readable, writable = os.pipe()
    os.set_blocking(writable, False)
    previous = signal.set_wakeup_fd(writable, warn_on_full_buffer=False)
    _thread.start_new_thread(_interrupt_on_sigint, (readable,))
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(writable)  # the thread reads the end of the pipe and stops


def _interrupt_on_sigint(readable: int) -> None:
    import signal

    with open(readable, "rb", buffering=0) as pipe:
        while signals := pipe.read(64):
            wasmtime_engine = sys.modules.get("ngixi_runtime.engines.wasmtime")  # never imported: no call to end
            if signal.SIGINT in signals and wasmtime_engine is not None:
                wasmtime_engine.TICKER.interrupt()


def _run(args: argparse.Namespace) -> CallResult:
    """The guest's run or call, with --json's output file written (the document is `cmd_run`'s to print)."""
    with _collection_paused(args.own_process):
        from ngixi_runtime.call_io import call_export, standard_input, write_output
        from ngixi_runtime.loading.tenants import CallFailed, check_tenant_id, open_tenant

    check_tenant_id(args.tenant, given_as="--tenant")
    _check_bundle_path(args.bundle)
    trust = trust_file(args)
    policy = _policy(args.policy) if args.policy else None
    argv = [a for a in (args.export, *args.args) if a is not None]
    given = _given_directory("--sandbox", args.sandbox)
    sandboxes, refused = (given, None) if given is not None else _default_sandboxes(args, trust)
    passed_on = None if args.json else _passed_on()  # --json: in its document
    with open_tenant(
        args.bundle,
        trust_file=trust,
        policy=policy,
        isolated=not args.in_process,
        args=argv,
        env=_variables(args.env),
        # read only for a guest granted stdin; `--input -` is the call's input instead (call_io)
        stdin=None if args.input == "-" else standard_input,
        rollback=_rollback_guard(args, trust),
        sandboxes=sandboxes,
        sandboxes_refused=refused,
        sandbox_per_channel=args.sandbox is None,
        tenant=args.tenant,
        engine=args.engine,
        project_trust=is_implicit_choice(args.trust),
        watch_in_process=args.own_process,
        watchdog_report=partial(failure_document, "guest", exit_code=KILLED_STATUS) if args.json else None,
        stdio=None if passed_on is None else passed_on.stdio,
        logs=None if passed_on is None else passed_on.logs,
    ) as tenant:
        manifest = tenant.manifest
        if tenant.compiled or args.verbose:
            print(printable(f"note: {manifest.guest.name}: {_code_path(tenant.origin)}"), file=sys.stderr)
        try:
            if manifest.guest.type.kind == "command":
                if args.input is not None or args.output is not None:
                    raise InvalidInput(_no_call_data_for_a_command(manifest, given_input=args.input is not None))
                result = tenant.run()
            else:
                result = call_export(tenant, args.bundle, args.export, args.args, args.input, output_file=args.output)
        except CallFailed as failure:
            if not args.json:  # --json: in its failure document
                _show(failure.result, as_json=False)
            raise
    if args.json and args.output is not None and result.output is not None:  # the file too, as without --json;
        # before the document, so that a file it cannot write is the run's one failure document
        write_output(result.output, "bytes", to_file=args.output, stdout=sys.stdout.buffer, stderr=sys.stderr)
    return result


class _PassedOn(NamedTuple):
    """`open_tenant`'s sinks for what a guest writes and logs."""

    stdio: StdioSink
    logs: LogSink


def _passed_on() -> _PassedOn:
    """Writes a guest's stdout and stderr to this process's own as the guest writes them, raw, and its log lines to
    stderr as it logs them (escaped), in that order. A reader that takes nothing by the call's deadline ends the
    call (TimeoutError) rather than holding it. A stream whose reader is gone (a closed pipe: `ngixi run B |
    head -1`) takes nothing more: the guest's writes to it fail (EPIPE), and what this process had left to write
    there is dropped rather than failing at exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    gone: set[int] = set()

    def write(stream: int, data: bytes, deadline: float) -> bool:
        if stream in gone:
            return False
        try:
            write_by(stream, data, deadline)
        except BrokenPipeError:
            gone.add(stream)
            _discarded(stream)
            return False
        if stream == 2 and data:
            _GuestStderr.mid_line = not data.endswith(b"\n")
        return True

    def log(line: LogLine, deadline: float) -> None:
        shown = _own_line() + printable(f"{line.level}: {line.message}") + "\n"  # a child says the level too
        write(2, shown.encode(sys.stderr.encoding or "utf-8", errors="backslashreplace"), deadline)

    return _PassedOn(write, log)


def process_exit_code(guest_code: int) -> int:
    """`ngixi run`'s own exit code for a guest's: a status outside 0-255 would be cut to its low byte (256
    would read as success), so it becomes 1."""
    return guest_code if 0 <= guest_code <= 255 else 1


def _policy(path: Path) -> Policy:
    from ngixi_runtime.trust.policy import load_policy

    return load_policy(path)


def _variables(options: Sequence[str]) -> dict[str, str]:
    """`--env NAME=VALUE` sets NAME; `--env NAME` passes this process's value of NAME."""
    variables = {}
    for option in options:
        name, equals, value = option.partition("=")
        if not equals and name not in os.environ:
            raise InvalidInput(f"--env {name}: {name} is not set here; give its value as --env {name}=VALUE")
        variables[name] = value if equals else os.environ[name]
    return variables


def _no_call_data_for_a_command(manifest: Manifest, *, given_input: bool) -> str:
    """Why `--input` or `--output` does not apply to a command guest, and what gives it input or keeps its output."""
    command = f"{manifest.guest.name} is a command guest"
    if not given_input:
        return f"{command}: what it prints is its output (> FILE), not --output"
    stdin = " and reads ngixi run's standard input (< FILE)" if "stdin" in manifest.grants else ""
    return f"{command}: it takes arguments (ngixi run BUNDLE -- ARGS...){stdin}, not --input"


def _code_path(origin: str) -> str:
    """The loader's origin of the code it runs, with why a shipped artifact was run."""
    if origin.startswith("artifact "):
        return f"{origin} (its signer's trust entry has native_code = true, so the bundle's artifacts run)"
    return origin


def _summary(bundle: VerifiedBundle) -> str:
    index = bundle.index
    return (
        f"{index.guest} {index.version} ({index.channel}, {index.profile} profile, sequence {index.sequence}),"
        f" signed by {bundle.signer.key_id}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from ngixi_runtime.bundles.reader import read_bundle
    from ngixi_runtime.loading.loader import check_guest_code

    _check_bundle_path(args.bundle)
    chosen = trust_file(args)
    policy = _policy(args.policy) if args.policy else None  # a bad policy file is named before the bundle is read
    bundle = read_bundle(args.bundle, _chosen_trust(args, chosen), rollback=_rollback_guard(args, chosen))
    check_guest_code(bundle)
    if policy is not None:
        policy.check(bundle.manifest)
    within = f", within {args.policy}" if policy is not None else ""
    _line(f"ok: {_summary(bundle)}{within}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ngixi_runtime.bundles.reader import read_bundle
    from ngixi_runtime.engines.base import engine_named
    from ngixi_runtime.loading.loader import (
        artifact_misfit,
        bundle_world,
        code_plan,
        guest_engine,
        host_profile,
        verified_manifest,
    )

    _check_bundle_path(args.bundle)
    bundle = read_bundle(args.bundle, trusted_keys(args))
    world = bundle_world(bundle)  # a component guest's; None for a core guest
    engine = guest_engine(verified_manifest(bundle), args.engine, bundle.index.artifact_engines)
    runner = engine_named(engine)
    index, host, plan = bundle.index, host_profile(runner), code_plan(bundle, runner)
    misfits = {m.path: artifact_misfit(m.artifact, host) for m in index.artifacts if m.artifact}
    if args.json:
        document = {
            "guest": index.guest,
            "version": index.version,
            "channel": index.channel,
            "profile": index.profile,
            "sequence": index.sequence,
            "signer": bundle.signer.key_id,
            "host": {"triple": host.triple, "cpu_features": sorted(host.cpu_features), "engine": engine},
            "members": [
                {**_member_json(m), **({"misfit": misfits[m.path]} if m.path in misfits else {})} for m in index.members
            ],
            "world": world.to_json() if world else None,
            "code": plan,
        }
        print(printable_json(document, indent=2))
        return 0
    _line(_summary(bundle))
    _line(f"  code on {engine}: {plan}")
    for m in index.members:
        _line(f"  {m.path:<40} {m.size:>10}  sha256 {m.sha256[:16]}  blake3 {m.blake3[:16]}")
        if m.artifact is not None:
            meta, misfit = m.artifact, misfits[m.path]
            _line(
                f"      {meta.engine} {meta.engine_version} (binding {meta.binding_version}) {meta.compiler}"
                f" {meta.triple} cpu={','.join(meta.cpu_features) or '-'} wasm={meta.wasm_sha256[:16]}"
                f" → {'fits this host' if misfit is None else misfit}"
            )
    for line in world.lines() if world else []:
        _line(f"  {line}")
    return 0


def _member_json(member: Member) -> dict[str, Any]:
    """A member of the index as `inspect --json` shows it, its artifact's metadata an object (a record is a tuple,
    which JSON would write as an array)."""
    artifact = None if member.artifact is None else member.artifact._asdict()
    return {**member._asdict(), "artifact": artifact}


def _line(text: str) -> None:
    """One line of output that shows a foreign bundle's strings."""
    print(printable(text))


def cmd_pull(args: argparse.Namespace) -> int:
    try:
        from ngixi_runtime.registry.client import checked_timeout
        from ngixi_runtime.registry.pull import pull_bundle
    except ModuleNotFoundError as missing:
        distribution = (missing.name or "").partition(".")[0]
        if distribution not in PULL_DEPENDENCIES:
            raise
        raise InvalidInput(
            f"ngixi pull needs the registry client ({distribution} is not installed): pip install 'ngixi-runtime[pull]'"
        ) from None
    timeout = checked_timeout(args.timeout)
    path = pull_bundle(reference=args.reference, out_dir=args.out, trust=trusted_keys(args), timeout=timeout)
    print(f"ok: {path}")
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from ngixi_runtime.trust import editing

    trust_file = _trust_file_to_edit(args)
    if args.action == "add":
        trust = editing.NewTrust(tuple(args.guest), tuple(dict.fromkeys(args.channel)), args.native_code, args.comment)
        key_id = editing.add_key(trust_file, editing.read_public_key(args.public_key), trust)
        print(f"trusted key {key_id} in {trust_file}: {_scope(trust.guests, trust.channels, trust.native_code)}")
    elif args.action == "remove":
        key_id = editing.remove_key(trust_file, args.key_id)
        print(f"removed key {key_id} from {trust_file}")
    else:
        for key in editing.listed_keys(trust_file):
            comment = f"  # {printable(key['comment'])}" if key["comment"] else ""  # a project's file is foreign
            print(f"{key['id']}  {_scope(key['guests'], key['channels'], key['native_code'])}{comment}")
    return 0


def _trust_file_to_edit(args: argparse.Namespace) -> Path:
    """The trust file `ngixi trust` shows or edits: `--trust`, `$NGIXI_TRUST` or `--project`'s, as the loader takes
    them (--project was ignored). One found from the working directory is only listed, with a note saying how the
    loader reads it; editing it is refused: an operator's key added there, in whatever project they stood in, would
    be trusted by no host's run (the loader takes a found file's keys for the dev channel only)."""
    chosen = trust_file(args, existing=args.action != "add")
    if not is_implicit_choice(args.trust):
        return chosen
    if args.action != "list" and args.project is None:
        raise InvalidInput(
            f"{chosen}: found from the working directory; `ngixi trust {args.action}` edits only a trust file you "
            f"name: pass --trust FILE (or set ${TRUST_VARIABLE}) for the operator's, or --trust {chosen} for this one"
        )
    if args.action == "list":
        note = (
            f"note: {chosen} was found from the working directory (or --project): its keys are trusted for the dev "
            "channel only, and with native code only if this user's builds made them (--trust FILE: as written)"
        )
        print(printable(note), file=sys.stderr)
    return chosen


def _scope(guests: Sequence[str], channels: Sequence[str], native_code: bool) -> str:
    return f"guests {','.join(guests)}; channels {','.join(channels)}; native code {'yes' if native_code else 'no'}"


def add_trust_scope_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--guest, --channel, --native-code: what a key is trusted with (`trust add`, `keygen --trust`)."""
    from ngixi_runtime.spec.bundle_format import CHANNELS

    parser.add_argument(
        "--guest", action="append", required=required, help="a guest name or pattern (fnmatch) it may sign; repeat"
    )
    parser.add_argument(
        "--channel", action="append", required=required, choices=CHANNELS, help="a channel it may sign on; repeat"
    )
    parser.add_argument(
        "--native-code", action="store_true", help="run its bundles' AOT artifacts (machine code) on the host"
    )


def _trust_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="trust a minisign public key for some guests and channels")
    add.add_argument("public_key", type=Path, help="the key's .pub file (minisign -G or ngixi keygen)")
    add_trust_scope_options(add)
    add.add_argument("--comment", default="", help="a note kept beside the key (who it is, why trusted)")
    remove = actions.add_parser("remove", help="stop trusting a key")
    remove.add_argument("key_id", help="its id, as `ngixi trust list` prints it")
    actions.add_parser("list", help="the keys trusted and what each may sign")
    for action in (add, remove, actions.choices["list"]):
        add_trust_option(action)


def _bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path)
    add_trust_option(parser)


def _engine_option(parser: argparse.ArgumentParser) -> None:
    from ngixi_runtime.engines.base import AUTO, ENGINE_NAMES, ENGINE_VARIABLE

    parser.add_argument(
        "--engine",
        choices=[*ENGINE_NAMES, AUTO],
        help=f"the engine to run on (default: ${ENGINE_VARIABLE}, else {AUTO}: the first installed of "
        f"{', '.join(ENGINE_NAMES)}; for a guest with limits.fuel, the first that meters fuel)",
    )


def _rollback_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="accept a sequence lower than the highest already accepted for the guest and channel",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where accepted sequences are recorded, one file per trust file under rollback/ (default: "
        "$NGIXI_STATE_DIR, else $XDG_STATE_HOME/ngixi, else ~/.local/state/ngixi); not a project's state, "
        "which the build commands' --state-dir names ($NGIXI_PROJECT_STATE)",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path)
    parser.add_argument("export", nargs="?", help="the export to call; omit for a command guest")
    parser.add_argument(
        "args",
        nargs="*",
        default=[],  # else argparse lists it among the required arguments of a bare `ngixi run`
        help="arguments, converted to the declared types (after --, those that start with -)",
    )
    parser.add_argument("--in-process", action="store_true", help="run in this process: faster, no isolation")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="an environment variable for a guest whose [capabilities.env] allows NAME; NAME alone passes its "
        "value here (standard input reaches a guest granted [capabilities.stdin])",
    )
    parser.add_argument("--policy", type=Path, help="operator policy (TOML) the bundle must stay within")
    parser.add_argument("--json", action="store_true", help="print the result and the call's metrics as JSON")
    parser.add_argument(
        "--input",
        metavar="TEXT|@FILE|-",
        help="the call's input, for an export that declares one: the text itself, @FILE's bytes, or - for stdin",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write the call's output to FILE (else: text as text; bytes raw to a pipe, base64 on a terminal)",
    )
    parser.add_argument(
        "--sandbox",
        type=Path,
        help="where guests keep state: DIR/TENANT/GUEST/files holds their fs preopens, "
        "DIR/TENANT/GUEST/kv.sqlite3 their kv store (default: sandbox/CHANNEL in the user's state directory, or the "
        ".ngixi/sandbox/CHANNEL of --project's project, or of the project at or above the cwd for a bundle its "
        "dev trust file verifies; "
        "dev and release bundles apart)",
    )
    parser.add_argument(
        "--tenant",
        default="default",
        help="the tenant id whose sandbox the guest uses: lowercase letters, digits, - and _ (default: default)",
    )
    add_trust_option(parser, sandboxes=True)
    _engine_option(parser)
    _rollback_options(parser)


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    _bundle_arguments(parser)
    _rollback_options(parser)
    parser.add_argument(
        "--policy", type=Path, help="operator policy (TOML): refuse the bundle as ngixi run --policy would"
    )


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    _bundle_arguments(parser)
    _engine_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="registry/name:tag, or registry/name@sha256:... as publish prints it")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory to write the bundle into")
    add_trust_option(parser)
    add_timeout_option(parser, "pull")


def add_timeout_option(parser: argparse.ArgumentParser, command: str) -> None:
    """--timeout, for the commands that talk to a registry (`pull`, and the build side's `publish`)."""
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"the most the whole {command} may take (default 600); a read may wait 10 s at most for a byte",
    )


COMMANDS = {
    "run": Command("verify a bundle and call an export (or run a command guest)", cmd_run, _run_arguments),
    "verify": Command("verify a bundle's signature and every member", cmd_verify, _verify_arguments),
    "inspect": Command("show a verified bundle's members and artifacts", cmd_inspect, _inspect_arguments),
    "trust": Command("list, add or remove the keys a trust file trusts", cmd_trust, _trust_arguments),
    "pull": Command("fetch a bundle from an OCI registry and verify it (the pull extra)", cmd_pull, _pull_arguments),
}


def installed_commands() -> dict[str, Command]:
    """The commands that installed distributions declare in the `ngixi.commands` entry-point group."""
    from importlib.metadata import entry_points

    found: dict[str, Command] = {}
    for point in entry_points(group=COMMAND_GROUP):
        try:
            command = point.load()
        except Exception as error:
            print(f"ngixi: warning: command {point.name} ({point.value}) does not load: {error}", file=sys.stderr)
            continue
        if isinstance(command, Command):
            found[point.name] = command
        else:
            print(f"ngixi: warning: command {point.name} ({point.value}) is not an ngixi Command", file=sys.stderr)
    return found


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names; None when it asks for help first or names none."""
    for token in argv:
        if token in ("-h", "--help"):
            return None
        if not token.startswith("-"):
            return token
    return None


def _commands_for(argv: Sequence[str]) -> Mapping[str, Command]:
    """The commands whose parsers `argv` needs: the one it names, or every command for help or an unknown one."""
    named = _named_command(argv)
    if named in COMMANDS:
        return {named: COMMANDS[named]}
    return {**COMMANDS, **{n: c for n, c in installed_commands().items() if n not in COMMANDS}}


# The commands ngixi-build adds (ngixi_build/cli.py): named when it is not installed, rather than "invalid choice".
_BUILD_COMMANDS = frozenset(
    ("build", "doctor", "init", "keygen", "new", "publish", "release", "smoke", "validate", "watch", "wit")
)


def _refuse_a_build_command(
    parser: argparse.ArgumentParser, named: str | None, commands: Mapping[str, Command]
) -> None:
    """A command of ngixi-build on a host that has ngixi-runtime alone: says where it comes from."""
    if named in _BUILD_COMMANDS and named not in commands:
        parser.error(
            f"ngixi {named} comes with ngixi-build (Python 3.10), which is not installed here: this host has "
            f"ngixi-runtime's run, verify, inspect, trust and pull; run it where ngixi-build is installed"
        )


def _parser(commands: Mapping[str, Command], *, json_failures: bool = False) -> argparse.ArgumentParser:
    """The command line's parser; `json_failures`: a usage error prints `ngixi run --json`'s failure document too."""
    parser = _Parser(
        prog="ngixi",
        description="Verify and run Ngixi WebAssembly guests; with ngixi-build installed, build them too.",
        allow_abbrev=False,
        json_failures=json_failures,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument("--version", action=_VersionAction, help="print the installed versions and exit")
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    for name, command in commands.items():
        sub = subcommands.add_parser(name, help=command.help, description=command.help, json_failures=json_failures)
        sub.set_defaults(handler=command.handler)
        # Also after the command (`ngixi run -v ...`); suppressed, so an unset one keeps `ngixi -v run`'s.
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
        command.arguments(sub)
    return parser


# Marks an argument after the first `--` that starts with "-" while argparse parses (no argument from argv holds a
# NUL): argparse drops every `--`, and its intermixed parsing takes a "-x" after `--` for an unknown option.
_OPERAND = "\0"
# What Python's float() and JSON read as a negative number: argparse's own pattern (`-5`, `-0.5`) misses `-1e5`,
# `-1.5E-3` and `-Infinity`, and took them for unknown options.
_NEGATIVE_NUMBER = re.compile(
    r"^-(?:(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:e[+-]?\d[\d_]*)?|inf|infinity|nan)$", re.IGNORECASE
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (exit 2) print `ngixi run --json`'s failure document when asked to, and
    which takes any negative number as an argument, as it takes `-5`, where no option looks like one."""

    def __init__(self, *, json_failures: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._json_failures = json_failures
        self._negative_number_matcher = _NEGATIVE_NUMBER  # argparse's attribute since Python 2.7, through 3.13

    def error(self, message: str) -> NoReturn:
        if self._json_failures:
            _print_failure("input", f"{self.prog}: {message}", InvalidInput.exit_code)
        super().error(message)


def _asks_for_json_failures(arguments: Sequence[str]) -> bool:
    """Whether the command line is `ngixi run ... --json` (an option before any `--`; the top level's options
    take no values, so its first other argument is the command)."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    command = next((argument for argument in options if not argument.startswith("-")), None)
    return command == "run" and "--json" in options


class _CommandParser(_Parser):
    """A command's parser, which takes its options between its positional arguments too (`ngixi run BUNDLE
    --in-process add 2 3`, `ngixi run BUNDLE --env X -- --flag`): argparse's plain parsing fills an optional
    positional with nothing at the first option and then refuses the rest. `--` still ends the options, and
    what follows it is passed as written: a later `--`, which argparse drops, and a "-B" it refuses, too.
    An option is taken only as spelled in full: an abbreviation a script used would stop working, or mean
    another option, once an option sharing its start is added."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "allow_abbrev": False})
        self._nested = False  # a command with subcommands of its own (`trust`) parses plainly: argparse has to
        self._intermixing = False

    def add_subparsers(self, **kwargs: Any) -> Any:
        self._nested = True
        return super().add_subparsers(**kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._nested or self._intermixing:  # parse_known_intermixed_args calls this method for each pass
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            parsed, extras = self.parse_known_intermixed_args(_operands_marked(args), namespace)
        finally:
            self._intermixing = False
        for name, value in vars(parsed).items():
            setattr(parsed, name, _operands_unmarked(value))
        return parsed, _operands_unmarked(extras)


def _operands_marked(args: Sequence[str] | None) -> list[str]:
    given = list(sys.argv[1:] if args is None else args)
    if "--" not in given:
        return given
    first = given.index("--") + 1
    return given[:first] + [_OPERAND + a if a.startswith("-") else a for a in given[first:]]


def _operands_unmarked(value: Any) -> Any:
    """`value` as given, where an argument's type made a path of it too (`ngixi trust add ... -- --`)."""
    if isinstance(value, list):
        return [_operands_unmarked(v) for v in value]
    if isinstance(value, (str, PurePath)) and str(value).startswith(_OPERAND):
        return type(value)(str(value).removeprefix(_OPERAND))
    return value


class _VersionAction(argparse.Action):
    """`--version`: the installed distributions' versions, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help=str(kwargs.get("help", "")))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        found = []
        for distribution in ("ngixi-runtime", "ngixi-build"):
            try:
                found.append(f"{distribution} {version(distribution)}")
            except PackageNotFoundError:
                continue
        print(", ".join(found) or "ngixi from a source tree")
        parser.exit()


# A shell's status for a command whose reader went away (128 + SIGPIPE), as `yes | head` ends.
BROKEN_PIPE_STATUS = 141
INTERRUPTED_STATUS = 130  # and for one ended by Ctrl-C (128 + SIGINT)
KILLED_STATUS = 137  # and by SIGKILL (128 + 9): `ngixi run --in-process`'s watchdog ends it so


def main(argv: Sequence[str] | None = None) -> int:
    """The `ngixi` command; `argv` None: this process's own command line, and the process is the command's own,
    which `ngixi run --in-process` may end at a guest's timeout on an engine that cannot interrupt it."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    json_failures = _asks_for_json_failures(arguments)
    try:
        with _collection_paused(own_process=argv is None):
            commands = _commands_for(arguments)
            parser = _parser(commands, json_failures=json_failures)
            _refuse_a_build_command(parser, _named_command(arguments), commands)
            args = parser.parse_args(arguments)
    except KeyboardInterrupt:  # Ctrl-C while the command starts (its imports, its commands' entry points)
        return interrupted_while_starting(arguments)
    args.own_process = argv is None
    _configure_logging(args)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    except NgixiError as error:
        fail(error)
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS
    except Exception as error:  # a bug or an input no check foresaw: still one line, unless -v asks for more
        if args.verbose:
            raise
        fail(unexpected(error))
    return code


def interrupted_while_starting(arguments: Sequence[str]) -> int:
    """The end of a command a Ctrl-C interrupted before it ran: its status, and `ngixi run --json`'s document."""
    if _asks_for_json_failures(arguments):
        _print_failure("interrupted", "interrupted (SIGINT)", INTERRUPTED_STATUS)
    return INTERRUPTED_STATUS


@contextmanager
def _collection_paused(own_process: bool) -> Iterator[None]:
    """Python's cyclic garbage collector off within the block, for a command's start: importing modules and building
    its parser make many objects and almost no cyclic garbage, so the collections they set off find next to nothing
    (docs/performance.md, eighth pass). In the command's own process what the block made is then frozen
    (`gc.freeze`): the collections the guest's calls set off do not go through it again, nor write to its pages in
    a forked child; a cycle left there is kept to the end of the process. Not when `main` is called in a process
    that goes on (tests): its own garbage would be kept too."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if own_process:
            gc.freeze()
        if collecting:
            gc.enable()


def _configure_logging(args: argparse.Namespace) -> None:
    """Messages at INFO and above (DEBUG with -v), as they are. This module's own commands log only warnings, which
    logging's last resort handler prints the same way unconfigured, so without -v they import no `logging`."""
    if args.verbose or args.command not in COMMANDS:
        import logging

        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")


def _reader_gone() -> int:
    """stdout's reader closed it (`ngixi inspect --json B | head -3`): stop quietly, with a shell's status for it."""
    _discarded(sys.stdout.fileno())
    return BROKEN_PIPE_STATUS


def _discarded(descriptor: int) -> None:
    """A stream whose reader is gone: what is still written or buffered there goes nowhere, with no error at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
