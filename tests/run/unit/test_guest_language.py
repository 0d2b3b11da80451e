"""A guest's language in its manifest, the build's rule for an undeclared one, and the [build] table."""

from __future__ import annotations

import pytest

from ngixi_runtime.guest.build_command import BuildCommand, lenient_build
from ngixi_runtime.guest.kind import infer_language
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest

F = "manifests/g.toml"
GUEST = '[guest]\nname = "g"\nversion = "0.1.0"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source=F, stem="g")
    return caught.value.lines


@pytest.mark.parametrize(
    ("files", "language"),
    [
        (["assembly/index.ts", "assembly/util.ts"], "assemblyscript"),
        (["src/main.zig", "src/helper.c"], "zig"),
        (["main.c", "include/x.h"], "c"),
        (["app.js"], "javascript"),
        (["app.py", "wit/world.wit"], "python"),
        (["prebuilt/guest.wasm", "README.md"], "wasm"),
        (["assembly/other.ts", "README.md"], None),
        ([], None),
    ],
)
def test_an_undeclared_language_comes_from_the_first_matching_pattern(files: list[str], language: str | None) -> None:
    assert infer_language(files) == language


def test_a_declared_language_reaches_the_guest_type() -> None:
    assert parse_manifest(GUEST + 'language = "zig"\n', source=F, stem="g").guest.type.language == "zig"
    assert parse_manifest(GUEST, source=F, stem="g").guest.type.language is None


def test_an_unknown_language_is_refused_with_a_suggestion() -> None:
    refusal = f'{F}: guest.language: "zigg" is not a guest language; did you mean "zig"?'
    assert problems(GUEST + 'language = "zigg"\n') == [refusal]


def test_a_build_command_is_read_into_a_record() -> None:
    table = 'command = "python make.py --out out/g.wasm"\ninputs = ["make.py", "src/*.txt"]\noutput = "out/g.wasm"\n'
    text = GUEST + "[build]\n" + table
    manifest = parse_manifest(text, source=F, stem="g")
    assert manifest.build == BuildCommand(
        ("python", "make.py", "--out", "out/g.wasm"), ".", ("make.py", "src/*.txt"), "out/g.wasm"
    )
    assert manifest.build.output_path == "out/g.wasm"


def test_a_committed_module_needs_only_its_output() -> None:
    manifest = parse_manifest(GUEST + '[build]\nworkdir = "bin"\noutput = "g.wasm"\n', source=F, stem="g")
    assert manifest.build == BuildCommand((), "bin", ("g.wasm",), "g.wasm")
    assert manifest.build.output_path == "bin/g.wasm"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('command = "make"\noutput = "g.wasm"\n', ["build.inputs: is required with a command"]),
        ('command = ["make"]\ninputs = ["*"]\n', ["build.output: is required"]),
        ('output = "../elsewhere.wasm"\n', ['build.output: "../elsewhere.wasm" must be a relative path inside']),
        ('workdir = "/abs"\noutput = "g.wasm"\n', ['build.workdir: "/abs" must be a relative path inside']),
        ('command = "make"\ninputs = ["../*.c"]\noutput = "g.wasm"\n', ["build.inputs[0]: must be a relative glob"]),
        ('command = ""\ninputs = ["*"]\noutput = "g.wasm"\n', ["build.command: is empty"]),
        ('command = "x \'unclosed"\ninputs = ["*"]\noutput = "g.wasm"\n', ["build.command: cannot split it"]),
        ('command = 3\ninputs = ["*"]\noutput = "g.wasm"\n', ["build.command: must be a string or an array"]),
        ('output = "g.wasm"\nwatch = ["*"]\n', ["build.watch: unknown key"]),
    ],
)
def test_a_wrong_build_table_names_the_field(table: str, expected: list[str]) -> None:
    lines = problems(GUEST + "[build]\n" + table)
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"{F}: {want}")


def test_a_build_table_makes_a_wasm_guest_only() -> None:
    assert problems(GUEST + 'language = "c"\n[build]\noutput = "g.wasm"\n') == [
        f'{F}: build: a [build] command makes a "wasm" guest, not a "c" one'
    ]


def test_the_lenient_read_of_a_wrong_build_table_is_none() -> None:
    assert lenient_build({"build": {"command": "make"}}) is None
    assert lenient_build({}) is None
    assert lenient_build({"build": {"output": "g.wasm"}}) == BuildCommand((), ".", ("g.wasm",), "g.wasm")
