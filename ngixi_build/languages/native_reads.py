"""What a C or Zig guest's compile may read: the guest's own folder, the project's shared source folders
(`[tool.ngixi] shared_sources`, checked by `Project.shared_sources`), the toolchain's files and the generated bindings.

A guest's sources choose files for the compiler to read (`#include "/home/u/.ssh/id_rsa"`, `#embed`, a link out of
its folder, inline assembly's `.incbin`), and what it reads can end up in a signed guest. So the build refuses,
before the compile: a C file whose preprocessing reads a file elsewhere (clang's own dependency list, `-MD -MF`),
a link out of a Zig guest's folder (Zig itself refuses `@embedFile` and `@import` outside a module's folder, but
follows links), and inline assembly other than the empty `asm volatile ("" ::: "memory")` barrier in either
language: the assembler's `.incbin` and `.include` read any file, and no dependency list shows them. clang's list
shows some names otherwise than they are (a backslash as `/`, a tab unescaped), so each listed path is walked as the
system resolves it, and a folder of the project holding such a name on the way is refused.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

from ngixi_build.files import link_out_of
from ngixi_build.stages.compile import CompileError

# A `zig cc -E` output's line markers (`# 12 "guests/g/x.h" 2`): which file the lines after come from.
_C_MARKER = r'(?P<marker>^\# (?P<line>\d+) "(?P<file>(?:\\.|[^"\\\n])*)"(?: [1-4])*$)'
_C_RAW_STRING = r'(?P<raw>(?:u8|[uUL])?R"(?P<delimiter>[^\s()\\]{0,16})\((?s:.)*?\)(?P=delimiter)")'
_C_SEPARATED_NUMBER = r"(?P<number>\.?[0-9](?:[eEpP][+-]|'[0-9A-Za-z_]|[0-9A-Za-z_.])*)"
_C_REST = (
    r'(?P<string>(?:u8|[uUL])?"(?:\\.|[^"\\\n])*")'
    r"|(?:u8|[uUL])?'(?:\\.|[^'\\\n])*'"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<newline>\n)"
    r"|(?P<other>\S)"
)
_ZIG_TOKEN = re.compile(
    r"//[^\n]*"
    r"|\\\\[^\n]*"
    r'|(?P<string>"(?:\\.|[^"\\\n])*")'
    r"|'(?:\\.|[^'\\\n])*'"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<newline>\n)"
    r"|(?P<other>\S)"
)
_C_ASSEMBLY = frozenset(("asm", "__asm", "__asm__"))
_ZIG_ASSEMBLY = frozenset(("asm",))
_QUALIFIERS = {"volatile", "__volatile", "__volatile__", "goto", "inline", "__inline", "__inline__"}
_ASSEMBLY_RULE = (
    'inline assembly is refused, other than an empty barrier (asm volatile ("" ::: "memory")): its .incbin '
    "and .include directives read any file of the build machine into the guest"
)


class Token(NamedTuple):
    text: str
    kind: str  # "string", "word" or "other"
    file: str
    line: int


def refuse_reads_outside(
    guest: str, source: str, dependencies: Sequence[str], root: Path, allowed: Sequence[Path]
) -> None:
    """Refuses a file among the compile's `dependencies` (paths relative to `root`, the project's) under none of the
    `allowed` folders once links are resolved, or whose path the list may not show as it is."""
    folders = [Path(os.path.realpath(folder)) for folder in allowed]
    unplain = cache(_unplain_name_in)
    for name in dependencies:
        try:
            read = _listed_path(root, name, unplain)
        except ValueError as problem:
            raise CompileError(f"{guest}: {source}: {problem}") from None
        if not any(read == folder or folder in read.parents for folder in folders):
            raise CompileError(
                f"{guest}: {source} reads {read}, outside the guest's folder; a guest's compile reads only its own "
                f"folder, the toolchain's headers, the generated bindings and the folders pyproject.toml's "
                f"[tool.ngixi] shared_sources names: {_what_to_do(guest, read, root)}"
            )


def _what_to_do(guest: str, read: Path, root: Path) -> str:
    """Copy the file into the guest; or, for a file of the project, declare its folder as shared."""
    copy = f"copy the file into guests/{guest}/"
    real_root = Path(os.path.realpath(root))
    if not read.is_relative_to(real_root):
        return copy
    return f'{copy}, or declare its folder there (shared_sources = ["{read.parent.relative_to(real_root).as_posix()}"])'


def _listed_path(root: Path, name: str, unplain: Callable[[str], str | None]) -> Path:
    """The real path of a file the list names, walked a part at a time as the system resolves it. clang's list
    writes a backslash in a name as `/` and leaves a tab as it is, so a folder of the project (where the files of a
    project someone else made are) holding such a name could make the list name another file than the one read:
    such a folder on the way, or a part that is not there as listed, is a ValueError."""
    project = os.path.realpath(root)
    current = "/" if os.path.isabs(name) else project
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if (current == project or current.startswith(project + os.sep)) and (problem := unplain(current)):
            raise ValueError(f"{current}/, which its compile reads through, {problem}")
        current = os.path.realpath(os.path.join(current, part))
        if not os.path.lexists(current):
            raise ValueError(f"clang's list of the files it read names {name!r}, but {current} is not there")
    return Path(current)


def _unplain_name_in(directory: str) -> str | None:
    """What is wrong with `directory`, if it holds a name with a backslash or a character that is not printable (a
    tab), or cannot be listed (it could hold one)."""
    try:
        entries = os.listdir(directory)
    except OSError as error:
        return f"cannot be listed ({error.strerror}) to check its names: make it readable"
    unplain = next((entry for entry in entries if "\\" in entry or not entry.isprintable()), None)
    if unplain is None:
        return None
    return (
        f"holds {unplain!r}, a name clang's list of the files a compile reads shows otherwise (a backslash as /, a "
        "tab as a space): rename it"
    )


def refuse_links_out(guest: str, directory: Path, shown_as: str) -> None:
    """Refuses a link in the guest's folder to a file or folder elsewhere: the compiler would follow it."""
    outside = link_out_of(directory)
    if outside is not None:
        link, target = outside
        raise CompileError(
            f"{guest}: {shown_as}/{link.relative_to(directory).as_posix()} is a link out of the guest's folder (to "
            f"{target}); a guest's compile reads only its own folder: copy the file there"
        )


