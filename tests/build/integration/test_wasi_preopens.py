"""Several preopens at once (tests/data/wasi-programs/preopens/preopens.c), where the conformance suite and the other
WASI programs have one: two read-write (/a, /b), a read-only one (/r) and a read-write one inside it (/r/w).

The program renames and links between them, tries every change the read-only one refuses and what a file opened
under it may still do, follows symlinks from one preopen towards another, and uses names and paths too long; it
prints each errno. It runs as a core guest on Wasmer and Wasmtime, isolated and in-process, and as a component made
by the build's stage (the adapter over Wasmtime's WASI preview 2), each on a fresh copy of the tree; stdout and the
tree left must be what wasmtime-py's own WASI gives with the same preopens, except the differences in `KNOWN` (ours)
and `COMPONENT_KNOWN` (the adapter's), each named with its reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from ngixi_build.project import Project
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from tests.build.integration.test_wasi_programs import (
    Known,
    as_we_answer,
    compile_source,
    manifest,
    tree,
    wasi_command,
)
from tests.build.integration.test_wasi_testsuite_component import as_component, componentized
from tests.conftest import REPO, KeyFiles, make_bundle, make_key
from tests.integration import copy_project

pytestmark = pytest.mark.integration

SOURCE = REPO / "tests" / "data" / "wasi-programs" / "preopens" / "preopens.c"
GUEST = "preopens"
TENANT = "preopens"
PREOPENS = (("/a", "a", "rw"), ("/b", "b", "rw"), ("/r", "r", "ro"), ("/r/w", "r/w", "rw"))
WAYS = [(engine, isolated) for engine in ("wasmer", "wasmtime") for isolated in (True, False)]
WAY_IDS = [f"{engine}-{'isolated' if isolated else 'in-process'}" for engine, isolated in WAYS]


def _line(label: str, answer: str) -> str:
    return f"{label:<44} {answer}"


_RO_WRITE = (
    "a write through a file a ro preopen opened to read is PERM, as components get it; Wasmtime's preview 1 says BADF"
)
_DIRECTORY_READ = "a directory has no FD_READ right, as components show it; Wasmtime's preview 1 shows it"
_SHARED = (
    *(Known(_line("  write", "8"), _line("  write", "63"), _RO_WRITE) for _ in range(5)),
    Known(_line("  pwrite", "8"), _line("  pwrite", "63"), _RO_WRITE),
    *(
        Known(
            _line("  fdstat of the dir", "0 type 3 flags 0 read 1 write 0"),
            _line("  fdstat of the dir", "0 type 3 flags 0 read 0 write 0"),
            _DIRECTORY_READ,
        )
        for _ in range(2)
    ),
)
KNOWN = (
    Known(
        _line("rename to a file fd", "8"),
        _line("rename to a file fd", "54"),
        "a path call under a descriptor that is no directory is NOTDIR, as renameat(2) answers (README)",
    ),
    *(
        Known(
            _line(f"mkdir a {length}-byte path", "44"),
            _line(f"mkdir a {length}-byte path", "37"),
            "a path of PATH_MAX (4096) bytes or more is NAMETOOLONG before any lookup, as on Linux and as Wasmtime's "
            "path_open answers; Wasmtime's path_create_directory looks its first name up (NOENT)",
        )
        for length in (4096, 4097)
    ),
)
COMPONENT_KNOWN = (
    Known(
        _line("  set the dir's times", "63"),
        _line("  set the dir's times", "8"),
        "the adapter answers BADF to fd_filestat_set_times of a directory under a ro preopen",
    ),
)


class Outcome(NamedTuple):
    exit_code: int | None
    stdout: str
    tree: dict[str, tuple[object, ...]]


class Built(NamedTuple):
    keys: KeyFiles
    core: Path
    component: Path
    reference: Outcome


def fresh_tree(root: Path) -> Path:
    """The preopens' folders, a file and three symlinks in the ro one (to the file, out to /a, to itself)."""
    for folder in ("a", "b", "r/sub", "r/w"):
        (root / folder).mkdir(parents=True)
    (root / "r" / "f").write_text("read only")
    for name, target in (("l", "f"), ("out", "../a"), ("loop", "loop")):
        os.symlink(target, root / "r" / name)
    return root


def reference(wasm: bytes, work: Path) -> Outcome:
    """The program under wasmtime-py's own WASI, with the same preopens."""
    import wasmtime

    root = fresh_tree(work / "root")
    config = wasmtime.WasiConfig()
    config.argv = [GUEST]
    for guest, host, mode in PREOPENS:
        config.preopen_dir(str(root / host), guest, fs_mutable=mode == "rw")
    config.stdout_file = str(work / "stdout")
    wasi_command(config, wasm)()
    return Outcome(0, (work / "stdout").read_text(), tree(root))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The program compiled once, signed as a core guest and as a component, and its reference run."""
    pytest.importorskip("wasmtime")
    directory = tmp_path_factory.mktemp("wasi-preopens")
    keys = make_key(directory / "keys")
    wasm = directory / f"{GUEST}.wasm"
    compile_source(SOURCE, wasm)
    core = make_bundle(
        directory / "core", keys.key, wasm=wasm.read_bytes(), manifest=manifest(GUEST, preopens=PREOPENS), guest=GUEST
    )
    project = Project(copy_project(directory / "project", toolchain_from=REPO))
    component_manifest = as_component(manifest(GUEST, preopens=PREOPENS))
    component_wasm = componentized(project, GUEST, component_manifest, wasm)
    component = make_bundle(
        directory / "component", keys.key, wasm=component_wasm, manifest=component_manifest, guest=GUEST
    )
    yield Built(keys, core, component, reference(wasm.read_bytes(), directory / "reference"))
    shutil.rmtree(directory / "project", ignore_errors=True)


def ours(bundle: Path, keys: KeyFiles, sandboxes: Path, engine: str, *, isolated: bool) -> Outcome:
    root = fresh_tree(sandboxes / TENANT / GUEST / "files")
    with open_tenant(
        bundle, trust_file=keys.trust, isolated=isolated, sandboxes=sandboxes, tenant=TENANT, engine=engine
    ) as tenant:
        try:
            result = tenant.run()
        except CallFailed as trapped:
            result = trapped.result
    return Outcome(result.exit_code, result.stdout.decode(errors="replace"), tree(root))


def expected(built: Built, known: tuple[Known, ...]) -> Outcome:
    return built.reference._replace(stdout=as_we_answer(GUEST, built.reference.stdout, known))


@pytest.mark.parametrize(("engine", "isolated"), WAYS, ids=WAY_IDS)
def test_a_core_guest_with_several_preopens_answers_as_wasmtimes_wasi(
    built: Built, engine: str, isolated: bool, tmp_path: Path
) -> None:
    pytest.importorskip(engine)
    got = ours(built.core, built.keys, tmp_path, engine, isolated=isolated)
    want = expected(built, (*_SHARED, *KNOWN))
    assert got.stdout.split("\n") == want.stdout.split("\n")
    assert (got.exit_code, got.tree) == (want.exit_code, want.tree)


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_a_component_with_several_preopens_answers_as_wasmtimes_wasi(
    built: Built, isolated: bool, tmp_path: Path
) -> None:
    got = ours(built.component, built.keys, tmp_path, "wasmtime", isolated=isolated)
    want = expected(built, (*_SHARED, *COMPONENT_KNOWN))
    assert got.stdout.split("\n") == want.stdout.split("\n")
    assert (got.exit_code, got.tree) == (want.exit_code, want.tree)
