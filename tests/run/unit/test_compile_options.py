"""A C guest's `[compile]` table: paths inside the guest's directory, and only flags that change the code."""

from __future__ import annotations

import re

import pytest

from ngixi_runtime.guest.compile_options import CompileOptions
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest

GUEST = '[guest]\nname = "calc"\nversion = "0.1.0"\n{language}\n[compile]\n'


def compile_table(text: str, *, language: str = "") -> CompileOptions | None:
    return parse_manifest(GUEST.format(language=language) + text, source="calc.toml", stem="calc").compile


def test_a_real_c_projects_options_are_taken_in_order() -> None:
    options = compile_table(
        'sources = ["src/*.c", "lib/**/*.c"]\ninclude = ["include"]\nlibs = ["m"]\n'
        'flags = ["-O3", "-DFOO", "-DVERSION=\\"1.2\\"", "-UBAR", "-Wall", "-Wno-unused", "-std=c11", '
        '"-fno-builtin", "-fvisibility=hidden", "-msimd128", "-mcpu=generic"]\n'
    )
    assert options is not None and options.sources == ("src/*.c", "lib/**/*.c") and options.include == ("include",)
    assert options.flags[:3] == ("-O3", "-DFOO", '-DVERSION="1.2"') and options.libs == ("m",)
    assert compile_table("") == CompileOptions(sources=("**/*.c",))
    assert compile_table("", language='language = "c"') is not None


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
        ("ldflags = []", "compile.ldflags"),
    ],
)
def test_what_would_break_the_output_or_reproducibility_is_refused_by_field(text: str, field: str) -> None:
    with pytest.raises(ManifestError, match=rf"^calc\.toml: {re.escape(field)}: "):
        compile_table(text + "\n")


@pytest.mark.parametrize("language", ['language = "zig"', 'language = "assemblyscript"'])
def test_compile_is_for_c_guests(language: str) -> None:
    with pytest.raises(ManifestError, match=r"^calc\.toml: compile: is for C guests"):
        compile_table("", language=language)
