"""The warm AssemblyScript compiler: same bytes as the command line, diagnostics, restarts."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.languages import assemblyscript
from ngixi_build.project import Project
from ngixi_build.stages.compile import asc_arguments
from ngixi_build.toolchains.asc_server import AscServer
from ngixi_build.toolchains.assemblyscript import ensure_toolchain, toolchain_for
from ngixi_build.workflows import pipeline
from tests.conftest import REPO
from tests.integration import compiler_processes, copy_project

pytestmark = pytest.mark.integration

TIMEOUT = 300.0


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    ensure_toolchain(state_dir=REPO / ".ngixi")
    return Project(copy_project(tmp_path_factory.mktemp("asc") / "project", toolchain_from=REPO))


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[AscServer]:
    with AscServer(toolchain_for(project.state_dir), project.root) as server:
        yield server


def guest_argv(project: Project, guest: str, output: Path) -> list[str]:
    entry, options = assemblyscript.compile_inputs(project, read_guest(project, guest))
    return asc_arguments(toolchain_for(project.state_dir), project.root, entry, output, options)


def test_warm_compiles_give_the_command_lines_bytes_whatever_came_before(
    project: Project, server: AscServer, tmp_path: Path
) -> None:
    # A WASI guest's shim (--lib) must not leak into the library guest compiled after it.
    for n, guest in enumerate(("wasi-hello", "hello", "wasi-hello")):
        reply = server.compile(guest_argv(project, guest, tmp_path / f"{n}-{guest}.wasm"), timeout=TIMEOUT)
        assert reply.ok, reply.diagnostics
    assert (tmp_path / "0-wasi-hello.wasm").read_bytes() == (tmp_path / "2-wasi-hello.wasm").read_bytes()
    hello = read_guest(project, "hello")
    pipeline.compile_guest(project, hello)
    # what the build changes of asc's module, as it did
    pipeline.fit_core_module(project, tmp_path / "1-hello.wasm", hello)
    assert (tmp_path / "1-hello.wasm").read_bytes() == project.wasm_path("hello").read_bytes()


def test_diagnostics_come_back_and_inputs_tell_when_a_result_is_stale(
    project: Project, server: AscServer, tmp_path: Path
) -> None:
    source = project.root / "scratch" / "broken.ts"
    source.parent.mkdir(exist_ok=True)
    source.write_text("export function f(: i32 { return 1; }\n")
    reply = server.compile(["scratch/broken.ts", "-o", str(tmp_path / "b.wasm")], timeout=TIMEOUT)
    assert not reply.ok
    assert "TS1003: Identifier expected." in reply.diagnostics and "scratch/broken.ts(1,18)" in reply.diagnostics
    assert reply.still_current()
    source.write_text("export function f(): i32 { return 1; }\n")
    assert not reply.still_current()


def test_a_killed_compiler_is_replaced(project: Project, server: AscServer, tmp_path: Path) -> None:
    source = project.root / "scratch" / "tiny.ts"
    source.parent.mkdir(exist_ok=True)
    source.write_text("export function f(): i32 { return 1; }\n")
    argv = ["scratch/tiny.ts", "--runtime", "stub", "-o", str(tmp_path / "tiny.wasm")]
    assert server.compile(argv, timeout=TIMEOUT).ok
    (first,) = compiler_processes(os.getpid())
    os.kill(first, signal.SIGKILL)
    assert server.compile(argv, timeout=TIMEOUT).ok
    assert compiler_processes(os.getpid()) not in ([], [first])


def test_a_projects_asconfig_never_runs_or_writes_anything(project: Project, server: AscServer, tmp_path: Path) -> None:
    """asc reads asconfig.json from the project's root unless given --config: its "transform" is JavaScript it
    runs, its "textFile" a file it writes anywhere. Neither the command line nor the warm compiler reads it."""
    ran, written = tmp_path / "transform-ran", tmp_path / "text-written"
    transform = project.root / "evil.mjs"
    transform.write_text(f'import fs from "fs";\nfs.writeFileSync({str(ran)!r}, "ran");\nexport default class X {{}}\n')
    config = {"options": {"transform": ["./evil.mjs"], "textFile": str(written)}}
    (project.root / "asconfig.json").write_text(json.dumps(config))
    try:
        reply = server.compile(guest_argv(project, "hello", tmp_path / "warm.wasm"), timeout=TIMEOUT)
        assert reply.ok, reply.diagnostics
        pipeline.compile_guest(project, read_guest(project, "hello"))
    finally:
        (project.root / "asconfig.json").unlink()
    assert not ran.exists() and not written.exists()
