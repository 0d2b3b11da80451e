"""A guest's `[compile]` table. A C guest's: the files to compile, its flags (defines among them), include dirs and
libraries. A Zig guest's: its root source, its optimize mode and the modules its sources `@import` by name.

Every path is a relative one inside the guest's directory (so the build's up-to-date check and watch
mode see each file the compile reads), and a flag is one of a few forms that change the code, never where
it is written, what it links against outside the toolchain or which host files it reads: `-o`, `-I`, `-L`,
`-include`, `-Wl,`, `-fplugin=` and the like are refused, each naming its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ngixi_runtime.guest.build_command import is_inside
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import (
    PATH_BYTES,
    Problems,
    array,
    integer,
    optional_table,
    string,
    string_item,
    suggestion,
    table,
    type_name,
)

COMPILE_KEYS = ("sources", "include", "flags", "libs", "setjmp", "stack_bytes")
ZIG_COMPILE_KEYS = ("root", "optimize", "modules")
# Not Debug: its panic handler imports WASI clocks and files, which a guest is not granted for that.
ZIG_OPTIMIZE_MODES = ("ReleaseSmall", "ReleaseFast", "ReleaseSafe")
# Names zig gives a module itself, and the generated bindings' module.
ZIG_RESERVED_MODULES = ("std", "builtin", "root", "ngixi")
DEFAULT_SOURCES = ("**/*.c",)
DEFAULT_STACK_BYTES = 65536  # wasm-ld's own default; SQLite's resolver overflows it at 500 nested calls
_STACK_BYTES_RANGE = (4096, 1 << 30)

_PATH = re.compile(r"^[^\0]+$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_LIBRARY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$")
# -O levels (not -O0: it links a debug wasi-libc importing WASI clocks and files), warnings (-w, -pedantic, not
# -Wl,/-Wa,/-Wp,), a language standard, defines (-D/-U; a function-like one too, `-Dl_popen(L,c,m)=0`), and code
# generation -f/-m switches without a path in them.
_FLAG = re.compile(
    r"^(-O[123sz]|-w|-pedantic(-errors)?|-W[a-z][a-z0-9=+-]*|-std=[a-z0-9+]+"
    r"|-D[A-Za-z_][A-Za-z0-9_]*(\([A-Za-z0-9_, .]*\))?(=[^\0\n]*)?|-U[A-Za-z_][A-Za-z0-9_]*"
    r"|-f[a-z][a-z0-9-]*(=[A-Za-z0-9_.+-]+)?|-m[a-z][a-z0-9-]*(=[A-Za-z0-9_.+-]+)?)$"
)
# Switches of those forms that read host files, write elsewhere or change what the output is.
_REFUSED_SWITCHES = re.compile(
    r"^-(f(no-)?(plugin|profile|sanitize|coverage|crash-diagnostics|embed-bitcode|use-ld|save-optimization|"
    r"record-command-line|debug-prefix-map|file-prefix-map|macro-prefix-map|time-trace|proc-stat-report|"
    r"pass-plugin|instrument|xray|stack-usage)|f[a-z0-9-]*(path|dir|file|map|module|output|report)|mexec-model|mllvm)"
)
_LIBRARY_RULE = "is not a library name (m for -lm)"
_SETJMP_RULE = (
    "is not a flag a guest may pass: for setjmp/longjmp (what wasi-libc's `-mllvm -wasm-enable-sjlj` is for), set "
    "`setjmp = true` in [compile]"
)
_INSIDE_RULE = 'must be a relative path inside the guest\'s directory (no "..")'
_path = string_item(_PATH, _INSIDE_RULE, limit=PATH_BYTES)
_FLAG_RULE = (
    "is not a flag a guest may pass: use -O1/-O2/-O3/-Os/-Oz, -W<warning>, -w, -pedantic, -std=<standard>, "
    "-DNAME[(ARGS)][=VALUE], -UNAME or an -f/-m code generation switch; include dirs, sources and libraries go in "
    "[compile] include, sources and libs, and the build chooses the output, the target and the linker's flags"
)


class CCompileOptions(NamedTuple):
    """A C guest's `[compile]` table: paths relative to guests/<name>/ (`sources`: globs); `flags` come after the
    build's own."""

    sources: tuple[str, ...] = DEFAULT_SOURCES
    include: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()
    setjmp: bool = False  # setjmp/longjmp through WebAssembly exception handling (a module only Wasmtime runs)
    stack_bytes: int = DEFAULT_STACK_BYTES  # the C stack, at the bottom of the memory (an overflow traps)


class ZigCompileOptions(NamedTuple):
    """A Zig guest's table: `root` and each module's path relative to guests/<name>/; `modules` in name order."""

    root: str | None = None
    optimize: str = ZIG_OPTIMIZE_MODES[0]
    modules: tuple[tuple[str, str], ...] = ()


