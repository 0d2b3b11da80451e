"""Releases: a named set of guest versions, each built for every target on the release channel, twice
from clean copies of the source tree, and refused unless both builds are byte-identical.

A bundle's version is its guest's version; the release version names the set. `artifacts/release/<version>/`
holds the bundles, `release.json` (each guest's version, bundle digest and sequence), SHA256SUMS, its
minisign signature and an in-toto statement of how they were made. The project's `release-history.toml`
(release_history.py) keeps a released guest version's content fixed and each guest's sequences rising.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from ngixi_build import __version__
from ngixi_build.files import regular_files
from ngixi_build.guests import read_guest
from ngixi_build.languages import registry
from ngixi_build.locking import file_lock
from ngixi_build.proc import run
from ngixi_build.project import Project, git_output
from ngixi_build.stages import component
from ngixi_build.stages.signing import (
    RELEASE_KEY_VARIABLE,
    SigningKey,
    release_signing_key,
    sign,
)
from ngixi_build.toolchains import ziglang
from ngixi_build.toolchains.assemblyscript import adapter_pin, ensure_toolchain, toolchain_for
from ngixi_build.toolchains.wit import WASM_TOOLS
from ngixi_build.workflows import pipeline
from ngixi_build.workflows.release_history import (
    HISTORY_FILE,
    History,
    Released,
    ReleasedGuest,
    ReleaseRecord,
    read_history,
    write_history,
)
from ngixi_runtime.engines import wasmer as engine
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import open_regular, sha256_of, write_atomic
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX, INDEX_NAME, BundleIndex, Channel, parse_index
from ngixi_runtime.spec.schema import suggestion
from ngixi_runtime.trust.minisign_format import is_secret_key_file

log = logging.getLogger(__name__)

VERSION_VARIABLE = "NGIXI_RELEASE_VERSION"
ALLOW_DIRTY_VARIABLE = "NGIXI_RELEASE_ALLOW_DIRTY"
SUMS_NAME = "SHA256SUMS"
PROVENANCE_NAME = "provenance.json"
RELEASE_MANIFEST_NAME = "release.json"
CHANNEL: Channel = "release"
_CHANGED = "no longer a readable regular file: the source tree changed during the release; run it again"
_NOT_SOURCE = {".git", ".venv", ".ngixi", "artifacts", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# A Python environment (`venv/`, `.venv-3.12/`: any folder holding this file) is never source, by whatever name.
_PYTHON_ENVIRONMENT_MARKER = "pyvenv.cfg"

# (clean copy, key, sequence per guest to build) -> bundle file name -> bytes
Builder = Callable[[Project, SigningKey, Mapping[str, int]], dict[str, bytes]]


class ReleaseError(NgixiError):
    """The release was refused: not reproducible, or conflicting with one already made."""


@dataclass(frozen=True)
class Release:
    directory: Path
    bundles: tuple[str, ...]
    already_existed: bool


@dataclass(frozen=True)
class SourceState:
    commit: str  # "" outside git
    changes: tuple[str, ...]  # uncommitted or untracked paths; the record of releases aside

    @property
    def dirty(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class PlannedGuest:
    name: str
    version: str
    sequence: int
    released: Released | None  # this guest version's earlier release, which this one must reproduce

    def describe(self) -> str:
        if self.released is None:
            return f"{self.name} {self.version}: new, sequence {self.sequence}"
        return (
            f"{self.name} {self.version}: released in {self.released.release} (sequence {self.sequence}); "
            "must build to the same bundle"
        )


def release_version(project: Project) -> str:
    """NGIXI_RELEASE_VERSION, else the tag on HEAD (a leading "v" dropped)."""
    explicit = os.environ.get(VERSION_VARIABLE)
    if explicit:
        version = explicit
    else:
        tag = git_output(project.root, "describe", "--tags", "--exact-match")
        if tag is None:
            raise InvalidInput(f"no release version: tag the commit (git tag v1.2.3) or set {VERSION_VARIABLE}")
        version = tag.removeprefix("v")
    if not version or "/" in version or version.startswith("."):
        raise InvalidInput(f"{VERSION_VARIABLE}: {version!r} cannot name a release directory")
    return version


def source_files(root: Path) -> list[Path]:
    """The files that make up the source tree, relative to `root`, sorted."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
        found = (Path(p) for p in listed.decode().split("\0") if p and (root / p).is_file())
    else:
        found = (p.relative_to(root) for p in regular_files(root, enter=lambda name: name not in _NOT_SOURCE))
    kept = [p for p in found if not _NOT_SOURCE & set(p.parts) and p.as_posix() != HISTORY_FILE]
    environments = {p.parent for p in kept if p.name == _PYTHON_ENVIRONMENT_MARKER}
    return sorted(p for p in kept if environments.isdisjoint(p.parents))


