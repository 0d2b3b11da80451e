"""A C or Zig guest's `[compile]` table: paths inside the guest's directory, only flags that change the code (C), an
optimize mode that imports nothing more and modules named as Zig names them (Zig)."""

from __future__ import annotations

import re

import pytest

from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest

GUEST = '[guest]\nname = "calc"\nversion = "0.1.0"\n{language}\n[compile]\n'


def compile_table(text: str, *, language: str = "") -> CCompileOptions | ZigCompileOptions | None:
    return parse_manifest(GUEST.format(language=language) + text, source="calc.toml", stem="calc").compile


def test_a_real_c_projects_options_are_taken_in_order() -> None:
    options = compile_table(
        'sources = ["src/*.c", "lib/**/*.c"]\ninclude = ["include"]\nlibs = ["m"]\n'
        'flags = ["-O3", "-DFOO", "-DVERSION=\\"1.2\\"", "-UBAR", "-Wall", "-Wno-unused", "-std=c11", '
        '"-fno-builtin", "-fvisibility=hidden", "-msimd128", "-mcpu=generic", "-w", "-pedantic"]\n'
    )
    assert isinstance(options, CCompileOptions)
    assert options.sources == ("src/*.c", "lib/**/*.c") and options.include == ("include",)
    assert options.flags[:3] == ("-O3", "-DFOO", '-DVERSION="1.2"') and options.libs == ("m",)
    assert compile_table("") == CCompileOptions(sources=("**/*.c",))
    assert compile_table("", language='language = "c"') is not None


def test_a_real_c_programs_porting_knobs_are_defines_and_setjmp_is_a_key() -> None:
    """Lua's ports override its function-like macros from the command line (`-Dl_popen(L,c,m)=...`); setjmp/longjmp
    is `setjmp = true`, since wasi-libc's own advice (`-mllvm -wasm-enable-sjlj`) is one flag of several it needs."""
    options = compile_table(
        'flags = ["-Dlua_tmpnam(b,e)=(e = 1)", "-Dlua_stdin_is_tty()=0", "-Df(a, b, ...)=g(a)"]\nsetjmp = true\n'
    )
    assert isinstance(options, CCompileOptions) and options.setjmp
    assert options.flags == ("-Dlua_tmpnam(b,e)=(e = 1)", "-Dlua_stdin_is_tty()=0", "-Df(a, b, ...)=g(a)")
    assert compile_table('flags = ["-O2"]\n') == CCompileOptions(flags=("-O2",), setjmp=False, stack_bytes=65536)
    assert compile_table("stack_bytes = 1048576\n") == CCompileOptions(stack_bytes=1048576)
    with pytest.raises(ManifestError) as refused:
        compile_table('flags = ["-mllvm", "-wasm-enable-sjlj"]\n')
    for index in (0, 1):
        assert f"calc.toml: compile.flags[{index}]: " in str(refused.value)
    assert "set `setjmp = true` in [compile]" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('flags = ["-o", "x.wasm"]', "compile.flags[0]"),
        ('flags = ["-O2", "-Iinclude"]', "compile.flags[1]"),
        ('flags = ["-O0"]', "compile.flags[0]"),
        ('flags = ["-Wl,--export-all"]', "compile.flags[0]"),
        ('flags = ["-include", "x.h"]', "compile.flags[0]"),
        ('flags = ["-fplugin=evil.so"]', "compile.flags[0]"),
        ('flags = ["-fsanitize=undefined"]', "compile.flags[0]"),
        ('flags = ["-fdebug-prefix-map=/a=/b"]', "compile.flags[0]"),
        ('flags = ["-mexec-model=command"]', "compile.flags[0]"),
        ('flags = ["-mllvm"]', "compile.flags[0]"),
        ('flags = ["-fmodules-cache-path=cache"]', "compile.flags[0]"),
        ('flags = ["-fdebug-compilation-dir=x"]', "compile.flags[0]"),
        ('flags = ["--target=x86_64-linux"]', "compile.flags[0]"),
        ('flags = ["main.c"]', "compile.flags[0]"),
        ('flags = "-O2"', "compile.flags"),
        ('sources = ["../other/x.c"]', "compile.sources[0]"),
        ('sources = ["/etc/x.c"]', "compile.sources[0]"),
        ('include = ["/usr/include"]', "compile.include[0]"),
        ('libs = ["-lm"]', "compile.libs[0]"),
        ('libs = ["../m"]', "compile.libs[0]"),
        ('setjmp = "yes"', "compile.setjmp"),
        ("stack_bytes = 1000", "compile.stack_bytes"),
        ("stack_bytes = 65540", "compile.stack_bytes"),
        ('stack_bytes = "1M"', "compile.stack_bytes"),
        ('flags = ["-Df(x)(y)=1"]', "compile.flags[0]"),
        ('flags = ["-wall"]', "compile.flags[0]"),
        ('flags = ["-pedantic-x"]', "compile.flags[0]"),
        ("ldflags = []", "compile.ldflags"),
    ],
)
def test_what_would_break_the_output_or_reproducibility_is_refused_by_field(text: str, field: str) -> None:
    with pytest.raises(ManifestError, match=rf"^calc\.toml: {re.escape(field)}: "):
        compile_table(text + "\n")


