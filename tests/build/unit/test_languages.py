"""Compile dispatch: every guest reaches its language's module through one registry, or a clear error."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.languages import assemblyscript as assemblyscript_languages
from ngixi_build.languages.base import CompileJob
from ngixi_build.languages.c import cc_arguments, object_arguments, preprocess_arguments, shared_c_files, source_files
from ngixi_build.languages.registry import language, language_of, supported, toolchain_languages, used_languages
from ngixi_build.languages.wasm import is_declared_input, matches
from ngixi_build.languages.zig import build_arguments, modules
from ngixi_build.project import Project
from ngixi_build.stages import compile as compile_stage
from ngixi_build.stages.compile import CompileError
from ngixi_build.toolchains import javascript as javascript_toolchain
from ngixi_build.toolchains import python as python_toolchain
from ngixi_build.toolchains import python_deps
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.workflows.pipeline import compile_deps
from ngixi_build.workflows.watch import changed_inputs
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions
from ngixi_runtime.guest.manifest import Manifest, load_manifest

HEADER = '[guest]\nname = "{name}"\nversion = "0.1.0"\n'
COMPONENT = 'abi = "component"\n'


def guest_project(tmp_path: Path, name: str, files: dict[str, str], extra: str = "") -> Project:
    project = Project(tmp_path)
    project.manifests_dir.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = project.guests_dir / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project.manifest_path(name).write_text(HEADER.format(name=name) + extra)
    return project


def with_shared_lib(tmp_path: Path, files: Iterable[str]) -> Project:
    """The project at `tmp_path` with `lib` as a shared source folder, holding `files` (paths under tmp_path)."""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("\n")
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["lib"]\n')
    return Project(tmp_path)


def test_every_language_module_names_itself() -> None:
    assert [language(name).name for name in supported()] == list(supported())


def test_an_assemblyscript_guest_compiles_its_sources_with_the_toolchain(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "g", {"assembly/index.ts": "export function f(): void {}\n"})
    guest = read_guest(project, "g")
    assert language_of(project, guest).name == "assemblyscript"
    deps = compile_deps(project, guest)
    assert project.guests_dir / "g" / "assembly" / "index.ts" in deps.file_dep
    assert deps.settings["pins"] == toolchain_for(project.state_dir).root.name  # not its install's marker
    assert deps.targets == [project.wasm_path("g")]
    assert deps.settings["language"] == "assemblyscript"


def test_what_the_build_writes_into_a_javascript_or_python_component_is_part_of_its_up_to_date_check(
    tmp_path: Path,
) -> None:
    """The JavaScript driver (its exports wrapper, its correction of componentize-js's glue) and the Python guests'
    entry module go into the component: a new ngixi-build whose driver or module differs rebuilds them, as one whose
    AssemblyScript library differs rebuilds those guests."""
    js = guest_project(tmp_path / "js", "g", {"index.js": "export function f() {}\n"}, COMPONENT)
    assert javascript_toolchain.DRIVER in compile_deps(js, read_guest(js, "g")).file_dep
    py = guest_project(tmp_path / "py", "g", {"app.py": "import wit_world\n"}, COMPONENT)
    assert compile_deps(py, read_guest(py, "g")).settings["entry module"] == python_toolchain.ENTRY_DIGEST


def needed(project: Project, *guests: str) -> list[str]:
    return [found.name for found in toolchain_languages(project, [read_guest(project, g) for g in guests])]


def test_only_guests_that_need_node_install_the_assemblyscript_toolchain(tmp_path: Path) -> None:
    """Every build installed Node.js and AssemblyScript (about 100 MB, npm's registry) for guests of any language:
    C, Zig and `wasm` guests need none; JavaScript's componentize-js runs on its Node.js, and a guest of any
    language with npm dependencies has its npm install them."""
    project = guest_project(tmp_path, "c", {"main.c": ""})
    guest_project(tmp_path, "z", {"main.zig": ""})
    guest_project(tmp_path, "w", {"w.wasm": ""})
    guest_project(tmp_path, "js", {"index.js": ""}, COMPONENT)
    guest_project(tmp_path, "npm", {"w.wasm": "", "package.json": "{}"})
    assert needed(project, "c", "z", "w") == ["c", "zig", "wasm"]
    assert needed(project, "w", "js") == ["assemblyscript", "wasm", "javascript"]
    assert needed(project, "npm", "c") == ["assemblyscript", "wasm", "c"]
    assert needed(project) == []


def test_a_guest_of_no_known_language_says_how_to_declare_it(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "g", {"README.md": "nothing to build\n"})
    guest = read_guest(project, "g")
    declare = r'declare it in manifests/g.toml: \[guest\] language = "\.\.\."'
    with pytest.raises(InvalidInput, match=rf"^guests/g: cannot tell .* {declare}"):
        language_of(project, guest)
    assert compile_deps(project, guest).targets == [project.wasm_path("g")]  # its task exists, and reports it
    assert used_languages(project, [guest]) == []


def test_a_language_that_cannot_make_the_abi_is_refused(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "g", {"main.c": "int f(void) { return 1; }\n"}, 'abi = "component"\n')
    if "c" not in supported():
        pytest.skip("no C support in this build")
    refusal = r'^manifests/g.toml: guest.abi: a c guest is built as core, not "component"$'
    with pytest.raises(InvalidInput, match=refusal):
        language_of(project, read_guest(project, "g"))


def test_a_directory_with_a_manifest_is_a_guest_whatever_its_language(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "c-guest", {"main.c": ""})
    (project.guests_dir / "stray").mkdir()
    (project.guests_dir / ".hidden").mkdir()
    assert project.guest_names() == ["c-guest"]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/**/*.rs", "src/main.rs", True),
        ("src/**/*.rs", "src/a/b/lib.rs", True),
        ("src/**/*.rs", "target/src/main.rs", False),
        ("*.txt", "answer.txt", True),
        ("*.txt", "sub/answer.txt", False),
        ("Cargo.toml", "Cargo.toml", True),
        ("a?.c", "ab.c", True),
        ("a?.c", "a/.c", False),
        ("[x].c", "[x].c", True),
    ],
)
def test_input_globs_match_like_a_shell_with_double_star(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_a_command_guest_follows_its_declared_inputs_only(tmp_path: Path) -> None:
    build = '[build]\ncommand = "python make.py"\nworkdir = "w"\ninputs = ["*.py", "src/**/*.txt"]\noutput = "o.wasm"\n'
    files = {"w/make.py": "", "w/src/a/x.txt": "", "w/o.wasm": "", "w/notes.md": "", "top.py": ""}
    project = guest_project(tmp_path, "g", files, extra=build)
    guest = read_guest(project, "g")
    assert guest.type.language == "wasm"
    work = project.guests_dir / "g" / "w"
    deps = compile_deps(project, guest)
    assert deps.file_dep == [work / "make.py", work / "src" / "a" / "x.txt", project.manifest_path("g")]
    assert not is_declared_input(project, guest, work / "o.wasm")
    assert deps.settings["command"] == ["python", "make.py"]


def test_a_committed_module_is_a_wasm_guest_with_every_file_its_input(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "g", {"bin/g.wasm": "", "README.md": ""})
    guest = read_guest(project, "g")
    assert guest.type.language == "wasm"
    assert is_declared_input(project, guest, project.guests_dir / "g" / "README.md")


def test_doctor_names_a_build_command_whose_program_is_missing(tmp_path: Path) -> None:
    table = '[build]\ncommand = "{program} make"\ninputs = ["*"]\noutput = "o.wasm"\n'
    project = guest_project(tmp_path, "a", {"x": ""}, extra=table.format(program="no-such-tool-xyz"))
    guest_project(tmp_path, "b", {"x": ""}, extra=table.format(program="python"))
    guests = [read_guest(project, "a"), read_guest(project, "b")]
    status = language("wasm").toolchain_status(project, guests)
    assert not status.ok and status.detail == "a runs 'no-such-tool-xyz', which is not there; install it"
    assert language("wasm").toolchain_status(project, guests[1:]).ok


def test_a_project_without_its_own_wit_catalog_gets_bindings_of_the_packaged_one(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "z", {"main.zig": ""})
    guest = read_guest(project, "z")
    assert not (project.root / "wit").exists() and project.wit_dir.is_dir()
    assert any(p.suffix == ".zig" and "bindings" in p.parts for p in compile_deps(project, guest).file_dep)
    assert modules(project, "z", ZigCompileOptions())[:2] == ["--dep", "ngixi"]


def test_a_compile_table_is_for_its_own_language_and_part_of_its_settings(tmp_path: Path) -> None:
    """The language told by the guest's files (the manifest names none) must take the table it has."""
    table = '[compile]\nflags = ["-O3"]\n'
    zig = guest_project(tmp_path / "zig", "g", {"main.zig": ""}, table)
    with pytest.raises(InvalidInput, match=r"^manifests/g\.toml: compile: this table is for c guests; a zig guest's"):
        language_of(zig, read_guest(zig, "g"))
    c = guest_project(tmp_path / "c", "g", {"main.c": ""}, table)
    assert compile_deps(c, read_guest(c, "g")).settings["compile"] == {
        "sources": ("**/*.c",),
        "include": (),
        "flags": ("-O3",),
        "libs": (),
        "setjmp": False,
        "stack_bytes": 65536,
    }
    zig_table = '[compile]\noptimize = "ReleaseFast"\n[compile.modules]\nshapes = "shapes.zig"\n'
    zig = guest_project(tmp_path / "zig2", "g", {"main.zig": "", "shapes.zig": ""}, zig_table)
    assert compile_deps(zig, read_guest(zig, "g")).settings["compile"] == {
        "root": None,
        "optimize": "ReleaseFast",
        "modules": (("shapes", "shapes.zig"),),
    }
    c_with_zig_table = guest_project(tmp_path / "c2", "g", {"main.c": ""}, zig_table)
    with pytest.raises(InvalidInput, match=r"compile: this table is for zig guests; a c guest's takes sources"):
        language_of(c_with_zig_table, read_guest(c_with_zig_table, "g"))


def test_a_zig_guests_modules_import_each_other_and_the_bindings_by_name(tmp_path: Path) -> None:
    files = {"src/guest.zig": "", "src/shapes.zig": "", "lib/utf.zig": ""}
    project = guest_project(tmp_path, "z", files)
    options = ZigCompileOptions(root="src/guest.zig", modules=(("shapes", "src/shapes.zig"), ("utf", "lib/utf.zig")))
    arguments = modules(project, "z", options)
    bindings = next(a for a in arguments if a.startswith("-Mngixi="))
    assert arguments == [
        *("--dep", "shapes", "--dep", "utf", "--dep", "ngixi", "-Mroot=guests/z/src/guest.zig"),
        *("--dep", "utf", "--dep", "ngixi", "-Mshapes=guests/z/src/shapes.zig"),
        *("--dep", "shapes", "--dep", "ngixi", "-Mutf=guests/z/lib/utf.zig"),
        bindings,
    ]
    with pytest.raises(CompileError, match=r"compile\.modules\.gone: guests/z/gone\.zig is not a file inside"):
        modules(project, "z", ZigCompileOptions(modules=(("gone", "gone.zig"),)))


class _Ensured(Exception):
    """What the fake install below raises: the compile asked for its toolchain before running it."""


# Each language's compile, the module whose install it calls, and a guest of that language's files and manifest.
ENSURED: dict[str, tuple[ModuleType, str, dict[str, str], str]] = {
    "javascript": (javascript_toolchain, "ensure_javascript_toolchain", {"index.js": ""}, COMPONENT),
    "python": (python_toolchain, "ensure_python_toolchain", {"app.py": ""}, COMPONENT),
    "assemblyscript": (assemblyscript_languages, "ensure_toolchain", {"assembly/index.ts": ""}, ""),
}


@pytest.mark.parametrize("language_name", ENSURED)
def test_a_compile_installs_its_toolchain_when_this_user_has_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, language_name: str
) -> None:
    """Watch mode and a release's clean copy compile without doit's toolchain task: a JavaScript guest's compile
    ran componentize-js from a state directory without it ("Cannot find module 'oxc-parser'"), or from one that came
    with a copied project."""

    def install(**_: object) -> None:
        raise _Ensured

    module, ensure, files, extra = ENSURED[language_name]
    monkeypatch.setattr(module, ensure, install)
    project = guest_project(tmp_path, "g", files, extra)
    guest = read_guest(project, "g")
    assert language_of(project, guest).name == language_name
    with pytest.raises(_Ensured):
        language_of(project, guest).compile(CompileJob(project, guest, project.wasm_path("g")))


HIDDEN = {".config.h": "#define N 1\n", ".gen/table.inc": "1,\n", ".data": "x\n"}
SCRATCH = (".main.swp", ".#main", "#main#", "main~", "4913", ".DS_Store")
# Version control's and editors' folders (`NEVER_READ`), and a submodule's or worktree's .git file.
TOOLS = (".git/HEAD", ".hg/store/data", ".svn/wc.db", ".idea/workspace.xml", ".vscode/settings.json", "sub/.git")


@pytest.mark.parametrize(
    ("entry", "extra"),
    [
        ("main.c", ""),
        ("main.zig", ""),
        ("assembly/index.ts", ""),
        ("index.js", COMPONENT),
        ("build.sh", '[build]\ncommand = ["./build.sh"]\noutput = "out.wasm"\ninputs = ["**/*", "*"]\n'),
    ],
)
def test_a_compile_follows_the_hidden_files_it_may_read_and_no_editor_scratch(
    tmp_path: Path, entry: str, extra: str
) -> None:
    """A hidden file (`#include ".config.h"`, `@embedFile(".data")`, an import of `./.gen/...`) is an input of the
    compile and of watch mode, in every language; an editor's scratch file, version control's and editors' folders
    are neither."""
    noise = dict.fromkeys((*SCRATCH, *TOOLS), "")
    project = guest_project(tmp_path, "g", {entry: "\n", **HIDDEN, **noise}, extra)
    guest = read_guest(project, "g")
    language_of(project, guest)  # a known language: not the fallback of a guest whose language is unknown
    directory = project.guests_dir / "g"
    file_dep = compile_deps(project, guest).file_dep
    followed = {path.relative_to(directory).as_posix() for path in file_dep if path.is_relative_to(directory)}
    assert {entry, *HIDDEN} <= followed
    assert not followed & set(noise)
    assert [name for name in (entry, *HIDDEN) if changed_inputs(project, directory / name) != ["g"]] == []
    assert [name for name in noise if changed_inputs(project, directory / name)] == []


@pytest.mark.parametrize(
    ("files", "extra", "never_walked"),
    [
        (
            {"main.c": "", ".git/HEAD": "", ".idea/x.xml": "", "node_modules/x/y.js": "", "package.json": ""},
            "",
            {".git", ".idea", "node_modules"},
        ),
        (
            {"app.py": "", ".venv/lib/site.py": "", "__pycache__/app.pyc": "", ".vscode/x.json": ""},
            COMPONENT,
            {".venv", "__pycache__", ".vscode"},
        ),
    ],
)
def test_the_folders_no_compile_reads_are_not_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], extra: str, never_walked: set[str]
) -> None:
    """A guest's .venv/ or .git/ may hold 10,000s of files: finding its inputs or its language does not walk them."""
    project = guest_project(tmp_path, "g", files, extra)
    walked: list[Path] = []
    walk = os.walk

    def watched(top: Path) -> Iterator[tuple[str, list[str], list[str]]]:
        for found in walk(top):
            walked.append(Path(found[0]))
            yield found

    monkeypatch.setattr(os, "walk", watched)
    compile_deps(project, read_guest(project, "g"))
    assert walked
    assert [path for path in walked if never_walked & set(path.parts)] == []


