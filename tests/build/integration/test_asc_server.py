"""The warm AssemblyScript compiler: same bytes as the command line, diagnostics, restarts."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.languages import assemblyscript
from ngixi_build.project import Project
from ngixi_build.stages import compile as compile_stage
from ngixi_build.stages.compile import CompileError, asc_arguments
from ngixi_build.toolchains.asc_server import AscReply, AscServer, CompilerDied, stop_shared_server
from ngixi_build.toolchains.assemblyscript import ensure_toolchain, toolchain_for
from ngixi_build.workflows import pipeline
from ngixi_build.workflows.devbuild import DevBuilder
from ngixi_runtime.files import sha256_of
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


@pytest.fixture(autouse=True)
def _no_shared_compiler_left() -> Iterator[None]:
    """Each test starts without the build's warm compiler, and leaves none (it counts this process's compilers)."""
    yield
    stop_shared_server()


def guest_argv(project: Project, guest: str, output: Path) -> list[str]:
    entry, options = assemblyscript.compile_inputs(project, read_guest(project, guest))
    return asc_arguments(toolchain_for(project.state_dir), project.root, entry, output, options)


def test_warm_compiles_give_the_command_lines_bytes_whatever_came_before(
    project: Project, server: AscServer, one_off_hello: OneOff, tmp_path: Path
) -> None:
    # A WASI guest's shim (--lib) must not leak into the library guest compiled after it.
    for n, guest in enumerate(("wasi-hello", "hello", "wasi-hello")):
        reply = server.compile(guest_argv(project, guest, tmp_path / f"{n}-{guest}.wasm"), timeout=TIMEOUT)
        assert reply.ok, reply.diagnostics
    assert (tmp_path / "0-wasi-hello.wasm").read_bytes() == (tmp_path / "2-wasi-hello.wasm").read_bytes()
    assert (tmp_path / "1-hello.wasm").read_bytes() == one_off_hello.asc_wrote


class OneOff(NamedTuple):
    asc_wrote: bytes
    build_made: bytes  # of what asc wrote, by `fit_core_module`


@pytest.fixture(scope="module")
def one_off_hello(project: Project, tmp_path_factory: pytest.TempPathFactory) -> OneOff:
    """The hello guest as the asc command line compiles it, in a Node process of its own."""
    output = tmp_path_factory.mktemp("one-off") / "hello.wasm"
    asc_wrote = one_off_asc(project, "hello", output)
    pipeline.fit_core_module(project, output, read_guest(project, "hello"))
    return OneOff(asc_wrote, output.read_bytes())


def one_off_asc(project: Project, guest: str, output: Path) -> bytes:
    """What the asc command line writes for the guest, in a Node process of its own."""
    asc = toolchain_for(project.state_dir).asc
    subprocess.run([*asc, *guest_argv(project, guest, output)], cwd=project.root, check=True, capture_output=True)
    return output.read_bytes()


def test_a_builds_compiles_share_one_warm_compiler_with_the_command_lines_bytes(
    project: Project, one_off_hello: OneOff, tmp_path: Path
) -> None:
    """A one-off asc per guest paid Node's start and asc's loading every time: most of a build's time. Projects
    that share a toolchain share the compiler."""
    before = set(compiler_processes(os.getpid()))
    other = Project(copy_project(tmp_path / "other", toolchain_from=project.root))  # as a release's clean copy
    for built, guest in ((other, "wasi-hello"), (project, "wasi-hello"), (project, "hello"), (other, "hello")):
        pipeline.compile_guest(built, read_guest(built, guest))
        (started,) = set(compiler_processes(os.getpid())) - before
    assert project.wasm_path("hello").read_bytes() == one_off_hello.build_made
    assert other.wasm_path("hello").read_bytes() == one_off_hello.build_made
    assert other.wasm_path("wasi-hello").read_bytes() == project.wasm_path("wasi-hello").read_bytes()
    assert set(compiler_processes(os.getpid())) - before == {started}


class _Dying:
    def compile(self, argv: Sequence[str], *, timeout: float, retry: bool, cwd: Path) -> AscReply:
        raise CompilerDied("the AssemblyScript compiler (node) exited with status -9")


def test_a_compile_whose_warm_compiler_dies_is_done_by_a_compiler_of_its_own(
    project: Project, one_off_hello: OneOff, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compile_stage, "shared_server", lambda toolchain, root: _Dying())
    project.wasm_path("hello").unlink(missing_ok=True)
    pipeline.compile_guest(project, read_guest(project, "hello"))
    assert project.wasm_path("hello").read_bytes() == one_off_hello.build_made


@pytest.mark.parametrize("changes", [1, 2])
def test_a_source_changed_as_asc_read_it_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: int
) -> None:
    """The build records the sources as they are after the compile: one changed as asc read it was taken as built
    when it was not. It is compiled again; a source changing at every compile is one line."""
    source = tmp_path / "index.ts"
    source.write_text("export const x = 1;\n")
    calls: list[Sequence[str]] = []

    class Changing:
        def compile(self, argv: Sequence[str], *, timeout: float, retry: bool, cwd: Path) -> AscReply:
            calls.append(argv)
            read = "0" * 64 if len(calls) <= changes else sha256_of(source)
            return AscReply(ok=True, diagnostics="", inputs={str(source): read})

    monkeypatch.setattr(compile_stage, "shared_server", lambda toolchain, root: Changing())
    toolchain = toolchain_for(tmp_path)
    if changes == 1:
        compile_stage.compile_with_asc(toolchain, tmp_path, ["index.ts"], what="asc index.ts")
    else:
        with pytest.raises(CompileError, match=r"^asc index\.ts: its sources changed while asc compiled them, 2 "):
            compile_stage.compile_with_asc(toolchain, tmp_path, ["index.ts"], what="asc index.ts")
    assert len(calls) == 2


def test_a_source_the_warm_compiler_reads_for_ever_stops_at_the_time_limit(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source asc takes longer than the limit to compile (a FIFO it imports blocked its read, before it stopped
    reading them); the time limit is one line, as a one-off asc's, and the next compile gets a new compiler."""
    scratch = project.root / "scratch"
    scratch.mkdir(exist_ok=True)
    body = "  x = x * 3 + 1;\n" * 400_000
    (scratch / "waits.ts").write_text(f"export function slow(): i32 {{\n  let x: i32 = 0;\n{body}  return x;\n}}\n")
    (scratch / "user.ts").write_text('import { slow } from "./waits";\nexport function f(): i32 { return slow(); }\n')
    monkeypatch.setenv("NGIXI_TOOL_LIMITS", "seconds=2")
    toolchain = toolchain_for(project.state_dir)
    argv = ["scratch/user.ts", "-o", str(tmp_path / "user.wasm")]
    with pytest.raises(CompileError) as stopped:
        compile_stage.compile_with_asc(toolchain, project.root, argv, what="asc scratch/user.ts")
    message = str(stopped.value)
    assert message.startswith("asc scratch/user.ts: stopped at its time limit of 2 s (") and "\n" not in message
    (scratch / "waits.ts").write_text("export function slow(): i32 { return 1; }\n")
    monkeypatch.delenv("NGIXI_TOOL_LIMITS")  # a new compiler's start takes longer than 2 s on a busy machine
    compile_stage.compile_with_asc(toolchain, project.root, argv, what="asc scratch/user.ts")
    assert (tmp_path / "user.wasm").read_bytes()[:4] == b"\0asm"


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
        one_off_asc(project, "hello", tmp_path / "cold.wasm")
    finally:
        (project.root / "asconfig.json").unlink()
    assert not ran.exists() and not written.exists()