def source_state(root: Path) -> SourceState:
    """The commit the tree is at and what differs from it (untracked files too); outside git, all of it."""
    commit = git_output(root, "rev-parse", "HEAD")  # None also where git is missing
    changed = None if commit is None else _changed_paths(root)
    if commit is None or changed is None:
        return SourceState("", ("(not a git work tree: nothing says what the release is made from)",))
    record = (git_output(root, "rev-parse", "--show-prefix") or "") + HISTORY_FILE  # porcelain: from the top
    return SourceState(commit, tuple(sorted(p for p in changed if p != record)))


def _changed_paths(root: Path) -> list[str] | None:
    """Paths `git status` shows under `root` (modified, staged, deleted, untracked), from the repository's top."""
    status = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", "."],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if status.returncode != 0:
        return None
    return [entry[3:].decode(errors="replace") for entry in status.stdout.split(b"\0") if entry]


def release_guests(project: Project, requested: Sequence[str] = ()) -> list[str]:
    """The guests to release: `requested` (the task's --guest), else [tool.ngixi] release, else every guest."""
    known = project.guest_names()
    chosen, source = list(requested), "--guest"
    if not chosen:
        chosen, source = project.release_guests(), f"{project.root / 'pyproject.toml'}: tool.ngixi.release"
    for index, name in enumerate(chosen):
        if name not in known:
            field = f"--guest {name}" if requested else f"{source}[{index}]"
            raise InvalidInput(f"{field}: no guest {name!r}; {suggestion(name, known, 'guests')}")
    released = sorted(set(chosen)) or known
    _refuse_unreproducible(project, released, source if chosen else f"{source} (not set: every guest)")
    return released


def _refuse_unreproducible(project: Project, guests: list[str], source: str) -> None:
    """A guest whose language's toolchain does not build reproducibly: the release's two builds would differ, after
    building everything twice."""
    for name in guests:
        language = read_guest(project, name).type.language
        known = language is not None and language in registry.supported()
        why = registry.language(language).not_reproducible() if known and language is not None else None
        if why is not None:
            raise InvalidInput(
                f"{source}: {name} is a {language} guest, and two builds of it differ ({why}; docs/dependencies.md):"
                " a release cannot reproduce it; release the others (list them in tool.ngixi.release or with --guest)"
            )