def test_a_build_command_that_names_a_version_control_file_has_it_as_input(tmp_path: Path) -> None:
    """`git describe` in a [build] command reads .git/: an input pattern naming it brings it back, a wildcard not."""
    extra = '[build]\ncommand = ["./build.sh"]\noutput = "out.wasm"\ninputs = ["*", ".git/HEAD", ".git/refs/**/*"]\n'
    files = {"build.sh": "", ".git/HEAD": "", ".git/refs/heads/main": "", ".git/index": "", ".idea/x.xml": ""}
    project = guest_project(tmp_path, "g", files, extra)
    directory = project.guests_dir / "g"
    file_dep = compile_deps(project, read_guest(project, "g")).file_dep
    followed = {path.relative_to(directory).as_posix() for path in file_dep if path.is_relative_to(directory)}
    assert followed == {"build.sh", ".git/HEAD", ".git/refs/heads/main"}
    assert {name for name in files if changed_inputs(project, directory / name)} == followed


def test_a_shared_folders_version_control_and_editor_folders_are_no_inputs(tmp_path: Path) -> None:
    guest_project(tmp_path, "g", {"main.c": "\n"})
    project = with_shared_lib(tmp_path, ("lib/util.c", *(f"lib/{tool}" for tool in TOOLS)))
    assert project.shared_source_files() == [tmp_path / "lib" / "util.c"]
    assert [tool for tool in TOOLS if changed_inputs(project, tmp_path / "lib" / tool)] == []


