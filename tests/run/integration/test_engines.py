"""Both engines behind one interface: artifacts per engine, Wasmtime's in-process limits, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.bundle import ArtifactInput
from ngixi_build.stages.precompile import precompile_wasmtime
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import LogLine
from ngixi_runtime.capabilities.registry import provisions
from ngixi_runtime.engines import base as engines
from ngixi_runtime.engines import wasmtime as engine_wasmtime
from ngixi_runtime.engines.base import RunLimits
from ngixi_runtime.errors import GuestError, InvalidInput, NgixiError, PolicyError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.spec.targets import host_cpu_features, host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, needs_wasmer
from tests.run.unit.test_loader import ADD, GREET, LOG, host_artifact
from tests.wasmgen import Func, module

SPIN = Func("spin", body=b"\x03\x40\x0c\x00\x0b")  # loop, br 0, end
GROW = Func("grow", results=["i32"], body=b"\x41\x0a\x40\x00")  # memory.grow 10 pages
WASM = module(imports=[LOG], functions=[ADD, GREET, SPIN, GROW])
MANIFEST = HELLO_MANIFEST + '[exports.greet]\n[exports.spin]\n[exports.grow]\nresults = ["i32"]\n'
LIMITED = MANIFEST + "[limits]\ntimeout_ms = 200\nmemory_pages = 16\n"
FUEL = 10_000
METERED = MANIFEST + f"[limits]\nfuel = {FUEL}\n"


def wasmtime_artifact(tmp_path: Path, triple: str, *, metered: bool = False) -> ArtifactInput:
    wasm_path = tmp_path / "in.wasm"
    wasm_path.write_bytes(WASM)
    out = tmp_path / f"{triple}.cwasm"
    target = Project(tmp_path).wasmtime_target(triple)
    return ArtifactInput(out, precompile_wasmtime(wasm_path=wasm_path, target=target, metered=metered, out_path=out))


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


def test_an_artifact_from_another_wasmtime_version_is_not_deserialized(
    tmp_path: Path, keys: KeyFiles, aot_cache_dir: Path
) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    artifact.path.write_bytes(b"bytes that Wasmtime would refuse, had they been deserialized")
    older = artifact.meta._replace(engine_version="1.0.0", binding_version="1.0.0")
    bundle = read_bundle(bundle_with(tmp_path, keys, [ArtifactInput(artifact.path, older)]), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime")
    assert guest.origin == (
        f"compiled from guest.wasm (no artifact fits: aot/{host_triple()}.cwasm: built by wasmtime 1.0.0 "
        f"(Python binding 1.0.0), this host has {version('wasmtime')} ({version('wasmtime')})); "
        f"kept in the host AOT cache {aot_cache_dir}"
    )
    assert guest.call("add", (1, 2)) == (3,)


def test_a_wasmtime_artifact_records_its_cpu_baseline_and_is_not_deserialized_without_it(
    tmp_path: Path, keys: KeyFiles, aot_cache_dir: Path
) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    assert artifact.meta.cpu_features == Project(tmp_path).wasmtime_target(host_triple()).cpu_features
    artifact.path.write_bytes(b"bytes that Wasmtime would refuse, had they been deserialized")
    demanding = artifact.meta._replace(cpu_features=(*artifact.meta.cpu_features, "no-such-feature"))
    bundle = read_bundle(bundle_with(tmp_path, keys, [ArtifactInput(artifact.path, demanding)]), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime")
    assert guest.origin == (
        f"compiled from guest.wasm (no artifact fits: aot/{host_triple()}.cwasm: "
        f"needs CPU features this host lacks: no-such-feature); kept in the host AOT cache {aot_cache_dir}"
    )


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, f"{old!r} is not in the artifact's header once"
    return data.replace(old, new)


def another_wasmtime_version(artifact: bytes) -> bytes:
    """The artifact with the Wasmtime version in its own header (`.wasmtime.engine`) lowered by one."""
    major, triple = version("wasmtime").split(".")[0], host_triple()
    lower = str(int(major) - 1).rjust(len(major), "0")
    header = f"\x02{major}".encode() + bytes([len(triple)]) + triple.encode()
    return patched(artifact, header, header.replace(major.encode(), lower.encode()))


def needing_a_missing_cpu_feature(artifact: bytes) -> bytes:
    """The artifact with a Cranelift setting for a CPU feature this host lacks turned on in its header."""
    settings = {"avx512f": "has_avx512f", "avx512vl": "has_avx512vl", "avx512dq": "has_avx512dq", "avx2": "has_avx2"}
    lacking = [s for feature, s in settings.items() if feature not in host_cpu_features()]
    if not host_triple().startswith("x86_64") or not lacking:
        pytest.skip("this host has every CPU feature the test could claim")
    name = lacking[0].encode()
    return patched(artifact, name + b"\x02\x00", name + b"\x02\x01")


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (another_wasmtime_version, "Module was compiled with incompatible version"),
        (needing_a_missing_cpu_feature, "compilation settings of module incompatible with native host: "),
        (lambda data: data[: len(data) // 2], "failed to parse"),
    ],
    ids=["version", "cpu-feature", "truncated"],
)
def test_a_cwasm_wasmtime_refuses_falls_back_to_compiling_and_says_why(
    tmp_path: Path, keys: KeyFiles, change: Callable[[bytes], bytes], refusal: str
) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    artifact.path.write_bytes(change(artifact.path.read_bytes()))  # the signed metadata still says it fits
    bundle = read_bundle(bundle_with(tmp_path, keys, [artifact]), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime")
    assert guest.origin.startswith(
        f"compiled from guest.wasm (no artifact fits: aot/{host_triple()}.cwasm: Wasmtime refused it: {refusal}"
    )
    assert guest.compiled and guest.call("add", (1, 2)) == (3,)


def test_a_refused_native_cwasm_falls_back_to_the_portable_one(tmp_path: Path, keys: KeyFiles) -> None:
    native = wasmtime_artifact(tmp_path, host_triple())
    native.path.write_bytes(another_wasmtime_version(native.path.read_bytes()))
    artifacts = [native, wasmtime_artifact(tmp_path, "pulley64")]
    guest = open_guest(read_bundle(bundle_with(tmp_path, keys, artifacts), load_trust(keys.trust)), engine="wasmtime")
    assert guest.origin == "artifact aot/pulley64.cwasm"


def test_an_artifact_compiled_with_other_wasmtime_settings_falls_back_to_compiling(
    tmp_path: Path, keys: KeyFiles, aot_cache_dir: Path
) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple(), metered=True)  # but the manifest sets no limits.fuel
    bundle = read_bundle(bundle_with(tmp_path, keys, [artifact]), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime")
    assert guest.origin == (
        f"compiled from guest.wasm (no artifact fits: aot/{host_triple()}.cwasm: Wasmtime refused it: "
        f"Module was compiled with fuel support but it is not enabled for the host); "
        f"kept in the host AOT cache {aot_cache_dir}"
    )


def test_a_refused_artifact_without_a_compiler_allowed_is_a_clear_error(tmp_path: Path, keys: KeyFiles) -> None:
    artifact = wasmtime_artifact(tmp_path, host_triple())
    artifact.path.write_bytes(another_wasmtime_version(artifact.path.read_bytes()))
    bundle = read_bundle(bundle_with(tmp_path, keys, [artifact]), load_trust(keys.trust))
    with pytest.raises(NgixiError, match=r"no artifact fits this host and compiling at load is turned off") as error:
        open_guest(bundle, engine="wasmtime", allow_compile=False)
    assert f"aot/{host_triple()}.cwasm: Wasmtime refused it: Module was compiled" in str(error.value)
    assert "install" not in str(error.value)  # Wasmtime always compiles: nothing is missing


@pytest.mark.parametrize("precompiled", [True, False], ids=["artifact", "compiled"])
def test_wasmtime_stops_a_call_at_its_fuel_and_refuels_the_next(
    tmp_path: Path, keys: KeyFiles, precompiled: bool, wasmtime_call_path: str
) -> None:
    artifacts = [wasmtime_artifact(tmp_path, host_triple(), metered=True)] if precompiled else []
    guest = open_guest(read_bundle(bundle_with(tmp_path, keys, artifacts, METERED), load_trust(keys.trust)))
    assert guest.compiled != precompiled
    with pytest.raises(
        GuestError, match=rf"^hello: spin ran out of fuel: at most {FUEL} per call \(limits.fuel\)$"
    ) as caught:
        guest.call("spin", ())
    assert caught.value.outcome == "fuel"
    # Each call gets the whole allowance again: together these use several times FUEL.
    assert {guest.call("add", (2, 3)) for _ in range(FUEL // 2)} == {(5,)}


@needs_wasmer
def test_wasmer_refuses_to_run_a_fuel_limited_guest_in_process(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = read_bundle(bundle_with(tmp_path, keys, [], METERED), load_trust(keys.trust))
    with pytest.raises(PolicyError, match=rf"^hello: limits.fuel = {FUEL}, but wasmer cannot meter fuel: run it on"):
        open_guest(bundle, engine="wasmer")


@needs_wasmer
def test_wasmer_runs_a_fuel_limited_guest_isolated_under_its_cpu_cap_and_says_so(
    tmp_path: Path, keys: KeyFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with open_tenant(bundle_with(tmp_path, keys, [], METERED), trust_file=keys.trust, engine="wasmer") as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)
    assert "hello: wasmer cannot meter fuel, so limits.fuel is not enforced" in caplog.text


def test_the_default_engine_for_a_fuel_limited_guest_is_one_that_meters_fuel(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NGIXI_ENGINE", raising=False)
    artifacts = [wasmtime_artifact(tmp_path, host_triple(), metered=True)]
    if engines.installed_engines()[0] == "wasmer":
        artifacts.append(host_artifact(tmp_path, WASM))
    guest = open_guest(read_bundle(bundle_with(tmp_path, keys, artifacts, METERED), load_trust(keys.trust)))
    assert guest.origin == f"artifact aot/{host_triple()}.cwasm"


@needs_wasmer
@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_the_default_engine_is_one_the_bundle_was_built_for(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, isolated: bool
) -> None:
    """A bundle its author built for Wasmtime alone (its module may use what Wasmer lacks) runs on Wasmtime
    under "auto", though Wasmer comes first among the installed engines."""
    monkeypatch.delenv("NGIXI_ENGINE", raising=False)
    assert engines.installed_engines()[0] == "wasmer"
    bundle = bundle_with(tmp_path, keys, [wasmtime_artifact(tmp_path, host_triple())])
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated) as tenant:
        assert tenant.origin == f"artifact aot/{host_triple()}.cwasm"
        assert tenant.call("add", (20, 22)).values == (42,)


def test_wasmtime_stops_an_endless_loop_at_its_timeout_in_process(
    tmp_path: Path, keys: KeyFiles, wasmtime_call_path: str
) -> None:
    guest = open_guest(read_bundle(bundle_with(tmp_path, keys, [], LIMITED), load_trust(keys.trust)), engine="wasmtime")
    with pytest.raises(GuestError, match=r"^hello: spin exceeded its 200 ms timeout \(limits.timeout_ms\)$") as caught:
        guest.call("spin", ())
    assert caught.value.outcome == "timeout"
    assert guest.call("add", (2, 3)) == (5,)


def test_wasmtime_checks_the_deadline_when_a_slow_host_call_returns(
    tmp_path: Path, keys: KeyFiles, wasmtime_call_path: str
) -> None:
    def slow(line: LogLine, deadline: float) -> None:
        time.sleep(0.3)

    bundle = read_bundle(bundle_with(tmp_path, keys, [], LIMITED), load_trust(keys.trust))
    guest = open_guest(bundle, engine="wasmtime", on_log=slow)
    with pytest.raises(GuestError, match="hello: greet exceeded its 200 ms timeout") as caught:
        guest.call("greet", ())
    assert caught.value.outcome == "timeout"


def test_wasmtime_caps_memory_growth_at_the_limit() -> None:
    found = provisions(["log"])[("ngixi", "log")]
    prepared = engine_wasmtime.prepare(guest="hello", wasm=WASM, limits=RunLimits(timeout_ms=1000, memory_pages=4))
    instance = engine_wasmtime.instantiate(
        prepared, imports=[(found.host_import, lambda *_: None)], on_memory=lambda _: None
    )
    assert instance.call("grow", ()) == (-1,)
    assert instance.memory.page_count() == 1


def test_running_on_wasmtime_never_imports_wasmer(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, [])
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ngixi_runtime.bundles.reader import read_bundle\n"
        "from ngixi_runtime.loading.loader import open_guest\n"
        "from ngixi_runtime.trust.signatures import load_trust\n"
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


def test_the_engine_option_overrides_the_environment(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NGIXI_ENGINE", "no-such-engine")
    path = bundle_with(tmp_path, keys, [wasmtime_artifact(tmp_path, host_triple())])
    trust = ["--trust", str(keys.trust)]
    assert exit_code(["run", *trust, "--engine", "wasmtime", "--in-process", str(path), "add", "2", "3"]) == 0
    assert capsys.readouterr() == ("5\n", "")  # no note: the artifact was used, not compiled
    assert exit_code(["inspect", *trust, "--engine", "wasmtime", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["host"]["engine"] == "wasmtime"
    assert [m.get("misfit", "-") for m in document["members"]] == ["-", "-", None]
    assert exit_code(["run", *trust, str(path), "add", "2", "3"]) == 2  # bad input, naming where it came from
    assert (
        "ngixi: error: $NGIXI_ENGINE: unknown engine 'no-such-engine'; known engines: wasmer, wasmtime (or auto)"
        in capsys.readouterr().err
    )


def test_choosing_an_engine_that_is_not_installed_is_a_clear_error(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(engines, "installed_engines", lambda: ["wasmtime"])
    path = bundle_with(tmp_path, keys, [])
    for command in (["run", str(path), "add", "2", "3"], ["inspect", str(path)]):
        assert exit_code([command[0], "--trust", str(keys.trust), "--engine", "wasmer", *command[1:]]) == 1
        output = capsys.readouterr()
        assert output.out == ""
        assert output.err.startswith("ngixi: error: engine wasmer is not installed here; ")
        assert "Traceback" not in output.err
    assert exit_code(["run", "--trust", str(keys.trust), "--engine", "wasm", str(path), "add", "2", "3"]) == 2
    assert "invalid choice: 'wasm' (choose from 'wasmer', 'wasmtime', 'auto')" in capsys.readouterr().err


def test_a_component_guest_runs_on_an_engine_with_the_component_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NGIXI_ENGINE", "wasmer")
    assert engines.chosen_engine(None, component=True) == "wasmtime"
    assert engines.chosen_engine("auto", component=True) == "wasmtime"
    with pytest.raises(
        InvalidInput,
        match=r"^a component guest runs only on wasmtime, not on the engine asked for "
        r"\(wasmer\): ask for wasmtime, or auto$",
    ):
        engines.chosen_engine("wasmer", component=True)
