"""A component guest's typed exports and smoke values in its manifest, and their check against the component."""

from __future__ import annotations

import pytest

from ngixi_runtime.capabilities.component import ComponentInfo
from ngixi_runtime.guest.check import check_component
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest

F = "manifests/words.toml"
COMPONENT = '[guest]\nname = "words"\nversion = "0.1.0"\nabi = "component"\n'
STATS = "record { words: u32, longest: string }"
INFO = ComponentInfo({}, {"analyze": (("string",), (STATS,)), "add": (("s32", "s32"), ("s32",))})


def parse(text: str) -> object:
    return parse_manifest(text, source=F, stem="words")


def problems(exports: str) -> list[str]:
    manifest = parse_manifest(COMPONENT + exports, source=F, stem="words")
    return check_component(manifest, INFO)


def test_types_left_out_come_from_the_component() -> None:
    assert problems("[exports.analyze]\n[exports.add]\n") == []


@pytest.mark.parametrize(
    "declared",
    [
        'params = ["string"]\nresults = ["record"]',
        f'params = ["string"]\nresults = ["{STATS}"]',
        'params = ["string"]\nresults = ["record {words:u32, longest:string}"]',
    ],
)
def test_declared_types_match_the_wit_text_or_the_kind_of_a_named_type(declared: str) -> None:
    assert problems(f"[exports.analyze]\n{declared}\n") == []


def test_core_value_types_still_name_their_wit_types() -> None:
    assert problems('[exports.add]\nparams = ["i32", "s32"]\nresults = ["i32"]\n') == []


def test_a_mismatch_is_refused_with_both_signatures() -> None:
    assert problems('[exports.analyze]\nparams = ["list<u8>"]\nresults = ["record"]\n') == [
        f"{F}: exports.analyze: declared as (list<u8>) -> (record), the component exports (string) -> ({STATS}); "
        f'declare params = ["string"], results = ["{STATS}"], or leave out params and results to take the types '
        "from the component's WIT"
    ]
    assert "declared as (string) -> ()" in problems('[exports.analyze]\nparams = ["string"]\n')[0]


def test_a_missing_export_is_named() -> None:
    assert problems("[exports.parse]\n") == [
        f"{F}: exports.parse: the component has no function 'parse'; it exports: add, analyze"
    ]


def test_smoke_calls_of_components_take_and_expect_json_values() -> None:
    manifest = parse_manifest(
        COMPONENT
        + '[exports.analyze]\n[[smoke]]\ncall = "analyze"\nargs = ["a b"]\nexpect = { words = 2, longest = "a" }\n'
        + '[[smoke]]\ncall = "analyze"\nargs = [[1, 2], { a = [true] }]\nexpect = [1, 2]\n',
        source=F,
        stem="words",
    )
    first, second = manifest.smoke
    assert (first.args, first.expect) == (("a b",), ({"words": 2, "longest": "a"},))
    assert (second.args, second.expect) == (([1, 2], {"a": [True]}), ([1, 2],))  # one result: the list


def test_a_command_components_smoke_args_are_its_argv() -> None:
    manifest = parse_manifest(
        COMPONENT.replace("abi = ", 'kind = "command"\nabi = ')
        + "[capabilities.stdio]\n[capabilities.args]\n"
        + '[[smoke]]\ncall = "_start"\nargs = ["Ada", "Grace"]\nexpect_stdout = "Hello, Ada!\\nHello, Grace!\\n"\n',
        source=F,
        stem="words",
    )
    (start,) = manifest.smoke
    assert (start.argv, start.args, start.stdout) == (("Ada", "Grace"), (), "Hello, Ada!\nHello, Grace!\n")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '[exports.analyze]\nparams = "string"\n',
            'exports.analyze.params: must be an array of WIT types like "string"',
        ),
        ('[exports.analyze]\nparams = [""]\n', "exports.analyze.params: must be an array of WIT types"),
        (  # a typo in a type is named when the manifest is read, not only as a mismatch with the component
            '[exports.analyze]\nparams = ["strng"]\n',
            "exports.analyze.params[0]: 'strng' is not a WIT type; did you mean 'string'? (ngixi inspect shows",
        ),
        (
            '[exports.analyze]\nresults = ["option<u32>", "list<strin>"]\n',
            "exports.analyze.results[1]: 'list<strin>': 'strin' is not a WIT type; did you mean 'string'?",
        ),
        (
            '[exports.analyze]\nparams = ["list<u8"]\n',
            "exports.analyze.params[0]: 'list<u8' is not a WIT type: its brackets do not pair up",
        ),
        ('[exports.analyze]\n[[smoke]]\ncall = "analyze"\nargs = "a b"\n', "smoke[0].args: must be an array of the"),
        (
            '[exports.analyze]\n[[smoke]]\ncall = "analyze"\nargs = [1979-05-27]\n',
            "smoke[0].args[0]: a date: a manifest goes into its bundle's JSON index, which has none; write it as a",
        ),
    ],
)
def test_bad_typed_declarations_are_named(text: str, line: str) -> None:
    with pytest.raises(ManifestError) as refused:
        parse(COMPONENT + text)
    assert any(line in problem for problem in refused.value.lines), refused.value.lines