def tree_digest(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for relative in files:
        digest.update(f"{relative.as_posix()}\0{_file_sha256(root / relative)}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = sha256_of(path)
    if digest is None:
        raise ReleaseError(f"{path}: {_CHANGED}")
    return digest


@contextmanager
def _source_file(path: Path) -> Iterator[IO[bytes]]:
    with open_regular(path) as stream:
        if stream is None:
            raise ReleaseError(f"{path}: {_CHANGED}")
        yield stream


def _export(project: Project, files: list[Path], destination: Path) -> Project:
    """A clean copy of the source tree that shares the installed toolchain."""
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with _source_file(project.root / relative) as source, target.open("wb") as copy:
            shutil.copyfileobj(source, copy)
    (destination / ".ngixi").mkdir()
    (destination / ".ngixi" / "toolchain").symlink_to(toolchain_for(project.state_dir).root.parent)
    return Project(destination)


def build_bundles(project: Project, key: SigningKey, sequences: Mapping[str, int]) -> dict[str, bytes]:
    """Each guest named in `sequences` through compile → validate → precompile (all targets) → release bundle."""
    out_dir = project.artifacts_dir / "release-build"
    bundles = {}
    for name, sequence in sorted(sequences.items()):
        guest = read_guest(project, name)
        targets, wasmtime_triples = pipeline.artifact_plan(project, guest)
        if guest.type.is_component:
            component.generate_bindings(project)
        else:
            wasmtime_triples = []  # core guests' releases carry Wasmer artifacts only
        pipeline.compile_guest(project, guest)
        pipeline.validate(project, guest.name)
        for target in targets:
            pipeline.precompile(project, guest.name, target)
        for triple in wasmtime_triples:
            pipeline.precompile_with_wasmtime(project, guest, triple)
        triples = [t.triple for t in targets]
        path = pipeline.bundle(
            project,
            guest,
            triples,
            wasmtime_triples=wasmtime_triples,
            key=key,
            channel=CHANNEL,
            out_dir=out_dir,
            sequence=sequence,
        )
        bundles[path.name] = path.read_bytes()
    return bundles


def _tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isreg()}  # type: ignore[union-attr]


def differences(first: dict[str, bytes], second: dict[str, bytes]) -> list[str]:
    """Each bundle (and member) that is not byte-identical between two builds."""
    found = [f"{name}: only in one build" for name in sorted(set(first) ^ set(second))]
    for name in sorted(set(first) & set(second)):
        if first[name] == second[name]:
            continue
        a, b = _tar_members(first[name]), _tar_members(second[name])
        members = sorted(m for m in set(a) | set(b) if a.get(m) != b.get(m))
        found.append(f"{name}: {', '.join(members) or 'archive bytes'} differ")
    return found


def _indexes(bundles: dict[str, bytes]) -> dict[str, BundleIndex]:
    """Each bundle's index, refusing a dev-profile one: a dev build's .wasm is not optimized."""
    found = {}
    for name, data in sorted(bundles.items()):
        try:
            index = parse_index(_tar_members(data)[INDEX_NAME], source=name)
        except (tarfile.TarError, KeyError) as error:
            raise ReleaseError(f"{name}: not a readable bundle ({error}); the build is broken") from None
        if index.profile != "release":
            raise ReleaseError(
                f"{name}: profile: built with the {index.profile} profile; a release ships only release-profile "
                "bundles (dev bundles come from watch mode): rebuild with the release profile"
            )
        found[name] = index
    return found


def plan_release(project: Project, history: History, guests: Sequence[str]) -> list[PlannedGuest]:
    """Each guest's version and sequence: a released version keeps its sequence, a new one gets the next."""
    planned = []
    for name in guests:
        version = read_guest(project, name).version
        released = history.released(name, version, CHANNEL)
        sequence = released.guest.sequence if released else history.next_sequence(name, CHANNEL)
        planned.append(PlannedGuest(name, version, sequence, released))
    return planned


def _released_guests(plan: list[PlannedGuest], bundles: dict[str, bytes]) -> tuple[ReleasedGuest, ...]:
    """What was built, checked against the plan; a guest version released before must be the same bundle."""
    indexes = _indexes(bundles)
    by_guest = {index.guest: (name, index) for name, index in indexes.items()}
    if sorted(by_guest) != sorted(p.name for p in plan) or len(by_guest) != len(indexes):
        raise ReleaseError(f"the build made {', '.join(sorted(bundles))}, not one bundle per planned guest")
    found = []
    for guest in plan:
        name, index = by_guest[guest.name]
        if (index.version, index.sequence, index.channel) != (guest.version, guest.sequence, CHANNEL):
            raise ReleaseError(f"{name}: built as {index.version} sequence {index.sequence}, not as planned")
        digest = f"sha256:{hashlib.sha256(bundles[name]).hexdigest()}"
        if guest.released and guest.released.guest.digest != digest:
            raise ReleaseError(
                f"{guest.name} {guest.version} was released in {guest.released.release} as "
                f"{guest.released.guest.digest}; this build is {digest} (other content under the same version): "
                f"bump [guest].version in manifests/{guest.name}.toml"
            )
        found.append(ReleasedGuest(guest.name, guest.version, CHANNEL, guest.sequence, digest))
    return tuple(found)


def release_manifest(version: str, guests: tuple[ReleasedGuest, ...]) -> bytes:
    document = {
        "release": version,
        "guests": [{**asdict(g), "bundle": f"{g.name}-{g.version}{BUNDLE_SUFFIX}"} for g in guests],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def checksums(bundles: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(bundles.items())).encode()


@dataclass(frozen=True)
class BuiltWith:
    """The pinned toolchains the released guests were built with: the provenance names each one that was used."""

    assemblyscript: bool = False  # Node.js, asc and the WASI adapters (`registry.needs_node`)
    ziglang: bool = False  # C and Zig guests (`registry.needs_zig`)
    wasm_tools: bool = False  # component guests, made and read by wasm-tools


def built_with(project: Project, guests: Sequence[str]) -> BuiltWith:
    builds = [read_guest(project, name) for name in guests]
    languages = registry.toolchain_languages(project, builds)
    return BuiltWith(
        assemblyscript=registry.needs_node(languages),
        ziglang=registry.needs_zig(languages),
        wasm_tools=any(build.type.is_component for build in builds),
    )


def _versions(project: Project, toolchains: BuiltWith) -> dict[str, str]:
    return {
        **(_toolchain_versions(project) if toolchains.assemblyscript else {}),
        **({"ziglang": ziglang.pinned_version()} if toolchains.ziglang else {}),
        **({"wasm_tools": f"{WASM_TOOLS.package}@{WASM_TOOLS.pinned_version()}"} if toolchains.wasm_tools else {}),
    }


def _toolchain_versions(project: Project) -> dict[str, str]:
    chain = toolchain_for(project.state_dir)
    node = run([chain.node, "--version"], what="node --version", timeout=60).stdout.strip()

    def version_of(package: str) -> str:
        return str(json.loads((chain.root / "node_modules" / package / "package.json").read_text())["version"])

    adapter = adapter_pin()
    return {
        "node": node,
        "assemblyscript": version_of("assemblyscript"),
        "wasi_shim": version_of("@assemblyscript/wasi-shim"),
        "wasi_adapter": f"{adapter.package}@{adapter.version}",
    }


def _adapter_dependencies() -> list[dict[str, Any]]:
    """The WASI preview 1 adapters component guests are made with, by their pinned digests."""
    pin = adapter_pin()
    return [
        {"name": f"{pin.package}@{pin.version}/{path}", "digest": {"sha256": sha256}}
        for path, sha256 in sorted(pin.files.values())
    ]


def npm_dependencies(dependencies: Mapping[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    """Each guest's npm packages as SLSA resources: the package URL, the registry tarball's digest (the lock
    file's integrity) and, annotated, the sha256 of the installed files the build compiled against."""
    return [
        {
            "uri": f"pkg:npm/{quote(package['name'], safe='/')}@{package['version']}",
            "name": f"{package['name']}@{package['version']}",
            "digest": _integrity_digest(package["integrity"]),
            "annotations": {
                "guest": guest,
                "path": package["path"],
                "integrity": package["integrity"],
                "installed_sha256": package["sha256"],
            },
        }
        for guest, packages in sorted(dependencies.items())
        for package in packages
    ]


def _integrity_digest(integrity: str) -> dict[str, str]:
    """A Subresource Integrity value (`sha512-<base64>`, ...) as hex digests by algorithm; none if unreadable."""
    digests: dict[str, str] = {}
    for part in integrity.split():
        algorithm, _, encoded = part.partition("-")
        try:
            digests[algorithm] = base64.b64decode(encoded, validate=True).hex()
        except ValueError:
            continue
    return {k: v for k, v in digests.items() if k in ("sha1", "sha256", "sha384", "sha512")}


def provenance(
    project: Project,
    *,
    version: str,
    bundles: dict[str, bytes],
    source_digest: str,
    guests: tuple[ReleasedGuest, ...],
    source: SourceState,
    dependencies: Mapping[str, list[dict[str, str]]] | None = None,
    toolchains: BuiltWith,
) -> dict[str, Any]:
    """An in-toto v1 statement with a SLSA v1 provenance predicate; no wall-clock anywhere.

    `dependencies`: each guest's npm packages as its build installed them (`pipeline.guest_dependencies`).
    `toolchains`: those the build used, each named with its pinned version (the AssemblyScript one's Node.js, asc and
    WASI adapters; ziglang; wasm-tools).
    """
    ours = engine.current_engine()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
            for name, data in sorted(bundles.items())
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://ngixi.dev/ngixi-build/release/v1",
                "externalParameters": {
                    "command": "doit release",
                    "version": version,
                    "channel": CHANNEL,
                    "guests": {g.name: {"version": g.version, "sequence": g.sequence} for g in guests},
                    "targets": [t.triple for t in project.targets()],
                },
                "internalParameters": {
                    "python": platform.python_version(),
                    "ngixi_build": __version__,
                    "wasmer": ours.engine_version,
                    "wasmer_python": ours.binding_version,
                    "compiler": ours.compiler,
                    **_versions(project, toolchains),
                },
                "resolvedDependencies": [
                    _source_tree(source_digest, source),
                    *(_adapter_dependencies() if toolchains.assemblyscript else []),
                    *npm_dependencies(dependencies or {}),
                ],
            },
            "runDetails": {"builder": {"id": f"https://ngixi.dev/ngixi-build@{__version__}"}},
        },
    }


def _source_tree(digest: str, source: SourceState) -> dict[str, Any]:
    """The source tree as a SLSA resource: its digest, its commit, and what differed from that commit."""
    return {
        "name": "source-tree",
        "digest": {"sha256": digest, **({"gitCommit": source.commit} if source.commit else {})},
        "annotations": {"dirty": source.dirty, "uncommitted": list(source.changes)},
    }


@contextmanager
def _source_date_epoch(seconds: int) -> Iterator[None]:
    """Pins SOURCE_DATE_EPOCH for the clean builds, which have no git history of their own."""
    previous = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(seconds)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = previous


def _write_release(directory: Path, files: dict[str, bytes]) -> None:
    """Writes all files into a staging directory, then renames it into place in one step."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        for name, data in files.items():
            write_atomic(staging / name, data)
        staging.chmod(0o755)
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _compare_existing(directory: Path, files: dict[str, bytes]) -> None:
    """An existing release directory must hold the same bundles and release manifest (provenance may differ)."""
    content = {name: data for name, data in files.items() if name.endswith(BUNDLE_SUFFIX) or name in _CONTENT}
    existing = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and p.name in content}
    existing |= {p.name: p.read_bytes() for p in directory.glob(f"*{BUNDLE_SUFFIX}") if p.is_file()}
    changed = sorted(name for name in set(content) | set(existing) if content.get(name) != existing.get(name))
    if changed:
        raise ReleaseError(
            f"{directory}: release already exists with different content ({', '.join(changed)}); "
            "bump the version instead of rewriting a release"
        )


_CONTENT = (RELEASE_MANIFEST_NAME, SUMS_NAME)


def _check_release_version(history: History, version: str, plan: list[PlannedGuest]) -> None:
    """A release version already made must name the same guest versions (their bundles are checked after)."""
    earlier = history.release(version)
    if earlier is None:
        return
    shipped = sorted((g.name, g.version) for g in earlier.guests)
    if shipped != sorted((p.name, p.version) for p in plan):
        listed = ", ".join(f"{name} {guest_version}" for name, guest_version in shipped)
        raise ReleaseError(
            f"release {version} was already made with {listed}; a release version names one set of "
            f"guest versions: give this release a new version ({VERSION_VARIABLE} or a new git tag)"
        )


def refuse_secret_keys(root: Path, files: list[Path]) -> None:
    """A secret key in the source tree would be committed, exported and hashed with it: never released."""
    secrets = [f.as_posix() for f in files if is_secret_key_file(root / f)]
    if secrets:
        raise ReleaseError(
            f"{root / secrets[0]}: a minisign secret key inside the source tree: move it out of the project "
            f"(never commit it; if it was committed, make a new key) and point {RELEASE_KEY_VARIABLE} at it there"
        )


def refuse_links_out(root: Path, files: list[Path]) -> None:
    """A source file that is a link out of the project (git keeps links: a clone makes them) would be exported as the
    file it names, a file of the releasing machine's, and built and signed as the project's own: never released."""
    real_root = Path(os.path.realpath(root))
    for relative in files:
        target = Path(os.path.realpath(root / relative))
        if not target.is_relative_to(real_root):
            raise ReleaseError(
                f"{root / relative}: is a link to {target}, outside the project; a release is built from the "
                "project's own files: copy the file into the project, or remove the link"
            )


def _refuse_dirty(source: SourceState, allow_dirty: bool) -> None:
    if not source.dirty:
        return
    listed = ", ".join(source.changes[:5]) + (f" and {len(source.changes) - 5} more" if len(source.changes) > 5 else "")
    if not allow_dirty:
        raise ReleaseError(
            f"the source tree has uncommitted or untracked changes ({listed}): commit them, or allow it with "
            f"`doit release --allow-dirty` ({ALLOW_DIRTY_VARIABLE}=1); provenance then records it"
        )
    log.warning("release from a dirty tree (%s), as allowed; provenance records it", listed)


def make_release(
    project: Project,
    *,
    key: SigningKey,
    builder: Builder = build_bundles,
    guests: Sequence[str] = (),
    allow_dirty: bool = False,
) -> Release:
    """Plans the release from the record, builds it twice in clean copies, compares, then writes it
    (or confirms it exists) and records it. One release at a time per checkout: each reads the record
    the one before wrote."""
    lock = project.state_dir / "release.lock"
    with file_lock(lock, on_wait=lambda: log.warning("waiting for another release to release %s", lock)):
        return _make_release(project, key=key, builder=builder, guests=guests, allow_dirty=allow_dirty)


def _make_release(
    project: Project, *, key: SigningKey, builder: Builder, guests: Sequence[str], allow_dirty: bool
) -> Release:
    version = release_version(project)
    files = source_files(project.root)
    refuse_secret_keys(project.root, files)
    refuse_links_out(project.root, files)
    source = source_state(project.root)
    _refuse_dirty(source, allow_dirty or os.environ.get(ALLOW_DIRTY_VARIABLE) == "1")
    history = read_history(project.root)
    for shared in history.shared_sequences():
        log.warning(
            "%s: %s: hosts cannot tell which is newer; this release's new guest versions get sequences above both",
            HISTORY_FILE,
            shared,
        )
    plan = plan_release(project, history, release_guests(project, guests))
    _check_release_version(history, version, plan)
    log.info("release %s will ship:\n  %s", version, "\n  ".join(p.describe() for p in plan))
    toolchains = _ensure_assemblyscript_toolchain(project, plan)
    builds = []
    with tempfile.TemporaryDirectory(prefix="ngixi-release-") as scratch, _source_date_epoch(project.source_epoch()):
        for attempt in ("first", "second"):
            clean = _export(project, files, Path(scratch) / attempt)
            log.info("release %s: %s clean build in %s", version, attempt, clean.root)
            builds.append(builder(clean, key, {p.name: p.sequence for p in plan}))
        dependencies = {p.name: pipeline.guest_dependencies(clean, p.name) for p in plan}  # as the build installed
    mismatch = differences(*builds)
    if mismatch:
        raise ReleaseError("release is not reproducible; the two clean builds differ:\n  " + "\n  ".join(mismatch))
    bundles = builds[0]
    record = ReleaseRecord(version, source.commit, source.dirty, _released_guests(plan, bundles))
    result = _write_or_confirm(
        project,
        record=record,
        bundles=bundles,
        source_digest=tree_digest(project.root, files),
        source=source,
        key=key,
        dependencies=dependencies,
        toolchains=toolchains,
    )
    write_history(project.root, history.adding(record))
    return result


def _ensure_assemblyscript_toolchain(project: Project, plan: list[PlannedGuest]) -> BuiltWith:
    """Installs the AssemblyScript toolchain if building the planned guests needs it (`registry.needs_node`), here:
    the clean copies' `.ngixi/toolchain` links to the project's, and nothing is installed through a link. Returns
    the toolchains they need."""
    toolchains = built_with(project, [planned.name for planned in plan])
    if toolchains.assemblyscript:
        ensure_toolchain(state_dir=project.state_dir)
    return toolchains


def _write_or_confirm(
    project: Project,
    *,
    record: ReleaseRecord,
    bundles: dict[str, bytes],
    source_digest: str,
    source: SourceState,
    key: SigningKey,
    dependencies: Mapping[str, list[dict[str, str]]],
    toolchains: BuiltWith,
) -> Release:
    sums = checksums(bundles)
    statement = provenance(
        project,
        version=record.version,
        bundles=bundles,
        source_digest=source_digest,
        guests=record.guests,
        source=source,
        dependencies=dependencies,
        toolchains=toolchains,
    )
    release_files = {
        **bundles,
        RELEASE_MANIFEST_NAME: release_manifest(record.version, record.guests),
        SUMS_NAME: sums,
        f"{SUMS_NAME}.minisig": sign(
            sums, key, trusted_comment=f"ngixi-release version={record.version} file={SUMS_NAME}"
        ),
        PROVENANCE_NAME: (json.dumps(statement, indent=2, sort_keys=True) + "\n").encode(),
    }
    directory = project.artifacts_dir / "release" / record.version
    if directory.exists():
        _compare_existing(directory, release_files)
        return Release(directory, tuple(sorted(bundles)), already_existed=True)
    _write_release(directory, release_files)
    return Release(directory, tuple(sorted(bundles)), already_existed=False)


def release(project: Project, guest: Sequence[str] = (), allow_dirty: bool = False) -> Release:
    """`doit release`: the explicit release key, the version, and the reproducible build."""
    key = release_signing_key()
    result = make_release(project, key=key, guests=guest, allow_dirty=allow_dirty)
    state = "already released, identical" if result.already_existed else "written"
    log.info(
        "release %s: %s (%d bundles); %s records it: commit that",
        result.directory,
        state,
        len(result.bundles),
        HISTORY_FILE,
    )
    log.info(
        "release key %s: its bundles' AOT artifacts run only where the trust entry of this key says "
        "native_code = true; add it only on hosts that trust this key with their machine code "
        "(elsewhere the loader compiles guest.wasm and keeps it in its own AOT cache)",
        key.key_id,
    )
    return result