def test_a_python_guests_inputs_are_what_componentize_py_is_given(tmp_path: Path) -> None:
    """Its compile copies the guest's folder without hidden files and __pycache__/ (`not_copied`): an author's
    .venv/ there, thousands of files, was an input of doit and watch mode, never read by the compile."""
    venv = {".venv/lib/site.py": "\n", ".venv/pyvenv.cfg": "\n", ".env": "\n", "__pycache__/app.pyc": ""}
    project = guest_project(tmp_path, "g", {"app.py": "\n", "lib/util.py": "\n", **venv}, COMPONENT)
    directory = project.guests_dir / "g"
    guest = read_guest(project, "g")
    assert language_of(project, guest).name == "python"
    file_dep = compile_deps(project, guest).file_dep
    followed = {path.relative_to(directory).as_posix() for path in file_dep if path.is_relative_to(directory)}
    assert followed == {"app.py", "lib/util.py"}
    assert [name for name in venv if changed_inputs(project, directory / name)] == []
    assert changed_inputs(project, directory / "lib" / "util.py") == ["g"]


def test_a_python_guests_requirements_are_an_input_of_its_compile_and_watched(tmp_path: Path) -> None:
    """Its compile installs them (in the project's state, not the guest's folder): a changed file rebuilds it, doit
    and watch mode alike; how they are installed is one of its settings."""
    project = guest_project(tmp_path, "g", {"app.py": "\n", "requirements.txt": "tomli==2.0.1\n"}, COMPONENT)
    requirements = project.guests_dir / "g" / "requirements.txt"
    deps = compile_deps(project, read_guest(project, "g"))
    assert requirements in deps.file_dep
    assert deps.settings["requirements.txt"] == python_deps.INSTALLED_WITH
    assert changed_inputs(project, requirements) == ["g"]


