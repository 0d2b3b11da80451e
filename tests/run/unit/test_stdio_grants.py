"""The stdin and env grants: their manifest tables, policy ceilings, what a caller may give, and fd 0."""

from __future__ import annotations

import math
import os
import struct
import time
from contextlib import suppress
from functools import partial
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.component import ComponentInfo, wasi_setup
from ngixi_runtime.capabilities.context import HostContext
from ngixi_runtime.capabilities.linking import (
    caller_arguments,
    caller_environment,
    caller_stdin,
    core_imports,
    open_context,
)
from ngixi_runtime.errors import InvalidInput, PolicyError
from ngixi_runtime.files import read_by
from ngixi_runtime.guest.check import check_component
from ngixi_runtime.guest.manifest import ManifestError, parse_manifest
from ngixi_runtime.spec.abi import Errno
from ngixi_runtime.trust.policy import load_policy
from tests.conftest import HELLO_MANIFEST, FakeMemory

F = "manifests/hello.toml"


def manifest(grants: str):  # type: ignore[no-untyped-def]
    return parse_manifest(HELLO_MANIFEST + grants, source=F, stem="hello")


@pytest.mark.parametrize(
    ("grants", "problems"),
    [
        ('[capabilities.env]\nallow = ["1X", "OK"]\n', ['capabilities.env.allow[0]: "1X" is not a variable name']),
        ('[capabilities.env]\nallow = ["A", "A"]\n', ['capabilities.env.allow[1]: "A" is listed twice']),
        ("[capabilities.env]\nfixed = { A = 1 }\n", ["capabilities.env.fixed.A: must be a string without NUL"]),
        ('[capabilities.env]\nfixed = { "A-B" = "x" }\n', ["capabilities.env.fixed.A-B: is not a variable name"]),
        (
            '[capabilities.env]\nallow = ["A"]\nfixed = { A = "x" }\n',
            ['capabilities.env.allow[0]: "A" is also fixed; a caller cannot change a fixed value'],
        ),
        ("[capabilities.env]\nnames = []\n", ["capabilities.env.names: unknown key; allowed: allow, fixed"]),
        ("[capabilities.stdin]\nmax_bytes = 67108865\n", ["capabilities.stdin.max_bytes: "]),
        ("[capabilities.stdin]\nmax = 1\n", ["capabilities.stdin.max: unknown key"]),
    ],
)
def test_grant_tables_are_checked(grants: str, problems: list[str]) -> None:
    with pytest.raises(ManifestError) as refused:
        manifest(grants)
    assert len(refused.value.lines) == len(problems)
    for line, problem in zip(refused.value.lines, problems, strict=True):
        assert line.startswith(f"{F}: {problem}"), line


def test_the_environment_is_the_fixed_variables_and_the_allowed_ones_given() -> None:
    grants = manifest('[capabilities.env]\nallow = ["LANG"]\nfixed = { MODE = "prod" }\n').capabilities
    assert caller_environment("hello", grants, {"LANG": "C"}) == {"MODE": "prod", "LANG": "C"}
    assert caller_environment("hello", grants, {}) == {"MODE": "prod"}
    with pytest.raises(InvalidInput, match="hello: environment variable PATH is not allowed by its manifest"):
        caller_environment("hello", grants, {"PATH": "/bin"})
    with pytest.raises(InvalidInput, match=r"its value 'C\\x00evil' holds a NUL character"):
        caller_environment("hello", grants, {"LANG": "C\0evil"})
    assert caller_environment("hello", {}, {}) == {}
    with pytest.raises(InvalidInput, match=r"variable LANG: its value 'C\\udcff' is not valid UTF-8"):
        caller_environment("hello", grants, {"LANG": "C\udcff"})


@pytest.mark.parametrize("grant", ["", "allow = []\n", "allow = []\nfixed = {}\n"])
def test_env_granted_with_no_variables_is_valid_and_passes_none(grant: str) -> None:
    """What the build's refusal of an environ_get import (Rust's std imports it in every program) tells authors."""
    grants = manifest(f"[capabilities.env]\n{grant}").capabilities
    assert "env" in grants and caller_environment("hello", grants, {}) == {}
    with pytest.raises(InvalidInput, match="environment variable HOME is not allowed by its manifest"):
        caller_environment("hello", grants, {"HOME": "/root"})


