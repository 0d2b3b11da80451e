"""The release provenance lists each guest's npm dependencies with their digests."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.project import Project
from ngixi_build.workflows import release
from ngixi_build.workflows.release import SourceState, npm_dependencies, provenance
from ngixi_build.workflows.release_history import ReleasedGuest

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
        assemblyscript_toolchain=True,
    )
    resolved = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    npm = [d for d in resolved if d.get("uri", "").startswith("pkg:npm/")]
    assert [(d["name"], d["annotations"]["guest"]) for d in npm] == [
        ("as-base64@0.2.0", "b64"),
        ("@scope/lib@1.0.0", "b64"),
    ]
    assert npm[0]["digest"]["sha512"] == hashlib.sha512(TARBALL).hexdigest()
