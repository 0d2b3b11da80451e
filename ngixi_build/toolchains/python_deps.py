"""A Python guest's own PyPI dependencies: `requirements.txt` in its folder, pinned, installed by the build.

Each line is `name==version` (as `pip freeze` writes it), optionally with `--hash=sha256:...` options (as
`pip-compile --generate-hashes` and `pip hash` write them; either every line has them or none). The file is the
guest's lock: nothing it does not list is installed (`--no-deps`), and a package needing one it does not list is
refused after the install. The project's pip installs only wheels that are pure Python (`*-none-any`: no
package's code runs, as an sdist's build would), for the CPython inside componentize-py, into
`<state>/python-deps/<guest>/<key>/site`: the key digests the file and how it is installed, so an unchanged file
is never installed (nor downloaded) again, a changed one installs afresh, and the install is stamped as this
user's as toolchains are (`installs.ensure_install`). The guest's folder is never written.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.proc import run, tool_limits
from ngixi_build.toolchains import installs
from ngixi_runtime.errors import InvalidInput, NgixiError, ToolchainError
from ngixi_runtime.files import read_input_bytes

REQUIREMENTS = "requirements.txt"
_REQUIREMENTS_LIMIT = 1024 * 1024
# The CPython inside the pinned componentize-py (its libpython3.14.so): what the wheels must run on. A new pin of
# componentize-py checks it again (tests/build/unit/test_python_deps.py).
GUEST_PYTHON = "3.14"
_PIP = ("--quiet", "--disable-pip-version-check", "--no-input", "--no-deps")  # --no-deps: the file lists every one
# Chosen for the guest's Python: only wheels (never an sdist, whose build runs its code), and with the ABI `none` and
# the platform `any`, only pure-Python ones, whose Requires-Python admits it.
_DOWNLOAD = (
    "--only-binary=:all:",
    f"--python-version={GUEST_PYTHON}",
    "--implementation=cp",
    "--abi=none",
    "--platform=any",
)
# Then installed from those wheels alone: pip's install checks Requires-Python against the Python running it (the
# build's), not the guest's; no .pyc (componentize-py compiles what it bundles, and the install stays the same bytes).
_INSTALL = ("--no-index", "--ignore-requires-python", "--no-compile")
INSTALLED_WITH = " ".join(("pip download", *_PIP, *_DOWNLOAD, "; pip install", *_PIP, *_INSTALL))
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PINNED = re.compile(rf"(?P<name>{_NAME.pattern})\s*==\s*(?P<version>[A-Za-z0-9.+!_-]+)")
_HASH = re.compile(r"--hash[=\s]\s*(?P<value>(?:sha256|sha384|sha512):[0-9a-fA-F]+)")
_NOT_MATCHED = re.compile(r"No matching distribution found for (?P<name>\S+?)==")
_CONSTRAINED = re.compile(r"Cannot install (?P<name>\S+?)==\S+ because these package versions have conflicting")
_HASH_MISMATCH = re.compile(r"^\s+(?P<name>\S+?)==\S+ from .*\n\s+Expected .*\n\s+Got\s+(?P<got>\S+)", re.M)
_PURE_TAG = re.compile(r"^Tag:\s*\S+-none-any\s*$")
_NOT_MODULES = ("__pycache__", "bin")
_HOW = "pip install NAME==VERSION into a virtual environment of your own, then `pip freeze`"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requirement:
    """One line of requirements.txt: a package pinned to a version, with the hashes its wheel may have."""

    name: str  # as PyPI normalizes it (PEP 503): `python-dateutil` for `Python_DateUtil`
    version: str
    hashes: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    modules: tuple[str, ...]  # its top-level modules and packages


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path, *, shown_as: Path | None = None) -> tuple[bytes, list[Requirement]]:
    """A requirements.txt's bytes and its pinned requirements; anything else in it is refused naming its line (as
    `shown_as`)."""
    data = read_input_bytes(path, what="the guest's requirements", limit=_REQUIREMENTS_LIMIT)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{shown_as or path}: not UTF-8 text; write one `name==version` line per package") from None
    return data, parse_requirements(text, shown_as or path)


def parse_requirements(text: str, path: Path) -> list[Requirement]:
    found: list[Requirement] = []
    for number, line in _logical_lines(text):
        requirement = _parse_line(line, f"{path}:{number}")
        if requirement is None:
            continue
        if any(other.name == requirement.name for other in found):
            raise InvalidInput(f"{path}:{number}: {requirement.name} is listed twice; keep one line for it")
        found.append(Requirement(requirement.name, requirement.version, requirement.hashes, number))
    hashed = [requirement for requirement in found if requirement.hashes]
    unhashed = next((requirement for requirement in found if not requirement.hashes), None)
    if hashed and unhashed is not None:
        raise InvalidInput(
            f"{path}:{unhashed.line}: {unhashed.name} has no --hash while {hashed[0].name} has: give every line its "
            "hashes (pip-compile --generate-hashes, or `pip hash` of each wheel) or none"
        )
    return found


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Each line without its comment, joined with the lines a trailing backslash continues it on, with the number
    of its first line."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        start, before = pending if pending is not None else (number, "")
        joined = f"{before} {line.removesuffix(chr(92))}"
        pending = (start, joined) if line.endswith("\\") else None
        if pending is None and joined.strip():
            lines.append((start, joined.strip()))
    if pending is not None and pending[1].strip():
        lines.append((pending[0], pending[1].strip()))
    return lines


def _parse_line(line: str, where: str) -> Requirement | None:
    options_at = re.search(r"(^|\s)-", line)
    requirement = line[: options_at.start()].strip() if options_at else line
    options = line[options_at.start() :].strip() if options_at else ""
    if not requirement:
        option = options.split()[0].split("=")[0]
        raise InvalidInput(
            f"{where}: {option}: pip options are not read from a guest's requirements (an index or a file to include "
            "is your pip's to set: `pip config`, PIP_INDEX_URL); list each package as `name==version`"
        )
    hashes = tuple(match["value"].lower() for match in _HASH.finditer(options))
    if _HASH.sub("", options).strip():
        raise InvalidInput(
            f"{where}: {options.split()[0]}: only --hash options are read after a requirement; remove the others"
        )
    return _pinned(requirement, hashes, where)


def _pinned(requirement: str, hashes: tuple[str, ...], where: str) -> Requirement:
    if ";" in requirement:
        raise InvalidInput(
            f"{where}: {requirement}: environment markers are not read (the guest's Python is CPython {GUEST_PYTHON} "
            "in a component, whatever builds it); keep the line without its marker if the guest needs the package, "
            "else remove it"
        )
    if re.match(rf"{_NAME.pattern}\s*\[", requirement):
        raise InvalidInput(
            f"{where}: {requirement}: extras are not installed (only the packages listed are); list the packages "
            f"the extra adds, each as `name==version` ({_HOW})"
        )
    pinned = _PINNED.fullmatch(requirement)
    if pinned is None or "*" in requirement:
        raise InvalidInput(
            f"{where}: {requirement}: not pinned to one version; write `name==version` for it and each package it "
            f"needs ({_HOW})"
        )
    return Requirement(normalized(pinned["name"]), pinned["version"], hashes, 0)


def dependencies_root(state_dir: Path, guest: str, requirements: bytes) -> Path:
    """Where the guest's dependencies for these requirements are installed (installed or not)."""
    files = {REQUIREMENTS: requirements, "pip": INSTALLED_WITH.encode()}
    return state_dir / "python-deps" / guest / installs.install_key(files)