def test_node_modules_is_a_source_only_without_npm_dependencies(tmp_path: Path) -> None:
    project = guest_project(tmp_path, "g", {"main.c": "\n", "node_modules/lib/x.h": "\n"})
    header = project.guests_dir / "g" / "node_modules" / "lib" / "x.h"
    assert header in project.guest_sources("g")
    (project.guests_dir / "g" / "package.json").write_text("{}\n")  # the install's record stands for it
    assert header not in project.guest_sources("g")
    assert changed_inputs(project, header) == []


def test_a_guest_language_is_not_inferred_from_hidden_files(tmp_path: Path) -> None:
    project = Project(tmp_path)
    (project.guests_dir / "g" / ".venv" / "lib").mkdir(parents=True)
    (project.guests_dir / "g" / ".venv" / "lib" / "x.js").write_text("\n")
    (project.guests_dir / "g" / "app.py").write_text("\n")
    project.manifests_dir.mkdir()
    project.manifest_path("g").write_text(HEADER.format(name="g"))
    assert read_guest(project, "g").type.language == "python"


def test_hidden_c_files_are_inputs_but_neither_a_guest_nor_a_shared_folder_compiles_them(tmp_path: Path) -> None:
    guest_project(tmp_path, "g", {"main.c": "\n", ".old.c": "\n", ".wip/x.c": "\n"})
    project = with_shared_lib(tmp_path, ("lib/util.c", "lib/.old.c", "lib/.wip/x.c", "lib/sub/more.c"))
    assert source_files(project, "g", CCompileOptions()) == ["guests/g/main.c"]
    assert shared_c_files(project) == ["lib/sub/more.c", "lib/util.c"]
    assert project.guests_dir / "g" / ".old.c" in compile_deps(project, read_guest(project, "g")).file_dep


