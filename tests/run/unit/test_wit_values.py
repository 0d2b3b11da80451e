"""Component values: Python and JSON forms of every WIT type, to the engine and back (engines/wit_values.py).

The types come from a component made of imports alone (no code); the round trips through the real engine
are in tests/build/integration/test_component_types.py.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import pytest
import wasmtime
import wasmtime.component as wc

from ngixi_runtime.call_io import json_arguments
from ngixi_runtime.capabilities.component import text_positions
from ngixi_runtime.engines.wit_values import TypedFunction, lift, lower_arguments
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.wit_json import CrossedIterable, TooDeepForTheWire, from_wire, shown, to_json, to_wire

TYPES = {
    "bool": "bool",
    "u8": "u8",
    "s8": "s8",
    "u16": "u16",
    "s16": "s16",
    "u32": "u32",
    "s32": "s32",
    "u64": "u64",
    "s64": "s64",
    "f32": "f32",
    "f64": "f64",
    "char": "char",
    "string": "string",
    "bytes": "(list u8)",
    "strings": "(list string)",
    "point": "$point",
    "pair": "(tuple s64 string)",
    "maybe": "(option u32)",
    "nested": "(option (option u8))",
    "outcome": "(result (list string) (error string))",
    "unit": "(result)",
    "color": "$color",
    "perms": "$perms",
    "shape": "$shape",
    "shapes": "(list (option $shape))",
}
_DEFINITIONS = """
  (type $pointdef (record (field "x" s32) (field "long-name" string)))
  (import "point" (type $point (eq $pointdef)))
  (type $colordef (enum "red" "green" "blue"))
  (import "color" (type $color (eq $colordef)))
  (type $permsdef (flags "read" "write" "exec"))
  (import "perms" (type $perms (eq $permsdef)))
  (type $shapedef (variant (case "circle" f32) (case "rect" (tuple u32 u32)) (case "named" string) (case "empty")))
  (import "shape" (type $shape (eq $shapedef)))