def test_an_import_of_a_fifo_or_device_is_not_read_and_the_compiler_goes_on(
    project: Project, server: AscServer, tmp_path: Path
) -> None:
    """The warm compiler is shared by every project of a build: a guest importing a FIFO blocked it (and, with
    the build killed, Node waited on it for ever); a device (/dev/zero) grew its memory without end."""
    scratch = project.root / "scratch"
    scratch.mkdir(exist_ok=True)
    os.mkfifo(scratch / "pipe.ts")
    (scratch / "zero.ts").symlink_to("/dev/zero")
    try:
        for name in ("pipe", "zero"):
            source = scratch / f"imports-{name}.ts"
            source.write_text(f'import {{ x }} from "./{name}";\nexport function f(): i32 {{ return x; }}\n')
            reply = server.compile([f"scratch/imports-{name}.ts", "-o", str(tmp_path / "f.wasm")], timeout=60)
            assert not reply.ok
            assert f"{scratch / name}.ts: not a regular file (a FIFO or a device); not read" in reply.diagnostics
        (scratch / "tiny.ts").write_text("export function f(): i32 { return 1; }\n")
        assert server.compile(["scratch/tiny.ts", "-o", str(tmp_path / "tiny.wasm")], timeout=TIMEOUT).ok
    finally:
        (scratch / "pipe.ts").unlink()
        (scratch / "zero.ts").unlink()


