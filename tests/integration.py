"""Helpers for integration tests: temporary copies of the project and real doit/ngixi runs."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
# The build side (doit, asc, Wasmer) needs Python 3.10. Where these tests run on a loader-only Python
# (3.12 with Wasmtime alone: `make test-loader`), the project's own 3.10 environment builds the bundles.
BUILD_BIN = BIN if (BIN / "doit").exists() else REPO / ".venv" / "bin"
# The repository's environments (`.venv*`: `.venv-loader` and `.venv-loader-3.13`, made by `make test` before this
# suite, hold 2,900 files each a copied project would carry into each release's clean copies), state and caches.
_ENVIRONMENTS = ".venv"
_NOT_COPIED = {".ngixi", "artifacts", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_NOT_COPIED |= {"__pycache__"}
_NOT_COPIED |= {"wasi-testsuite", "rust-programs"}  # vendored .wasm test data, which no project copy needs
# The JavaScript and Python samples take minutes to build and precompile: only the tests of those
# languages (test_language_components.py) copy them.
LANGUAGE_COMPONENTS = ("counter-js", "counter-python")
_LANGUAGE_COMPONENT_FILES = {*LANGUAGE_COMPONENTS, *(f"{guest}.toml" for guest in LANGUAGE_COMPONENTS)}


def copy_project(
    destination: Path, *, toolchain_from: Path | None = None, with_language_components: bool = False
) -> Path:
    """A copy of the repository's project files; optionally reusing an installed toolchain."""
    skipped = _NOT_COPIED if with_language_components else _NOT_COPIED | _LANGUAGE_COMPONENT_FILES
    shutil.copytree(
        REPO, destination, ignore=lambda _d, names: [n for n in names if n in skipped or n.startswith(_ENVIRONMENTS)]
    )
    if toolchain_from is not None:
        share_toolchains(toolchain_from / ".ngixi", destination / ".ngixi")
    return destination


def share_toolchains(from_state: Path, to_state: Path) -> None:
    """Links a project's state directory to another's installed toolchains: a copy would be installed afresh, its
    stamp naming another place (componentize-js alone is 386 MB)."""
    to_state.mkdir(parents=True, exist_ok=True)
    for name in ("toolchain", "toolchains"):
        if (from_state / name).is_dir():
            (to_state / name).symlink_to(from_state / name)


def set_targets(project: Path, triples: Sequence[str], wasmtime_targets: Sequence[str] = ()) -> None:
    """Gives the copy's [tool.ngixi] these targets (fewer artifacts make a faster build)."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("[tool.ngixi]\n")
    end = text.index("\n[", start) + 1
    table = (
        f"[tool.ngixi]\ntargets = {json.dumps(list(triples))}\n"
        f"wasmtime_targets = {json.dumps(list(wasmtime_targets))}\n"
    )
    pyproject.write_text(text[:start] + table + text[end:])


def keep_only_guests(project: Path, guests: Sequence[str]) -> Path:
    """Removes every other guest (its directory and manifest) from a copy of the project."""
    for manifest in (project / "manifests").glob("*.toml"):
        if manifest.stem not in guests:
            manifest.unlink()
            shutil.rmtree(project / "guests" / manifest.stem, ignore_errors=True)
    return project


def installed_toolchain() -> Path | None:
    """The repository, when `make` has installed its toolchain there, for copy_project(toolchain_from=...)."""
    return REPO if (REPO / ".ngixi" / "toolchain").is_dir() else None


def run(
    project: Path, *command: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a project command: doit from the build side, ngixi from the test's own environment."""
    return run_in(project, command_line(command), env={**os.environ, **(env or {})}, check=check, timeout=600)


def run_in(
    cwd: Path, argv: Sequence[str], *, env: dict[str, str], check: bool, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Runs `argv` in `cwd` with exactly `env`, no input, output captured; with `check`, a failure is an
    AssertionError showing both outputs."""
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{list(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def command_line(command: Sequence[str]) -> list[str]:
    name, *arguments = command
    if name == "doit":
        if not (BUILD_BIN / "doit").exists():
            pytest.skip(f"no build side to build the bundles: {BUILD_BIN / 'doit'} is missing (run `make build`)")
        return [str(BUILD_BIN / name), *arguments]
    return [str(BIN / name), *arguments]


def ran_tasks(build_output: str) -> set[str]:
    """Names of the tasks a doit run with our progress reporter executed."""
    return {line.split()[1] for line in build_output.splitlines() if line.startswith("[") and line.endswith(" ...")}


class Line(NamedTuple):
    arrived: float  # time.perf_counter() when the line was read
    text: str


class WatchProcess:
    """`ngixi watch` (or another command) as a child process whose output lines are read as they come."""

    def __init__(self, project: Path, command: Sequence[str] = ("ngixi", "watch")) -> None:
        self.process = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.Queue[Line | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self._lines.put(Line(time.perf_counter(), text.rstrip("\n")))
        self._lines.put(None)

    def until(self, *prefixes: str, timeout: float = 180.0) -> list[Line]:
        """Every line up to and including the first that starts with one of `prefixes`."""
        seen: list[Line] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                output = "\n".join(s.text for s in seen)
                raise AssertionError(f"no line starting with {prefixes} (exit {self.process.poll()}):\n{output}")
            seen.append(line)
            if line.text.startswith(prefixes):
                return seen

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Sends `signum` and waits for the exit; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=60)


def compiler_processes(parent: int) -> list[int]:
    """Live processes started by `parent` that run the warm AssemblyScript compiler."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = status.read_text()
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and state != "Z" and b"asc_server.mjs" in command:
            found.append(int(status.parent.name))
    return found


def is_compiler_process(pid: int) -> bool:
    try:
        return b"asc_server.mjs" in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = 180.0) -> None:
    """Polls `condition` every 20 ms until it holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def descriptors_of(pid: int | str = "self") -> dict[int, str]:
    """A process's open descriptors: number → what it is (one closed while they are read is left out)."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            found[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return found
