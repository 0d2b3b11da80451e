"""A component manifest's WIT type text and smoke values as a hostile author writes them: odd, huge and deeply
nested types, each refused in one line naming its field or left unchecked, never a traceback; the work per smoke
entry does not grow with the size of its export's types."""

from __future__ import annotations

import re

import pytest

from ngixi_runtime.guest import smoke_values
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest
from ngixi_runtime.spec.schema import DEPTH

HEAD = '[guest]\nname = "echo"\nversion = "0.1.0"\nabi = "component"\n'


def export(params: str, results: str = "u8") -> str:
    return HEAD + f"[exports.f]\nparams = [{params!r}]\nresults = [{results!r}]\n"


def lines(manifest: str) -> list[str]:
    try:
        parse_manifest(manifest, source="m.toml", stem="echo")
    except ManifestError as error:
        return list(error.lines)
    return []


@pytest.mark.parametrize(
    "text",
    [
        "list<u8, u8>",
        "option<u8, string>",
        "result<u8, u8, u8>",
        "list<_>",
        "option<_>",
        "tuple<_>",
        "tuple<>",
        "list<>",
        "record { a: u8, a: string }",
        "record { a: u8 b: u8 }",
        "flags { a: u8 }",
        "enum { , }",
        "variant { a(u8 }",
        "record { : }",
    ],
)
def test_a_type_text_no_wit_type_has_is_left_unchecked_never_a_crash(text: str) -> None:
    assert smoke_values.parse_wit_type(text) is None
    found = lines(export(text) + '[[smoke]]\ncall = "f"\nargs = [[1]]\nexpect = 1\n')
    assert all(line.startswith("m.toml: ") and "\n" not in line for line in found), found


def test_a_type_nested_deeper_than_a_manifest_value_may_be_is_refused_in_one_line() -> None:
    deep = "list<" * 500 + "u8" + ">" * 500  # under the 64 KiB of a string, far over the stack of a recursive read
    found = lines(export(deep, deep) + '[[smoke]]\ncall = "f"\nargs = [[1]]\nexpect = [1]\n')
    assert [line.split(": ", 2)[1] for line in found] == ["exports.f.params[0]", "exports.f.results[0]"], found
    assert all(f"nests types 500 deep, over the limit of {DEPTH}" in line and len(line) < 300 for line in found)
    assert smoke_values.parse_wit_type(deep) is None


def test_a_type_as_deep_as_the_limit_is_still_checked() -> None:
    text = "list<" * DEPTH + "u8" + ">" * DEPTH
    value = "[" * (DEPTH - 4) + '"x"' + "]" * (DEPTH - 4)  # as deep as a smoke entry's value may be
    found = lines(export(text) + f'[[smoke]]\ncall = "f"\nargs = [{value}]\n')
    assert len(found) == 1 and 'holds a list<list<list<list<u8>>>> there, never "x"' in found[0], found


def test_each_entry_reads_its_exports_types_once_and_quotes_them_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = ", ".join(f"f{i}: u8" for i in range(5000))  # about 50 KiB of type text
    reads: list[str] = []
    tokens = smoke_values._TOKENS
    monkeypatch.setattr(smoke_values, "_TOKENS", FindCounter(tokens, reads))
    smoke_values.parse_wit_type.cache_clear()
    entries = '[[smoke]]\ncall = "f"\nargs = [{ g = 1 }]\n' * 200
    found = lines(export(f"record {{ {fields} }}") + entries)
    assert len(reads) == 1  # not once per entry: 200 entries of a 50 KiB type read it 200 times
    assert found[0].startswith("m.toml: smoke[0].args[0]: f's parameter 1 takes a record { f0: u8")
    assert found[0].endswith("(missing f0, f1, f2, f3, f4 and 4995 more; no field g)"), found[0]
    assert len(found[0]) < 400


def test_flags_in_the_wrong_order_name_the_order_clipped() -> None:
    names = [f"f{i}" for i in range(3000)]
    flags = "flags { " + ", ".join(names) + " }"
    expect = "[" + ", ".join(f'"{name}"' for name in reversed(names)) + "]"
    found = lines(export("u8", flags) + f'[[smoke]]\ncall = "f"\nargs = [1]\nexpect = {expect}\n')
    assert len(found) == 1 and 'they come back in declaration order: ["f0", ' in found[0], found
    assert len(found[0]) < 400


class FindCounter:
    """A pattern whose `finditer` calls are recorded."""

    def __init__(self, pattern: re.Pattern[str], calls: list[str]) -> None:
        self.pattern, self.calls = pattern, calls

    def finditer(self, text: str) -> object:
        self.calls.append(text)
        return self.pattern.finditer(text)
