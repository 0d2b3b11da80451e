"""The `ngixi` command: run, verify, inspect, validate, keygen, publish, pull, wit, doctor, watch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ngixi_runtime.engines.base import AUTO, ENGINE_NAMES, ENGINE_VARIABLE
from ngixi_runtime.errors import InvalidInput, NgixiError

from ngixi_build.project import Project, find_project

if TYPE_CHECKING:
    from ngixi_runtime.bundles.reader import VerifiedBundle
    from ngixi_runtime.loading.tenants import CallResult
    from ngixi_runtime.trust.rollback import RollbackGuard

log = logging.getLogger("ngixi")
TRUST_VARIABLE = "NGIXI_TRUST"


def fail(error: NgixiError) -> NoReturn:
    print(f"ngixi: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def project_or_exit(root: Path) -> Project:
    """The project at `root` with its configuration checked; a bad one exits with the message."""
    project = Project(root)
    try:
        project.targets()
        project.state_dir.mkdir(exist_ok=True)
    except NgixiError as error:
        fail(error)
    return project


def resolve_trust(explicit: Path | None, bundle: Path) -> Path:
    """--trust, else $NGIXI_TRUST, else the dev trust file of the project around the bundle or cwd."""
    if explicit is not None:
        return explicit
    if os.environ.get(TRUST_VARIABLE):
        return Path(os.environ[TRUST_VARIABLE])
    for start in (bundle.resolve().parent, Path.cwd()):
        try:
            trust = find_project(start).dev_trust_file
        except InvalidInput:
            continue
        if trust.exists():
            return trust
    raise InvalidInput(f"no trust file: pass --trust FILE or set {TRUST_VARIABLE}")


def _rollback_guard(args: argparse.Namespace) -> RollbackGuard:
    from ngixi_runtime.trust.rollback import RollbackGuard, default_state_dir

    return RollbackGuard(args.state_dir or default_state_dir(), allow_downgrade=args.allow_downgrade)


def _show(result: CallResult, *, as_json: bool, error: str | None = None) -> None:
    """Prints a call's output: values on stdout, logs and guest stderr on stderr (or one JSON document)."""
    if as_json:
        document = {"ok": error is None, **({"error": error} if error else {}), **result.to_json()}
        document["stdout"], document["stderr"] = (
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        print(json.dumps(document, indent=2))
        return
    for line in result.logs:
        print(f"{line.level}: {line.message}", file=sys.stderr)
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    if result.values:
        print(" ".join(str(v) for v in result.values))


def cmd_run(args: argparse.Namespace) -> int:
    from ngixi_runtime.loading.loader import parse_arguments
    from ngixi_runtime.loading.tenants import CallFailed, open_tenant
    from ngixi_runtime.trust.policy import load_policy

    trust = resolve_trust(args.trust, args.bundle)
    policy = load_policy(args.policy) if args.policy else None
    argv = [a for a in (args.export, *args.args) if a is not None]
    with open_tenant(
        args.bundle,
        trust_file=trust,
        policy=policy,
        isolated=not args.in_process,
        args=argv,
        rollback=_rollback_guard(args),
        sandboxes=args.sandbox,
        tenant=args.tenant,
        engine=args.engine,
    ) as tenant:
        manifest = tenant.manifest
        if tenant.compiled:
            print(f"note: {manifest.guest.name}: {tenant.origin}", file=sys.stderr)
        try:
            if manifest.guest.type.kind == "command":
                result = tenant.run()
            else:
                declared = manifest.export(args.export or "")
                if declared is None:
                    names = ", ".join(e.name for e in manifest.exports) or "none"
                    problem = "name the export to call" if args.export is None else f"no export {args.export!r}"
                    raise InvalidInput(f"{args.bundle}: {problem}; the manifest declares: {names}")
                result = tenant.call(declared.name, parse_arguments(declared, args.args, guest=manifest.guest.name))
        except CallFailed as failure:
            _show(failure.result, as_json=args.json, error=str(failure))
            raise
    _show(result, as_json=args.json)
    return result.exit_code or 0


def _summary(bundle: VerifiedBundle) -> str:
    index = bundle.index
    return (
        f"{index.guest} {index.version} ({index.channel}, {index.profile} profile, sequence {index.sequence}),"
        f" signed by {bundle.signer.key_id}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from ngixi_runtime.bundles.reader import read_bundle
    from ngixi_runtime.trust.signatures import load_trust

    trust = load_trust(resolve_trust(args.trust, args.bundle))
    bundle = read_bundle(args.bundle, trust, rollback=_rollback_guard(args))
    print(f"ok: {_summary(bundle)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ngixi_runtime.bundles.reader import read_bundle
    from ngixi_runtime.engines.base import chosen_engine, engine_named
    from ngixi_runtime.loading.loader import artifact_misfit, bundle_world, host_profile, verified_manifest
    from ngixi_runtime.trust.signatures import load_trust

    bundle = read_bundle(args.bundle, load_trust(resolve_trust(args.trust, args.bundle)))
    world = bundle_world(bundle)  # a component guest's; None for a core guest
    wants_fuel = verified_manifest(bundle).limits.fuel is not None
    engine = chosen_engine(args.engine, wants_fuel=wants_fuel, component=world is not None)
    index, host = bundle.index, host_profile(engine_named(engine))
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
        }
        print(json.dumps(document, indent=2))
        return 0
    print(_summary(bundle))
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


def cmd_validate(args: argparse.Namespace) -> int:
    from ngixi_runtime.trust.policy import load_policy

    from ngixi_build.stages.validate import validate

    policy = load_policy(args.policy) if args.policy else None
    manifest = validate(manifest_path=args.manifest, wasm_path=args.wasm, policy=policy)
    checked = f" and {args.wasm}" if args.wasm else ""
    within = f", within {args.policy}" if args.policy else ""
    print(f"ok: {args.manifest}{checked} ({manifest.guest.name} {manifest.guest.version}){within}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ngixi_build.stages.signing import generate_key_pair

    key = generate_key_pair(secret_path=args.secret, public_path=args.public, comment=args.comment)
    print(f"key {key.key_id}: secret {args.secret} (mode 0600), public {args.public}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ngixi_build.doctor import diagnose

    findings = diagnose(Path.cwd())
    for finding in findings:
        print(f"{'ok ' if finding.ok else 'MISSING'} {finding.what}: {finding.detail}")
    return 0 if all(f.ok for f in findings) else 1


def cmd_publish(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.publish import publish_project_release

    for item in publish_project_release(find_project(Path.cwd())):
        print(f"{item.digest} {item.reference}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from ngixi_runtime.trust.signatures import load_trust

    from ngixi_build.workflows.publish import pull_bundle

    trust = load_trust(resolve_trust(args.trust, args.out / "bundle"))
    path = pull_bundle(reference=args.reference, out_dir=args.out, trust=trust)
    print(f"ok: {path}")
    return 0


def cmd_wit(args: argparse.Namespace) -> int:
    from ngixi_build.toolchains.wit import WIT_DIR, load_catalog, resolve_json

    wit_dir = find_project(Path.cwd()).root / WIT_DIR
    print(json.dumps(resolve_json(wit_dir), indent=2) if args.json else load_catalog(wit_dir).text, end="")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.watch import watch

    watch(find_project(Path.cwd()), poll=args.poll, smoke=args.smoke, profile="release" if args.release else "dev")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ngixi", description="Build, verify and run Ngixi WebAssembly guests.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    run = add("run", cmd_run, "verify a bundle and call an export (or run a command guest)")
    run.add_argument("bundle", type=Path)
    run.add_argument("export", nargs="?", help="the export to call; omit for a command guest")
    run.add_argument("args", nargs="*", help="arguments, converted to the declared types")
    run.add_argument("--in-process", action="store_true", help="run in this process: faster, no isolation")
    run.add_argument("--policy", type=Path, help="operator policy (TOML) the bundle must stay within")
    run.add_argument("--json", action="store_true", help="print the result and the call's metrics as JSON")
    run.add_argument(
        "--sandbox",
        type=Path,
        default=Path(".ngixi") / "sandbox",
        help="where guests keep state: DIR/TENANT/GUEST/files holds their fs preopens, "
        "DIR/TENANT/GUEST/kv.sqlite3 their kv store (default: .ngixi/sandbox)",
    )
    run.add_argument(
        "--tenant",
        default="default",
        help="the tenant id whose sandbox the guest uses: lowercase letters, digits, - and _ (default: default)",
    )
    for name, handler, text in (
        ("verify", cmd_verify, "verify a bundle's signature and every member"),
        ("inspect", cmd_inspect, "show a verified bundle's members and artifacts"),
    ):
        sub = add(name, handler, text)
        sub.add_argument("bundle", type=Path)
    for sub in (run, commands.choices["verify"], commands.choices["inspect"]):
        sub.add_argument(
            "--trust",
            type=Path,
            help=f"trust file (default: ${TRUST_VARIABLE}, else the project's dev trust)",
        )
    for sub in (run, commands.choices["inspect"]):
        sub.add_argument(
            "--engine",
            choices=[*ENGINE_NAMES, AUTO],
            help=f"the engine to run on (default: ${ENGINE_VARIABLE}, else {AUTO}: the first installed of "
            f"{', '.join(ENGINE_NAMES)}; for a guest with limits.fuel, the first that meters fuel)",
        )
    for sub in (run, commands.choices["verify"]):
        sub.add_argument(
            "--allow-downgrade",
            action="store_true",
            help="accept a sequence lower than the highest already accepted for the guest and channel",
        )
        sub.add_argument(
            "--state-dir",
            type=Path,
            help="where accepted sequences are recorded (default: $NGIXI_STATE_DIR, else $XDG_STATE_HOME/ngixi, "
            "else ~/.local/state/ngixi)",
        )
    commands.choices["inspect"].add_argument("--json", action="store_true", help="print JSON")
    validate = add("validate", cmd_validate, "check a manifest, a .wasm against it, and an operator policy")
    validate.add_argument("manifest", type=Path)
    validate.add_argument("--wasm", type=Path)
    validate.add_argument("--policy", type=Path, help="operator policy (TOML) the manifest must stay within")
    keygen = add("keygen", cmd_keygen, "write a new minisign key pair")
    keygen.add_argument("--secret", type=Path, required=True, help="secret key path (written with mode 0600)")
    keygen.add_argument("--public", type=Path, required=True, help="public key path")
    keygen.add_argument("--comment", default="ngixi signing key")
    add("publish", cmd_publish, "push this project's release bundles to $NGIXI_REGISTRY (needs NGIXI_SIGNING_KEY)")
    pull = add("pull", cmd_pull, "fetch a bundle from an OCI registry and verify it")
    pull.add_argument("reference", help="registry/name:tag")
    pull.add_argument("--out", type=Path, default=Path("."), help="directory to write the bundle into")
    pull.add_argument(
        "--trust", type=Path, help=f"trust file (default: ${TRUST_VARIABLE}, else the project's dev trust)"
    )
    wit = add("wit", cmd_wit, "print the WIT catalog of host capabilities (wit/) for component guests")
    wit.add_argument("--json", action="store_true", help="print wasm-tools' resolution of it as JSON")
    add("doctor", cmd_doctor, "say what this machine lacks to build and run guests")
    watch = add("watch", cmd_watch, "rebuild a guest's dev bundle whenever its sources or manifest change")
    watch.add_argument("--poll", action="store_true", help="poll for changes where file events do not arrive")
    watch.add_argument("--smoke", action="store_true", help="run the guest's [[smoke]] calls after each rebuild")
    watch.add_argument(
        "--release", action="store_true", help="build with the release profile, into doit build's outputs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
