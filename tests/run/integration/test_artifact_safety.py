"""The loader never deserializes an artifact built for another target, Wasmer version or CPU.

Every such load runs in `ngixi run` (a child process, whose isolated tenant is another): had the
loader picked the wrong artifact, a child would crash, never the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngixi_build.stages.bundle import ArtifactInput
from ngixi_build.stages.precompile import precompile_guest
from ngixi_runtime.spec.targets import (
    ARCHITECTURES,
    SUPPORTED_TARGETS,
    Target,
    architecture_of,
    host_cpu_features,
    host_triple,
)
from tests.conftest import KeyFiles, make_bundle, needs_wasmer
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
HOST = host_triple()
FOREIGN = next(t for t in SUPPORTED_TARGETS.values() if architecture_of(t.triple) != architecture_of(HOST))
NGIXI = Path(sys.executable).parent / "ngixi"
pytestmark = needs_wasmer  # Wasmer's artifacts, built with Wasmer


def precompiled(directory: Path, target: Target) -> ArtifactInput:
    directory.mkdir(parents=True, exist_ok=True)
    wasm_path = directory / "guest.wasm"
    wasm_path.write_bytes(WASM)
    out = directory / f"{target.triple}.wasmer"
    return ArtifactInput(out, precompile_guest(wasm_path=wasm_path, target=target, out_path=out))


def run_add(bundle: Path, keys: KeyFiles, *, compiler: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if not compiler:  # a module of that name that fails to import shadows the installed compiler
        blocker = bundle.parent / "no-compiler"
        blocker.mkdir()
        (blocker / "wasmer_compiler_cranelift.py").write_text('raise ImportError("no compiler here")\n')
        env["PYTHONPATH"] = str(blocker)
    command = [str(NGIXI), "run", "--trust", str(keys.trust), str(bundle), "add", "2", "3"]
    if not compiler:  # PYTHONPATH reaches only this process: a tenant child runs `python -I`, in a clean environment
        command.append("--in-process")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode >= 0, f"the loader crashed with signal {-result.returncode}: {result.stderr}"
    assert "died" not in result.stderr, f"the tenant process crashed: {result.stderr}"
    return result


def test_foreign_target_artifact_is_not_loaded_the_guest_is_compiled(
    tmp_path: Path, keys: KeyFiles, aot_cache_dir: Path
) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, artifacts=[precompiled(tmp_path / "aot", FOREIGN)])
    result = run_add(bundle, keys)
    assert (result.returncode, result.stdout) == (0, "5\n")
    assert result.stderr == (
        f"note: hello: compiled from guest.wasm (no artifact fits: "
        f"aot/{FOREIGN.triple}.wasmer: built for {FOREIGN.triple}, this host is {HOST}); "
        f"kept in the host AOT cache {aot_cache_dir}\n"
    )


def test_foreign_target_artifact_without_a_compiler_is_refused_cleanly(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, artifacts=[precompiled(tmp_path / "aot", FOREIGN)])
    result = run_add(bundle, keys, compiler=False)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        "no artifact fits this host and no compiler is installed (install wasmer-compiler-cranelift)" in result.stderr
    )
    assert f"aot/{FOREIGN.triple}.wasmer: built for {FOREIGN.triple}, this host is {HOST}" in result.stderr
    assert "Traceback" not in result.stderr


def test_artifact_from_another_wasmer_version_is_not_deserialized(tmp_path: Path, keys: KeyFiles) -> None:
    foreign = precompiled(tmp_path / "aot", FOREIGN)  # bytes that would crash this host if deserialized
    older = foreign.meta._replace(triple=HOST, engine_version="2.0.0", binding_version="1.0.0")
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, artifacts=[ArtifactInput(foreign.path, older)])
    result = run_add(bundle, keys)
    assert (result.returncode, result.stdout) == (0, "5\n")
    assert "built by wasmer 2.0.0 (Python binding 1.0.0), this host has 2.1.1 (1.1.0)" in result.stderr


def test_artifact_needing_cpu_features_this_host_lacks_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    architecture = ARCHITECTURES[architecture_of(HOST)]
    lacking = [f for f in architecture.features if f not in host_cpu_features()]
    if not lacking:
        pytest.skip("this host has every CPU feature Wasmer knows for its architecture")
    target = Target(HOST, (*architecture.required, lacking[-1]))
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, artifacts=[precompiled(tmp_path / "aot", target)])
    result = run_add(bundle, keys)
    assert (result.returncode, result.stdout) == (0, "5\n")
    assert f"aot/{HOST}.wasmer: needs CPU features this host lacks: {lacking[-1]}" in result.stderr
