"""The guest templates `ngixi new` offers: found from their folders, each rendering a guest its manifest describes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ngixi_build.cli import cmd_new
from ngixi_build.languages.c import EDITOR_FLAGS_READ, editor_flags_warning
from ngixi_build.languages.registry import supported
from ngixi_build.project import Project, find_project
from ngixi_build.workflows.release import release_guests
from ngixi_build.workflows.scaffold import (
    GuestTemplate,
    default_abi,
    guest_templates,
    init_project,
    languages,
    link_for_editors,
    new_guest,
)
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.compile_options import CCompileOptions
from ngixi_runtime.guest.kind import infer_language
from ngixi_runtime.guest.manifest import load_manifest

TEMPLATES = guest_templates()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    init_project(tmp_path / "author")
    return find_project(tmp_path / "author")


def test_the_templates_are_the_folders_and_every_language_can_be_built() -> None:
    assert {(t.language, t.kind, t.abi) for t in TEMPLATES} >= {
        ("assemblyscript", "library", "core"),
        ("assemblyscript", "command", "component"),
        ("c", "library", "core"),
        ("c", "command", "core"),
        ("zig", "library", "core"),
        ("zig", "command", "core"),
        ("javascript", "library", "component"),
        ("python", "library", "component"),
    }
    assert languages() == sorted({t.language for t in TEMPLATES})
    assert set(languages()) <= set(supported())


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: f"{t.language}-{t.kind}-{t.abi}")
def test_each_template_renders_a_guest_of_its_language_kind_and_abi(project: Project, template: GuestTemplate) -> None:
    name = f"{template.kind}-x"
    written = new_guest(project, name, language=template.language, kind=template.kind, abi=template.abi)
    assert all(b"{{" not in path.read_bytes() for path in written)
    manifest = load_manifest(project.manifest_path(name))
    assert manifest.guest.name == name
    assert (manifest.guest.type.kind, manifest.guest.type.abi) == (template.kind, template.abi)
    guest_dir = project.guests_dir / name
    files = [p.relative_to(guest_dir).as_posix() for p in written if guest_dir in p.parents]
    assert manifest.guest.type.language in (template.language, None)
    assert manifest.guest.type.language == template.language or infer_language(files) == template.language
    assert manifest.smoke, "a template passes `doit smoke` as generated: it needs smoke calls"


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.kind == "library" and t.abi == "core"])
def test_core_library_templates_take_and_give_text_through_the_call_data_abi(
    project: Project, template: GuestTemplate
) -> None:
    new_guest(project, "lib", language=template.language, kind="library", abi="core")
    manifest = load_manifest(project.manifest_path("lib"))
    assert any(e.input == "text" and e.output == "text" for e in manifest.exports)
    assert any(call.input is not None for call in manifest.smoke)
    assert "log" in manifest.capabilities


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.kind == "library" and t.abi == "component"])
def test_component_library_templates_take_a_wit_string_give_one_and_log(
    project: Project, template: GuestTemplate
) -> None:
    new_guest(project, "lib", language=template.language, kind="library", abi="component")
    manifest = load_manifest(project.manifest_path("lib"))
    assert any(e.params == ("string",) and e.results == ("string",) for e in manifest.exports)
    assert any(call.args for call in manifest.smoke)
    assert "log" in manifest.capabilities


def test_the_default_abi_is_core_unless_the_language_has_only_component_templates() -> None:
    assert [default_abi(language) for language in ("assemblyscript", "c", "javascript", "python")] == [
        "core",
        "core",
        "component",
        "component",
    ]


def test_a_missing_template_is_refused_naming_those_there_are(project: Project) -> None:
    with pytest.raises(InvalidInput) as refused:
        new_guest(project, "comp", language="c", kind="library", abi="component")
    message = str(refused.value)
    assert message == (
        "no c template for --kind library --abi component; c has --kind command --abi core, --kind library --abi core"
    )
    assert not (project.guests_dir / "comp").exists() and not project.manifest_path("comp").exists()


def test_a_taken_or_bad_name_writes_nothing(project: Project) -> None:
    new_guest(project, "taken", language="c", kind="library", abi="core")
    before = (project.guests_dir / "taken" / "main.c").read_text()
    with pytest.raises(InvalidInput, match="guest 'taken' is taken"):
        new_guest(project, "taken", language="zig", kind="library", abi="core")
    assert (project.guests_dir / "taken" / "main.c").read_text() == before
    assert not (project.guests_dir / "taken" / "main.zig").exists()
    with pytest.raises(InvalidInput, match="not a guest name"):
        new_guest(project, "Bad_Name", language="c", kind="library", abi="core")


def test_the_release_key_chooses_the_guests_a_release_ships(project: Project) -> None:
    for name in ("alpha", "beta"):
        new_guest(project, name, language="assemblyscript", kind="library", abi="core")
    pyproject = project.root / "pyproject.toml"
    assert release_guests(project) == ["alpha", "beta"]  # without the key: every guest
    pyproject.write_text(pyproject.read_text().replace('# release = ["my-guest"]', 'release = ["beta"]'))
    chosen = find_project(project.root)
    assert release_guests(chosen) == ["beta"]
    assert release_guests(chosen, ["alpha"]) == ["alpha"]  # --guest wins
    pyproject.write_text(pyproject.read_text().replace('release = ["beta"]', 'release = ["btea"]'))
    with pytest.raises(InvalidInput) as typo:
        release_guests(find_project(project.root))
    assert str(typo.value).startswith(f"{pyproject}: tool.ngixi.release[0]: no guest 'btea'; ")


@pytest.mark.parametrize(("language", "tool"), [("javascript", "componentize-js"), ("python", "componentize-py")])
def test_a_release_refuses_a_guest_whose_builds_differ_before_building(
    project: Project, language: str, tool: str
) -> None:
    new_guest(project, "alpha", language="assemblyscript", kind="library", abi="core")
    new_guest(project, "beta", language=language, kind="library", abi="component")
    pyproject = project.root / "pyproject.toml"
    with pytest.raises(InvalidInput) as every:
        release_guests(project)
    assert str(every.value).startswith(
        f"{pyproject}: tool.ngixi.release (not set: every guest): beta is a {language} guest, and two builds of it "
        f"differ ({tool} snapshots "
    )
    with pytest.raises(InvalidInput, match=r"^--guest: beta is a .*; release the others"):
        release_guests(project, ["beta", "alpha"])
    assert release_guests(project, ["alpha"]) == ["alpha"]


def test_init_overwrites_nothing_and_says_which_file_is_in_the_way(tmp_path: Path) -> None:
    folder = tmp_path / "python-project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(InvalidInput) as refused:
        init_project(folder)
    assert str(refused.value) == (
        f"ngixi init: {folder / 'pyproject.toml'} already exists; ngixi init overwrites nothing, move it away first"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["pyproject.toml"]


def test_a_c_guests_editor_flags_name_the_shared_folders_and_the_build_says_what_they_lack(project: Project) -> None:
    (project.root / "lib").mkdir()
    new_guest(project, "a", language="c", kind="library", abi="core")
    flags = project.guests_dir / "a" / "compile_flags.txt"
    assert flags.read_text().splitlines() == ["--target=wasm32-wasi", "-I.", "-I../../artifacts/bindings/c"]
    assert editor_flags_warning(project, "a", CCompileOptions()) is None
    with (project.root / "pyproject.toml").open("a") as pyproject:
        pyproject.write('shared_sources = ["lib", "guests/common"]\n')
    (project.guests_dir / "common").mkdir()
    project = Project(project.root)
    assert editor_flags_warning(project, "a", CCompileOptions()) == (
        "warning: guests/a/compile_flags.txt: no -I../../lib -I../common for tool.ngixi.shared_sources; add those"
        " lines so that clangd finds the headers the compile finds"
    )
    new_guest(project, "b", language="c", kind="command", abi="core")
    assert (project.guests_dir / "b" / "compile_flags.txt").read_text().splitlines()[-2:] == [
        "-I../../lib",
        "-I../common",
    ]
    assert editor_flags_warning(project, "b", CCompileOptions()) is None
    flags.write_text("--target=wasm32-wasi\n-I\n../../lib/\n-I../common\n")  # either way of writing -I
    assert editor_flags_warning(project, "a", CCompileOptions()) is None
    flags.write_text("-DX\n" * (EDITOR_FLAGS_READ // 4 + 1))  # not clangd's few flags: not read whole, no warning
    assert editor_flags_warning(project, "a", CCompileOptions()) is None


def test_a_c_guests_editor_flags_lacking_its_compile_include_folders_are_warned_of(project: Project) -> None:
    """An outsider's guest with its headers in include/ (`[compile] include = ["include"]`) built, while clangd, told
    nothing of that folder by the compile_flags.txt `ngixi new` wrote, found none, and the build said nothing."""
    new_guest(project, "a", language="c", kind="library", abi="core")
    options = CCompileOptions(include=("include", "third/party"))
    assert editor_flags_warning(project, "a", options) == (
        "warning: guests/a/compile_flags.txt: no -Iinclude -Ithird/party for manifests/a.toml's compile.include; add"
        " those lines so that clangd finds the headers the compile finds"
    )
    flags = project.guests_dir / "a" / "compile_flags.txt"
    flags.write_text(flags.read_text() + "-I./include/\n-Ithird/party\n")
    assert editor_flags_warning(project, "a", options) is None
    with (project.root / "pyproject.toml").open("a") as pyproject:
        pyproject.write('shared_sources = ["lib"]\n')
    (project.root / "lib").mkdir()
    assert editor_flags_warning(Project(project.root), "a", CCompileOptions(include=("include", "src"))) == (
        "warning: guests/a/compile_flags.txt: no -Isrc for manifests/a.toml's compile.include and -I../../lib for"
        " tool.ngixi.shared_sources; add those lines so that clangd finds the headers the compile finds"
    )


def test_a_setjmp_guests_editor_flags_lacking_exception_handling_are_warned_of(project: Project) -> None:
    """With `setjmp = true` the compile has exception handling, without which clangd reads wasi-libc's setjmp.h as an
    #error in every file that includes it."""
    new_guest(project, "a", language="c", kind="command", abi="core")
    assert editor_flags_warning(project, "a", CCompileOptions(setjmp=True)) == (
        "warning: guests/a/compile_flags.txt: no -mexception-handling for manifests/a.toml's compile.setjmp; add that"
        " line so that clangd reads the guest's files as the compile does"
    )
    flags = project.guests_dir / "a" / "compile_flags.txt"
    flags.write_text(flags.read_text() + "-mexception-handling\n")
    assert editor_flags_warning(project, "a", CCompileOptions(setjmp=True)) is None