def test_the_compiler_ends_at_the_end_of_its_input_without_finishing_a_compile(project: Project) -> None:
    """Its client is gone (a build killed) or stopping it: no one reads a reply, and a compile stuck on a guest's
    input kept Node running after the build."""
    toolchain = toolchain_for(project.state_dir)
    script = Path(compile_stage.__file__).parent.parent / "toolchains" / "js" / "asc_server.mjs"
    request = json.dumps({"id": 1, "argv": guest_argv(project, "hello", project.root / "unused.wasm")}) + "\n"
    done = subprocess.run(
        [str(toolchain.node), str(script), str(toolchain.asc_module)],
        cwd=project.root,
        input=request.encode(),
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and all("id" not in reply for reply in replies), replies
    assert not (project.root / "unused.wasm").exists()


@pytest.mark.parametrize("how", ["relative", "link", "package", "compiler-died", "watch"])
def test_a_guest_reading_a_file_outside_its_folder_is_refused(
    project: Project, server: AscServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """asc reads whatever a guest imports: `import { TOKEN } from "../../../../home/u/work/config"` compiled the
    builder's file into the guest (its strings in the .wasm the build signs), through a link in the guest's folder
    too, and a package name found in a node_modules/ above the project; so did the one-off asc that compiled when the
    warm compiler died, and watch mode's compiles. Each is refused, naming the file, and nothing is written."""
    secret = tmp_path / "node_modules" / "other" / "index.ts"
    secret.parent.mkdir(parents=True)
    secret.write_text('export const TOKEN = "the builder\'s token";\n')
    guest_dir = project.guests_dir / "hello"
    imported = {
        "relative": os.path.relpath(secret.with_suffix(""), guest_dir / "assembly"),
        "link": "./config",
        "package": "other",
    }.get(how, os.path.relpath(secret.with_suffix(""), guest_dir / "assembly"))
    if how == "link":
        (guest_dir / "assembly" / "config.ts").symlink_to(secret)
    if how == "package":
        secret = tmp_path.parent / "node_modules" / "other" / "index.ts"
        shutil.move(tmp_path / "node_modules", tmp_path.parent / "node_modules")
    if how == "compiler-died":
        monkeypatch.setattr(compile_stage, "shared_server", lambda toolchain, root: _Dying())
    index = guest_dir / "assembly" / "index.ts"
    source = index.read_text()
    leaking = source.replace('"hello from the hello guest"', "TOKEN")
    index.write_text(f'import {{ TOKEN }} from "{imported}";\n{leaking}')
    project.wasm_path("hello").unlink(missing_ok=True)
    try:
        with pytest.raises(CompileError, match=rf": reads {re.escape(str(secret))}, outside the guest's folder"):
            if how == "watch":
                DevBuilder(project, server).rebuild("hello")
            else:
                pipeline.compile_guest(project, read_guest(project, "hello"))
    finally:
        index.write_text(source)
        (guest_dir / "assembly" / "config.ts").unlink(missing_ok=True)
        shutil.rmtree(tmp_path.parent / "node_modules", ignore_errors=True)
    assert not project.wasm_path("hello").exists()
    assert not list((project.artifacts_dir / "dev").rglob("hello*"))
