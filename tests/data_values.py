"""Seeded values at the edges of what guests take and give, for the differential data tests: text from every plane
(NUL, BOM, combining marks, separators, noncharacters), bytes of every value, JSON numbers as Python writes doubles
and past 64 bits, and JSON documents with escapes, empty, duplicate and escaped keys and odd whitespace."""

from __future__ import annotations

import math
import random
import struct

# Ranges of scalar values to draw from: printable ASCII, the rest of the BMP around the surrogates, and planes 1-16.
_PLANES = [
    (0x20, 0x7E),
    (0xA0, 0xD7FF),
    (0xE000, 0xFFFD),
    *((plane << 16, (plane << 16) + 0xFFFF) for plane in range(1, 17)),
]
_SPECIAL = [
    "\x00",
    "\ufeff",
    "\u2028",
    "\u0301",
    "\uffff",
    "\U0010ffff",
    "\U0001f600",
    "\x7f",
    "\r\n",
    "\u202e",
    "\\",
    '"',
]
_ESCAPED = [
    "",
    "\\u0000",
    "\\ud83d\\ude00",
    "\\/",
    "é\U0001f600\U0010ffff",
    "\\ufeffx",
    "a\\u0301",
    '\\\\\\"',
    "\\u2028",
]
EDGE_NUMBERS = [
    *("-0.0", "5e-324", "2.2250738585072014e-308", "1.7976931348623157e308", "1e23", "0.30000000000000004"),
    *(str(n) for n in (2**53 - 1, 2**53 + 1, 2**63, 2**64, -(2**63) - 1)),
]


def text(rng: random.Random, most: int) -> str:
    """A str of up to `most` code points, none a surrogate."""
    pieces = []
    for _ in range(rng.randint(0, most)):
        low, high = rng.choice(_PLANES)
        pieces.append(rng.choice(_SPECIAL) if rng.random() < 0.3 else chr(rng.randint(low, high)))
    return "".join(pieces)


def data(rng: random.Random, most: int) -> bytes:
    """Up to `most` random bytes; now and then every byte value in order."""
    if rng.random() < 0.1:
        return bytes(range(256))[:most]
    return rng.randbytes(rng.randint(0, most))


def number(rng: random.Random) -> str:
    """A JSON number: a double as Python writes it (every exponent), or a long decimal well within a double's range."""
    if rng.random() < 0.5:
        double = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(63)))[0]
        if math.isfinite(double):
            return repr(double)
    return f"{rng.randint(1, 10**20)}e{rng.randint(-320, 285)}"


def document(rng: random.Random, depth: int = 0) -> str:
    """One JSON document as text, nested at most five deep."""
    choice = rng.random()
    if depth > 4 or choice < 0.4:
        scalars = ['"' + rng.choice(_ESCAPED) + '"', number(rng), rng.choice(EDGE_NUMBERS), "true", "null"]
        return rng.choice(scalars)
    space = rng.choice(["", " ", "\n\t", " \r\n"])
    items = [document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if choice < 0.7:
        return "[" + space + ("," + space).join(items) + "]"
    keys = ['""', '"a"', '"a"', '"\\u00e9"', '"\\/"', '"k\\u0000"', '"\\ud83d\\ude00"']
    return "{" + ",".join(f"{rng.choice(keys)}{space}:{space}{item}" for item in items) + "}"


def as_doubles(value: object) -> object:
    """A JSON value as a reader of every number as a double holds it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [as_doubles(item) for item in value]
    assert isinstance(value, dict)
    return {key: as_doubles(item) for key, item in value.items()}


def same(a: object, b: object) -> bool:
    """Equal as values with their types, -0.0 apart from 0.0, NaN equal to NaN, keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    return a == b
