"""The build side's `ngixi` commands: build, smoke, release, watch, validate, keygen, publish, wit, doctor.

`ngixi-build` declares them in the `ngixi.commands` entry-point group, where the run side's `ngixi`
command (ngixi_runtime.cli) finds them.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
from pathlib import Path

from ngixi_build.project import Project, find_project
from ngixi_runtime.cli import Command, add_timeout_option, add_trust_scope_options
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import resolved
from ngixi_runtime.guest.kind import GUEST_ABIS, GUEST_KINDS
from ngixi_runtime.trust.choice import state_override


def add_project_options(parser: argparse.ArgumentParser) -> None:
    """--project and --state-dir, for the commands that work on a project."""
    parser.add_argument(
        "--project", type=Path, help="a directory in the project (default: the working directory); its root is above"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where the project keeps its state: its dev key and trust file, doit's records, toolchains, sandboxes "
        "(default: $NGIXI_PROJECT_STATE, else .ngixi/ in the project's root); not `ngixi run --state-dir`, the "
        "user's record of accepted bundle sequences",
    )


def chosen_project(args: argparse.Namespace) -> Project:
    """The project the options name: the one at or above --project, else above the working directory."""
    return find_project(args.project or Path.cwd(), state_dir=args.state_dir or state_override())


def _run_tasks(args: argparse.Namespace, task: str, *options: str) -> int:
    """doit's status, or a shell's for a command a stop signal ended: the tasks unwind from it as from Ctrl-C."""
    from ngixi_build.proc import StopSignal, interrupt_on_stop_signals
    from ngixi_build.workflows.doit_run import run_task

    try:
        with interrupt_on_stop_signals():
            return run_task(chosen_project(args), task, *options)
    except StopSignal as stopped:
        return stopped.exit_status


def cmd_build(args: argparse.Namespace) -> int:
    return _run_tasks(args, "build")


def cmd_smoke(args: argparse.Namespace) -> int:
    return _run_tasks(args, "smoke")


def cmd_release(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.release import release_guests

    release_guests(chosen_project(args), args.guest)  # before the toolchain's install: a mistyped --guest at once
    chosen = [option for guest in args.guest for option in ("--guest", guest)]
    return _run_tasks(args, "release", *chosen, *(["--allow-dirty"] if args.allow_dirty else []))


def _release_arguments(parser: argparse.ArgumentParser) -> None:
    """`doit release`'s own options, as its task declares them."""
    add_project_options(parser)
    parser.add_argument(
        "--guest", action="append", default=[], help="a guest to release (repeat; wins over [tool.ngixi] release)"
    )
    parser.add_argument("--allow-dirty", action="store_true", help="release from a tree with uncommitted changes")


