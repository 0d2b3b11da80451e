"""`ngixi run ... --input/--output/--json` with exports that take and give data."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ngixi_runtime.call_io import read_input, stream_reader, write_output
from ngixi_runtime.guest.data import read_json
from tests import data_values
from tests.conftest import KeyFiles, exit_code, make_bundle
from tests.run.integration.test_call_data import MANIFEST, WASM
from tests.run.integration.test_cli_grants import NGIXI
from tests.run.integration.test_wasi_grants import STDIN_ECHO, STDIN_GRANT

pytestmark = pytest.mark.integration

BYTES_MANIFEST = MANIFEST.replace('input = "text"\noutput = "text"', 'input = "bytes"\noutput = "bytes"', 1)


@pytest.fixture
def bundle(tmp_path: Path, keys: KeyFiles) -> list[str]:
    path = make_bundle(tmp_path / "text", keys.key, wasm=WASM, manifest=MANIFEST, guest="echo")
    return ["run", "--trust", str(keys.trust), "--in-process", str(path)]


@pytest.fixture
def bytes_bundle(tmp_path: Path, keys: KeyFiles) -> list[str]:
    path = make_bundle(tmp_path / "bytes", keys.key, wasm=WASM, manifest=BYTES_MANIFEST, guest="echo")
    return ["run", "--trust", str(keys.trust), "--in-process", str(path)]


def test_input_as_text_file_or_stdin_and_text_output_printed_as_text(
    bundle: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert exit_code([*bundle, "echo", "--input", "héllo"]) == 0
    assert capsys.readouterr().out == "héllo"
    (tmp_path / "in.txt").write_text("from a file\n")
    assert exit_code([*bundle, "echo", "--input", f"@{tmp_path / 'in.txt'}"]) == 0
    assert capsys.readouterr().out == "from a file\n"
    assert exit_code([*bundle, "echo", "--input", "@@at sign"]) == 0
    assert capsys.readouterr().out == "@at sign"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert exit_code([*bundle, "echo", "--input", "-"]) == 0
    assert capsys.readouterr().out == "from stdin"


def test_json_wraps_the_output_value_and_the_metrics(
    bundle: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    assert exit_code([*bundle, "json", "--input", '{"a": [1, "é"]}', "--json", "--output", str(out)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["ok"], document["output"], document["output_kind"]) == (True, {"a": [1, "é"]}, "json")
    assert document["metrics"]["outcome"] == "ok"
    assert document["metrics"]["output_bytes"] == len('{"a": [1, "é"]}'.encode())  # the input, echoed
    assert json.loads(out.read_text()) == {"a": [1, "é"]}  # --output is honoured beside --json
    # An --output it cannot write: one document, the failure's (it printed the success's, then failed)
    assert exit_code([*bundle, "json", "--input", "1", "--json", "--output", str(out / "x")]) == 2
    failure = json.loads(capsys.readouterr().out)
    assert (failure["ok"], failure["error"]["kind"]) == (False, "input")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["echo"], "echo: echo takes text input: use --input"),
        (["echo", "hello", "world"], "echo: echo takes text input, not arguments: use --input 'hello world'"),
        (["json", "--input", "{nope"], "echo: json takes JSON input, and this is not valid JSON"),
        (["echo", "--input", "@/nonexistent/in.txt"], "echo: echo: --input @/nonexistent/in.txt: cannot read it"),
        (["echo", "--input", "x" * 4097], "echo: echo: the input is 4097 bytes, over its limit of 4096"),
        (["echo", "--input", os.fsdecode(b"a\xffb")], "echo: echo takes text input, and this is not valid UTF-8 (byte"),
        (
            ["json", "--input", "[1e400]"],
            "echo: json takes JSON input, and this is JSON with the number 1e400, out of range",
        ),
        (["lenptr", "--input", "x", "--output", "out"], "echo: lenptr declares no output, so --output out would stay"),
    ],
)
def test_bad_input_is_one_line_with_what_to_do(
    bundle: list[str], argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code([*bundle, *argv]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
    assert error.startswith(f"ngixi: error: {message}")


def test_output_to_a_missing_folder_or_a_folder_is_refused_before_the_call(
    bundle: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped folder was made, silently, after the call; a folder failed only once the call was done."""
    missing = tmp_path / "resluts" / "out.txt"
    assert exit_code([*bundle, "echo", "--input", "x", "--output", str(missing)]) == 2
    assert f"--output {missing}: {missing.parent} is not a folder; name a file in an existing folder" in (
        capsys.readouterr().err
    )
    assert not missing.parent.exists()
    assert exit_code([*bundle, "echo", "--input", "x", "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path}: it is a folder; name a file" in capsys.readouterr().err


def test_a_file_or_stdin_over_the_limit_is_refused_before_it_is_read(
    bundle: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 10_000_000)
    assert exit_code([*bundle, "echo", "--input", f"@{big}"]) == 2
    assert "is 10000000 bytes, over the input limit of 4096 bytes (limits.input_bytes)" in capsys.readouterr().err
    stdin = io.BytesIO(b"y" * 10_000_000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
    assert exit_code([*bundle, "echo", "--input", "-"]) == 2
    assert "standard input is over the input limit of 4096 bytes" in capsys.readouterr().err
    assert stdin.tell() == 4097  # read one byte past the limit, no more


def test_binary_output_goes_to_a_file_or_a_pipe_raw(
    bytes_bundle: list[str], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"the user's old file")
    assert exit_code([*bytes_bundle, "echo", "--input", "raw", "--output", str(out)]) == 0
    assert out.read_bytes() == b"raw"
    captured = capsysbinary.readouterr()
    assert captured.out == b"" and b"note: replaced" in captured.err
    assert exit_code([*bytes_bundle, "echo", "--input", "raw"]) == 0
    assert capsysbinary.readouterr().out == b"raw"


class Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_binary_output_on_a_terminal_is_base64_and_text_gets_its_newline() -> None:
    stdout, stderr = Terminal(), io.StringIO()
    write_output(b"\x00\xff", "bytes", to_file=None, stdout=stdout, stderr=stderr)
    assert stdout.getvalue() == b"AP8=\n" and "shown as base64" in stderr.getvalue()
    stdout = Terminal()
    write_output("é".encode(), "text", to_file=None, stdout=stdout, stderr=stderr)
    assert stdout.getvalue() == "é\n".encode()


def test_a_trap_in_the_guest_is_one_line_isolated_too(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST, guest="echo")
    assert exit_code(["run", "--trust", str(keys.trust), str(path), "overclaim"]) == 5
    error = capsys.readouterr().err
    assert "ngixi: error: echo: overclaim: output_write(131062, 20) names bytes outside its memory" in error


def test_stdin_is_not_the_input_of_a_guest_that_reads_stdin_itself(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = MANIFEST.replace("[limits]", "[capabilities.stdin]\n\n[limits]")
    path = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=manifest, guest="echo")
    assert exit_code(["run", "--trust", str(keys.trust), "--in-process", str(path), "echo", "--input", "-"]) == 2
    assert "the guest reads standard input itself ([capabilities.stdin]): use --input @FILE" in capsys.readouterr().err


def test_input_from_a_terminal_says_how_to_end_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert read_input("-", limit=10, what="g: f", timeout_ms=1, stdin=stream_reader(Terminal(b"typed"))) == b"typed"
    assert "reading standard input from the terminal; end it with Ctrl-D" in capsys.readouterr().err


@pytest.fixture
def stdin_bundles(tmp_path: Path, keys: KeyFiles) -> dict[str, list[str]]:
    """`ngixi run` of a guest granted stdin that echoes it, and of an export echoing `--input -`, under a short
    limits.timeout_ms."""
    short = "[limits]\ntimeout_ms = 300\n"
    granted = make_bundle(tmp_path / "granted", keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT + short)
    call = make_bundle(
        tmp_path / "call", keys.key, wasm=WASM, manifest=MANIFEST.replace("[limits]\n", short, 1), guest="echo"
    )
    trust = ["--trust", str(keys.trust)]
    return {"granted": ["run", *trust, str(granted)], "--input -": ["run", *trust, str(call), "echo", "--input", "-"]}


@pytest.mark.parametrize("where", [[], ["--in-process"]], ids=["isolated", "in-process"])
def test_a_closed_or_empty_stdin_is_no_input(
    tmp_path: Path, stdin_bundles: dict[str, list[str]], where: list[str]
) -> None:
    """`ngixi run ... <&-` ended in "unexpected AttributeError" (Python's sys.stdin is None then), for a guest
    granted stdin and for `--input -`: a closed standard input is no input, as /dev/null is."""
    for kind, command in stdin_bundles.items():
        for redirect in ("<&-", "</dev/null"):
            shell = ["sh", "-c", f'exec "$@" {redirect}', "sh"]
            ran = subprocess.run([*shell, NGIXI, *command, *where], cwd=tmp_path, capture_output=True, check=False)
            assert (ran.returncode, ran.stdout) == (0, b""), (kind, redirect, ran.stderr)
            assert b"error" not in ran.stderr, (kind, redirect, ran.stderr)


def test_a_terminal_is_read_until_ctrl_d_whatever_the_timeout(
    tmp_path: Path, stdin_bundles: dict[str, list[str]]
) -> None:
    """A guest granted stdin had to be given its input on a terminal within limits.timeout_ms (300 ms here), while
    `--input -` waited for Ctrl-D: both wait for Ctrl-D now, as a person types, and say so."""
    for kind, command in stdin_bundles.items():
        terminal, ours = os.openpty()
        try:
            with subprocess.Popen(
                [NGIXI, *command, "--in-process"],
                cwd=tmp_path,
                stdin=ours,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ) as run:
                time.sleep(1)  # longer than timeout_ms
                os.write(terminal, b"typed\n\x04")
                stdout, stderr = run.communicate(timeout=60)
        finally:
            os.close(terminal)
            os.close(ours)
        assert (run.returncode, stdout) == (0, b"typed\n"), (kind, stderr)
        assert b"note: reading standard input from the terminal; end it with Ctrl-D" in stderr


def test_seeded_values_through_input_files_and_json_match_the_api(
    bundle: list[str], bytes_bundle: list[str], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The data fuzzer's bounded form on the command line: `--input @FILE` of seeded text, bytes and JSON documents,
    printed raw and in `--json`'s document, give what was sent (bytes as base64 there), as the API does."""
    rng = random.Random(19)
    given = tmp_path / "given"
    for _ in range(8):
        for argv, raw, kind in (
            (bundle, data_values.text(rng, 60).encode(), "text"),
            (bytes_bundle, data_values.data(rng, 300), "bytes"),
            (bundle, data_values.document(rng).encode(), "json"),
        ):
            export = "json" if kind == "json" else "echo"
            given.write_bytes(raw)
            assert exit_code([*argv, export, "--input", f"@{given}"]) == 0
            assert capsysbinary.readouterr().out == raw
            assert exit_code([*argv, export, "--input", f"@{given}", "--json"]) == 0
            output = json.loads(capsysbinary.readouterr().out)["output"]
            expected = base64.b64encode(raw).decode() if kind == "bytes" else raw.decode()
            if kind == "json":
                expected = read_json(expected)
            assert data_values.same(output, expected), raw


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
def test_input_from_a_pipe_that_does_not_end_within_the_timeout_is_refused(
    tmp_path: Path, keys: KeyFiles, where: tuple[str, ...]
) -> None:
    """`tail -f log | ngixi run B echo --input -` held the run for ever: the input was read to its end first,
    whatever limits.timeout_ms said (as a guest's granted stdin was, before)."""
    manifest = MANIFEST.replace("[limits]\n", "[limits]\ntimeout_ms = 300\n", 1)
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=manifest, guest="echo")
    command: list[str | Path] = [NGIXI, "run", *where, "--trust", str(keys.trust), str(bundle), "echo", "--input", "-"]
    with subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as run:
        assert run.stdin is not None and run.stderr is not None
        run.stdin.write(b"ping")
        run.stdin.flush()
        try:
            assert run.wait(timeout=60) == 2  # its stdin still open
        finally:
            run.kill()
        stderr = run.stderr.read()
    assert stderr.splitlines()[-1] == (  # after the note of its compile
        b"ngixi: error: echo: echo: standard input did not end within limits.timeout_ms = 300 ms (it is read whole "
        b"first); close it sooner (end of file), or redirect it from a file (< FILE)"
    )


def test_input_from_a_pipe_that_ends_is_the_calls_input(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST, guest="echo")
    command: list[str | Path] = [NGIXI, "run", "--trust", str(keys.trust), str(bundle), "echo", "--input", "-"]
    ran = subprocess.run(command, cwd=tmp_path, input=b"to be", capture_output=True, check=False)
    assert (ran.returncode, ran.stdout) == (0, b"to be"), ran.stderr
