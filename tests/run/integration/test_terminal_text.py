"""`ngixi run` shows what a guest logs, and the message it aborts with, escaped: one line per log call, no
terminal escapes, carriage returns or bidi controls from the guest reach the operator's terminal."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.conftest import KeyFiles, make_bundle
from tests.run.integration.test_cli_grants import ngixi
from tests.wasmgen import Func, Imp, call_import, module

FORGED = "\x1b]0;pwned\x07\x1b[2J\x1b[8mhidden\nngixi: verified ok\rover\u202eexe"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[8mhidden\\nngixi: verified ok\\rover\\u202eexe"
LOGGED = FORGED.encode()
# AssemblyScript's string layout: the byte length at pointer - 4, then UTF-16.
ABORTED = FORGED.encode("utf-16-le")
ABORT_AT = 512
MANIFEST = """\
[guest]
name = "noisy"
version = "0.1.0"

[exports.shout]
[exports.fail]

[capabilities.log]
"""
WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3), Imp("env", "abort", ["i32"] * 4)],
    functions=[
        Func("shout", body=call_import(0, 3, 0, len(LOGGED)) + call_import(0, 2, 0, 4)),
        Func("fail", body=call_import(1, ABORT_AT + 4, 0, 1, 2) + b"\x00"),
    ],
    data=[(0, LOGGED), (ABORT_AT, struct.pack("<I", len(ABORTED)) + ABORTED)],
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import make_key

    directory = tmp_path_factory.mktemp("noisy")
    keys: KeyFiles = make_key(directory / "keys")
    return make_bundle(directory, keys.key, wasm=WASM, manifest=MANIFEST, guest="noisy"), keys.trust


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
def test_run_shows_guest_text_escaped_one_line_per_log_call(
    tmp_path: Path, bundle: tuple[Path, Path], where: tuple[str, ...]
) -> None:
    path, trust = bundle
    logged = ngixi("run", *where, "--trust", str(trust), str(path), "shout", cwd=tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert shown(logged.stderr) == [f"warn: {SHOWN}", "info: \\x1b]0;"]
    as_json = ngixi("run", *where, "--json", "--trust", str(trust), str(path), "shout", cwd=tmp_path)
    assert "\u202e" not in as_json.stdout.decode()  # written as an escape, which decodes to the guest's text
    assert json.loads(as_json.stdout)["logs"][0] == {"level": "warn", "message": FORGED}
    failed = ngixi("run", *where, "--trust", str(trust), str(path), "fail", cwd=tmp_path)
    assert failed.returncode == 5
    assert shown(failed.stderr) == [f"ngixi: error: noisy: fail aborted: {SHOWN} (at ?:1:2)"]


def shown(stderr: bytes) -> list[str]:
    """The lines on stderr but ngixi's note that it compiled the guest."""
    return [line for line in stderr.decode().splitlines() if not line.startswith("note: ")]
