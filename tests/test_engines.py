"""Both engines behind one interface: artifacts per engine, Wasmtime's in-process limits, lazy imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import pytest
import wasmtime

from ngixi_build.bundle import ArtifactInput
from ngixi_build.precompile import precompile_wasmtime
from ngixi_build.runtime import engine_wasmtime
from ngixi_build.runtime.bundle_reader import read_bundle
from ngixi_build.runtime.capabilities import provision_of
from ngixi_build.runtime.engines import RunLimits
from ngixi_build.runtime.errors import GuestError, NgixiError
from ngixi_build.runtime.hostfuncs import LogLine
from ngixi_build.runtime.loader import open_guest
from ngixi_build.runtime.targets import host_triple
from ngixi_build.runtime.verify import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle
from tests.test_loader import ADD, GREET, LOG, host_artifact
from tests.wasmgen import Func, module

# The loader tests also run where only Wasmtime is installed (Python 3.12, see the Makefile).
needs_wasmer = pytest.mark.skipif(find_spec("wasmer") is None, reason="wasmer is not installed")
SPIN = Func("spin", body=b"\x03\x40\x0c\x00\x0b")  # loop, br 0, end
GROW = Func("grow", results=["i32"], body=b"\x41\x0a\x40\x00")  # memory.grow 10 pages
WASM = module(imports=[LOG], functions=[ADD, GREET, SPIN, GROW])
MANIFEST = HELLO_MANIFEST + '[exports.greet]\n[exports.spin]\n[exports.grow]\nresults = ["i32"]\n'
LIMITED = MANIFEST + "[limits]\ntimeout_ms = 200\nmemory_pages = 16\n"


def wasmtime_artifact(tmp_path: Path, triple: str) -> ArtifactInput:
    wasm_path = tmp_path / "in.wasm"
    wasm_path.write_bytes(WASM)
    out = tmp_path / f"{triple}.cwasm"
    return ArtifactInput(out, precompile_wasmtime(wasm_path=wasm_path, triple=triple, out_path=out))


def bundle_with(tmp_path: Path, keys: KeyFiles, artifacts: list[ArtifactInput], manifest: str = MANIFEST) -> Path:
    return make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=manifest, artifacts=artifacts)


@needs_wasmer
def test_a_bundle_with_artifacts_for_both_engines_loads_with_either(tmp_path: Path, keys: KeyFiles) -> None:
    artifacts = [
        host_artifact(tmp_path, WASM),
        wasmtime_artifact(tmp_path, host_triple()),
        wasmtime_artifact(tmp_path, "pulley64"),
    ]
    bundle = read_bundle(bundle_with(tmp_path, keys, artifacts), load_trust(keys.trust))
    for engine, suffix in [("wasmer", "wasmer"), ("wasmtime", "cwasm")]:
        guest = open_guest(bundle, engine=engine)
        assert guest.origin == f"artifact aot/{host_triple()}.{suffix}"
        assert guest.call("add", (20, 22)) == (42,)


@needs_wasmer
def test_the_portable_tier_runs_on_wasmtime_and_wasmer_compiles(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = read_bundle(bundle_with(tmp_path, keys, [wasmtime_artifact(tmp_path, "pulley64")]), load_trust(keys.trust))
    portable = open_guest(bundle, engine="wasmtime")
    assert portable.origin == "artifact aot/pulley64.cwasm"
    assert portable.call("add", (2, 3)) == (5,)
    compiled = open_guest(bundle, engine="wasmer")
    assert "aot/pulley64.cwasm: built by wasmtime, this host runs wasmer" in compiled.origin
    assert compiled.call("add", (2, 3)) == (5,)


def test_an_artifact_from_another_wasmtime_version_falls_back_to_compiling(tmp_path: Path, keys: KeyFiles) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    older = dataclasses.replace(artifact.meta, engine_version="1.0.0", binding_version="1.0.0")
    bundle = read_bundle(bundle_with(tmp_path, keys, [ArtifactInput(artifact.path, older)]), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime")
    assert guest.origin.startswith("compiled from guest.wasm")
    assert "built by wasmtime 1.0.0" in guest.origin
    assert guest.call("add", (1, 2)) == (3,)


def test_an_artifact_from_another_wasmtime_config_is_refused_cleanly(tmp_path: Path, keys: KeyFiles) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    config = wasmtime.Config()
    config.consume_fuel = True
    artifact.path.write_bytes(wasmtime.Module(wasmtime.Engine(config), WASM).serialize())
    bundle = read_bundle(bundle_with(tmp_path, keys, [artifact]), load_trust(keys.trust))
    with pytest.raises(NgixiError, match="hello: cannot load the guest: "):
        open_guest(bundle, engine="wasmtime")


def test_wasmtime_stops_an_endless_loop_at_its_timeout_in_process(tmp_path: Path, keys: KeyFiles) -> None:
    guest = open_guest(read_bundle(bundle_with(tmp_path, keys, [], LIMITED), load_trust(keys.trust)), engine="wasmtime")
    with pytest.raises(GuestError, match=r"^hello: spin exceeded its 200 ms timeout \(limits.timeout_ms\)$") as caught:
        guest.call("spin", ())
    assert caught.value.outcome == "timeout"
    assert guest.call("add", (2, 3)) == (5,)


def test_wasmtime_checks_the_deadline_when_a_slow_host_call_returns(tmp_path: Path, keys: KeyFiles) -> None:
    def slow(line: LogLine) -> None:
        time.sleep(0.3)

    bundle = read_bundle(bundle_with(tmp_path, keys, [], LIMITED), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime", on_log=slow)
    with pytest.raises(GuestError, match="hello: greet exceeded its 200 ms timeout") as caught:
        guest.call("greet", ())
    assert caught.value.outcome == "timeout"


def test_wasmtime_caps_memory_growth_at_the_limit() -> None:
    found = provision_of("ngixi", "log")
    assert found is not None
    instance = engine_wasmtime.load(
        guest="hello",
        wasm=WASM,
        imports=[(found.host_import, lambda *_: None)],
        on_memory=lambda _: None,
        limits=RunLimits(timeout_ms=1000, memory_pages=4),
    )
    assert instance.call("grow", ()) == (-1,)
    assert instance.memory.pages == 1


def test_running_on_wasmtime_never_imports_wasmer(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, [])
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ngixi_build.runtime.bundle_reader import read_bundle\n"
        "from ngixi_build.runtime.loader import open_guest\n"
        "from ngixi_build.runtime.verify import load_trust\n"
        "bundle = read_bundle(Path(sys.argv[1]), load_trust(Path(sys.argv[2])))\n"
        "assert open_guest(bundle, engine='wasmtime').call('add', (2, 3)) == (5,)\n"
        "print(sorted(m for m in sys.modules if m.startswith('wasmer')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path), str(keys.trust)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_cli_runs_verifies_and_inspects_on_wasmtime(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NGIXI_ENGINE", "wasmtime")
    path = bundle_with(tmp_path, keys, [wasmtime_artifact(tmp_path, host_triple())])
    assert exit_code(["run", "--trust", str(keys.trust), str(path), "add", "2", "3"]) == 0
    assert capsys.readouterr().out == "5\n"
    assert exit_code(["verify", "--trust", str(keys.trust), str(path)]) == 0
    capsys.readouterr()
    assert exit_code(["inspect", "--trust", str(keys.trust), str(path)]) == 0
    assert f"wasmtime {version('wasmtime')} (binding {version('wasmtime')}) cranelift {host_triple()}" in (
        capsys.readouterr().out
    )
