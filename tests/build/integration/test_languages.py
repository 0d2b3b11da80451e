"""C, Zig and any-toolchain guests built through the real toolchains (zig from PyPI ziglang) and run on both engines."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.spec.wasm import read_module_info
from tests.build.integration.test_release import git
from tests.conftest import REPO, make_key
from tests.integration import (
    command_line,
    copy_project,
    keep_only_guests,
    ran_tasks,
    run,
    set_targets,
)
from tests.wasmgen import Func, module

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=25)]

GUESTS = ("c-counter", "zig-notes", "handmade")
ENGINES = ("wasmer", "wasmtime")
# Command guests (WASI `_start`), one per language, written into the copy.
COMMANDS = {
    "c-hello": (
        "hello.c",
        '#include <string.h>\n#include "ngixi.h"\n'
        'int main(void) { const char *m = "hello from C";\n'
        "    ngixi_log_write_at(NGIXI_LOG_LEVEL_INFO, m, strlen(m)); return 3; }\n",
    ),
    "zig-hello": (
        "src/main.zig",
        'const ngixi = @import("ngixi");\npub fn main() void { ngixi.log.writeAt(.warn, "hello from Zig"); }\n',
    ),
}
COMMAND_MANIFEST = '[guest]\nname = "{name}"\nversion = "0.1.0"\nkind = "command"\n\n[capabilities.log]\n'
# A C guest as a real C project has it: two files under src/, a header dir, a define, libm, and a file not built.
FLAGS_GUEST = {
    "include/calc.h": "#define SCALE 3\nint scaled(int x);\n",
    "src/main.c": '#include <math.h>\n#include "calc.h"\n'
    "int compute(int x) { return scaled(x) + OFFSET + (int)floor(sqrt((double)x)); }\n",
    "src/scale.c": '#include "calc.h"\nint scaled(int x) { return x * SCALE; }\n',
    "attic/old.c": "this is not C and is not among the sources\n",
}
FLAGS_MANIFEST = """guest = { name = "c-flags", version = "0.1.0" }
exports.compute = { params = ["i32"], results = ["i32"] }

[compile]
sources = ["src/*.c"]
include = ["include"]
flags = ["-O2", "-DOFFSET=100", "-Wall", "-Werror"]
libs = ["m"]
"""

# A Zig guest with a root that is not main.zig, a module it imports by name and ReleaseSafe's overflow checks, which
# end the call with their message through the bindings' panic handler (std's would print through WASI files).
ZIG_MODULES_GUEST = {
    "src/guest.zig": 'const std = @import("std");\nconst shapes = @import("shapes");\n\n'
    'pub const panic = @import("ngixi").panic;\n\n'
    "export fn area(w: i32, h: i32) i32 {\n    return shapes.area(w, h) + 1;\n}\n",
    "src/shapes.zig": "pub fn area(w: i32, h: i32) i32 {\n    return w * h;\n}\n",
}
ZIG_MODULES_MANIFEST = """guest = { name = "zig-modules", version = "0.1.0" }
exports.area = { params = ["i32", "i32"], results = ["i32"] }

[compile]
root = "src/guest.zig"
optimize = "ReleaseSafe"
modules = { shapes = "src/shapes.zig" }
"""

# A C program as one is written: printf and fgets through C's buffered stdio, which imports fd_seek and fd_close.
PRINTF_SOURCE = """#include <stdio.h>
int main(int argc, char **argv) {
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) return 4;
    printf("%s read %s", argc > 1 ? argv[1] : "?", line);
    fprintf(stderr, "done\\n");
    return fclose(stdout) == 0 ? 0 : 5;
}
"""
ANSWER_MANIFEST = 'guest = { name = "answer", version = "0.1.0" }\nexports.answer = { results = ["i32"] }\n'
PRINTF_MANIFEST = """guest = { name = "c-printf", version = "0.1.0", kind = "command" }
capabilities = { stdio = {}, stdin = {}, args = {} }
"""


def add_commands(project: Project) -> None:
    for name, (source, text) in COMMANDS.items():
        path = project.guests_dir / name / source
        path.parent.mkdir(parents=True)
        path.write_text(text)
        project.manifest_path(name).write_text(COMMAND_MANIFEST.format(name=name))
    for name, text in FLAGS_GUEST.items():
        path = project.guests_dir / "c-flags" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project.manifest_path("c-flags").write_text(FLAGS_MANIFEST)
    for name, text in ZIG_MODULES_GUEST.items():
        path = project.guests_dir / "zig-modules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    project.manifest_path("zig-modules").write_text(ZIG_MODULES_MANIFEST)
    (project.guests_dir / "c-printf").mkdir()
    (project.guests_dir / "c-printf" / "main.c").write_text(PRINTF_SOURCE)
    project.manifest_path("c-printf").write_text(PRINTF_MANIFEST)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the project with the C, Zig and any-toolchain samples only, built for this host on both engines."""
    root = copy_project(tmp_path_factory.mktemp("languages") / "project")  # its guests need no Node.js
    project = Project(keep_only_guests(root, GUESTS))
    add_commands(project)
    set_targets(project.root, [host_triple()], ["host"])
    run(project.root, "doit", "build")
    return project