def test_the_editor_links_are_never_made_through_a_link_that_came_with_the_project(tmp_path: Path) -> None:
    """Every build replaces `.ngixi/editor/assemblyscript` and `ngixi-data` by name: with `editor/` a link that came
    with the project, it wrote them into the folder the link named, over any file of those names there."""
    victim = tmp_path / "home"
    victim.mkdir()
    (victim / "assemblyscript").write_text("mine\n")
    state = tmp_path / "project" / ".ngixi"
    state.mkdir(parents=True)
    (state / "editor").symlink_to(victim)
    with pytest.raises(InvalidInput, match=rf"^{state / 'editor'}: is a symbolic link, where the build makes"):
        link_for_editors(state, tmp_path / "toolchain" / "node_modules")
    assert (victim / "assemblyscript").read_text() == "mine\n" and sorted(victim.iterdir()) == [
        victim / "assemblyscript"
    ]


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (".", "build it with `doit build`, test it with `doit smoke`"),
        ("guests", "build it with `ngixi build`, test it with `ngixi smoke`"),
        ("..", "build it with `ngixi build --project 'my project'`, test it with `ngixi smoke --project 'my project'`"),
    ],
)
def test_new_says_the_build_command_that_works_where_it_was_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str, said: str
) -> None:
    """It said `doit build` wherever it ran, and doit reads only the dodo.py of the working directory: from
    `guests/` that was `ERROR: Could not find dodo file`."""
    root = tmp_path / "my project"
    init_project(root)
    (root / "guests").mkdir(exist_ok=True)
    monkeypatch.chdir(root / where)
    chosen = Path("my project") if where == ".." else None
    arguments = argparse.Namespace(
        name="g", lang="zig", kind="library", abi=None, wasm=None, project=chosen, state_dir=None
    )
    assert cmd_new(arguments) == 0
    assert capsys.readouterr().out.splitlines()[-1] == said