def cmd_init(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.scaffold import init_project

    init_project(args.directory)
    where = args.directory
    enter = "" if resolved(where) == Path.cwd().resolve() else f"cd {where} && "
    print(f"ok: an ngixi project in {where}; add a guest with `{enter}ngixi new NAME`, then `doit build`")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.scaffold import DEFAULT_LANGUAGE, default_abi, new_guest

    project = chosen_project(args)
    if args.wasm is not None:
        return _new_prebuilt(project, args)
    language = args.lang or DEFAULT_LANGUAGE
    abi = args.abi or default_abi(language)
    kind = args.kind or "library"
    written = new_guest(project, args.name, language=language, kind=kind, abi=abi)
    print(f"ok: {language} {kind} guest {args.name} ({abi} ABI):")
    for path in written:
        print(f"  {path.relative_to(project.root)}")
    build, smoke = _build_commands(project, args.project)
    print(f"build it with `{build}`, test it with `{smoke}`")
    return 0


def _new_prebuilt(project: Project, args: argparse.Namespace) -> int:
    from ngixi_build.workflows.prebuilt_guest import PREOPEN, new_prebuilt_guest
    from ngixi_runtime.loading.tenants import DEFAULT_TENANT
    from ngixi_runtime.spec.project import SANDBOX_NAME

    given = [f"--{option}" for option in ("lang", "kind", "abi") if getattr(args, option) is not None]
    if given:
        raise InvalidInput(f"ngixi new --wasm: {', '.join(given)} comes from the module itself; leave it out")
    guest = new_prebuilt_guest(project, args.name, args.wasm)
    print(f"ok: prebuilt command guest {args.name} (core module), granted {', '.join(guest.grants) or 'nothing'}:")
    for path in guest.written:
        print(f"  {path.relative_to(project.root)}")
    build, _ = _build_commands(project, args.project)
    bundle = project.artifacts_dir / "bundles" / f"{args.name}-0.1.0.ngx"
    print(f"build it with `{build}`, run it with `ngixi run {_shown_path(bundle)} -- ARGS...`")
    if "fs" in guest.grants:
        sandbox = project.state_dir / SANDBOX_NAME / "dev" / DEFAULT_TENANT / args.name
        files = sandbox / "files" / PREOPEN.lstrip("/")
        print(f"its {PREOPEN} is {_shown_path(files)} (the dev bundle's; made at its first run)")
    return 0


def _shown_path(path: Path) -> str:
    """`path` from the working directory when it is below it, for a command to copy."""
    here = Path.cwd().resolve()
    absolute = path.resolve()
    return shlex.quote(str(absolute.relative_to(here) if absolute.is_relative_to(here) else absolute))


def _build_commands(project: Project, chosen: Path | None) -> tuple[str, str]:
    """What builds and smoke-tests the project from the working directory: doit reads only the dodo.py there, so
    below the root it is `ngixi build`, and outside the project that with the `--project` the user gave."""
    here = Path.cwd().resolve()
    if here == project.root.resolve():
        return "doit build", "doit smoke"
    elsewhere = "" if here.is_relative_to(project.root.resolve()) else f" --project {shlex.quote(str(chosen))}"
    return f"ngixi build{elsewhere}", f"ngixi smoke{elsewhere}"


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
    trust = editing.NewTrust(
        tuple(args.guest or ()), tuple(dict.fromkeys(args.channel or ())), args.native_code, args.comment
    )
    if args.trust is not None:  # what the loader would refuse is named before any key is made
        editing.check_new_trust(args.trust, trust)
    key = generate_key_pair(secret_path=args.secret, public_path=args.public, comment=args.comment)
    print(f"key {key.key_id}: secret {args.secret} (mode 0600), public {args.public}")
    work_tree = next((d for d in resolved(args.secret).parents if (d / ".git").exists()), None)
    if work_tree is not None:
        logging.getLogger(__name__).warning(
            "warning: the secret key %s is inside the git work tree %s: move it out of the project unless git "
            "ignores it (never commit it; a release refuses a tree holding one)",
            args.secret,
            work_tree,
        )
    if args.trust is not None:
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
    from ngixi_runtime.registry.client import checked_timeout

    timeout = checked_timeout(args.timeout)
    publish_project_release(chosen_project(args), force=args.force, timeout=timeout)  # logs each tag, its pin
    return 0


def cmd_wit(args: argparse.Namespace) -> int:
    from ngixi_build.toolchains.wit import load_catalog, resolve_json

    wit_dir = chosen_project(args).wit_dir
    print(json.dumps(resolve_json(wit_dir), indent=2) if args.json else load_catalog(wit_dir).text, end="")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from ngixi_build.workflows.watch import watch

    watch(chosen_project(args), poll=args.poll, smoke=args.smoke, profile="release" if args.release else "dev")
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
    add_project_options(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite a tag that names other content (hosts may have pulled it), or publish a sequence not above "
        "another published version's (hosts refuse it as a rollback)",
    )
    add_timeout_option(parser, "publish")


def _wit_arguments(parser: argparse.ArgumentParser) -> None:
    add_project_options(parser)
    parser.add_argument("--json", action="store_true", help="print wasm-tools' resolution of it as JSON")


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    add_project_options(parser)
    parser.add_argument("--poll", action="store_true", help="poll for changes where file events do not arrive")
    parser.add_argument("--smoke", action="store_true", help="run the guest's [[smoke]] calls after each rebuild")
    parser.add_argument(
        "--release", action="store_true", help="build with the release profile, into doit build's outputs"
    )


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=Path("."),
        help="the project's folder (made if missing; default: here)",
    )


def _new_arguments(parser: argparse.ArgumentParser) -> None:
    from ngixi_build.workflows.scaffold import DEFAULT_LANGUAGE, languages

    parser.add_argument("name", help='the guest\'s name: a lowercase letter, then lowercase letters, digits and "-"')
    parser.add_argument("--lang", choices=languages(), help=f"its language (default: {DEFAULT_LANGUAGE})")
    parser.add_argument("--kind", choices=GUEST_KINDS, help="a library of exports (the default) or a command")
    parser.add_argument(
        "--abi",
        choices=GUEST_ABIS,
        help="a core module (the default) or a component (the only one some languages have)",
    )
    parser.add_argument(
        "--wasm",
        type=Path,
        metavar="FILE",
        help="a WASI command another toolchain built (a wheel's or npm package's .wasm): copied into the guest's"
        " folder, with a manifest granting what it imports",
    )
    add_project_options(parser)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


VALIDATE = Command("check a manifest, a .wasm against it, and an operator policy", cmd_validate, _validate_arguments)
KEYGEN = Command("write a new minisign key pair", cmd_keygen, _keygen_arguments)
PUBLISH = Command(
    "push this project's release bundles to $NGIXI_REGISTRY (needs NGIXI_SIGNING_KEY)", cmd_publish, _publish_arguments
)
BUILD = Command("build every guest of the project (doit build, with no dodo.py)", cmd_build, add_project_options)
SMOKE = Command("build, then run every guest's [[smoke]] calls (doit smoke)", cmd_smoke, add_project_options)
RELEASE = Command("build the project's release (doit release)", cmd_release, _release_arguments)
WIT = Command("print the WIT catalog of host capabilities (wit/) for component guests", cmd_wit, _wit_arguments)
INIT = Command("create a guest project: pyproject.toml, dodo.py, .gitignore, README", cmd_init, _init_arguments)
NEW = Command("add a guest to the project, ready to build, run and smoke-test", cmd_new, _new_arguments)
DOCTOR = Command("say what this machine lacks to build and run guests", cmd_doctor, _no_arguments)
WATCH = Command("rebuild a guest's dev bundle whenever its sources or manifest change", cmd_watch, _watch_arguments)
