"""The `ngixi` command: run, verify and inspect bundles, plus the commands other installed distributions add.

A distribution adds commands by naming `Command` objects in the `ngixi.commands` entry-point group, e.g.
`[project.entry-points."ngixi.commands"]` `validate = "ngixi_build.cli:VALIDATE"`. They are looked up only
when the command line names none of this module's commands, so `ngixi run` reads no package metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ngixi_runtime.engines.base import AUTO, ENGINE_NAMES, ENGINE_VARIABLE
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.trust.choice import DEV_TRUST_FILE, TRUST_VARIABLE, chosen_trust_file

if TYPE_CHECKING:
    from ngixi_runtime.bundles.reader import VerifiedBundle
    from ngixi_runtime.loading.tenants import CallResult
    from ngixi_runtime.trust.rollback import RollbackGuard

COMMAND_GROUP = "ngixi.commands"


@dataclass(frozen=True)
class Command:
    """One `ngixi` subcommand: `arguments` declares its options on its parser; `handler` returns the exit code."""

    help: str
    handler: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]


def fail(error: NgixiError) -> NoReturn:
    print(f"ngixi: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust",
        type=Path,
        help=f"trust file (default: ${TRUST_VARIABLE}, else {DEV_TRUST_FILE} in the working directory)",
    )


def _rollback_guard(args: argparse.Namespace) -> RollbackGuard:
    from ngixi_runtime.trust.rollback import RollbackGuard, default_state_dir

    return RollbackGuard(args.state_dir or default_state_dir(), allow_downgrade=args.allow_downgrade)


def _show(result: CallResult, *, as_json: bool, error: str | None = None, output_file: Path | None = None) -> None:
    """Prints a call's output: values on stdout, logs and guest stderr on stderr (or one JSON document); the
    call data ABI's output as `call_io.write_output` shows it."""
    from ngixi_runtime.call_io import json_output, write_output

    if as_json:
        document = {"ok": error is None, **({"error": error} if error else {}), **result.to_json()}
        document["stdout"], document["stderr"] = (
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        document |= json_output(result.output, result.output_kind, result.data)
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return
    for line in result.logs:
        print(f"{line.level}: {line.message}", file=sys.stderr)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    if result.values:
        print(" ".join(str(v) for v in result.values))
    if result.output is not None and result.output_kind is not None:
        sys.stdout.flush()
        write_output(
            result.output, result.output_kind, to_file=output_file, stdout=sys.stdout.buffer, stderr=sys.stderr
        )


def cmd_run(args: argparse.Namespace) -> int:
    from ngixi_runtime.call_io import call_export
    from ngixi_runtime.loading.tenants import CallFailed, open_tenant
    from ngixi_runtime.trust.policy import load_policy

    trust = chosen_trust_file(args.trust)
    policy = load_policy(args.policy) if args.policy else None
    argv = [a for a in (args.export, *args.args) if a is not None]
    with open_tenant(
        args.bundle,
        trust_file=trust,
        policy=policy,
        isolated=not args.in_process,
        args=argv,
        env=_variables(args.env),
        # read only for a guest granted stdin; `--input -` is the call's input instead (call_io)
        stdin=None if args.input == "-" else lambda limit: sys.stdin.buffer.read(limit + 1),
        rollback=_rollback_guard(args),
        sandboxes=args.sandbox,
        tenant=args.tenant,
        engine=args.engine,
    ) as tenant:
        manifest = tenant.manifest
        if tenant.compiled or args.verbose:
            print(f"note: {manifest.guest.name}: {_code_path(tenant.origin)}", file=sys.stderr)
        try:
            if manifest.guest.type.kind == "command":
                if args.input is not None:
                    raise InvalidInput(f"{manifest.guest.name} is a command guest: it takes arguments, not --input")
                result = tenant.run()
            else:
                result = call_export(tenant, args.bundle, args.export, args.args, args.input)
        except CallFailed as failure:
            _show(failure.result, as_json=args.json, error=str(failure))
            raise
    _show(result, as_json=args.json, output_file=args.output)
    return result.exit_code or 0


def _variables(options: Sequence[str]) -> dict[str, str]:
    """`--env NAME=VALUE` sets NAME; `--env NAME` passes this process's value of NAME."""
    variables = {}
    for option in options:
        name, equals, value = option.partition("=")
        if not equals and name not in os.environ:
            raise InvalidInput(f"--env {name}: {name} is not set here; give its value as --env {name}=VALUE")
        variables[name] = value if equals else os.environ[name]
    return variables


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
    from ngixi_runtime.trust.signatures import load_trust

    trust = load_trust(chosen_trust_file(args.trust))
    bundle = read_bundle(args.bundle, trust, rollback=_rollback_guard(args))
    check_guest_code(bundle)
    print(f"ok: {_summary(bundle)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ngixi_runtime.bundles.reader import read_bundle
    from ngixi_runtime.engines.base import chosen_engine, engine_named
    from ngixi_runtime.loading.loader import artifact_misfit, bundle_world, code_plan, host_profile, verified_manifest
    from ngixi_runtime.trust.signatures import load_trust

    bundle = read_bundle(args.bundle, load_trust(chosen_trust_file(args.trust)))
    world = bundle_world(bundle)  # a component guest's; None for a core guest
    wants_fuel = verified_manifest(bundle).limits.fuel is not None
    engine = chosen_engine(args.engine, wants_fuel=wants_fuel, component=world is not None)
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
                {**dataclasses.asdict(m), **({"misfit": misfits[m.path]} if m.path in misfits else {})}
                for m in index.members
            ],
            "world": world.to_json() if world else None,
            "code": plan,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(_summary(bundle))
    print(f"  code on {engine}: {plan}")
    for m in index.members:
        print(f"  {m.path:<40} {m.size:>10}  sha256 {m.sha256[:16]}  blake3 {m.blake3[:16]}")
        if m.artifact is not None:
            meta, misfit = m.artifact, misfits[m.path]
            print(
                f"      {meta.engine} {meta.engine_version} (binding {meta.binding_version}) {meta.compiler}"
                f" {meta.triple} cpu={','.join(meta.cpu_features) or '-'} wasm={meta.wasm_sha256[:16]}"
                f" → {'fits this host' if misfit is None else misfit}"
            )
    for line in world.lines() if world else []:
        print(f"  {line}")
    return 0


def _bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path)
    add_trust_option(parser)


