"""The build side's `ngixi` commands: validate, keygen, publish, pull, wit, doctor, watch.

`ngixi-build` declares them in the `ngixi.commands` entry-point group, where the run side's `ngixi`
command (ngixi_runtime.cli) finds them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ngixi_build.project import Project, find_project
from ngixi_runtime.cli import Command, add_trust_option, add_trust_scope_options, fail
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.trust.choice import chosen_trust_file


def project_or_exit(root: Path) -> Project:
    """The project at `root` with its configuration checked; a bad one exits with the message."""
    project = Project(root)
    try:
        project.targets()
        project.state_dir.mkdir(exist_ok=True)
    except NgixiError as error:
        fail(error)
    return project


def cmd_validate(args: argparse.Namespace) -> int:
    from ngixi_build.stages.validate import validate
    from ngixi_runtime.trust.policy import load_policy

    policy = load_policy(args.policy) if args.policy else None
    manifest = validate(manifest_path=args.manifest, wasm_path=args.wasm, policy=policy)
    checked = f" and {args.wasm}" if args.wasm else ""
    within = f", within {args.policy}" if args.policy else ""
    print(f"ok: {args.manifest}{checked} ({manifest.guest.name} {manifest.guest.version}){within}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from ngixi_build.stages.signing import generate_key_pair
    from ngixi_runtime.trust import editing

    if args.trust is not None and (args.guest is None or args.channel is None):
        raise InvalidInput("keygen --trust: say what the key may sign with --guest and --channel")
    if args.trust is not None and args.trust.exists():
        editing.listed_keys(args.trust)  # a trust file the loader refuses is named before any key is made
    key = generate_key_pair(secret_path=args.secret, public_path=args.public, comment=args.comment)
    print(f"key {key.key_id}: secret {args.secret} (mode 0600), public {args.public}")
    if args.trust is not None:
        trust = editing.NewTrust(tuple(args.guest), tuple(dict.fromkeys(args.channel)), args.native_code, args.comment)
        editing.add_key(args.trust, key.public, trust)
        print(f"trusted key {key.key_id} in {args.trust}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ngixi_build.doctor import diagnose

    findings = diagnose(Path.cwd())
    for finding in findings:
        print(f"{'ok ' if finding.ok else 'MISSING'} {finding.what}: {finding.detail}")
    return 0 if all(f.ok for f in findings) else 1


def cmd_publish(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.publish import publish_project_release

    publish_project_release(find_project(Path.cwd()), force=args.force)  # it logs each tag and its pin
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.publish import pull_bundle
    from ngixi_runtime.trust.signatures import load_trust

    trust = load_trust(chosen_trust_file(args.trust))
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


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--wasm", type=Path)
    parser.add_argument("--policy", type=Path, help="operator policy (TOML) the manifest must stay within")


def _keygen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret", type=Path, required=True, help="secret key path (written with mode 0600)")
    parser.add_argument("--public", type=Path, required=True, help="public key path")
    parser.add_argument("--comment", default="ngixi signing key")
    parser.add_argument(
        "--trust",
        type=Path,
        help="also trust the new key in this trust file (made if missing); with --guest, --channel",
    )
    add_trust_scope_options(parser, required=False)


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force", action="store_true", help="overwrite a tag that names other content (hosts may have pulled it)"
    )


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="registry/name:tag, or registry/name@sha256:... as publish prints it")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory to write the bundle into")
    add_trust_option(parser)


def _wit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print wasm-tools' resolution of it as JSON")


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--poll", action="store_true", help="poll for changes where file events do not arrive")
    parser.add_argument("--smoke", action="store_true", help="run the guest's [[smoke]] calls after each rebuild")
    parser.add_argument(
        "--release", action="store_true", help="build with the release profile, into doit build's outputs"
    )


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


VALIDATE = Command("check a manifest, a .wasm against it, and an operator policy", cmd_validate, _validate_arguments)
KEYGEN = Command("write a new minisign key pair", cmd_keygen, _keygen_arguments)
PUBLISH = Command(
    "push this project's release bundles to $NGIXI_REGISTRY (needs NGIXI_SIGNING_KEY)", cmd_publish, _publish_arguments
)
PULL = Command("fetch a bundle from an OCI registry and verify it", cmd_pull, _pull_arguments)
WIT = Command("print the WIT catalog of host capabilities (wit/) for component guests", cmd_wit, _wit_arguments)
DOCTOR = Command("say what this machine lacks to build and run guests", cmd_doctor, _no_arguments)
WATCH = Command("rebuild a guest's dev bundle whenever its sources or manifest change", cmd_watch, _watch_arguments)