"""


@cache
def functions() -> dict[str, TypedFunction]:
    imports = "".join(f'  (import "take-{n}" (func (param "v" {t}) (result {t})))\n' for n, t in TYPES.items())
    engine = wasmtime.Engine()
    component = wc.Component(engine, f"(component {_DEFINITIONS}{imports})")
    found = {name: item.ty for name, item in component.type.imports(engine).items()}
    return {name: TypedFunction.of(ty) for name in TYPES if isinstance(ty := found[f"take-{name}"], wc.FuncType)}


def round_trip(name: str, value: Any) -> Any:
    function = functions()[name]
    (lowered,) = lower_arguments("f", function, [value])
    assert function.result is not None
    return lift(function.result, lowered)


SAME = [
    ("bool", True),
    ("u8", 255),
    ("s8", -128),
    ("u16", 65535),
    ("s16", -32768),
    ("u32", 2**32 - 1),
    ("s32", -(2**31)),
    ("u64", 2**64 - 1),
    ("s64", -(2**63)),
    ("f32", 1.5),
    ("f64", -0.0),
    ("char", "𝄞"),
    ("string", "héllo ✓ 𝄞 \u0000"),
    ("string", ""),
    ("bytes", b""),
    ("bytes", b"\x00\xff"),
    ("strings", []),
    ("strings", ["a", ""]),
    ("point", {"x": -1, "long-name": "p"}),
    ("pair", (-(2**63), "x")),
    ("maybe", None),
    ("maybe", 0),
    ("nested", None),
    ("nested", {"some": None}),
    ("nested", {"some": 7}),
    ("outcome", {"ok": ["a"]}),
    ("outcome", {"ok": []}),
    ("outcome", {"err": "bad"}),
    ("unit", {"ok": None}),
    ("unit", {"err": None}),
    ("color", "blue"),
    ("perms", []),
    ("perms", ["read", "exec"]),
    ("shape", {"circle": 2.5}),
    ("shape", {"rect": (1, 2)}),
    ("shape", {"named": "n"}),
    ("shape", {"empty": None}),
    ("shapes", [None, {"empty": None}, {"circle": 0.5}]),
]


@pytest.mark.parametrize(("name", "value"), SAME)
def test_every_type_comes_back_as_it_went(name: str, value: Any) -> None:
    assert round_trip(name, value) == value


JSON_FORMS = [
    ("f64", 3, 3.0),
    ("u8", 2.0, 2),
    ("bytes", [0, 255], b"\x00\xff"),
    ("bytes", bytearray(b"ab"), b"ab"),
    ("pair", [5, "x"], (5, "x")),
    ("perms", ["exec", "read"], ["read", "exec"]),  # declaration order
    ("perms", {"write"}, ["write"]),
    ("shape", "empty", {"empty": None}),
    ("shape", {"rect": [3, 4]}, {"rect": (3, 4)}),
    # how JavaScript and numpy write the largest f32, which the engine rounds to it (it was refused as out of range)
    ("shape", {"circle": 3.4028235e38}, {"circle": 3.4028235e38}),
]


@pytest.mark.parametrize(("name", "value", "expected"), JSON_FORMS)
def test_json_forms_are_accepted_as_arguments(name: str, value: Any, expected: Any) -> None:
    assert round_trip(name, value) == expected


REFUSED = [
    ("string", 3, "f's v expects a string, got 3"),
    ("string", "\ud800", 'f\'s v expects a string, got "\\ud800" (not valid Unicode: a lone surrogate)'),
    ("string", "\ud800\udc00", 'f\'s v expects a string, got "\\ud800\\udc00" (not valid Unicode: a lone surrogate)'),
    ("u8", 256, "f's v expects a u8, got 256 (out of range: u8 is 0 to 255)"),
    ("u8", -1, "f's v expects a u8, got -1 (out of range: u8 is 0 to 255)"),
    ("s8", -129, "f's v expects an s8, got -129 (out of range: s8 is -128 to 127)"),
    ("u64", 2**64, f"f's v expects a u64, got {2**64} (out of range: u64 is 0 to {2**64 - 1})"),
    ("s64", -(2**63) - 1, f"f's v expects an s64, got {-(2**63) - 1} (out of range: s64 is {-(2**63)} to {2**63 - 1})"),
    ("u32", True, "f's v expects a u32, got true"),
    ("u32", 1.5, "f's v expects a u32, got 1.5"),
    ("u32", "1", 'f\'s v expects a u32, got "1"'),
    ("f32", 1e39, "f's v expects an f32, got 1e+39 (out of range for an f32)"),
    ("f32", 3.4028236e38, "f's v expects an f32, got 3.4028236e+38 (out of range for an f32)"),
    ("f64", "1", 'f\'s v expects an f64, got "1"'),
    ("bool", 1, "f's v expects a bool, got 1"),
    ("char", "ab", 'f\'s v expects a char, got "ab" (a char is one character)'),
    ("bytes", "abc", 'f\'s v expects a list<u8>, got "abc"'),
    ("bytes", [1, 256], "f's v[1] expects a u8, got 256 (out of range: u8 is 0 to 255)"),
    ("strings", {"a": 1}, 'f\'s v expects a list<string>, got {"a": 1}'),
    ("strings", ["a", 2], "f's v[1] expects a string, got 2"),
    ("point", [1, "p"], 'f\'s v expects a record { x: s32, long-name: string }, got [1, "p"]'),
    ("point", {"x": 1}, 'f\'s v expects a record { x: s32, long-name: string }, got {"x": 1} (missing long-name)'),
    ("point", {"x": 1, "long-name": "p", "y": 2}, "(no field y)"),
    ("point", {"x": "1", "long-name": "p"}, 'f\'s v.x expects an s32, got "1"'),
    ("pair", [1], "f's v expects a tuple<s64, string>, got [1]"),
    ("nested", 7, 'f\'s v expects an option<option<u8>>, got 7 (write {"some": ...} for a value of a nested option)'),
    ("nested", {"some": 300}, "f's v expects a u8, got 300"),
    ("outcome", ["a"], 'f\'s v expects a result<list<string>, string>, got ["a"]'),
    ("outcome", {"ok": ["a"], "err": "x"}, "expects a result<list<string>, string>"),
    ("unit", {"ok": 1}, "(ok takes no value)"),
    ("color", "purple", 'f\'s v expects an enum { red, green, blue }, got "purple"'),
    ("perms", ["read", "fly"], '(no flag "fly")'),
    ("perms", "read", "expects a flags { read, write, exec }"),
    ("shape", {"square": 1}, "(one of circle, rect, named, empty)"),
    ("shape", {"rect": [1, -2]}, "f's v.rect[1] expects a u32, got -2"),
    ("shapes", [{"circle": "x"}], 'f\'s v[0].circle expects an f32, got "x"'),
]


@pytest.mark.parametrize(("name", "value", "message"), REFUSED)
def test_arguments_that_do_not_fit_are_refused_naming_export_parameter_and_type(
    name: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        round_trip(name, value)
    assert message in str(refused.value)


def test_the_number_of_arguments_is_checked_with_the_signature() -> None:
    with pytest.raises(InvalidInput, match=r"^f takes 1 argument \(v: string\), got 2$"):
        lower_arguments("f", functions()["string"], ["a", "b"])


def test_types_render_as_wit_writes_them() -> None:
    assert functions()["outcome"].params[0][1].text == "result<list<string>, string>"
    assert functions()["unit"].params[0][1].text == "result"
    shape = "variant { circle(f32), rect(tuple<u32, u32>), named(string), empty }"
    assert functions()["shape"].params[0][1].text == shape


def test_values_cross_a_process_boundary_exactly_and_print_as_json() -> None:
    value = {"ok": [b"\x00\x01", ("x", 1.5), {"long-name": [()]}], "n": None}
    assert from_wire(to_wire(value)) == value
    assert from_wire(to_wire([b"", ()])) == [b"", ()]
    assert to_json({"a": (b"\x01", [b"\x02"])}) == {"a": [[1], [[2]]]}
    assert [shown(v) for v in (5, 1.5, "é", b"\x01", None, True)] == ["5", "1.5", '"é"', "[1]", "null", "true"]


def test_the_wire_carries_values_at_any_stack_depth_within_a_fixed_nesting() -> None:
    deep: Any = ("x", b"\x01")
    for _ in range(400):  # 800 levels: recursion took a frame or two a level, past Python's 1000
        deep = [{"k": deep}]
    assert from_wire(json.loads(json.dumps(to_wire(deep)))) == deep
    assert to_wire({"read"}) == {"$iterable": ["set", "read"]}  # flags: any iterable, a list parameter none but a list
    with pytest.raises(TooDeepForTheWire):
        to_wire([[[1]]], 2)
    assert to_wire([[[1]]], 3) == [[[1]]]
    with pytest.raises(ValueError, match=r"^hold an integer of 1025 bits, beyond a double's range$"):
        to_wire([2**1024])
    with pytest.raises(ValueError, match=r"^hold a object, which no WIT type takes$"):
        to_wire([object()])


LEAST_BEYOND_A_DOUBLE = 2**1024 - 2**970  # halfway past the largest double: reads as infinity


@pytest.mark.parametrize("sign", [1, -1])
def test_one_boundary_of_a_double_s_range_on_the_command_line_in_process_and_on_the_wire(sign: int) -> None:
    """The integers just below 2**1024 were let through the isolated tenant's wire (at most 1,024 bits) and
    refused as command-line JSON (float() overflowing); and an in-process f64 argument beyond a double was
    Python's OverflowError, not a refusal."""
    within, beyond = sign * (LEAST_BEYOND_A_DOUBLE - 1), sign * LEAST_BEYOND_A_DOUBLE
    assert json_arguments([str(within)], what="g: f") == (within,)
    assert to_wire([within]) == [within]
    assert to_wire([{"n": within}]) == [{"n": within}]
    assert round_trip("f64", within) == sign * 1.7976931348623157e308
    with pytest.raises(
        InvalidInput, match=r"^g: f: argument 1 is JSON with the number -?17976931348\d*\.\.\. \(3\d\d characters\)"
    ):
        json_arguments([str(beyond)], what="g: f")
    for arguments in ([beyond], [{"n": beyond}]):
        with pytest.raises(ValueError, match=r"^hold an integer of 1024 bits, beyond a double's range$"):
            to_wire(arguments)
    with pytest.raises(InvalidInput, match=r"^f's v expects an f64, got -?17976931\S* \(beyond a double's range\)$"):
        round_trip("f64", beyond)


