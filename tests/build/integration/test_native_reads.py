"""A C or Zig guest's compile reads only the guest's folder, the project's declared shared folders, the toolchain's
files and the generated bindings: the sources of a project someone else made chose which files of the build machine
went into the signed guest."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import wasmtime

from ngixi_build.guests import read_guest
from ngixi_build.languages import c, native_reads, zig
from ngixi_build.languages.base import CompileJob
from ngixi_build.project import Project
from ngixi_build.stages.compile import CompileError
from ngixi_runtime.spec.targets import host_triple
from tests.conftest import REPO
from tests.integration import ran_tasks, run, share_toolchains

pytestmark = pytest.mark.integration

MANIFEST = 'guest = { name = "g", version = "0.1.0" }\nexports.get = { results = ["i32"] }\n'
SECRET = "THE BUILD MACHINE'S SECRET"
# Each source reads the secret its own way; {secret} is its absolute path.
READS = {
    "an absolute #include": '#include "{secret}.h"\nint get(void) { return secret; }\n',
    "#embed": 'static const char s[] = {\n#embed "{secret}"\n};\nint get(void) { return s[0]; }\n',
    "a relative #include out of the project": '#include "../../../outside/secret.h"\n'
    + "int get(void) { return secret; }\n",
    "a link in the guest's folder": '#include "linked.h"\nint get(void) { return secret; }\n',
    "an #include in a header": '#include "include/inner.h"\nint get(void) { return secret; }\n',
}
INCBIN = '__asm__(".section .rodata.s,\\"\\",@\\n.globl s\\ns:\\n.inc" "bin \\"{secret}\\"\\n");\n'
ASSEMBLY = {  # each: where it is refused, the source, and the C standard it is built with
    "inline assembly": (
        "guests/g/main.c:1",
        INCBIN + "extern const char s[];\nint get(void) { return s[0]; }\n",
        "c17",
    ),
    "inline assembly after a raw string": (
        "guests/g/main.c:1",
        'const char *r = R"(")";' + INCBIN + "extern const char s[];\nint get(void) { return s[0] + r[0]; }\n",
        "gnu17",
    ),
    "inline assembly between digit separators, in what a GNU C reads as a raw string": (
        "guests/g/main.c:2",
        '#pragma ngixi R"(\n'  # a pragma of no compiler's: taken for nothing whatever it holds
        + "int n = 1'2; "
        + INCBIN.rstrip()
        + " int m = 3'4;\n#pragma ngixi )\"\nextern const char s[];\nint get(void) { return s[0]; }\n",
        "c23",
    ),
    "inline assembly in a header": (
        "guests/g/main.c (in guests/g/include/asm.h:2)",
        '#include "include/asm.h"\nextern const char s[];\nint get(void) { return s[0]; }\n',
        "c17",
    ),
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text(SECRET)
    (outside / "secret.h").write_text("int secret = 42;\n")
    guest = tmp_path / "project" / "guests" / "g"
    (guest / "include").mkdir(parents=True)
    (guest / "linked.h").symlink_to(outside / "secret.h")
    (guest / "include" / "inner.h").write_text(f'#include "{outside / "secret.h"}"\n')
    (guest / "include" / "asm.h").write_text("\n" + INCBIN.replace("{secret}", str(outside / "secret")))
    (tmp_path / "project" / "manifests").mkdir()
    (tmp_path / "project" / "manifests" / "g.toml").write_text(MANIFEST)
    return Project(tmp_path / "project")


def compile_guest(project: Project, source: str, language: c.C | zig.Zig = c.LANGUAGE, name: str = "main.c") -> Path:
    (project.guests_dir / "g" / name).write_text(
        source.replace("{secret}", str(project.root.parent / "outside" / "secret"))
    )
    job = CompileJob(project, read_guest(project, "g"), project.wasm_path("g"))
    language.compile(job)
    return job.out_path


@pytest.mark.parametrize("how", READS)
def test_a_c_guest_that_reads_a_file_outside_its_folder_is_refused(project: Project, how: str) -> None:
    if how != "a link in the guest's folder":
        (project.guests_dir / "g" / "linked.h").unlink()
    with pytest.raises(CompileError) as refused:
        compile_guest(project, READS[how])
    message = str(refused.value)
    assert "\n" not in message and message.startswith("g: "), message
    if how == "a link in the guest's folder":
        assert "g: guests/g/linked.h is a link out of the guest's folder (to " in message
    else:
        assert f"g: guests/g/main.c reads {project.root.parent / 'outside' / 'secret'}" in message, message
        assert "outside the guest's folder" in message and "copy the file into guests/g/" in message
    assert not project.wasm_path("g").exists()


@pytest.mark.parametrize("folder", ["q\\a\\b\\c", "d\tx"])
def test_a_c_guest_reading_through_a_name_the_dependency_list_garbles_is_refused(project: Project, folder: str) -> None:
    """clang's dependency list writes a backslash in a name as `/` (q/a/b/c: three folders deeper) and does not
    escape a tab (read as two names, the second from the project's root, where x was a link deep into the guest):
    through a folder of the guest's so named, `#embed` read a file outside the project while the list, as read,
    named only files inside the guest's folder."""
    guest = project.guests_dir / "g"
    (guest / "linked.h").unlink()
    (guest / folder).mkdir()
    for decoy in ("q/a/b/c", "include/a/b/c", "outside"):  # what the list, as read, names (zig's cache reads it)
        (guest / decoy).mkdir(parents=True)
    (guest / "outside" / "secret").write_text("a decoy")
    (guest / "d").write_text("")
    (project.root / "x").symlink_to(guest / "include" / "a" / "b" / "c")
    embed = f'#embed "{folder}/../../../../outside/secret"'
    source = f"static const char s[] = {{\n{embed}\n}};\nint get(void) {{ return s[0]; }}\n"
    with pytest.raises(CompileError, match=rf"^g: guests/g/main\.c: {re.escape(str(guest))}/, which its compile "):
        compile_guest(project, source)
    assert not project.wasm_path("g").exists()


def test_a_folder_the_check_cannot_list_is_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of the project a compile reads through that cannot be listed could hold such a name (a tarball
    keeps a mode of 0111; root lists it all the same, hence the stand-in)."""
    (project.guests_dir / "g" / "linked.h").unlink()
    unlisted, real_listdir = os.path.realpath(project.guests_dir / "g" / "include"), os.listdir

    def listdir(directory: str) -> list[str]:
        if directory == unlisted:
            raise PermissionError(13, "Permission denied")
        return real_listdir(directory)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(CompileError, match=r"include/, which its compile reads through, cannot be listed"):
        compile_guest(project, '#include "include/inner.h"\nint get(void) { return secret; }\n')


@pytest.mark.parametrize("how", ASSEMBLY)
def test_a_c_guests_inline_assembly_is_refused(project: Project, how: str) -> None:
    (project.guests_dir / "g" / "linked.h").unlink()
    where, source, standard = ASSEMBLY[how]
    (project.root / "manifests" / "g.toml").write_text(MANIFEST + f'compile.flags = ["-std={standard}"]\n')
    with pytest.raises(CompileError, match=rf"^g: {re.escape(where)}: inline assembly is refused"):
        compile_guest(project, source)
    assert not project.wasm_path("g").exists()


def test_a_c_guest_reading_its_own_headers_the_bindings_and_libc_builds(project: Project) -> None:
    (project.guests_dir / "g" / "linked.h").unlink()
    (project.guests_dir / "g" / "include" / "inner.h").write_text("#define ANSWER 42\n")
    source = (
        '#include <string.h>\n#include "ngixi.h"\n#include "include/inner.h"\n'
        'int get(void) { __asm__ __volatile__("" ::: "memory"); return ANSWER + (int)strlen(""); }\n'
    )
    assert compile_guest(project, source).read_bytes()[:4] == b"\0asm"


def test_a_zig_guests_link_out_or_assembly_is_refused(project: Project) -> None:
    (project.guests_dir / "g" / "linked.h").unlink()
    (project.guests_dir / "g" / "include").rename(project.guests_dir / "g" / ".hidden")
    (project.guests_dir / "g" / ".hidden" / "x.zig").write_text('comptime { asm (".incbin \\"/etc/passwd\\"");\n}\n')
    with pytest.raises(CompileError, match=r"^g: guests/g/\.hidden/x\.zig:1: inline assembly is refused"):
        compile_guest(project, "export fn get() i32 { return 1; }\n", zig.LANGUAGE, "main.zig")
    (project.guests_dir / "g" / ".hidden" / "x.zig").unlink()
    (project.guests_dir / "g" / "key.txt").symlink_to(project.root.parent / "outside" / "secret")
    with pytest.raises(CompileError, match=r"^g: guests/g/key\.txt is a link out of the guest's folder \(to "):
        compile_guest(project, 'export fn get() u8 { return @embedFile("key.txt")[0]; }\n', zig.LANGUAGE, "main.zig")
    assert not project.wasm_path("g").exists()


def test_an_empty_barrier_and_asm_in_comments_or_strings_are_not_assembly() -> None:
    text = 'asm volatile ("" ::: .{ .memory = true }); // asm (".incbin")\nconst s = "asm (";\n\\\\ asm ("x")\n'
    native_reads.refuse_zig_assembly("g", "main.zig", text)
    c_text = (
        '# 1 "a.c"\nint asm = 1; char *s = "__asm__(\\".incbin\\")";\n__asm__ goto ("" : : : : out);\nint n = 1\'000;\n'
    )
    native_reads.refuse_c_assembly("g", "a.c", c_text)
    made = "out.i: guests/g/a\\ b.c \\\n  /usr/x$$y.h guests/g/\\#c.h guests/g/d\tx.h\n"
    assert native_reads.make_dependencies(made) == ["guests/g/a b.c", "/usr/x$y.h", "guests/g/#c.h", "guests/g/d\tx.h"]


@pytest.mark.parametrize(
    ("text", "may_hold"),
    [("wasm_x = __wasm32__; asm2; x_asm", False), ("1asm", True), ('"s"__asm__', True), ("\nasm\n", True)],
)
def test_only_a_text_with_an_asm_word_is_tokenized(text: str, may_hold: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A preprocessed C file names `wasm` hundreds of times and rarely holds `asm`: tokenizing it four ways in Python
    is most of the check's time."""
    assert native_reads.may_hold_assembly(text, frozenset(("asm", "__asm", "__asm__"))) is may_hold
    statement = [native_reads.Token(*token, "a.c", 1) for token in (("asm", "word"), ("(", "other"), ('"x"', "string"))]
    monkeypatch.setattr(native_reads, "c_tokens", lambda *_, **__: iter(statement))
    refused = pytest.raises(CompileError) if may_hold else contextlib.nullcontext()
    with refused:
        native_reads.refuse_c_assembly("g", "a.c", text)


def test_a_header_outside_the_guest_is_refused_until_its_folder_is_declared_shared(project: Project) -> None:
    (project.guests_dir / "g" / "linked.h").unlink()
    (project.guests_dir / "common").mkdir()
    (project.guests_dir / "common" / "util.h").write_text("#define ANSWER 42\n")
    (project.root / "lib").mkdir()
    (project.root / "lib" / "twice.h").write_text("#define TWICE(x) (2 * (x))\n")
    source = '#include "../common/util.h"\n#include "twice.h"\nint get(void) { return TWICE(ANSWER); }\n'
    with pytest.raises(CompileError) as refused:
        compile_guest(project, source.replace('#include "twice.h"', "#define TWICE(x) x"))
    assert f"g: guests/g/main.c reads {project.guests_dir / 'common' / 'util.h'}, outside" in str(refused.value)
    assert str(refused.value).endswith('declare its folder there (shared_sources = ["guests/common"])')
    (project.root / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["guests/common", "lib"]\n')
    assert compile_guest(Project(project.root), source).read_bytes()[:4] == b"\0asm"  # lib/ is on the include path


def test_a_c_guest_links_what_it_uses_of_the_shared_folders_c_files(project: Project) -> None:
    """Each shared `.c` file is compiled as the guest's own are and linked as a static library's member: only when
    the guest uses something it defines and does not define itself. Its reads are held to the same rules."""
    (project.guests_dir / "g" / "linked.h").unlink()
    (project.root / "lib").mkdir()
    (project.root / "lib" / "twice.h").write_text("int twice(int x);\n")
    (project.root / "lib" / "twice.c").write_text('#include "twice.h"\nint twice(int x) { return 2 * x; }\n')
    (project.root / "lib" / "other.c").write_text("int get(void) { return -1; }\n")  # the guest's own get wins
    (project.root / "lib" / "reads.c").write_text(f'#include "{project.root.parent / "outside" / "secret.h"}"\n')
    (project.root / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["lib"]\n')
    source = '#include "twice.h"\nint get(void) { return twice(21); }\n'
    with pytest.raises(CompileError, match=r"^g: lib/reads\.c reads .*outside/secret\.h, outside the guest's folder"):
        compile_guest(Project(project.root), source)
    (project.root / "lib" / "reads.c").unlink()
    wasm = compile_guest(Project(project.root), source)
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    get = linker.instantiate(store, wasmtime.Module.from_file(engine, str(wasm))).exports(store)["get"]
    assert isinstance(get, wasmtime.Func) and get(store) == 42


SHARED_GUEST = '#include "../common/util.h"\nint get(void) {{ return ANSWER * {factor}; }}\n'


def test_two_c_guests_sharing_a_header_build_and_rebuild_when_it_changes(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "guests" / "common").mkdir(parents=True)
    (root / "guests" / "common" / "util.h").write_text("#define ANSWER 21\n")
    (root / "manifests").mkdir()
    for name, factor in (("a", 1), ("b", 2)):
        (root / "guests" / name).mkdir()
        (root / "guests" / name / "main.c").write_text(SHARED_GUEST.format(factor=factor))
        (root / "manifests" / f"{name}.toml").write_text(MANIFEST.replace('"g"', f'"{name}"'))
    targets = json.dumps([host_triple()])
    (root / "pyproject.toml").write_text(f'[tool.ngixi]\ntargets = {targets}\nshared_sources = ["guests/common"]\n')
    shutil.copy(REPO / "ngixi_build" / "templates" / "project" / "dodo.py.tmpl", root / "dodo.py")
    share_toolchains(REPO / ".ngixi", root / ".ngixi")
    built = run(root, "doit", "build")
    assert "not built" not in built.stdout + built.stderr  # guests/common/ is no guest without a manifest
    project = Project(root)
    first = {name: project.wasm_path(name).read_bytes() for name in ("a", "b")}
    assert not {"compile:a", "compile:b"} & ran_tasks(run(root, "doit", "build").stdout)
    (root / "guests" / "common" / "util.h").write_text("#define ANSWER 50\n")
    assert {"compile:a", "compile:b"} <= ran_tasks(run(root, "doit", "build").stdout)
    assert all(project.wasm_path(name).read_bytes() != first[name] for name in ("a", "b"))
    moved = root.rename(tmp_path / "moved")  # with its .ngixi/: doit's record names the files from the root
    assert ran_tasks(run(moved, "doit", "build").stdout) == set()
    assert ran_tasks(run(moved / "guests" / "a", "ngixi", "build").stdout) == set()


def test_a_zig_guest_imports_a_shared_folders_file_as_a_module(project: Project) -> None:
    (project.guests_dir / "g" / "linked.h").unlink()
    (project.root / "lib").mkdir()
    (project.root / "lib" / "answer.zig").write_text('const ngixi = @import("ngixi");\npub const value: i32 = 42;\n')
    (project.root / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["lib"]\n')
    source = 'const answer = @import("answer");\nexport fn get() i32 { return answer.value; }\n'
    assert compile_guest(project, source, zig.LANGUAGE, "main.zig").read_bytes()[:4] == b"\0asm"
    (project.root / "lib" / "ngixi.zig").write_text("\n")
    with pytest.raises(CompileError, match=r"shared_sources: lib/ngixi\.zig would be the Zig module 'ngixi', which"):
        compile_guest(project, source, zig.LANGUAGE, "main.zig")


FIFO_READS: dict[str, tuple[str, c.C | zig.Zig, str, str]] = {
    "c": ('#include "fifo.h"\nint get(void) { return 1; }\n', c.LANGUAGE, "main.c", "zig cc"),
    "zig": ('export fn get() u8 { return @embedFile("fifo.h")[0]; }\n', zig.LANGUAGE, "main.zig", "zig build-exe"),
}


@pytest.mark.parametrize("language", FIFO_READS)
def test_a_source_that_makes_the_compiler_wait_forever_stops_at_the_time_limit(
    project: Project, monkeypatch: pytest.MonkeyPatch, language: str
) -> None:
    """A FIFO in the guest's folder (no link, so no read outside it) blocks the compiler's read for ever."""
    source, compiler, name, tool = FIFO_READS[language]
    (project.guests_dir / "g" / "linked.h").unlink()
    os.mkfifo(project.guests_dir / "g" / "fifo.h")
    monkeypatch.setenv("NGIXI_TOOL_LIMITS", "seconds=2")
    with pytest.raises(CompileError) as stopped:
        compile_guest(project, source, compiler, name)
    message = str(stopped.value)
    assert message.startswith(f"g: {tool}: stopped at its time limit of 2 s (") and "\n" not in message, message
    assert message.endswith("raise it: NGIXI_TOOL_LIMITS=seconds=N)"), message
    assert not project.wasm_path("g").exists()


def test_an_include_of_dev_zero_is_refused_without_reading_it(project: Project) -> None:
    """The preprocessing pass reads /dev/zero as empty (without its -MD, clang reads it for ever): the file read
    outside the guest's folder is refused before the compile reads it."""
    (project.guests_dir / "g" / "linked.h").unlink()
    with pytest.raises(CompileError, match=r"^g: guests/g/main\.c reads /dev/zero, outside the guest's folder"):
        compile_guest(project, '#include "/dev/zero"\nint get(void) { return 1; }\n')


def test_an_embed_of_a_file_that_is_not_there_fails_in_one_line(project: Project) -> None:
    """zig cc -E took it without an error and wrote no list of the files it read: the check's read of that list
    failed with a traceback."""
    (project.guests_dir / "g" / "linked.h").unlink()
    with pytest.raises(CompileError, match=r"^g: guests/g/main\.c: its preprocessing listed no files it read"):
        compile_guest(project, 'static const char s[] = {\n#embed "missing"\n};\nint get(void) { return s[0]; }\n')
