"""The world a JavaScript or Python guest is built against, its entry, and the toolchains' installs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.languages.python import refuse_ungrantable
from ngixi_build.project import Project
from ngixi_build.stages.language_component import entry_file, guest_world_text, ungranted_import
from ngixi_build.toolchains import installs, javascript, python
from ngixi_build.toolchains.wit import WitError
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.manifest import load_manifest

MANIFEST = """\
[guest]
name = "tally"
version = "0.1.0"
abi = "component"

[exports.bump]
params = ["i32"]
results = ["i32"]

[capabilities.log]
[capabilities.stdio]
[capabilities.kv]
namespaces = ["n"]
"""


# What componentize-js and componentize-py say of an import of an interface the guest's world lacks.
JS_MISSING = (
    'ReferenceError: Error loading module "ngixi:host/http@0.1.0" (resolved path '
    '"guests/x/ngixi:host/http@0.1.0"): No such file or directory'
)
PY_MISSING = "ImportError: cannot import name 'http' from 'wit_world.imports' (/world/wit_world/imports/__init__.py)"


def test_an_import_the_manifest_does_not_grant_is_named_with_its_grant(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text(MANIFEST)
    manifest = load_manifest(tmp_path / "tally.toml")
    wanted = (
        "capabilities.http: the guest imports the host's http interface, which needs [capabilities.http];"
        " grant it in the manifest or remove the import"
    )
    assert ungranted_import(f"componentize-js failed:\n{JS_MISSING}", manifest) == wanted
    assert ungranted_import(f"componentize-py failed:\n{PY_MISSING}", manifest) == wanted
    assert ungranted_import(PY_MISSING.replace("'http'", "'kv'"), manifest) is None  # granted: something else
    assert ungranted_import(JS_MISSING.replace("http@", "nosuch@"), manifest) is None  # no capability has it
    assert ungranted_import("SyntaxError: unexpected token", manifest) is None


def test_the_world_imports_only_the_granted_interfaces(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text(MANIFEST)
    text = guest_world_text(load_manifest(tmp_path / "tally.toml"), "ngixi:host@0.1.0")
    assert text == (
        "package ngixi-guest:tally;\n\n"
        "world tally {\n"
        "  import ngixi:host/kv@0.1.0;\n"
        "  import ngixi:host/log@0.1.0;\n"
        "  export bump: func(arg0: s32) -> s32;\n"
        "}\n"
    )


def test_a_wit_name_only_a_prebuilt_component_exports_is_refused_naming_the_export(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text(MANIFEST.replace("[exports.bump]", "[exports.bump-it]"))
    with pytest.raises(WitError, match=r"tally.toml: exports.bump-it: a guest built from its sources exports names"):
        guest_world_text(load_manifest(tmp_path / "tally.toml"), "ngixi:host@0.1.0")


def test_the_entry_is_the_named_file_or_the_only_one(tmp_path: Path) -> None:
    project = Project(tmp_path)
    guest = tmp_path / "guests" / "g"
    guest.mkdir(parents=True)
    (guest / "main.py").write_text("")
    assert entry_file(project, "g", ("app.py",), (".py",)) == guest / "main.py"
    (guest / "other.py").write_text("")
    with pytest.raises(InvalidInput, match=r"guests/g: the guest's entry is app.py \(or its only .py file\)"):
        entry_file(project, "g", ("app.py",), (".py",))
    (guest / "app.py").write_text("")
    assert entry_file(project, "g", ("app.py",), (".py",)) == guest / "app.py"


def test_a_failed_install_leaves_nothing_and_a_new_pin_replaces_the_old(tmp_path: Path) -> None:
    old = installs.install_root(tmp_path, "lang", {"pin": b"1"})
    installs.ensure_install(old, lambda root: (root / "tool").touch())
    assert installs.is_complete(old)

    def broken(root: Path) -> None:
        (root / "half").write_text("")
        raise RuntimeError("network")

    new = installs.install_root(tmp_path, "lang", {"pin": b"2"})
    with pytest.raises(RuntimeError):
        installs.ensure_install(new, broken)
    assert not new.exists() and installs.is_complete(old)
    installs.ensure_install(new, lambda root: None)
    assert installs.is_complete(new) and not old.exists()


def test_the_pinned_versions_come_from_the_pin_files() -> None:
    assert javascript.pinned_version().startswith("@bytecodealliance/componentize-js 0.23.0")
    assert python.pinned_version() == "componentize-py 0.25.1"


def test_a_javascript_guest_keeps_componentize_js_stdio_random_and_clocks_only_when_granted() -> None:
    assert {"stdio", "random", "clocks"} <= set(javascript.disabled_features({"log", "kv"}))
    assert javascript.disabled_features({"log", "stdio"}) == [f for f in javascript.WASI_FEATURES if f != "stdio"]
    assert javascript.disabled_features({"random"}) == [f for f in javascript.WASI_FEATURES if f != "random"]
    assert "clocks" in javascript.disabled_features({"clock"})  # its input-stream reads need stdio's grant
    kept = {"stdio", "clocks"}
    assert javascript.disabled_features({"clock", "stdio"}) == [f for f in javascript.WASI_FEATURES if f not in kept]


def test_a_python_guest_granted_stdio_or_random_is_refused_before_the_tool_runs(tmp_path: Path) -> None:
    (tmp_path / "tally.toml").write_text(MANIFEST)
    with pytest.raises(InvalidInput, match=r"tally\.toml: capabilities\.stdio: a Python guest has no standard output"):
        refuse_ungrantable(load_manifest(tmp_path / "tally.toml"))
    (tmp_path / "tally.toml").write_text(MANIFEST.replace("[capabilities.stdio]\n", "[capabilities.random]\n"))
    with pytest.raises(InvalidInput, match=r"tally\.toml: capabilities\.random: a Python guest gets no randomness"):
        refuse_ungrantable(load_manifest(tmp_path / "tally.toml"))
    (tmp_path / "tally.toml").write_text(MANIFEST.replace("[capabilities.stdio]\n", ""))
    refuse_ungrantable(load_manifest(tmp_path / "tally.toml"))
