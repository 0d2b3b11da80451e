"""Release artifacts: every guest for every target on the release channel, built twice from clean
copies of the source tree and refused unless both builds are byte-identical.

`artifacts/release/<version>/` holds the bundles, SHA256SUMS, its minisign signature and an in-toto
statement of how they were made.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ngixi_build import __version__
from ngixi_build.guests import read_guests
from ngixi_build.proc import run
from ngixi_build.project import Project, git_output
from ngixi_build.stages import component
from ngixi_build.stages.signing import SigningKey, release_signing_key, sign
from ngixi_build.toolchains.assemblyscript import adapter_pin, ensure_toolchain, toolchain_for
from ngixi_build.workflows import pipeline
from ngixi_runtime.engines import wasmer as engine
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.spec.bundle_format import INDEX_NAME, parse_index

log = logging.getLogger(__name__)

VERSION_VARIABLE = "NGIXI_RELEASE_VERSION"
SUMS_NAME = "SHA256SUMS"
PROVENANCE_NAME = "provenance.json"
_NOT_SOURCE = {".git", ".venv", ".ngixi", "artifacts", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

Builder = Callable[[Project, SigningKey], dict[str, bytes]]


class ReleaseError(NgixiError):
    """The release was refused: not reproducible, or conflicting with one already made."""


@dataclass(frozen=True)
class Release:
    directory: Path
    bundles: tuple[str, ...]
    already_existed: bool


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
        return sorted(Path(p) for p in listed.decode().split("\0") if p and (root / p).is_file())
    return sorted(
        p.relative_to(root) for p in root.rglob("*") if p.is_file() and not _NOT_SOURCE & set(p.relative_to(root).parts)
    )


def tree_digest(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for relative in files:
        digest.update(f"{relative.as_posix()}\0{hashlib.sha256((root / relative).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def _export(project: Project, files: list[Path], destination: Path) -> Project:
    """A clean copy of the source tree that shares the installed toolchain."""
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project.root / relative, target)
    (destination / ".ngixi").mkdir()
    (destination / ".ngixi" / "toolchain").symlink_to(toolchain_for(project.state_dir).root.parent)
    return Project(destination)


def build_bundles(project: Project, key: SigningKey) -> dict[str, bytes]:
    """Every guest through compile → validate → precompile (all targets) → release bundle."""
    out_dir = project.artifacts_dir / "release-build"
    bundles = {}
    for guest in read_guests(project).values():
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
            project, guest, triples, wasmtime_triples=wasmtime_triples, key=key, channel="release", out_dir=out_dir
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


def _refuse_dev_profile(bundles: dict[str, bytes]) -> None:
    """A release ships release-profile bundles only: a dev build's .wasm is not optimized."""
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


def checksums(bundles: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(bundles.items())).encode()


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


def provenance(
    project: Project, *, version: str, bundles: dict[str, bytes], source_digest: str, sequence: int
) -> dict[str, Any]:
    """An in-toto v1 statement with a SLSA v1 provenance predicate; no wall-clock anywhere."""
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
                    "channel": "release",
                    "sequence": sequence,
                    "targets": [t.triple for t in project.targets()],
                },
                "internalParameters": {
                    "python": platform.python_version(),
                    "ngixi_build": __version__,
                    "wasmer": ours.engine_version,
                    "wasmer_python": ours.binding_version,
                    "compiler": ours.compiler,
                    **_toolchain_versions(project),
                },
                "resolvedDependencies": [
                    {"name": "source-tree", "digest": {"sha256": source_digest}},
                    *_adapter_dependencies(),
                ],
            },
            "runDetails": {"builder": {"id": f"https://ngixi.dev/ngixi-build@{__version__}"}},
        },
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
    existing = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    changed = sorted(name for name in set(files) | set(existing) if files.get(name) != existing.get(name))
    if changed:
        raise ReleaseError(
            f"{directory}: release already exists with different content ({', '.join(changed)}); "
            "bump the version instead of rewriting a release"
        )


def make_release(project: Project, *, key: SigningKey, builder: Builder = build_bundles) -> Release:
    """Builds the release twice in clean copies, compares, then writes it (or confirms it exists)."""
    version = release_version(project)
    sequence = project.source_epoch()
    if sequence <= 0:
        raise InvalidInput("no release sequence: build from a git commit or set SOURCE_DATE_EPOCH")
    files = source_files(project.root)
    ensure_toolchain(state_dir=project.state_dir)
    builds = []
    with tempfile.TemporaryDirectory(prefix="ngixi-release-") as scratch, _source_date_epoch(sequence):
        for attempt in ("first", "second"):
            clean = _export(project, files, Path(scratch) / attempt)
            log.info("release %s: %s clean build in %s", version, attempt, clean.root)
            builds.append(builder(clean, key))
    mismatch = differences(*builds)
    if mismatch:
        raise ReleaseError("release is not reproducible; the two clean builds differ:\n  " + "\n  ".join(mismatch))
    bundles = builds[0]
    _refuse_dev_profile(bundles)
    sums = checksums(bundles)
    statement = provenance(
        project, version=version, bundles=bundles, source_digest=tree_digest(project.root, files), sequence=sequence
    )
    release_files = {
        **bundles,
        SUMS_NAME: sums,
        f"{SUMS_NAME}.minisig": sign(sums, key, trusted_comment=f"ngixi-release version={version} file={SUMS_NAME}"),
        PROVENANCE_NAME: (json.dumps(statement, indent=2, sort_keys=True) + "\n").encode(),
    }
    directory = project.artifacts_dir / "release" / version
    if directory.exists():
        _compare_existing(directory, release_files)
        return Release(directory, tuple(sorted(bundles)), already_existed=True)
    _write_release(directory, release_files)
    return Release(directory, tuple(sorted(bundles)), already_existed=False)


def release(project: Project) -> Release:
    """`doit release`: the explicit release key, the version, and the reproducible build."""
    key = release_signing_key()
    result = make_release(project, key=key)
    state = "already released, identical" if result.already_existed else "written"
    log.info("release %s: %s (%d bundles)", result.directory, state, len(result.bundles))
    log.info(
        "release key %s: its bundles' AOT artifacts run only where the trust entry of this key says "
        "native_code = true; add it only on hosts that trust this key with their machine code "
        "(elsewhere the loader compiles guest.wasm and keeps it in its own AOT cache)",
        key.key_id,
    )
    return result
