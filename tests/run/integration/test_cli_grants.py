"""The installed `ngixi run` passes its standard input and `--env` variables to a guest whose manifest takes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyFiles, make_bundle
from tests.run.integration.test_wasi_grants import COMMAND, ENV_GRANT, ENVIRON, STDIN_ECHO, STDIN_GRANT

NGIXI = Path(sys.executable).parent / "ngixi"


def ngixi(
    *arguments: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [NGIXI, *arguments], cwd=cwd, input=stdin, capture_output=True, env={**os.environ, **(env or {})}, check=False
    )


@pytest.fixture
def bundles(tmp_path: Path, keys: KeyFiles) -> dict[str, Path]:
    return {
        "echo": make_bundle(tmp_path / "echo", keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT),
        "environ": make_bundle(tmp_path / "environ", keys.key, wasm=ENVIRON, manifest=ENV_GRANT),
        "args": make_bundle(tmp_path / "args", keys.key, wasm=ENVIRON, manifest=ENV_GRANT + "[capabilities.args]\n"),
        "no-grants": make_bundle(
            tmp_path / "plain", keys.key, wasm=ENVIRON, manifest=COMMAND + "[capabilities.stdio]\n[capabilities.env]\n"
        ),
    }


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
def test_run_passes_stdin_and_env_to_a_guest_granted_them(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path], where: tuple[str, ...]
) -> None:
    trust = ("--trust", str(keys.trust))
    echoed = ngixi("run", *where, *trust, str(bundles["echo"]), cwd=tmp_path, stdin=b"ping")
    assert (echoed.returncode, echoed.stdout) == (0, b"ping"), echoed.stderr
    run = ["run", *where, *trust, str(bundles["environ"]), "--env", "LANG=C.UTF-8", "--env", "DEBUG"]
    shown = ngixi(*run, cwd=tmp_path, env={"DEBUG": "1"})
    assert (shown.returncode, shown.stdout) == (0, b"MODE=prod\0LANG=C.UTF-8\0DEBUG=1\0")  # as given
    bare = ngixi("run", *where, *trust, str(bundles["no-grants"]), cwd=tmp_path, env={"DEBUG": "1"})
    assert (bare.returncode, bare.stdout) == (0, b""), bare.stderr  # a bare [capabilities.env] passes no variable


@pytest.mark.parametrize(
    "case",
    [
        ("environ", ["--env", "HOME=/root"], "hello: environment variable HOME is not allowed by its manifest"),
        ("environ", ["--env", "MODE=dev"], "hello: environment variable MODE is fixed by its manifest"),
        ("environ", ["--env", "NGIXI_UNSET_FOR_TEST"], "--env NGIXI_UNSET_FOR_TEST: NGIXI_UNSET_FOR_TEST is not set"),
        (
            "no-grants",
            ["--env", "LANG=C"],
            "hello: environment variable LANG is not allowed by its manifest; capabilities.env.allow lists: none",
        ),
        ("echo", ["--env", "LANG=C"], "hello: it is not granted [capabilities.env], so it takes no environment"),
        (  # a command line's bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape)
            "environ",
            ["--env", "LANG=C\udcff"],
            "hello: environment variable LANG: its value 'C\\udcff' is not valid UTF-8 (WASI strings are UTF-8)\n",
        ),
        ("args", ["--", "a", "b\udcff"], "hello: argument 2, 'b\\udcff', is not valid UTF-8 (WASI strings are UTF-8)"),
    ],
    ids=["not allowed", "fixed", "unset here", "env allowing nothing", "no env grant", "env not UTF-8", "bad args"],
)
def test_run_refuses_variables_the_manifest_does_not_take(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path], case: tuple[str, list[str], str]
) -> None:
    guest, options, refusal = case
    refused = ngixi("run", "--trust", str(keys.trust), str(bundles[guest]), *options, cwd=tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.decode().startswith(f"ngixi: error: {refusal}")
    assert refused.stderr.count(b"\n") == 1 and refused.stdout == b""


def test_run_refuses_stdin_beyond_the_guests_max_bytes(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path]
) -> None:
    refused = ngixi("run", "--trust", str(keys.trust), str(bundles["echo"]), cwd=tmp_path, stdin=b"x" * (1 << 20))
    assert refused.returncode != 0
    assert refused.stderr == (
        b"ngixi: error: hello: its standard input is over capabilities.stdin.max_bytes = 100 bytes; "
        b"give less, or raise max_bytes in the manifest\n"
    )


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
def test_run_refuses_stdin_that_does_not_end_within_the_timeout(
    tmp_path: Path, keys: KeyFiles, where: tuple[str, ...]
) -> None:
    """A pipe its writer never closed (`tail -f log | ngixi run B`) held the run for ever: its stdin was read to
    the end before the guest started, whatever limits.timeout_ms said."""
    bundle = make_bundle(tmp_path, keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT + "[limits]\ntimeout_ms = 300\n")
    command: list[str | Path] = [NGIXI, "run", *where, "--trust", str(keys.trust), str(bundle)]
    with subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as run:
        assert run.stdin is not None and run.stderr is not None
        run.stdin.write(b"ping")
        run.stdin.flush()
        try:
            assert run.wait(timeout=60) != 0  # its stdin still open
        finally:
            run.kill()
        stderr = run.stderr.read()
    assert stderr == (
        b"ngixi: error: hello: its standard input did not end within limits.timeout_ms = 300 ms (it is read whole "
        b"first); close it sooner (end of file), or redirect it from a file (< FILE)\n"
    )


def test_input_or_output_given_to_a_command_says_what_gives_it_input_or_keeps_its_output(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path]
) -> None:
    """`ngixi run tool.ngx --input @data.txt` said only "it takes arguments, not --input", though the command read
    its standard input: it says where input goes now, and --output where output goes."""
    cases = [
        (
            "echo",
            "--input",
            "it takes arguments (ngixi run BUNDLE -- ARGS...) and reads ngixi run's standard input "
            "(< FILE), not --input",
        ),
        ("no-grants", "--input", "it takes arguments (ngixi run BUNDLE -- ARGS...), not --input"),
        ("echo", "--output", "what it prints is its output (> FILE), not --output"),
    ]
    for guest, option, reason in cases:
        ran = ngixi("run", "--in-process", "--trust", str(keys.trust), str(bundles[guest]), option, "x", cwd=tmp_path)
        refusal = f"ngixi: error: hello is a command guest: {reason}".encode()
        assert (ran.returncode, ran.stderr.splitlines()[-1]) == (2, refusal)  # after the note of its compile


def test_run_leaves_stdin_alone_for_a_guest_not_granted_it(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path]
) -> None:
    ran = ngixi("run", "--trust", str(keys.trust), str(bundles["no-grants"]), cwd=tmp_path, stdin=b"not for it")
    assert (ran.returncode, ran.stdout) == (0, b""), ran.stderr


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
def test_a_closed_standard_stream_is_as_dev_null(
    tmp_path: Path, keys: KeyFiles, bundles: dict[str, Path], where: tuple[str, ...]
) -> None:
    """`ngixi run B <&-` (a cron job, a service started without stdin) ended in "unexpected AttributeError", and so
    did a closed stdout; a closed stderr ended it with Python's status 120. Each now reads as empty or takes the
    writes to nowhere, as /dev/null would."""
    command = [str(NGIXI), "run", *where, "--trust", str(keys.trust), str(bundles["echo"])]

    def closing(redirection: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        shell = ["sh", "-c", f'exec "$@" {redirection}', "sh", *command]
        return subprocess.run(shell, cwd=tmp_path, input=stdin, capture_output=True, check=False, timeout=60)

    no_input = closing("<&-")  # stderr may hold the note of the bundle's compile, never an error
    assert (no_input.returncode, no_input.stdout, b"error" in no_input.stderr) == (0, b"", False), no_input.stderr
    no_output = closing(">&-", b"ping")
    assert (no_output.returncode, b"error" in no_output.stderr) == (0, False), no_output.stderr
    no_errors = closing("2>&-", b"ping")
    assert (no_errors.returncode, no_errors.stdout) == (0, b"ping")