def parse_compile(
    raw: Mapping[str, Any], problems: Problems, language: str | None = None
) -> CCompileOptions | ZigCompileOptions | None:
    """The `[compile]` table, if the manifest has one: a Zig guest's when its language is zig, or (a language told by
    the guest's files) when it has a key only Zig's table has; else a C guest's. Every problem goes to `problems`."""
    keys = raw.get("compile")
    zig_keys = isinstance(keys, dict) and bool(set(keys) & set(ZIG_COMPILE_KEYS))
    if language == "zig" or (language is None and zig_keys):
        return _parse_zig(raw, problems)
    table = optional_table(raw, "compile", COMPILE_KEYS, problems)
    if table is None:
        return None
    return CCompileOptions(
        sources=array(table, "sources", "compile.sources", problems, item=_inside, default=DEFAULT_SOURCES),
        include=array(table, "include", "compile.include", problems, item=_inside),
        flags=array(table, "flags", "compile.flags", problems, item=_flag),
        libs=array(table, "libs", "compile.libs", problems, item=string_item(_LIBRARY, _LIBRARY_RULE)),
        setjmp=_boolean(table, "setjmp", "compile.setjmp", problems),
        stack_bytes=_stack_bytes(table, problems),
    )


def _stack_bytes(raw: Mapping[str, Any], problems: Problems) -> int:
    low, high = _STACK_BYTES_RANGE
    field = "compile.stack_bytes"
    value = integer(raw, "stack_bytes", field, problems, default=DEFAULT_STACK_BYTES, low=low, high=high)
    if value % 16:
        problems.add(field, f"must be a multiple of 16 (the stack's alignment), not {value}")
    return value


def _boolean(raw: Mapping[str, Any], key: str, field: str, problems: Problems) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.add(field, f"must be true or false, not {type_name(value)}")
        return False
    return value


def compile_language(options: CCompileOptions | ZigCompileOptions) -> str:
    """The language whose guests take this table."""
    return "zig" if isinstance(options, ZigCompileOptions) else "c"


def misplaced_compile(options: CCompileOptions | ZigCompileOptions, language: str) -> str:
    """Why a guest in `language` cannot take this table, and what it takes instead."""
    keys = {"c": COMPILE_KEYS, "zig": ZIG_COMPILE_KEYS}.get(language)
    if keys is None:
        return f"is for C and Zig guests, and this is {_a(language)} {language} guest; remove it"
    takes = f"{_a(language)} {language} guest's takes {', '.join(keys)}"
    return f"this table is for {compile_language(options)} guests; {takes}"


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _parse_zig(raw: Mapping[str, Any], problems: Problems) -> ZigCompileOptions | None:
    found = optional_table(raw, "compile", ZIG_COMPILE_KEYS, problems)
    if found is None:
        return None
    root = _zig_source(found["root"], "compile.root", problems) if "root" in found else None
    optimize = string(found, "optimize", "compile.optimize", problems, default=ZIG_OPTIMIZE_MODES[0])
    if optimize and optimize not in ZIG_OPTIMIZE_MODES:
        choices = suggestion(optimize, ZIG_OPTIMIZE_MODES, "allowed")
        debug = " (Debug's panic handler imports WASI clocks and files; ReleaseSafe keeps the safety checks)"
        problems.add("compile.optimize", f'"{optimize}" is not an optimize mode a guest may use; {choices}{debug}')
    modules = table(found, "modules", "compile.modules", problems)
    return ZigCompileOptions(
        root=root,
        optimize=optimize,
        modules=tuple(sorted(_zig_modules(modules, problems))),
    )


def _zig_modules(modules: Mapping[str, Any], problems: Problems) -> list[tuple[str, str]]:
    checked = []
    for name, path in modules.items():
        field = f"compile.modules.{name}"
        if not _MODULE_NAME.match(name) or name in ZIG_RESERVED_MODULES:
            reserved = ", ".join(ZIG_RESERVED_MODULES)
            problems.add(field, f"a module name is a Zig identifier, and not one of {reserved}")
        source = _zig_source(path, field, problems)
        if source is not None:
            checked.append((name, source))
    return checked


def _zig_source(value: object, field: str, problems: Problems) -> str | None:
    checked = _inside(value, field, problems)
    if checked is not None and not checked.endswith(".zig"):
        problems.add(field, f'"{checked}" is not a .zig file')
        return None
    return checked


def _inside(value: object, field: str, problems: Problems) -> str | None:
    checked = _path(value, field, problems)
    if checked is not None and not is_inside(checked):
        problems.add(field, f'"{checked}" {_INSIDE_RULE}')
        return None
    return checked


def _flag(value: object, field: str, problems: Problems) -> str | None:
    if value in ("-mllvm", "-wasm-enable-sjlj"):
        problems.add(field, f'"{value}" {_SETJMP_RULE}')
        return None
    checked = string_item(_FLAG, _FLAG_RULE, limit=PATH_BYTES)(value, field, problems)
    if checked is not None and _REFUSED_SWITCHES.match(checked):
        problems.add(field, f'"{checked}" {_FLAG_RULE}')
        return None
    return checked


def lenient_compile(raw: Mapping[str, Any], language: str | None) -> CCompileOptions | ZigCompileOptions | None:
    """The `[compile]` table for declaring build steps from a manifest that may be broken: None when it is wrong."""
    problems = Problems("")
    options = parse_compile(raw, problems, language)
    return None if problems.lines else options