@contextmanager
def edited(path: Path, text: str) -> Iterator[None]:
    """`path` holds `text` within the block, and its own text again after it."""
    original = path.read_text()
    path.write_text(text)
    try:
        yield
    finally:
        path.write_text(original)


def ngixi_run(project: Project, engine: str, guest: str, *call: str) -> str:
    sandbox = project.root / "sandbox" / engine
    bundle = str(project.bundle_path(guest, "0.1.0"))
    result = run(project.root, "ngixi", "run", "--engine", engine, "--sandbox", str(sandbox), bundle, *call)
    return result.stdout + result.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_each_language_guest_runs_with_its_capabilities(built: Project, engine: str) -> None:
    assert ngixi_run(built, engine, "c-counter", "increment") == "1\ninfo: c-counter: call number 1\n"
    assert ngixi_run(built, engine, "c-counter", "increment").startswith("2\n")
    assert ngixi_run(built, engine, "c-counter", "add", "40", "2") == "42\n"
    assert ngixi_run(built, engine, "zig-notes", "save", "7") == "1\ninfo: zig-notes: saved a note\n"
    assert ngixi_run(built, engine, "zig-notes", "save", "8").startswith("2\n")
    assert ngixi_run(built, engine, "handmade", "answer") == "42\ninfo: handmade: answering\n"


@pytest.mark.parametrize("engine", ENGINES)
def test_command_guests_run_main_with_its_exit_code(built: Project, engine: str) -> None:
    for name, expected, code in (("c-hello", "info: hello from C\n", 3), ("zig-hello", "warn: hello from Zig\n", 0)):
        bundle = str(built.bundle_path(name, "0.1.0"))
        result = run(built.root, "ngixi", "run", "--engine", engine, bundle, check=False)
        assert (result.returncode, result.stdout + result.stderr) == (code, expected), name


def test_the_bundles_carry_artifacts_for_both_engines_and_pass_smoke(built: Project) -> None:
    smoke = run(built.root, "doit", "smoke").stdout
    for guest in GUESTS:
        assert f"smoke:{guest} ok" in smoke


def test_the_memory_maximum_comes_from_the_manifest(built: Project) -> None:
    for guest in ("c-counter", "zig-notes"):
        info = read_module_info(built.wasm_path(guest).read_bytes(), source=guest)
        assert [m.maximum_pages for m in info.memories] == [4]


