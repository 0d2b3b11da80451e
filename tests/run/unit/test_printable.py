"""Guest- and bundle-controlled text is shown on one terminal line, its control and bidi characters escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ngixi_runtime.printable import ERROR_LINE_LIMIT, printable, printable_json, printable_lines
from tests.conftest import KeyFiles, exit_code, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module


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


def test_an_error_line_quoting_something_long_keeps_its_start_and_its_advice(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever a refusal quotes (an argument, a name an engine's message carries) is of any length: an argument of
    100,000 digits made a 100,000-character error line."""
    add = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
    bundle = make_bundle(tmp_path, keys.key, wasm=add)
    assert exit_code(["run", str(bundle), "add", "1", "9" * 100_000, "--in-process", "--trust", str(keys.trust)]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert len(line) < ERROR_LINE_LIMIT + 60 and "characters left out" in line
    assert line.startswith("ngixi: error: hello: add argument 2: '999")
    assert line.endswith('to pass text, declare input = "text" on the export (docs/host-abi.md, "Call data")')