def test_arguments_a_guest_granted_args_cannot_be_given_are_refused_naming_them() -> None:
    grants = manifest("[capabilities.args]\n").capabilities
    assert caller_arguments("hello", grants, ["a", "é😀", ""]) == ("a", "é😀", "")
    with pytest.raises(InvalidInput, match=r"^hello: argument 2, 'x\\x00y', holds a NUL character$"):
        caller_arguments("hello", grants, ["a", "x\0y"])
    with pytest.raises(InvalidInput, match=r"^hello: argument 1, '\\ud800', is not valid UTF-8"):
        caller_arguments("hello", grants, ["\ud800"])
    assert caller_arguments("hello", {}, ["\ud800", "a"]) == ()  # not granted: it sees none


def test_a_long_value_refused_is_shown_around_what_wasi_cannot_carry() -> None:
    """A file's text passed as an argument or a variable's value: the line shows 60 characters of it, not all."""
    grants = manifest('[capabilities.args]\n[capabilities.env]\nallow = ["LANG"]\n').capabilities
    long = "a" * 100_000 + "\udcff" + "b" * 100
    shown = r"\.\.\.'a{30}\\udcffb{29}'\.\.\. \(100101 characters\)"
    with pytest.raises(InvalidInput, match=rf"^hello: argument 2, {shown}, is not valid UTF-8"):
        caller_arguments("hello", grants, ["x", long])
    with pytest.raises(InvalidInput, match=rf"^hello: environment variable LANG: its value {shown} is not valid"):
        caller_environment("hello", grants, {"LANG": long})
    with pytest.raises(InvalidInput, match=r"^hello: argument 1, '\\x00b{59}'\.\.\. \(200 characters\), holds a NUL"):
        caller_arguments("hello", grants, ["\0" + "b" * 199])


def test_a_component_not_granted_args_is_given_none_to_encode() -> None:
    """Its WASI gets argv from the context: a caller's word that is not UTF-8 (a CLI export name, a call's
    argument) was handed to Wasmtime, which could not encode it, and the guest failed to start."""
    from ngixi_runtime.engines.wasmtime_component import _StdioWriters, _wasi_config

    grants = manifest("[capabilities.stdio]\n").capabilities
    context = open_context("hello", grants, log_quota=0, stdio_quota=0, sandbox=None, args=["sh\udcffow", "a\0b"])
    setup = wasi_setup(context)
    assert setup.args == ("hello",)
    _wasi_config(setup, _StdioWriters())


def test_stdin_is_checked_and_a_reader_asked_only_with_the_grant() -> None:
    grants = manifest("[capabilities.stdin]\nmax_bytes = 4\n").capabilities
    given = partial(caller_stdin, "hello", timeout_ms=1000)
    assert given(grants, b"ping") == b"ping"
    assert given(grants, lambda limit, deadline: b"pi"[: limit + 1]) == b"pi"
    with pytest.raises(InvalidInput, match=r"over capabilities\.stdin\.max_bytes = 4 bytes"):
        given(grants, lambda limit, deadline: b"x" * (limit + 1))
    assert given({}, lambda limit, deadline: pytest.fail("read stdin for a guest not granted it")) == b""
    assert given({}, b"") == b""
    with pytest.raises(InvalidInput, match=r"not granted \[capabilities\.stdin\]"):
        given({}, b"x")