@pytest.mark.parametrize(
    ("guest", "source", "broken", "where"),
    [
        ("c-counter", "counter.c", "int add(int a, int b) { return a + ; }\n", "guests/c-counter/counter.c:"),
        ("zig-notes", "main.zig", "export fn save(n: i32) i32 { return n + ; }\n", "guests/zig-notes/main.zig:"),
    ],
)
def test_a_compiler_error_is_the_compilers_own_and_leaves_the_module(
    built: Project, guest: str, source: str, broken: str, where: str
) -> None:
    wasm = built.wasm_path(guest)
    before = wasm.read_bytes()
    with edited(built.guests_dir / guest / source, broken):
        result = run(built.root, "doit", "build", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and f"FAILED compile:{guest}" in output, output
    assert where in output and "error" in output and "Traceback" not in output, output
    line = output.split(where, 1)[1].split(":", 1)[0]
    assert line.isdigit(), output  # file:line:column, as the compiler says it
    assert wasm.read_bytes() == before
    assert not [p for p in wasm.parent.iterdir() if p.name.startswith(".")]


def test_a_command_guest_builds_only_when_its_declared_inputs_change(built: Project) -> None:
    guest = built.guests_dir / "handmade"
    assert "compile:handmade" not in ran_tasks(run(built.root, "doit", "build").stdout)
    (guest / "NOTES.md").write_text("not an input\n")
    (guest / "out" / "handmade.wasm").touch()  # the command's own output is not an input either
    assert "compile:handmade" not in ran_tasks(run(built.root, "doit", "build").stdout)
    with edited(guest / "answer.txt", "7\n"):
        assert "compile:handmade" in ran_tasks(run(built.root, "doit", "build").stdout)
        assert ngixi_run(built, "wasmtime", "handmade", "answer").startswith("7\n")
    run(built.root, "doit", "build")


def test_a_failing_command_shows_its_diagnostics_and_keeps_the_last_module(built: Project) -> None:
    wasm = built.wasm_path("handmade")
    before = wasm.read_bytes()
    with edited(built.guests_dir / "handmade" / "answer.txt", "forty-two\n"):
        result = run(built.root, "doit", "build", check=False)
    assert result.returncode != 0
    assert (
        "handmade: [build] command failed (exit 1):\nanswer.txt:1: 'forty-two' is not a whole number" in result.stdout
    )
    assert wasm.read_bytes() == before
    run(built.root, "doit", "build")


def test_doctor_reports_the_zig_toolchain(built: Project) -> None:
    report = run(built.root, "ngixi", "doctor", check=False).stdout
    assert "zig toolchain (C and Zig guests)" in report and "ziglang 0.17.0" in report, report
    assert "assemblyscript" not in report and "node" not in report  # neither needed nor missing


def test_c_and_committed_wasm_guests_build_and_release_without_node(tmp_path: Path) -> None:
    """Every project's first build (and `doit release`) installed Node.js and AssemblyScript with npm into
    `.ngixi/toolchain/` (about 100 MB, and npm's registry) though only AssemblyScript and JavaScript guests run them."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "guests" / "c-counter", root / "guests" / "c-counter")
    (root / "manifests").mkdir()
    shutil.copy(REPO / "manifests" / "c-counter.toml", root / "manifests")
    shutil.copy(REPO / "dodo.py", root)
    (root / "guests" / "answer").mkdir()
    (root / "guests" / "answer" / "answer.wasm").write_bytes(module(functions=[Func("answer", (), ("i32",))]))
    (root / "manifests" / "answer.toml").write_text(ANSWER_MANIFEST)
    (root / "pyproject.toml").write_text(f'[tool.ngixi]\ntargets = ["{host_triple()}"]\nwasmtime_targets = []\n')
    (root / ".gitignore").write_text("artifacts/\n.ngixi/\n")
    run(root, "doit", "build")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the project")
    key = make_key(tmp_path / "key", channels=["release"])
    run(root, "doit", "release", env={"NGIXI_SIGNING_KEY": str(key.secret), "NGIXI_RELEASE_VERSION": "1.0.0"})
    released = root / "artifacts" / "release" / "1.0.0"
    assert {"answer-0.1.0.ngx", "c-counter-0.1.0.ngx"} <= {p.name for p in released.iterdir()}
    parameters = json.loads((released / "provenance.json").read_text())["predicate"]["buildDefinition"]
    assert "node" not in parameters["internalParameters"]  # nor the WASI adapters among its resolved dependencies
    assert sorted(p.name for p in (root / ".ngixi").iterdir() if "toolchain" in p.name) == []


def test_a_c_guest_gives_its_sources_include_dirs_flags_and_libraries(built: Project) -> None:
    manifest, header, wasm = (
        built.manifest_path("c-flags"),
        built.guests_dir / "c-flags" / "include" / "calc.h",
        built.wasm_path("c-flags"),
    )
    assert ngixi_run(built, "wasmer", "c-flags", "compute", "9") == "130\n"  # 9 * 3 + 100 + sqrt(9)
    first = wasm.read_bytes()
    wasm.unlink()
    assert "compile:c-flags" in ran_tasks(run(built.root, "doit", "build").stdout)
    assert wasm.read_bytes() == first  # reproducible
    assert "compile:c-flags" not in ran_tasks(run(built.root, "doit", "build").stdout)
    with edited(header, "#define SCALE 4\nint scaled(int x);\n"):
        assert "compile:c-flags" in ran_tasks(run(built.root, "doit", "build").stdout)
        assert ngixi_run(built, "wasmtime", "c-flags", "compute", "9") == "139\n"
    with edited(manifest, FLAGS_MANIFEST.replace("-DOFFSET=100", "-DOFFSET=200")):
        assert "compile:c-flags" in ran_tasks(run(built.root, "doit", "build").stdout)
        assert ngixi_run(built, "wasmtime", "c-flags", "compute", "9") == "230\n"
    with edited(manifest, FLAGS_MANIFEST.replace('"-O2"', '"-o", "/tmp/elsewhere.wasm"')):
        refused = run(built.root, "doit", "build", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert 'manifests/c-flags.toml: compile.flags[0]: "-o" is not a flag a guest may pass' in refused.stdout
    assert not Path("/tmp/elsewhere.wasm").exists()
    run(built.root, "doit", "build")
    assert wasm.read_bytes() == first


# Exports named as clang has them named, by an attribute on C functions of other names, beside plain helpers.
NAMED_EXPORTS_SOURCE = """static int twice(int x) { return 2 * x; }
__attribute__((export_name("double"))) int double_it(int x) { return twice(x); }
__attribute__((export_name("triple"))) int triple_it(int x) { return 3 * x; }
"""
NAMED_EXPORTS_MANIFEST = """guest = { name = "c-named", version = "0.1.0" }
exports.double = { params = ["i32"], results = ["i32"] }
exports.triple = { params = ["i32"], results = ["i32"] }
"""


def test_a_c_guest_may_name_its_exports_by_the_export_name_attribute(built: Project) -> None:
    (built.guests_dir / "c-named").mkdir()
    (built.guests_dir / "c-named" / "exports.c").write_text(NAMED_EXPORTS_SOURCE)
    manifest = built.manifest_path("c-named")
    manifest.write_text(NAMED_EXPORTS_MANIFEST)
    run(built.root, "doit", "build")
    assert ngixi_run(built, "wasmtime", "c-named", "double", "21") == "42\n"
    assert ngixi_run(built, "wasmer", "c-named", "triple", "5") == "15\n"
    with edited(manifest, NAMED_EXPORTS_MANIFEST.replace("triple", "tripel")):  # no function has that name
        refused = run(built.root, "doit", "build", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    missing = "exports.tripel: the .wasm has no function export 'tripel'; it exports: _initialize, double, triple"
    assert missing in refused.stdout, refused.stdout


def test_a_zig_guest_gives_its_root_modules_and_optimize_mode(built: Project) -> None:
    manifest, wasm = built.manifest_path("zig-modules"), built.wasm_path("zig-modules")
    for engine in ENGINES:
        assert ngixi_run(built, engine, "zig-modules", "area", "6", "7") == "43\n"
    bundle = str(built.bundle_path("zig-modules", "0.1.0"))
    overflow = run(built.root, "ngixi", "run", bundle, "area", "65536", "65536", check=False)
    assert overflow.returncode == 5, overflow.stderr  # ReleaseSafe's check, its message through the panic handler
    assert overflow.stderr == "ngixi: error: zig-modules: area aborted: integer overflow in guest.area\n"
    first = wasm.read_bytes()
    wasm.unlink()
    assert "compile:zig-modules" in ran_tasks(run(built.root, "doit", "build").stdout)
    assert wasm.read_bytes() == first  # reproducible
    with edited(manifest, ZIG_MODULES_MANIFEST.replace("ReleaseSafe", "ReleaseFast")):
        assert "compile:zig-modules" in ran_tasks(run(built.root, "doit", "build").stdout)
        assert ngixi_run(built, "wasmtime", "zig-modules", "area", "65536", "65536") == "1\n"  # no check: it wraps
    with edited(manifest, ZIG_MODULES_MANIFEST.replace("ReleaseSafe", "Debug")):
        refused = run(built.root, "doit", "build", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert 'manifests/zig-modules.toml: compile.optimize: "Debug" is not an optimize mode a guest may use' in (
        refused.stdout
    )
    run(built.root, "doit", "build")
    assert wasm.read_bytes() == first


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("isolation", [[], ["--in-process"]])
def test_printf_needs_only_the_stdio_grant(built: Project, engine: str, isolation: list[str]) -> None:
    """C's buffered stdio imports fd_seek and fd_close, which only fs granted: a printf program needed a file
    system grant to print. stdio and stdin answer them for their own streams."""
    bundle = str(built.bundle_path("c-printf", "0.1.0"))
    command = command_line(["ngixi", "run", "--engine", engine, *isolation, bundle, "Ada"])
    result = subprocess.run(
        command, cwd=built.root, input="a line\n", capture_output=True, text=True, timeout=120, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "Ada read a line\n", "done\n")
