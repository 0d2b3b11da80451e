"""Text that a guest or a foreign bundle controls, made safe to print on one line of the operator's terminal.

A log line, a trap message or a bundle's strings could otherwise carry terminal escapes (rewrite the title,
hide text, move the cursor), carriage returns or newlines that forge lines looking like ngixi's own, or bidi
controls that reorder what is shown. `printable` shows each such character escaped (`\\x1b`, `\\n`, `\\u202e`);
a tab and every other character are kept as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

# DEL and C1 controls; the bidi controls (ALM, LRM, RLM, LRE..RLO, LRI..PDI); the line and paragraph
# separators; lone surrogates (a path decoded with surrogateescape), which cannot be printed. JSON escapes C0.
_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_ESCAPED = f"[\x00-\x08\x0a-\x1f{_BEYOND_C0}]"  # and the C0 controls but tab
_NAMED = {"\n": "\\n", "\r": "\\r"}
# The longest line of an error ngixi prints whole: its start says what was refused, its end what to do, and what it
# quotes in between (a name a module carries, an argument) may be of any length.
ERROR_LINE_LIMIT = 4000


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """`text` for one line of terminal output: control, bidi and separator characters escaped."""
    if text.isprintable():  # nothing to escape: the common case, without a regex
        return text
    return re.sub(_ESCAPED, _escape, text)


def clipped(text: str, limit: int) -> str:
    """`text`, or its first and last `limit // 2` characters and how many were left out between: a message quoting
    a value a file's author chose (a key, a string) of 100,000 characters would make a line no one reads, and its
    end says what to do."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}…({len(text) - 2 * half} characters left out)…{text[-half:]}"


def printable_lines(text: str) -> str:
    """A message of several lines, each made `printable` and `clipped` past `ERROR_LINE_LIMIT` characters: for a
    message whose line breaks are ngixi's own."""
    return "\n".join(clipped(printable(line), ERROR_LINE_LIMIT) for line in text.split("\n"))


def printable_json(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON for a terminal: non-ASCII text kept readable, but what `printable` escapes is written
    as a `\\uXXXX` escape (json itself escapes only C0 controls), so the document decodes to the same value."""
    document = json.dumps(value, indent=indent, ensure_ascii=False)
    if document.isascii() and "\x7f" not in document:
        return document
    return re.sub(f"[{_BEYOND_C0}]", lambda found: f"\\u{ord(found.group()):04x}", document)
