"""Writes out/handmade.wasm by hand, byte by byte: a guest of "any toolchain", built by this script.

The module logs one line through the host (`ngixi.log`) and returns the number in answer.txt.
Its memory maximum is the manifest's limits.memory_pages, which the build passes as NGIXI_MEMORY_PAGES.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

I32 = 0x7F
INFO = 2


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def name(text: str) -> bytes:
    return uleb(len(text)) + text.encode()


def section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + uleb(len(body)) + body


def module(answer: int, message: bytes, memory_pages: int) -> bytes:
    log_type = b"\x60" + vec([bytes([I32])] * 3) + vec([])
    answer_type = b"\x60" + vec([]) + vec([bytes([I32])])
    log_import = name("ngixi") + name("log") + b"\x00" + uleb(0)
    memory = b"\x01" + uleb(1) + uleb(memory_pages)
    exports = [name("answer") + b"\x00" + uleb(1), name("memory") + b"\x02" + uleb(0)]
    body = (
        b"\x00"  # no locals
        + b"\x41" + sleb(INFO) + b"\x41" + sleb(0) + b"\x41" + sleb(len(message))
        + b"\x10" + uleb(0)  # call ngixi.log
        + b"\x41" + sleb(answer)
        + b"\x0b"
    )  # fmt: skip
    data = b"\x00\x41" + sleb(0) + b"\x0b" + vec([bytes([b]) for b in message])
    return b"".join(
        [
            b"\0asm\x01\0\0\0",
            section(1, vec([log_type, answer_type])),
            section(2, vec([log_import])),
            section(3, vec([uleb(1)])),
            section(5, vec([memory])),
            section(7, vec(exports)),
            section(10, vec([uleb(len(body)) + body])),
            section(11, vec([data])),
        ]
    )


def main() -> int:
    text = Path("answer.txt").read_text().strip()
    if not text.lstrip("-").isdigit():
        print(f"answer.txt:1: {text!r} is not a whole number", file=sys.stderr)
        return 1
    pages = int(os.environ.get("NGIXI_MEMORY_PAGES", "1"))
    out = Path("out/handmade.wasm")
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(module(int(text), b"handmade: answering", pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
