"""A guest's own npm packages: never guest sources, recorded with digests, importable by package name."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.toolchains import npm_deps, npm_settings
from ngixi_build.toolchains.assemblyscript import Toolchain
from ngixi_runtime.errors import InvalidInput

LOCK = {
    "lockfileVersion": 3,
    "packages": {
        "": {"dependencies": {"as-thing": "^1.0.0"}},
        "node_modules/as-thing": {"version": "1.0.0", "integrity": "sha512-abc"},
    },
}


def _guest_with_a_dependency(root: Path) -> Path:
    guest = root / "guests" / "g"
    (guest / "assembly").mkdir(parents=True)
    (guest / "assembly" / "index.ts").write_text('import { f } from "as-thing";\n')
    (guest / "package.json").write_text('{"dependencies": {"as-thing": "^1.0.0"}}')
    (guest / "package-lock.json").write_text(json.dumps(LOCK))
    package = guest / "node_modules" / "as-thing"
    (package / "assembly").mkdir(parents=True)
    (package / "package.json").write_text('{"name": "as-thing", "version": "1.0.0"}')
    (package / "assembly" / "index.ts").write_text("export function f(): i32 { return 1; }\n")
    return guest


def test_node_modules_is_never_a_guest_source(tmp_path: Path) -> None:
    _guest_with_a_dependency(tmp_path)
    sources = [p.relative_to(tmp_path).as_posix() for p in Project(tmp_path).guest_sources("g")]
    assert sources == ["guests/g/assembly/index.ts", "guests/g/package-lock.json", "guests/g/package.json"]


def test_an_install_records_each_package_and_gives_it_an_entry(tmp_path: Path) -> None:
    guest = _guest_with_a_dependency(tmp_path)
    lock_sha256 = hashlib.sha256((guest / "package-lock.json").read_bytes()).hexdigest()
    npm_deps.record_path(guest).write_text(json.dumps({"lock_sha256": lock_sha256}))  # installed: no npm ci
    record = npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)
    (package,) = json.loads(record.read_text())["packages"]
    assert package["name"] == "as-thing" and package["version"] == "1.0.0" and package["integrity"] == "sha512-abc"
    entry = guest / "node_modules" / "as-thing" / "index.ts"
    assert entry.read_text() == 'export * from "./assembly/index";\n'
    assert npm_deps.recorded_dependencies(guest) == [package]
    before = record.stat().st_mtime_ns
    npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)
    assert record.stat().st_mtime_ns == before  # unchanged: the compile stays up to date
    (guest / "node_modules" / "as-thing" / "assembly" / "index.ts").write_text("// edited\n")
    npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)
    assert json.loads(record.read_text())["packages"][0]["sha256"] != package["sha256"]


ALLOWED_SETTINGS = """\ufeff# a company's registry, as a guest's project keeps it (a byte order mark first)
registry=https://registry.npmjs.org/ ; the public one
@corp:registry = https://npm.corp.example/api/npm/
@local:registry="http://127.0.0.1:4873/"
save-exact=true
legacy-peer-deps
; the rest
engine-strict=false\r\nfetch-retries=3
loglevel=warn
"""
REFUSED_SETTINGS = {
    "git=./x.sh": "'git' is not a setting a guest may give npm",
    "script-shell=/tmp/x": "'script-shell' is not a setting",
    "node-options=--require ./x.js": "'node-options' is not a setting",
    "prefix=/home/u": "'prefix' is not a setting",
    "strict-ssl=false": "'strict-ssl' is not a setting",
    "_authToken=abc": "'_authToken' is a section or credentials",
    "//registry.npmjs.org/:_authToken=abc": "'//registry.npmjs.org/:_authToken' is a section or credentials",
    "@corp:_auth=abc": "'@corp:_auth' is a section or credentials",
    "registry=${EVIL}": "npm would put your environment's values in place of ${…}",
    "${KEY}=x": "npm would put your environment's values",
    "[section]": "'[section]' is a section or credentials",
    "registry=file:///etc": "registry=file:///etc is not a value npm takes for registry",
    "save-exact=yes": "save-exact=yes is not a value",
    "registry=http://registry.npmjs.org/": "registry=http://registry.npmjs.org/ is not a value",
    "@corp:registry=https://me:pw@npm.corp.example/": "@corp:registry=https://me:pw@npm.corp.example/ is not a",
    'registry="https:\\u002f/x.example/\\u0024{TOKEN}"': "registry=",
    "save-exact=true\rgit=./x.sh": "'git' is not a setting",
}


def test_a_guests_npm_settings_may_set_the_registry_and_harmless_switches(tmp_path: Path) -> None:
    (tmp_path / ".npmrc").write_text(ALLOWED_SETTINGS, newline="")
    npm_settings.check_npm_settings(tmp_path / ".npmrc")
    npm_settings.check_npm_settings(tmp_path / "missing")


@pytest.mark.parametrize("line", REFUSED_SETTINGS)
def test_a_guests_npm_settings_that_run_move_or_leak_are_refused_before_npm_runs(tmp_path: Path, line: str) -> None:
    """`.npmrc` can name programs npm runs whatever --ignore-scripts says: `git=./x.sh` ran ./x.sh (npm 10) for
    a git dependency of the lock file; others move files, weaken TLS or carry (or expand) credentials."""
    guest = _guest_with_a_dependency(tmp_path)
    (guest / ".npmrc").write_text(f"registry=https://registry.npmjs.org/\n\n{line}\n", newline="")
    number = 4 if "\r" in line else 3  # npm takes a lone CR for a line's end
    where = re.escape(f"{guest / '.npmrc'}:{number}: {REFUSED_SETTINGS[line]}")
    with pytest.raises(InvalidInput, match=rf"^{where}.*; move it to your own ~/\.npmrc$"):
        npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)


@pytest.mark.parametrize(
    ("package_json", "lock", "refusal"),
    [
        ('{"dependencies": {"as-thing": "^1.0.0"}}', "{", r"package-lock\.json: not readable JSON: Expecting"),
        ("[]", json.dumps(LOCK), r"package\.json: holds a JSON list, not an object; fix it, then run"),
        ('{"dependencies": {"as-thing": "^1.0.0"}}', '{"packages": {}}', r"lock\.json: lockfileVersion: None, not one"),
        ('{"dependencies": {"as-thing": "^2.0.0"}}', json.dumps(LOCK), r'packages\[""\]\.dependencies differs from'),
        ('{"devDependencies": {"x": "1.0.0"}, "dependencies": {"as-thing": "^1.0.0"}}', json.dumps(LOCK), "devDep"),
    ],
)
def test_a_lock_file_npm_ci_would_refuse_is_refused_in_one_line_before_npm_runs(
    tmp_path: Path, package_json: str, lock: str, refusal: str
) -> None:
    """A broken or out-of-step lock file failed the build with a page of `npm ci`'s usage text (`npm error code
    EUSAGE` ... `Options:`), naming neither the file nor what to change."""
    guest = _guest_with_a_dependency(tmp_path)
    (guest / "package.json").write_text(package_json)
    (guest / "package-lock.json").write_text(lock)
    with pytest.raises(InvalidInput, match=refusal) as refused:
        npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)
    assert "\n" not in str(refused.value) and str(refused.value).endswith(f"--package-lock-only` in {guest}")