def test_command_line_arguments_are_json_else_text() -> None:
    assert json_arguments(["3", '"3"', "two words", '{"a": [1]}', "[1,", "null"], what="g: f") == (
        3,
        "3",
        "two words",
        {"a": [1]},
        "[1,",
        None,
    )


def test_a_command_line_argument_declared_a_string_is_its_text() -> None:
    """`ngixi run greet.ngx greet 3.12` (`params = ["string"]`, as `ngixi new` writes it) was refused: "greet's arg0
    expects a string, got 3.12", as was `greet true` or `greet null`; text cannot mean anything else there."""
    raw = ["3.12", "true", "null", '"quoted"', "[" * 600 + "]" * 600, "2", "two words"]
    texts = text_positions(("string", "string", " string ", "string", "string", "u8"))
    assert json_arguments(raw, what="g: f", texts=texts) == (
        "3.12",
        "true",
        "null",
        "quoted",
        "[" * 600 + "]" * 600,
        2,
        "two words",
    )


def test_arguments_past_the_fixed_json_limits_are_refused_in_one_line_not_taken_as_text() -> None:
    assert json_arguments(["[" * 512 + "]" * 512, "NaN", str(2**64)], what="g: f") == (
        json.loads("[" * 512 + "]" * 512),
        "NaN",
        2**64,
    )
    with pytest.raises(
        InvalidInput, match=r"^g: f: argument 2 is JSON nested more than 512 deep, past the host's limit; "
    ):
        json_arguments(["1", "[" * 513 + "]" * 513], what="g: f")
    with pytest.raises(InvalidInput, match=r"^g: f: argument 1 is JSON nested more than 512 deep"):
        json_arguments(["[" * 100_000 + "]" * 100_000], what="g: f")
    with pytest.raises(
        InvalidInput, match=r"^g: f: argument 1 is JSON with the number 99999999999999999999\.\.\. \(5000 "
    ):
        json_arguments(["9" * 5000], what="g: f")  # past Python's 4,300 digits: it was text
    with pytest.raises(
        InvalidInput, match=r"^g: f: argument 1 is JSON with the number 1e400, out of range of a double; "
    ):
        json_arguments(["1e400"], what="g: f")
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    # Python 3.13 and newer write it as JSON, cut short; before, it was too deep for json.dumps
    with pytest.raises(InvalidInput, match=r"^f's v\[0\] expects a string, got (list|\[\[\[+\.\.\.)$"):
        round_trip("strings", deep)


