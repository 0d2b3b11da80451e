"""A guest's own npm dependencies: `package.json` + `package-lock.json` in its folder, installed with `npm ci`.

They are installed into the guest's `node_modules/` with the toolchain's npm (from npm's cache when it
has them, so offline once cached) and only when the lock file changed since the last install. What was
installed is recorded in `node_modules/.ngixi-dependencies.json` (each package's version, integrity and
the sha256 of its installed files), which the guest's compile depends on: a changed lock file or an edited
installed package rebuilds that guest alone. `node_modules/` itself is never a guest source.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ngixi_build.files import regular_files
from ngixi_build.proc import run
from ngixi_build.project import NODE_MODULES, PACKAGE_JSON
from ngixi_build.toolchains.assemblyscript import Toolchain
from ngixi_build.toolchains.npm_settings import check_npm_settings
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import write_atomic

LOCK_FILE = "package-lock.json"
NPM_SETTINGS = ".npmrc"

RECORD = ".ngixi-dependencies.json"


def has_dependencies(guest_dir: Path) -> bool:
    return (guest_dir / PACKAGE_JSON).is_file()


def dependency_inputs(guest_dir: Path) -> list[Path]:
    """What the installed dependencies follow from: package.json and the lock file."""
    return [guest_dir / PACKAGE_JSON, guest_dir / LOCK_FILE]


def record_path(guest_dir: Path) -> Path:
    return guest_dir / NODE_MODULES / RECORD


def install_dependencies(toolchain: Toolchain, guest_dir: Path) -> Path:
    """`npm ci` into the guest when its lock file changed since the last install; returns the record. A lock file
    out of step with package.json is refused, installed or not."""
    lock = guest_dir / LOCK_FILE
    if not lock.is_file():
        raise InvalidInput(
            f"{lock}: missing; a guest with {PACKAGE_JSON} needs its lock file (run `npm install` in {guest_dir})"
        )
    check_lock_matches(guest_dir)  # also when installed: package.json may have been edited since, its lock not
    lock_sha256 = hashlib.sha256(lock.read_bytes()).hexdigest()
    if _recorded_lock(guest_dir) != lock_sha256:
        check_npm_settings(guest_dir / NPM_SETTINGS)  # read beside package.json (`Toolchain.npm` keeps those above out)
        command, env = toolchain.npm(guest_dir, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts")
        run(
            command,
            what=f"npm ci ({guest_dir.name}'s dependencies)",
            cwd=guest_dir,
            env=env,
            timeout=900,
        )
    for package in _top_level_packages(guest_dir / NODE_MODULES):
        _add_entry(package)
    record = {"lock_sha256": lock_sha256, "packages": installed_packages(guest_dir)}
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    path = record_path(guest_dir)
    if not path.is_file() or path.read_bytes() != data:  # unchanged bytes keep the compile up to date
        write_atomic(path, data)
    return path


DEPENDENCY_FIELDS = ("dependencies", "devDependencies")


def check_lock_matches(guest_dir: Path) -> None:
    """Refuses, in one line naming the file and field, what `npm ci` would refuse in a page of usage text: a
    package.json or lock file that is not a JSON object, a lock file older than npm 5's, or one that declares other
    dependencies than package.json does."""
    remake = f"run `npm install --package-lock-only` in {guest_dir}"
    manifest = _json_object(guest_dir / PACKAGE_JSON, f"fix it, then {remake}")
    lock = _json_object(guest_dir / LOCK_FILE, remake)
    version = lock.get("lockfileVersion")
    if type(version) is not int or version < 1:
        raise InvalidInput(f"{guest_dir / LOCK_FILE}: lockfileVersion: {version!r}, not one npm ci reads; {remake}")
    _refuse_sources_off_the_registry(guest_dir, lock)
    root = lock.get("packages", {}).get("", {}) if version >= 2 and isinstance(lock.get("packages"), dict) else None
    if not isinstance(root, dict):
        return  # a version 1 lock lists no root entry: npm ci itself compares it
    for field in DEPENDENCY_FIELDS:
        if (manifest.get(field) or {}) != (root.get(field) or {}):
            raise InvalidInput(
                f'{guest_dir / LOCK_FILE}: packages[""].{field} differs from {PACKAGE_JSON}\'s {field}; {remake}'
            )


def _refuse_sources_off_the_registry(guest_dir: Path, lock: dict[str, Any]) -> None:
    """Refuses a package the lock file takes from elsewhere than a registry's URL or the guest's own folder: `npm ci`
    copies a `file:` tarball from anywhere on this machine, clones a `git+file:` repository of it (or a git host's),
    and links a folder, into node_modules/, whence the build bundles what a guest imports."""
    folder = Path(os.path.realpath(guest_dir))
    for field, source in _lock_sources(lock):
        if source.startswith(("https://", "http://")) or (
            field.endswith(".version") and (":" not in source or source.startswith("npm:"))
        ):
            continue
        path = source.removeprefix("file:")
        if ":" not in path and Path(os.path.realpath(folder / path)).is_relative_to(folder):
            continue
        raise InvalidInput(
            f"{guest_dir / LOCK_FILE}: {field}: {source!r} is neither a registry's URL nor a path in the guest's "
            "folder (npm ci would copy or clone it from this machine or a git host): depend on a registry version, "
            f"or keep the package under {guest_dir}"
        )


def _lock_sources(lock: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Each package's `resolved` in a lock file (`packages`, npm 7's) and `resolved` and `version` in its
    `dependencies` tree (npm 5's, which a version 1 lock holds alone), with the field's dotted name."""
    packages = lock.get("packages")
    for key, entry in packages.items() if isinstance(packages, dict) else ():
        if isinstance(entry, dict) and isinstance(entry.get("resolved"), str):
            yield f"packages[{json.dumps(key)}].resolved", entry["resolved"]
    yield from _tree_sources(lock.get("dependencies"), "dependencies")


def _tree_sources(tree: object, field: str) -> Iterator[tuple[str, str]]:
    for name, entry in tree.items() if isinstance(tree, dict) else ():
        if not isinstance(entry, dict):
            continue
        where = f"{field}[{json.dumps(name)}]"
        for key in ("resolved", "version"):
            if isinstance(entry.get(key), str):
                yield f"{where}.{key}", entry[key]
        yield from _tree_sources(entry.get("dependencies"), f"{where}.dependencies")


def _json_object(path: Path, remedy: str) -> dict[str, Any]:
    try:
        document = _parsed_json(path)
    except InvalidInput as error:
        raise InvalidInput(f"{error}; {remedy}") from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{path}: holds a JSON {type(document).__name__}, not an object; {remedy}")
    return document


def _top_level_packages(node_modules: Path) -> list[Path]:
    """node_modules/<name> and node_modules/@scope/<name> folders with a package.json."""
    candidates = [*node_modules.glob("*/package.json"), *node_modules.glob("@*/*/package.json")]
    return sorted(p.parent for p in candidates if not p.parent.name.startswith("."))


def _add_entry(package: Path) -> None:
    """Gives a package without an index.ts one that re-exports its AssemblyScript entry.

    asc resolves `import ... from "name"` to `name/index.ts` on its --path only; AssemblyScript
    libraries name their entry by package.json's "ascMain" or keep it in `assembly/index.ts`.
    """
    index = package / "index.ts"
    if index.exists():
        return
    manifest = _read_json(package / PACKAGE_JSON)
    main = manifest.get("ascMain")
    entry = main if isinstance(main, str) and main.endswith(".ts") else "assembly/index.ts"
    if (package / entry).is_file():
        write_atomic(index, f'export * from "./{entry.removeprefix("./").removesuffix(".ts")}";\n'.encode())


def installed_packages(guest_dir: Path) -> list[dict[str, str]]:
    """Each package the lock file installs: name, version, integrity and the sha256 of its installed files."""
    lock = _read_json(guest_dir / LOCK_FILE)
    packages = lock.get("packages")
    found = []
    for key, entry in sorted(packages.items() if isinstance(packages, dict) else []):
        if not key or not isinstance(entry, dict) or entry.get("link"):
            continue
        name = key.rsplit(f"{NODE_MODULES}/", 1)[-1]
        found.append(
            {
                "name": name,
                "path": key,
                "version": str(entry.get("version", "")),
                "integrity": str(entry.get("integrity", "")),
                "sha256": tree_sha256(guest_dir / key),
            }
        )
    return found


def recorded_dependencies(guest_dir: Path) -> list[dict[str, str]]:
    """The packages the last install recorded (for provenance); none for a guest without dependencies."""
    if not has_dependencies(guest_dir) or not record_path(guest_dir).is_file():
        return []
    packages = _read_json(record_path(guest_dir)).get("packages")
    return packages if isinstance(packages, list) else []


def tree_sha256(directory: Path) -> str:
    """The sha256 over a directory's files: each relative path and content, in path order."""
    digest = hashlib.sha256()
    for path in regular_files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def tree_stat(directory: Path) -> list[list[object]]:
    """A cheap fingerprint of the files under a directory: path, size and modification time of each."""
    return [
        [p.relative_to(directory).as_posix(), p.stat().st_size, p.stat().st_mtime_ns]
        for p in regular_files(directory)
        if p.name != RECORD
    ]


def _recorded_lock(guest_dir: Path) -> str | None:
    if not record_path(guest_dir).is_file():
        return None
    value = _read_json(record_path(guest_dir)).get("lock_sha256")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    document = _parsed_json(path)
    return document if isinstance(document, dict) else {}


def _parsed_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"{path}: not readable JSON: {error}") from None