def unused_installs(state_dir: Path, guests_dir: Path) -> list[Path]:
    """The installed packages of guests that list none any more: the guest was removed, or its requirements.txt (a
    guest's install for an older file is replaced by the next)."""
    installs_dir = state_dir / "python-deps"
    found = list(installs_dir.iterdir()) if installs_dir.is_dir() else []
    return [path for path in found if not (guests_dir / path.name / REQUIREMENTS).is_file()]


def ensure_dependencies(state_dir: Path, guest_dir: Path, *, shown_as: Path) -> Path | None:
    """The folder holding the guest's installed dependencies (none for a guest without requirements), installed
    when its requirements are not installed yet."""
    path = guest_dir / REQUIREMENTS
    if not path.is_file():
        return None
    data, requirements = read_requirements(path, shown_as=shown_as)
    if not requirements:
        return None
    root = dependencies_root(state_dir, guest_dir.name, data)

    def install(root: Path) -> None:
        listed = root / REQUIREMENTS  # the bytes read and keyed, whatever the guest's file holds by now
        listed.write_bytes(data)
        log.info("%s: installing %d Python packages from %s", guest_dir.name, len(requirements), shown_as)
        _pip_install(listed, root / "site", requirements, shown_as)
        check_installed(root / "site", requirements, shown_as)

    installs.ensure_install(root, install)
    return root / "site"


def _pip_install(listed: Path, site: Path, requirements: list[Requirement], shown_as: Path) -> None:
    wheels = listed.parent / "wheels"
    pip: list[str | Path] = [sys.executable, "-m", "pip"]
    try:
        download: list[str | Path] = [*pip, "download", *_PIP, *_DOWNLOAD, "--dest", wheels, "-r", listed]
        run(download, what=f"pip download ({shown_as})", limits=tool_limits())
        into: list[str | Path] = ["--find-links", wheels, "--target", site, "-r", listed]
        run([*pip, "install", *_PIP, *_INSTALL, *into], what=f"pip install ({shown_as})", limits=tool_limits())
    except NgixiError as error:
        raise _pip_refusal(str(error), requirements, shown_as) from None
    finally:
        shutil.rmtree(wheels, ignore_errors=True)