def test_a_reader_is_given_the_timeout_as_its_deadline_and_a_pipe_left_open_is_refused() -> None:
    """`ngixi run`'s stdin was read to its end before the guest started, however long its writer kept it open."""
    grants = manifest("[capabilities.stdin]\nmax_bytes = 4\n").capabilities
    read, write = os.pipe()
    try:
        os.write(write, b"pi")
        started = time.monotonic()
        ended = r"^hello: its standard input did not end within limits\.timeout_ms = 200 ms"
        with pytest.raises(InvalidInput, match=ended):
            caller_stdin("hello", grants, partial(read_by, read), timeout_ms=200)
        assert 0.2 <= time.monotonic() - started < 5
        os.write(write, b"ng!!!!")  # past max_bytes, its end is not waited for
        assert read_by(read, 4, math.inf) == b"ng!!!"
        os.read(read, 1)
        os.write(write, b"ping")
        os.close(write)
        assert caller_stdin("hello", grants, partial(read_by, read), timeout_ms=200) == b"ping"
    finally:
        os.close(read)
        with suppress(OSError):
            os.close(write)


def test_fd_0_reads_the_input_then_end_of_file() -> None:
    grants = manifest("[capabilities.stdin]\n[capabilities.stdio]\n").capabilities
    context = open_context("hello", grants, log_quota=0, stdio_quota=10, sandbox=None, stdin=b"hello")
    context.memory = FakeMemory()
    linked = dict((i.name, f) for i, f in core_imports(context, [("wasi_snapshot_preview1", "fd_read")]))
    context.mem.write(0, struct.pack("<IIII", 100, 3, 200, 10))  # two iovecs: 3 bytes at 100, 10 at 200
    assert linked["fd_read"](0, 0, 2, 300) == Errno.SUCCESS
    assert (context.mem.read(100, 3), context.mem.read(200, 2), context.mem.read(300, 4)) == (
        b"hel",
        b"lo",
        struct.pack("<I", 5),
    )
    assert linked["fd_read"](0, 0, 2, 300) == Errno.SUCCESS
    assert context.mem.read(300, 4) == struct.pack("<I", 0)
    assert linked["fd_read"](1, 0, 2, 300) == Errno.BADF


def test_fs_without_preopens_needs_no_sandbox() -> None:
    grants = manifest("[capabilities.fs]\n").capabilities
    context: HostContext = open_context("hello", grants, log_quota=0, stdio_quota=0, sandbox=None)
    context.close()
    with pytest.raises(InvalidInput, match=r"^hello: its fs capability keeps state in a sandbox directory: give one"):
        open_context(
            "hello",
            manifest('[capabilities.fs]\npreopens = [{ guest = "/d", host = "d" }]\n').capabilities,
            log_quota=0,
            stdio_quota=0,
            sandbox=None,
        )


def test_a_policy_caps_stdin_and_the_variables_a_manifest_may_name(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities.stdin]\nmax_bytes = 10\n[capabilities.env]\nallow = ["LANG"]\n')
    asking = manifest(
        '[capabilities.stdin]\nmax_bytes = 11\n[capabilities.env]\nallow = ["LANG", "HOME"]\nfixed = { MODE = "x" }\n'
    )
    with pytest.raises(PolicyError) as refused:
        load_policy(policy).check(asking)
    message = str(refused.value)
    assert "capabilities.stdin.max_bytes: asks for 11, the policy allows at most 10" in message
    assert 'capabilities.env.allow[1]: "HOME" is not allowed by the policy' in message
    assert 'capabilities.env.fixed[0]: "MODE" is not allowed by the policy' in message


def test_a_component_guest_granted_stdin_may_import_what_the_adapter_reads_it_by() -> None:
    component = HELLO_MANIFEST.replace('version = "0.1.0"\n', 'version = "0.1.0"\nabi = "component"\n')
    reading = {
        "wasi:cli/stdin@0.2.12": frozenset({"get-stdin"}),
        "wasi:io/streams@0.2.12": frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"}),
        "wasi:filesystem/types@0.2.12": frozenset({"[method]descriptor.read-via-stream", "filesystem-error-code"}),
    }
    info = ComponentInfo(reading, {"add": (("s32", "s32"), ("s32",))})
    assert check_component(parse_manifest(component + "[capabilities.stdin]\n", source=F, stem="hello"), info) == []
    refused = check_component(parse_manifest(component, source=F, stem="hello"), info)
    assert len(refused) == 4 and all("[capabilities.stdin]" in line for line in refused), refused
