"""The WIT catalog resolves, and it cannot drift from the capability registry or docs/host-abi.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.language_component import guest_world_dir
from ngixi_build.toolchains.wit import (
    Catalog,
    WitError,
    core_signature,
    load_catalog,
    parse_resolved,
    resolve_json,
)
from ngixi_runtime.capabilities.base import HostImport
from ngixi_runtime.capabilities.component import HOST_PACKAGE, HOST_VERSION, TYPE_INTERFACES, error_case
from ngixi_runtime.capabilities.registry import every_capability
from ngixi_runtime.cli import main
from ngixi_runtime.guest.manifest import load_manifest
from ngixi_runtime.spec.abi import Status
from tests.conftest import REPO

WIT_DIR = REPO / "wit"
# Statuses that only core guests see: the host allocates a component's results.
CORE_ONLY_STATUSES = {Status.OK, Status.BUFFER_TOO_SMALL}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(WIT_DIR)


def ngixi_imports() -> dict[str, tuple[HostImport, ...]]:
    """Each capability that grants Ngixi's own imports (not WASI), with them."""
    return {
        capability.name: tuple(i for i in capability.imports if i.module == "ngixi")
        for capability in every_capability()
        if any(i.module == "ngixi" for i in capability.imports)
    }


def test_the_catalog_resolves_to_one_package_with_a_guest_world(catalog: Catalog) -> None:
    assert catalog.package == "ngixi:host@0.1.0"
    assert "guest" in catalog.worlds
    assert catalog.qualified("kv") == "ngixi:host/kv@0.1.0"


def test_one_interface_per_non_wasi_capability(catalog: Catalog) -> None:
    interfaces = {c.name: c.interface for c in every_capability() if c.interface is not None}
    assert interfaces == {name: name for name in ngixi_imports()}
    assert {i.name for i in catalog.interfaces} - TYPE_INTERFACES == set(interfaces.values())


def test_the_host_implements_exactly_the_catalog(catalog: Catalog) -> None:
    assert catalog.package == f"{HOST_PACKAGE}@{HOST_VERSION}"
    implemented = {c.interface: set(c.component_host) for c in every_capability() if c.interface is not None}
    assert implemented == {i.name: {f.name for f in i.functions} for i in catalog.interfaces if i.functions}


def test_every_registry_import_is_the_core_line_of_one_function_with_the_same_signature(catalog: Catalog) -> None:
    for capability, imports in ngixi_imports().items():
        interface = catalog.interface(capability)
        paired = {f.core_import: f for f in interface.functions if f.core_import is not None}
        assert set(paired) == {i.qualified for i in imports}, capability
        for host_import in imports:
            function = paired[host_import.qualified]
            assert core_signature(catalog, capability, function) == host_import.signature, host_import.qualified


def test_the_error_enum_holds_the_status_codes(catalog: Catalog) -> None:
    (error,) = [t for t in catalog.types if t.kind == "enum" and t.name == "error"]
    assert error.cases == tuple(error_case(s) for s in Status if s not in CORE_ONLY_STATUSES)


def test_host_abi_doc_quotes_the_wit_verbatim() -> None:
    doc = (REPO / "docs" / "host-abi.md").read_text(encoding="utf-8")
    (quoted,) = re.findall(r"```wit\n(.*?)```", doc, flags=re.DOTALL)
    assert quoted == (WIT_DIR / "host.wit").read_text(encoding="utf-8")


def test_a_broken_catalog_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "wit"
    broken.mkdir()
    (broken / "host.wit").write_text("package ngixi:host@0.1.0;\ninterface log { write: func(m: strin); }\n")
    with pytest.raises(WitError, match="strin"):
        resolve_json(broken)


def test_unsupported_type_kinds_are_named() -> None:
    resolved = {
        "packages": [{"name": "x:y"}],
        "interfaces": [{"name": "i", "functions": {}}],
        "types": [{"name": "h", "kind": {"error-context": {}}, "owner": {"interface": 0}}],
        "worlds": [],
    }
    with pytest.raises(WitError, match="'h'"):
        parse_resolved(resolved)


def test_resources_are_read_and_marked_unsupported() -> None:
    resolved = {
        "packages": [{"name": "x:y"}],
        "interfaces": [{"name": "i", "functions": {}}],
        "types": [{"name": "h", "kind": {"handle": {}}, "owner": {"interface": 0}}],
        "worlds": [],
    }
    assert parse_resolved(resolved).types[0].kind == "unsupported"


def test_ngixi_wit_prints_the_catalog(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["wit"]) == 0
    out = capsys.readouterr().out
    assert "package ngixi:host@0.1.0;" in out
    assert "interface kv {" in out


def test_a_project_without_its_own_wit_builds_language_guests_against_the_packaged_catalog(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text('[guest]\nname = "tally"\nversion = "0.1.0"\nabi = "component"\n')
    manifest = load_manifest(tmp_path / "tally.toml")
    with guest_world_dir(Project(tmp_path), manifest) as world:
        assert (world / "deps" / "ngixi-host" / "host.wit").read_bytes() == (WIT_DIR / "host.wit").read_bytes()
        assert "world tally" in (world / "world.wit").read_text()
