"""SIGTERM to a build (`ngixi build`, `doit build`) unwinds it as Ctrl-C does: the compiler it runs is stopped with
every process it started, and no temporary is left beside the outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ngixi_runtime.files import is_temporary_name
from tests.integration import command_line, installed_toolchain, run, share_toolchains

FUNCTIONS = 1500  # enough C for clang to take a while at the build's optimisation level


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new project with one C guest whose source takes its compiler a while."""
    toolchain = installed_toolchain()
    if toolchain is None:
        pytest.skip("no installed toolchain (run `make build`)")
    root = tmp_path_factory.mktemp("stopped") / "p"
    run(root.parent, "ngixi", "init", "p")
    run(root, "ngixi", "new", "slow", "--lang", "c")
    share_toolchains(toolchain / ".ngixi", root / ".ngixi")
    return root


def slow_source(guest: Path) -> None:
    """Appends functions the compiler has not seen (nothing in its cache) to the guest's source."""
    seed = uuid.uuid4().int % 1_000_000
    body = "".join(
        f"unsigned f{n}(unsigned x) {{ for (unsigned i = 0; i < x; i++) x = x * {seed + n} + (x >> 3); return x; }}\n"
        for n in range(FUNCTIONS)
    )
    (guest / "main.c").write_text((guest / "main.c").read_text() + body)


def descendants(root: int) -> dict[int, str]:
    """The live processes `root` started, at any depth: their start times, by process id."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
            started[int(stat.parent.name)] = fields[19]
    found: dict[int, str] = {}
    waiting = list(children.get(root, []))
    while waiting:
        pid = waiting.pop()
        found[pid] = started[pid]
        waiting.extend(children.get(pid, []))
    return found


def still_running(processes: dict[int, str]) -> list[int]:
    running = []
    for pid, started in processes.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and fields[19] == started:
            running.append(pid)
    return running


def temporaries(root: Path) -> list[str]:
    """Temporaries our writers leave if killed mid-write, anywhere in the project (not in the linked toolchains)."""
    return [
        os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names if is_temporary_name(name)
    ]


# `ngixi build` returns a shell's status for SIGTERM; `doit build` ends by the signal, as Python ends at a Ctrl-C.
@pytest.mark.parametrize(("command", "status"), [(("ngixi", "build"), 143), (("doit", "build"), -signal.SIGTERM)])
def test_sigterm_during_a_compile_stops_the_compiler_and_leaves_no_temporary(
    project: Path, command: tuple[str, ...], status: int
) -> None:
    slow_source(project / "guests" / "slow")
    build = subprocess.Popen(
        command_line(command), cwd=project, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        tools = _compiling(build, project)
        build.send_signal(signal.SIGTERM)
        _, stderr = build.communicate(timeout=60)
    finally:
        build.kill()
    assert build.returncode == status, stderr.decode()
    assert b"Traceback" not in stderr
    deadline = time.monotonic() + 5
    while still_running(tools):
        assert time.monotonic() < deadline, f"tool processes left running: {still_running(tools)}"
        time.sleep(0.02)
    assert temporaries(project) == []


def _compiling(build: subprocess.Popen[bytes], project: Path) -> dict[int, str]:
    """The processes of `build` once it runs the compiler, writing into a temporary."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert build.poll() is None, "the build ended before its compile was seen"
        tools = descendants(build.pid)
        if tools and temporaries(project):
            return tools
        time.sleep(0.005)
    raise AssertionError("no compile seen within 300 s")
