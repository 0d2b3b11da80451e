"""Manifest validation from a table of (manifest text, exact expected error lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.runtime.manifest import ManifestError, load_manifest, parse_manifest

F = "manifests/hello.toml"
GUEST = '[guest]\nname = "hello"\nversion = "0.1.0"\n'

INVALID = [
    ("", [f"{F}: guest: the [guest] table is required (name, version, kind)"]),
    ('[guest]\nversion = "0.1.0"\n', [f"{F}: guest.name: is required"]),
    (
        GUEST.replace('"hello"', '"Hello"'),
        [f'{F}: guest.name: "Hello" must be lowercase letters, digits and "-", starting with a letter'],
    ),
    (
        GUEST.replace('"hello"', '"other"'),
        [f'{F}: guest.name: "other" must match the file name "hello.toml"; rename one of them'],
    ),
    (GUEST.replace('"0.1.0"', '"1.0"'), [f'{F}: guest.version: "1.0" is not a semantic version like "1.2.3"']),
    (GUEST.replace('"0.1.0"', "1"), [f"{F}: guest.version: must be a string, not an integer"]),
    (GUEST + 'kind = "cmd"\n', [f'{F}: guest.kind: "cmd" must be "library" or "command" (a WASI program with _start)']),
    (GUEST + 'nmae = "x"\n', [f'{F}: guest.nmae: unknown key; did you mean "name"?']),
    ("limit = 1\n" + GUEST, [f'{F}: limit: unknown key; did you mean "limits"?']),
    (GUEST + "[export.add]\n", [f'{F}: export: unknown key; did you mean "exports"?']),
    (
        GUEST + '[exports.add]\nparams = ["i33"]\n',
        [f"{F}: exports.add.params[0]: 'i33' is not one of i32, i64, f32, f64; did you mean \"i32\"?"],
    ),
    (
        GUEST + '[exports.add]\nparams = "i32"\n',
        [f"{F}: exports.add.params: must be an array of value types, not a string"],
    ),
    (GUEST + '[exports.add]\nparam = ["i32"]\n', [f'{F}: exports.add.param: unknown key; did you mean "params"?']),
    (GUEST + "[capabilities.lgo]\n", [f'{F}: capabilities.lgo: unknown capability; did you mean "log"?']),
    (GUEST + "[capabilities.log]\nlevel = 1\n", [f"{F}: capabilities.log.level: unknown key; allowed: "]),
    (GUEST + "[limits]\nmemory_pages = 0\n", [f"{F}: limits.memory_pages: must be between 1 and 65536, not 0"]),
    (GUEST + "[limits]\ntimeout_ms = 1.5\n", [f"{F}: limits.timeout_ms: must be an integer, not a number"]),
    (GUEST + "[limits]\nmemory = 2\n", [f'{F}: limits.memory: unknown key; did you mean "memory_pages"?']),
    (GUEST + '[[smoke]]\ncall = "nope"\n', [f'{F}: smoke[0].call: "nope" is not declared under [exports]']),
    (
        GUEST + '[exports.add]\nparams = ["i32"]\n[[smoke]]\ncall = "add"\nargs = []\n',
        [f"{F}: smoke[0].args: add takes 1 arguments, the smoke call gives 0"],
    ),
    (GUEST + 'smoke = "x"\n', [f"{F}: guest.smoke: unknown key; allowed: name, version, kind, description"]),
    ("[guest\n", [f"{F}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 7)"]),
    (
        '[guest]\nname = "Bad"\nversion = "x"\n[limits]\nmemory_pages = -1\n',
        [
            f'{F}: guest.name: "Bad" must be lowercase letters, digits and "-", starting with a letter',
            f'{F}: guest.version: "x" is not a semantic version like "1.2.3"',
            f"{F}: limits.memory_pages: must be between 1 and 65536, not -1",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID, ids=[f"case{i}" for i in range(len(INVALID))])
def test_invalid_manifest_reports_every_problem(text: str, expected: list[str]) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source=F, stem="hello")
    # An "allowed: " expectation is a prefix: the list of names may grow.
    assert len(caught.value.lines) == len(expected)
    for line, want in zip(caught.value.lines, expected, strict=True):
        assert line.startswith(want) if want.endswith(": ") else line == want


def test_valid_manifest_becomes_typed_records() -> None:
    text = GUEST + (
        'kind = "library"\n[exports.add]\nparams = ["i32", "i32"]\nresults = ["i32"]\n'
        '[capabilities.log]\n[limits]\nmemory_pages = 4\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    )
    manifest = parse_manifest(text, source=F, stem="hello")
    assert manifest.guest.name == "hello" and manifest.guest.kind == "library"
    assert manifest.export("add") is not None
    assert manifest.grants == frozenset({"log"})
    assert manifest.limits.memory_pages == 4 and manifest.limits.timeout_ms == 5000
    assert manifest.smoke[0].args == (2, 3) and manifest.smoke[0].expect == (5,)


def test_sample_manifests_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "manifests"
    for path in sorted(root.glob("*.toml")):
        assert load_manifest(path).guest.name == path.stem


def test_unreadable_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"missing\.toml: cannot read the manifest"):
        load_manifest(tmp_path / "missing.toml")
