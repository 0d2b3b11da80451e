"""A C guest's `[compile]` table: the files to compile, its flags (defines among them), include dirs and libraries.

Every path is a relative one inside the guest's directory (so the build's up-to-date check and watch
mode see each file the compile reads), and a flag is one of a few forms that change the code, never where
it is written, what it links against outside the toolchain or which host files it reads: `-o`, `-I`, `-L`,
`-include`, `-Wl,`, `-fplugin=` and the like are refused, each naming its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ngixi_runtime.guest.build_command import is_inside
from ngixi_runtime.spec.schema import Problems, array, optional_table, string_item

COMPILE_KEYS = ("sources", "include", "flags", "libs")
DEFAULT_SOURCES = ("**/*.c",)

_PATH = re.compile(r"^[^\0]+$")
_LIBRARY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+.-]*$")
# -O levels (not -O0: it links a debug wasi-libc importing WASI clocks and files), warnings (not -Wl,/-Wa,/-Wp,),
# a language standard, defines (-D/-U), and code generation -f/-m switches without a path in them.
_FLAG = re.compile(
    r"^(-O[123sz]|-W[a-z][a-z0-9=+-]*|-std=[a-z0-9+]+|-D[A-Za-z_][A-Za-z0-9_]*(=[^\0\n]*)?|-U[A-Za-z_][A-Za-z0-9_]*"
    r"|-f[a-z][a-z0-9-]*(=[A-Za-z0-9_.+-]+)?|-m[a-z][a-z0-9-]*(=[A-Za-z0-9_.+-]+)?)$"
)
# Switches of those forms that read host files, write elsewhere or change what the output is.
_REFUSED_SWITCHES = re.compile(
    r"^-(f(no-)?(plugin|profile|sanitize|coverage|crash-diagnostics|embed-bitcode|use-ld|save-optimization|"
    r"record-command-line|debug-prefix-map|file-prefix-map|macro-prefix-map|time-trace|proc-stat-report|"
    r"pass-plugin|instrument|xray|stack-usage)|f[a-z0-9-]*(path|dir|file|map|module|output|report)|mexec-model|mllvm)"
)
_LIBRARY_RULE = "is not a library name (m for -lm)"
_INSIDE_RULE = 'must be a relative path inside the guest\'s directory (no "..")'
_path = string_item(_PATH, _INSIDE_RULE)
_FLAG_RULE = (
    "is not a flag a guest may pass: use -O1/-O2/-O3/-Os/-Oz, -W<warning>, -std=<standard>, -DNAME[=VALUE], "
    "-UNAME or an -f/-m code generation switch; include dirs, sources and libraries go in [compile] include, "
    "sources and libs, and the build chooses the output, the target and the linker's flags"
)


class CompileOptions(NamedTuple):
    """Paths relative to guests/<name>/ (`sources`: globs); `flags` come after the build's own."""

    sources: tuple[str, ...] = DEFAULT_SOURCES
    include: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()


def parse_compile(raw: Mapping[str, Any], problems: Problems) -> CompileOptions | None:
    """The `[compile]` table, if the manifest has one; every problem goes to `problems`."""
    table = optional_table(raw, "compile", COMPILE_KEYS, problems)
    if table is None:
        return None
    return CompileOptions(
        sources=array(table, "sources", "compile.sources", problems, item=_inside, default=DEFAULT_SOURCES),
        include=array(table, "include", "compile.include", problems, item=_inside),
        flags=array(table, "flags", "compile.flags", problems, item=_flag),
        libs=array(table, "libs", "compile.libs", problems, item=string_item(_LIBRARY, _LIBRARY_RULE)),
    )


def _inside(value: object, field: str, problems: Problems) -> str | None:
    checked = _path(value, field, problems)
    if checked is not None and not is_inside(checked):
        problems.add(field, f'"{checked}" {_INSIDE_RULE}')
        return None
    return checked


def _flag(value: object, field: str, problems: Problems) -> str | None:
    checked = string_item(_FLAG, _FLAG_RULE)(value, field, problems)
    if checked is not None and _REFUSED_SWITCHES.match(checked):
        problems.add(field, f'"{checked}" {_FLAG_RULE}')
        return None
    return checked


def lenient_compile(raw: Mapping[str, Any]) -> CompileOptions | None:
    """The `[compile]` table for declaring build steps from a manifest that may be broken: None when it is wrong."""
    problems = Problems("")
    options = parse_compile(raw, problems)
    return None if problems.lines else options
