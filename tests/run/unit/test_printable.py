"""Guest- and bundle-controlled text is shown on one terminal line, its control and bidi characters escaped."""

from __future__ import annotations

import json

import pytest

from ngixi_runtime.printable import printable, printable_json, printable_lines


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, café, 日本語\ttab", "plain text, café, 日本語\ttab"),
        ("\x1b]0;pwned\x07title", "\\x1b]0;pwned\\x07title"),
        ("\x1b[2J\x1b[8mhidden", "\\x1b[2J\\x1b[8mhidden"),
        ("one\nngixi: verified\rtwo", "one\\nngixi: verified\\rtwo"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("txt.\u202eexe\u2066\u200f\u061c", "txt.\\u202eexe\\u2066\\u200f\\u061c"),
        ("line\u2028sep", "line\\u2028sep"),
        ("bad \udcff path", "bad \\udcff path"),
    ],
)
def test_printable_escapes_what_could_move_hide_or_forge_output(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # escaping twice changes nothing


def test_printable_lines_keeps_the_message_lines_and_escapes_within_each() -> None:
    assert printable_lines("first \x1b[1m\nsecond \u202e") == "first \\x1b[1m\nsecond \\u202e"


def test_printable_json_decodes_to_the_same_value_with_nothing_raw_to_the_terminal() -> None:
    value = {"message": "\x1b[2J\x9b\u202e\u2028\udcff café\n", "n": 1}
    document = printable_json(value, indent=2)
    assert json.loads(document) == value
    assert "café" in document
    assert printable_lines(document) == document  # nothing left to escape, line breaks only from the indent


def test_printable_json_escapes_del_in_an_ascii_document() -> None:
    document = printable_json({"message": "rub\x7fout"})
    assert "\x7f" not in document and json.loads(document) == {"message": "rub\x7fout"}