def _engine_option(parser: argparse.ArgumentParser) -> None:
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
        help="where accepted sequences are recorded (default: $NGIXI_STATE_DIR, else $XDG_STATE_HOME/ngixi, "
        "else ~/.local/state/ngixi)",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path)
    parser.add_argument("export", nargs="?", help="the export to call; omit for a command guest")
    parser.add_argument("args", nargs="*", help="arguments, converted to the declared types")
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
        default=Path(".ngixi") / "sandbox",
        help="where guests keep state: DIR/TENANT/GUEST/files holds their fs preopens, "
        "DIR/TENANT/GUEST/kv.sqlite3 their kv store (default: .ngixi/sandbox)",
    )
    parser.add_argument(
        "--tenant",
        default="default",
        help="the tenant id whose sandbox the guest uses: lowercase letters, digits, - and _ (default: default)",
    )
    add_trust_option(parser)
    _engine_option(parser)
    _rollback_options(parser)


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    _bundle_arguments(parser)
    _rollback_options(parser)


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    _bundle_arguments(parser)
    _engine_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")


COMMANDS = {
    "run": Command("verify a bundle and call an export (or run a command guest)", cmd_run, _run_arguments),
    "verify": Command("verify a bundle's signature and every member", cmd_verify, _verify_arguments),
    "inspect": Command("show a verified bundle's members and artifacts", cmd_inspect, _inspect_arguments),
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
    if _named_command(argv) in COMMANDS:
        return COMMANDS
    return {**COMMANDS, **{n: c for n, c in installed_commands().items() if n not in COMMANDS}}


def _parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ngixi", description="Verify and run Ngixi WebAssembly guests; with ngixi-build installed, build them too."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        sub = subcommands.add_parser(name, help=command.help, description=command.help)
        sub.set_defaults(handler=command.handler)
        # Also after the command (`ngixi run -v ...`); suppressed, so an unset one keeps `ngixi -v run`'s.
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
        command.arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = _parser(_commands_for(arguments)).parse_args(arguments)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        code: int = args.handler(args)
    except NgixiError as error:
        fail(error)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