def may_hold_assembly(text: str, keywords: frozenset[str]) -> bool:
    """Whether `text` has one of `keywords` as a word a tokenizer here may read: a word token starts after no letter
    or underscore (a digit before it is a token of its own unless numbers are read), so a text without such a match
    has no `asm` token however it is read, and need not be tokenized."""
    return _assembly_word(keywords).search(text) is not None


@cache
def _assembly_word(keywords: frozenset[str]) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z_])(?:{'|'.join(sorted(keywords))})(?![A-Za-z0-9_])")


def refuse_assembly(guest: str, source: str, tokens: Iterator[Token], keywords: frozenset[str]) -> None:
    """Refuses an `asm` statement of `tokens` (one source's, preprocessed for C) whose template is not empty."""
    pending = list(tokens)
    for index, token in enumerate(pending):
        if token.kind == "word" and token.text in keywords and not _empty_barrier(pending, index + 1):
            where = f"{token.file}:{token.line}"
            raise CompileError(
                f"{guest}: {where if token.file == source else f'{source} (in {where})'}: {_ASSEMBLY_RULE}"
            )


def _empty_barrier(tokens: list[Token], index: int) -> bool:
    """Whether the words after `asm` make an empty template (`("")` or `("" :`), or no assembly at all (not `(`)."""
    while index < len(tokens) and tokens[index].text in _QUALIFIERS:
        index += 1
    following = [token.text for token in tokens[index : index + 3]]
    if following[:1] != ["("]:
        return True  # `asm` as a name (C without GNU keywords), not a statement
    return following[1:2] == ['""'] and following[2:3] in ([":"], [")"])


def refuse_c_assembly(guest: str, source: str, preprocessed: str) -> None:
    """Refuses `asm` in a C source's `zig cc -E` output, in each way clang may read it: whether a quote opens a raw
    string (`R"(...)"`, GNU C's) and whether one separates a number's digits (C23's `1'000`) depend on the language
    mode and on -f switches, and a reading that is not clang's can take code for the inside of a literal."""
    if not may_hold_assembly(preprocessed, _C_ASSEMBLY):
        return
    for raw_strings, digit_separators in itertools.product((False, True), repeat=2):
        tokens = c_tokens(preprocessed, source, raw_strings=raw_strings, digit_separators=digit_separators)
        refuse_assembly(guest, source, tokens, _C_ASSEMBLY)


@cache
def _c_token_pattern(*, raw_strings: bool, digit_separators: bool) -> re.Pattern[str]:
    chosen = [_C_MARKER, *[_C_RAW_STRING] * raw_strings, *[_C_SEPARATED_NUMBER] * digit_separators, _C_REST]
    return re.compile("|".join(chosen), re.MULTILINE)


def c_tokens(preprocessed: str, source: str, *, raw_strings: bool, digit_separators: bool) -> Iterator[Token]:
    """The tokens of `zig cc -E` output, each with the file and line it came from, read with or without raw strings
    and digit separators."""
    file, line = source, 1
    pattern = _c_token_pattern(raw_strings=raw_strings, digit_separators=digit_separators)
    for match in pattern.finditer(preprocessed):
        groups = match.groupdict()
        if match["marker"]:
            file, line = match["file"].replace('\\"', '"').replace("\\\\", "\\"), int(match["line"]) - 1
        elif match["newline"]:
            line += 1
        elif groups.get("raw"):
            yield Token(match["raw"], "string", file, line)
            line += match["raw"].count("\n")
        elif groups.get("number"):
            yield Token(match["number"], "other", file, line)
        elif kind := _kind(match):
            yield Token(match[kind], kind, file, line)


def refuse_zig_assembly(guest: str, source: str, text: str) -> None:
    """Refuses `asm` in a Zig source's text."""
    if may_hold_assembly(text, _ZIG_ASSEMBLY):
        refuse_assembly(guest, source, _zig_tokens(text, source), _ZIG_ASSEMBLY)


def _zig_tokens(text: str, source: str) -> Iterator[Token]:
    """The tokens of a Zig source, without its comments and multiline string lines."""
    line = 1
    for match in _ZIG_TOKEN.finditer(text):
        if match["newline"]:
            line += 1
        elif kind := _kind(match):
            yield Token(match[kind], kind, source, line)


def _kind(match: re.Match[str]) -> str | None:
    return next((kind for kind in ("string", "word", "other") if match[kind] is not None), None)


_MAKE_PIECE = re.compile(r"\\[ #]|\$\$|.", re.DOTALL)


def make_dependencies(text: str) -> list[str]:
    """The prerequisites of a make rule as `clang -MD -MF` writes it (one target): names end at a space or a line's
    end; `\\ ` is a space in a name, `\\#` a `#`, `$$` a `$`, and any other character (a tab) is the name's."""
    _target, _colon, rest = text.replace("\\\n", " ").partition(": ")
    names, name = [], ""
    for piece in _MAKE_PIECE.findall(rest):
        if piece in (" ", "\n"):
            names.append(name)
            name = ""
        else:
            name += {"\\ ": " ", "\\#": "#", "$$": "$"}.get(piece, piece)
    return [found for found in [*names, name] if found]