# pip's failures that name one requirement, and what its line is refused with ({got}: the sha256 of the wheel).
_REFUSALS = (
    (
        _NOT_MATCHED,
        f"{{name}}=={{version}}: the index has no pure-Python wheel of it (*-none-any) for CPython {GUEST_PYTHON}; a "
        "package with native code, or published only as source, cannot run in the component (a name or version the "
        "index lacks, or one needing another Python, reads the same): pin a version with a py3-none-any wheel, or use "
        "a pure-Python package",
    ),
    (  # with --no-deps, only a constraint can conflict with a pin
        _CONSTRAINED,
        "{name}: a pip constraint of yours holds it to another version (PIP_CONSTRAINT, or `constraint` in your pip "
        "config: `pip config list`), and pip applies it to the guest's install too; lift it for this package",
    ),
    (
        _HASH_MISMATCH,
        "{name}: the wheel the index gave has sha256 {got}, which no --hash of its line lists; if you updated its "
        "version, update its hashes, else someone may have changed the package",
    ),
)


def _pip_refusal(output: str, requirements: list[Requirement], shown_as: Path) -> NgixiError:
    """pip's failure, in one line naming the requirement when it is one of these: no pure-Python wheel, a constraint
    of the user's pip against it, or a wheel whose hash is not listed."""
    for pattern, reason in _REFUSALS:
        found = pattern.search(output)
        named = normalized(found["name"]) if found is not None else None
        requirement = next((r for r in requirements if r.name == named), None)
        if found is not None and requirement is not None:
            got = found.groupdict().get("got", "")
            return InvalidInput(
                f"{shown_as}:{requirement.line}: "
                + reason.format(name=requirement.name, version=requirement.version, got=got)
            )
    return ToolchainError(output)


def check_installed(site: Path, requirements: list[Requirement], shown_as: Path) -> None:
    """Refuses a package installed in `site` that is not pure Python, or that needs one the requirements do not
    list."""
    lines = {requirement.name: requirement.line for requirement in requirements}
    for info in sorted(site.glob("*.dist-info")):
        metadata = _headers(info / "METADATA")
        package = _package(info, metadata)
        where = f"{shown_as}:{lines.get(package.name, 1)}: {package.name} {package.version}"
        wheel = (info / "WHEEL").read_text(encoding="utf-8", errors="replace").splitlines()
        tags = [line for line in wheel if line.startswith("Tag:")]
        if not tags or not all(_PURE_TAG.match(tag) for tag in tags):
            raise InvalidInput(
                f"{where}: its wheel is not pure Python ({', '.join(tags) or 'no tag'}); it cannot run in the "
                "component: use a pure-Python package"
            )
        for needed in _needed(metadata.get("Requires-Dist", [])):
            if needed not in lines:
                raise InvalidInput(
                    f"{where} needs {needed}, which {shown_as} does not list; add it as `{needed}==VERSION` ({_HOW})"
                )


def _headers(path: Path) -> dict[str, list[str]]:
    """A dist-info METADATA file's headers (before its body), each name's values in order."""
    headers: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        name, _, value = line.partition(":")
        if value and not line[0].isspace():
            headers.setdefault(name.strip(), []).append(value.strip())
    return headers


def _needed(requires: list[str]) -> list[str]:
    """The packages a wheel needs wherever it runs: not an extra's, nor one behind another marker (a Python version
    or platform this check cannot tell for the guest: a package missing then fails the build as an ImportError)."""
    needed = []
    for requirement in requires:
        if ";" in requirement:
            continue
        name = _NAME.match(requirement.strip())
        if name is not None:
            needed.append(normalized(name.group()))
    return needed


def _top_level(info: Path) -> tuple[str, ...]:
    """The top-level modules and packages a distribution installed, from its RECORD."""
    modules = set()
    for line in (info / "RECORD").read_text(encoding="utf-8", errors="replace").splitlines():
        first = line.split(",", 1)[0].split("/", 1)
        if len(first) == 2 and not first[0].endswith((".dist-info", ".data")) and first[0] not in _NOT_MODULES:
            modules.add(first[0])
        elif len(first) == 1 and first[0].endswith(".py"):
            modules.add(first[0].removesuffix(".py"))
    return tuple(sorted(modules))


def installed_packages(site: Path) -> list[InstalledPackage]:
    """What `ensure_dependencies` installed in `site` (checked then)."""
    return [_package(info, _headers(info / "METADATA")) for info in sorted(site.glob("*.dist-info"))]


def _package(info: Path, metadata: dict[str, list[str]]) -> InstalledPackage:
    name = normalized(metadata.get("Name", [info.name])[0])
    return InstalledPackage(name, metadata.get("Version", ["?"])[0], _top_level(info))


def refuse_shadowing(guest_dir: Path, site: Path, shown_as: Path) -> None:
    """Refuses a module or package of the guest's own with the name of one its dependencies install: which of the
    two an import gets would be a matter of order (a copy once installed by hand into the guest, where the build
    installs it now, is the usual one)."""
    installed = {module: package for package in installed_packages(site) for module in package.modules}
    for entry in sorted(guest_dir.iterdir()):
        module = entry.name.removesuffix(".py") if entry.is_file() else entry.name
        package = installed.get(module)
        if package is not None and (entry.is_dir() or entry.suffix == ".py"):
            raise InvalidInput(
                f"{shown_as / entry.name}: {package.name} {package.version}, which {shown_as / REQUIREMENTS} lists, "
                f"installs a module {module} too; remove the guest's copy (the build installs the package) or "
                "rename it"
            )