@pytest.mark.parametrize(
    ("language", "table", "message"),
    [
        ("assemblyscript", "", "compile: is for C and Zig guests, and this is an assemblyscript guest; remove it"),
        ("python", 'optimize = "ReleaseFast"', "compile: is for C and Zig guests, and this is a python guest"),
        (
            "c",
            'optimize = "ReleaseFast"',
            "compile.optimize: unknown key; allowed: sources, include, flags, libs, setjmp, stack_bytes",
        ),
        ("zig", 'flags = ["-O3"]', "compile.flags: unknown key; allowed: root, optimize, modules"),
    ],
)
def test_a_compile_table_is_for_its_own_language(language: str, table: str, message: str) -> None:
    with pytest.raises(ManifestError, match=f"(?m)^calc\\.toml: {re.escape(message)}"):
        compile_table(table, language=f'language = "{language}"')


def test_a_zig_guests_table_names_its_root_optimize_mode_and_modules() -> None:
    text = 'root = "src/guest.zig"\noptimize = "ReleaseFast"\n'
    text += '[compile.modules]\nshapes = "src/shapes.zig"\nutf = "lib/utf.zig"\n'
    assert compile_table(text, language='language = "zig"') == ZigCompileOptions(
        root="src/guest.zig", optimize="ReleaseFast", modules=(("shapes", "src/shapes.zig"), ("utf", "lib/utf.zig"))
    )
    assert compile_table('optimize = "ReleaseSafe"\n') == ZigCompileOptions(optimize="ReleaseSafe")  # told by its keys
    assert compile_table("", language='language = "zig"') == ZigCompileOptions()


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ('optimize = "Debug"', "compile.optimize", "Debug's panic handler imports WASI clocks and files"),
        ('optimize = "ReleaseSmal"', "compile.optimize", 'did you mean "ReleaseSmall"?'),
        ('root = "../x.zig"', "compile.root", "inside the guest's directory"),
        ('root = "main.c"', "compile.root", "is not a .zig file"),
        ('flags = ["-O3"]', "compile.flags", "unknown key; allowed: root, optimize, modules"),
        ('[compile.modules]\nstd = "std.zig"', "compile.modules.std", "not one of std, builtin, root, ngixi"),
        ('[compile.modules]\n"my-mod" = "m.zig"', "compile.modules.my-mod", "a module name is a Zig identifier"),
        ('[compile.modules]\nm = "/etc/m.zig"', "compile.modules.m", "inside the guest's directory"),
    ],
)
def test_a_zig_table_refuses_what_zig_could_not_build_reproducibly_by_field(text: str, field: str, says: str) -> None:
    with pytest.raises(ManifestError, match=rf"^calc\.toml: {re.escape(field)}: .*{re.escape(says)}"):
        compile_table(text + "\n", language='language = "zig"')