@pytest.mark.parametrize(
    ("argument", "advice"),
    [
        ("[" * 513 + "]" * 513, "nest arrays and objects at most 512 deep, or quote it as a JSON string"),
        (" 1e400", "give a number within a double's range (about ±1.8e308), or quote it as a JSON string"),
        ("-" + "9" * 400, "give a number within a double's range (about ±1.8e308), or quote it as a JSON string"),
        ('{"n": [1e400]}', "give numbers within a double's range (about ±1.8e308)"),
    ],
)
def test_the_advice_on_an_argument_past_a_json_limit_is_about_that_limit(argument: str, advice: str) -> None:
    """Each refusal advised both limits (levels and numbers) and quoting, also for a number inside a record."""
    with pytest.raises(InvalidInput) as refused:
        json_arguments([argument], what="g: f")
    assert str(refused.value).endswith(f"; {advice}" + (" ('\"...\"') to pass it as text" if "quote" in advice else ""))


def test_the_wire_keeps_what_is_not_a_list_so_a_child_refuses_it_as_this_process_does() -> None:
    """A set, range or memoryview crossed as a list, which a tenant's child then took for a list parameter."""
    crossed = from_wire(json.loads(json.dumps(to_wire([{2}, range(1), bytearray(b"x"), {1: "a", ("k",): b""}]))))
    assert isinstance(crossed[0], CrossedIterable) and (crossed[0].type_name, list(crossed[0])) == ("set", [2])
    assert (crossed[1].type_name, list(crossed[1])) == ("range", [0])
    assert crossed[2:] == [bytearray(b"x"), {1: "a", ("k",): b""}] and type(crossed[2]) is bytearray


def test_a_command_line_argument_that_is_not_utf_8_is_refused_naming_the_byte() -> None:
    """argv's bytes that are not UTF-8 reach Python as lone surrogates; they were refused as a string holding one
    ("\\udcff"), a character the caller never wrote. Text in any script is taken."""
    with pytest.raises(InvalidInput, match=r"^g: f: argument 2 is not valid UTF-8 \(byte 3\): give text as UTF-8"):
        json_arguments(["1", os.fsdecode(b"abc\xff")], what="g: f")
    assert json_arguments(["é日😀", "[1]"], what="g: f") == ("é日😀", [1])