def test_a_dependency_added_to_package_json_alone_is_refused_though_its_lock_was_installed(tmp_path: Path) -> None:
    """The lock file alone decided whether to install: package.json edited by hand, its lock not made again, was
    built (and watched) from the old install without a word."""
    guest = _guest_with_a_dependency(tmp_path)
    lock_sha256 = hashlib.sha256((guest / "package-lock.json").read_bytes()).hexdigest()
    npm_deps.record_path(guest).write_text(json.dumps({"lock_sha256": lock_sha256}))
    (guest / "package.json").write_text('{"dependencies": {"as-thing": "^1.0.0", "as-other": "1.0.0"}}')
    with pytest.raises(InvalidInput, match=r'packages\[""\]\.dependencies differs from package\.json'):
        npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)


def _lock_taking(entry: dict[str, object]) -> str:
    packages = {"": {"dependencies": {"as-thing": "^1.0.0"}}, "node_modules/as-thing": entry}
    return json.dumps({"lockfileVersion": 3, "packages": packages})


@pytest.mark.parametrize(
    ("lock", "field"),
    [
        (_lock_taking({"version": "1.0.0", "resolved": "file:../../../secret-1.0.0.tgz"}), "resolved"),
        (_lock_taking({"resolved": "../../../secret-app", "link": True}), "resolved"),
        (_lock_taking({"version": "1.0.0", "resolved": "git+file:///home/u/work/private#2b27dca"}), "resolved"),
        (_lock_taking({"version": "1.0.0", "resolved": "git+ssh://git@github.com/u/x.git#2b27dca"}), "resolved"),
        (_lock_taking({"resolved": "file:/home/u/secret.tgz"}), "resolved"),
        (json.dumps({"lockfileVersion": 1, "dependencies": {"as-thing": {"version": "file:../../x"}}}), "version"),
    ],
)
def test_a_lock_file_taking_a_package_from_this_machine_or_a_git_host_is_refused(
    tmp_path: Path, lock: str, field: str
) -> None:
    """`npm ci --ignore-scripts` copies a `file:` tarball from anywhere on the builder's machine into node_modules/,
    clones a `git+file:` repository of it there (both shown with npm 11: the files then inside the guest's folder,
    where its bundling takes them), and links a folder out of it; a git host is no pinned registry."""
    guest = _guest_with_a_dependency(tmp_path)
    (guest / "package-lock.json").write_text(lock)
    with pytest.raises(InvalidInput, match=rf"lock\.json: \S+\.{field}: .* is neither a registry's URL nor a path in"):
        npm_deps.install_dependencies(Toolchain(tmp_path / "no-toolchain"), guest)


@pytest.mark.parametrize(
    "entry",
    [
        {"version": "1.0.0", "resolved": "https://registry.npmjs.org/as-thing/-/as-thing-1.0.0.tgz"},
        {"version": "1.0.0", "resolved": "http://127.0.0.1:4873/as-thing/-/as-thing-1.0.0.tgz"},
        {"version": "1.0.0", "resolved": "file:vendor/as-thing-1.0.0.tgz"},
        {"resolved": "packages/as-thing", "link": True},
    ],
)
def test_a_lock_file_taking_packages_from_a_registry_or_the_guests_folder_is_kept(
    tmp_path: Path, entry: dict[str, object]
) -> None:
    guest = _guest_with_a_dependency(tmp_path)
    (guest / "package-lock.json").write_text(_lock_taking(entry))
    npm_deps.check_lock_matches(guest)
