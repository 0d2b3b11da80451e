"""The WASI programs of test_wasi_programs.py built as components by the build's stage: their WASI preview 1 is the
pinned adapter over Wasmtime's WASI preview 2, not the host's (docs/components.md).

Each program runs as a signed command component, isolated and in-process, with the same arguments, environment,
stdin and tree as the core guest, and must print, exit and leave what the same module prints under wasmtime-py's
own WASI preview 1, except the adapter's differences in `KNOWN`, each named (docs/components.md lists them). The C
programs are built without the socket calls the adapter traps in (`ADAPTER_TRAPPING_CALLS_LEFT_OUT`), for both.
When the adapter's pin changes, a difference that went away fails here as one that came.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from ngixi_build.project import Project
from tests.build.integration.test_wasi_programs import (
    COMMAND_LINE,
    SOURCES,
    Known,
    Outcome,
    Run,
    as_we_answer,
    compile_source,
    manifest,
    ours,
    reference,
)
from tests.build.integration.test_wasi_testsuite_component import as_component, componentized
from tests.conftest import REPO, KeyFiles, make_bundle, make_key
from tests.integration import copy_project

pytestmark = pytest.mark.integration

RUNS = [Run("edges", COMMAND_LINE), Run("files"), Run("paths"), Run("zigfs"), Run("cli", COMMAND_LINE)]
LEFT_OUT = ("ADAPTER_TRAPPING_CALLS_LEFT_OUT",)


def _errno(label: str, theirs: int, adapters: int, why: str, width: int = 44) -> Known:
    return Known(f"{label:<{width}} {theirs}", f"{label:<{width}} {adapters}", why)


_STREAM_CALL = "on stdio, a call a stream cannot make is INVAL from the adapter (BADF from Wasmtime's preview 1)"
_NO_PREOPEN = (
    "fd_prestat_dir_name of a descriptor that is no preopen: the adapter says BADF (Wasmtime's preview 1 NOTDIR)"
)
KNOWN: dict[str, tuple[Known, ...]] = {
    "edges": (
        _errno("pread stdin", 70, 28, "the adapter answers INVAL to fd_pread on stdin (Wasmtime's preview 1: SPIPE)"),
        Known(
            "  5 entries: ../2/3 ./1/3 alpha/5/4 beta/4/4 gamma/5/3",
            f"{'readdir one':<44} 0\n  6 entries: ../2/3 ../2/3 ./1/3 alpha/5/4 beta/4/4 gamma/5/3",
            "read one entry per call from each d_next, the adapter lists '..' twice",
        ),
        _errno("prestat_dir_name of stdout", 54, 8, _NO_PREOPEN),
        *(
            _errno(
                f"{call} no iovecs {way} a closed descriptor",
                8,
                0,
                "the adapter moves no bytes before it looks "
                "the descriptor up (wasi-testsuite's fd_write-to-invalid-fd)",
            )
            for call, way in (("write", "to"), ("read", "from"))
        ),
        _errno("pwrite stdin", 8, 70, "the adapter answers SPIPE to fd_pwrite on stdin (Wasmtime's preview 1: BADF)"),
        *(_errno(f"{call} stdout", 8, 28, _STREAM_CALL) for call in ("sync", "datasync", "set_size", "set_times")),
        _errno("advise stdout", 8, 70, "the adapter answers SPIPE to fd_advise on stdout (Wasmtime's preview 1: BADF)"),
        _errno("  read", 8, 6, "fd_read of a directory is AGAIN from the adapter (Wasmtime's preview 1: BADF)"),
        _errno("  prestat_dir_name", 54, 8, _NO_PREOPEN),
        Known(
            "  '.' and '..' share an inode 1",
            "  '.' and '..' share an inode 0",
            "the adapter's '..' has inode 0; Wasmtime's preview 1 repeats the preopen's at a preopen",
        ),
        _errno(
            "mkdir under a file fd", 8, 54, "NOTDIR, as mkdirat(2) and the host answer (Wasmtime's preview 1: BADF)"
        ),
        Known(
            "  at 0 0",
            "  at 0 1",
            "the adapter gives a file opened after stdin closed the lowest free number, 0, as POSIX open() does; "
            "the host and Wasmtime's preview 1 never hand out 0-2 again (witx is silent)",
        ),
        _errno("fd set_times to 2^63", 0, 8, "the adapter answers BADF to a directory's times of 2^63 ns"),
    ),
    "paths": (
        _errno("readdir on file", 8, 54, "fd_readdir of a file is NOTDIR, as getdents(2) and the host answer", 40),
    ),
}
# The pinned adapter's proc_exit calls wasi:cli/exit's exit: success or failure, so 7 becomes 1.
EXIT_CODES = {"cli": {7: 1}}


class Built(NamedTuple):
    keys: KeyFiles
    bundles: dict[str, Path]
    wasm: dict[str, bytes]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Each program compiled once (without the trapping calls), made a component and signed."""
    pytest.importorskip("wasmtime")
    directory = tmp_path_factory.mktemp("wasi-programs-component")
    keys = make_key(directory / "keys")
    project = Project(copy_project(directory / "project", toolchain_from=REPO))
    bundles, modules = {}, {}
    for name in sorted({run.name for run in RUNS}):
        wasm = directory / f"{name}.wasm"
        compile_source(SOURCES[name], wasm, defines=LEFT_OUT)
        modules[name] = wasm.read_bytes()
        component_manifest = as_component(manifest(name))
        component = componentized(project, name, component_manifest, wasm)
        bundles[name] = make_bundle(directory / name, keys.key, wasm=component, manifest=component_manifest, guest=name)
    return Built(keys, bundles, modules)


@pytest.mark.parametrize("run", RUNS, ids=str)
def test_a_program_as_a_component_behaves_as_under_wasmtimes_preview_1(run: Run, built: Built, tmp_path: Path) -> None:
    expected = reference(run, built.wasm[run.name], tmp_path / "reference")
    stdout = as_we_answer(run.name, expected.stdout, KNOWN.get(run.name, ()))
    exit_code = EXIT_CODES.get(run.name, {}).get(expected.exit_code or 0, expected.exit_code)
    want = Outcome(exit_code, stdout, expected.stderr, expected.tree)
    for isolated in (True, False):
        how = "isolated" if isolated else "in-process"
        got = ours(run, built.bundles[run.name], built.keys, tmp_path / how, "wasmtime", isolated=isolated)
        assert got.stdout.split("\n") == want.stdout.split("\n"), f"{run} {how}: stdout"
        assert (got.exit_code, got.stderr) == (want.exit_code, want.stderr), f"{run} {how}"
        assert got.tree == want.tree, f"{run} {how}: the tree it left"