def test_a_shared_folder_named_like_an_option_is_compiled_as_a_file(tmp_path: Path) -> None:
    """A folder `-DX` at the root holds `-DX/x.c`, which zig would take for the option -DX/x.c (past the check of
    [compile] flags, so -fplugin= too) and find no input."""
    project = guest_project(tmp_path, "g", {"main.c": "\n"})
    (tmp_path / "-DX").mkdir()
    (tmp_path / "-DX" / "x.c").write_text("\n")
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["-DX"]\n')
    project = Project(tmp_path)
    [source] = shared_c_files(project)
    options = CCompileOptions()
    assert preprocess_arguments(project, "g", options, source, tmp_path)[-1] == "./-DX/x.c"
    assert object_arguments(project, "g", options, source, tmp_path / "x.o")[-1] == "./-DX/x.c"


def test_an_asc_error_in_a_library_needing_a_transform_says_so(tmp_path: Path) -> None:
    """json-as 1.6 declares JSON_STRICT in its asc transform, which the build never runs: asc's error alone
    (`Cannot find name 'JSON_STRICT'`) did not say why."""
    entry = tmp_path / "guests" / "x" / "assembly" / "index.ts"
    (tmp_path / "guests" / "x" / "node_modules" / "json-as" / "transform").mkdir(parents=True)
    diagnostics = "ERROR TS2304: Cannot find name 'JSON_STRICT'.\n   :\n └─ in ~lib/json-as/assembly/index.ts(400,9)\n"
    failed = str(compile_stage.asc_failure("asc guests/x/assembly/index.ts", diagnostics, entry))
    assert "Cannot find name 'JSON_STRICT': json-as needs its asc transform (node_modules/json-as/transform)" in failed
    assert "ngixi-data's Json" in failed.splitlines()[1]
    other = diagnostics.replace("json-as", "as-other")
    assert str(compile_stage.asc_failure("asc x", other, entry)).splitlines()[1:] == other.splitlines()


@pytest.mark.parametrize(
    ("source", "arguments", "library"),
    [
        ("main.c", cc_arguments, ["-mexec-model=reactor", "-Wl,--export=add", "-Wl,--export=sub"]),
        ("main.zig", build_arguments, ["-fno-entry", "--export=add", "--export=sub"]),
    ],
    ids=["c", "zig"],
)
def test_a_c_or_zig_library_exports_its_manifests_functions_and_a_command_none(
    tmp_path: Path, source: str, arguments: Callable[[CompileJob, Path, Manifest], list[str]], library: list[str]
) -> None:
    exports = '\n[exports.add]\nparams = ["i32"]\nresults = ["i32"]\n\n[exports.sub]\n'
    for kind, extra, expected in (("library", exports, library), ("command", "", [])):
        project = guest_project(tmp_path / kind, "g", {source: "\n"}, f'kind = "{kind}"\n{extra}')
        job = CompileJob(project, read_guest(project, "g"), project.wasm_path("g"))
        given = arguments(job, job.out_path, load_manifest(project.manifest_path("g")))
        assert [a for a in given if a in ("-mexec-model=reactor", "-fno-entry") or "--export=" in a] == expected
