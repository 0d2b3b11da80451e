"""`ngixi run` imports only what the command and the guest's grants need: the chosen engine alone, no other
command's parser, no capability the guest is not granted, no build side, and no engine in an isolated run's
parent, nor an isolated tenant's machinery in an in-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.registry import REGISTRY
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.run.integration.test_late_logging import ngixi, signed_downgrade
from tests.run.unit.test_loader import MANIFEST, WASM, host_artifact

# Runs the CLI's main as the console script does; records the parsers made and the modules imported, leaving out
# those the interpreter imported before it (Python 3.13's start imports linecache).
PROBE = """\
import sys
started = set(sys.modules)
import argparse, json
from pathlib import Path
made = []
original = argparse.ArgumentParser.__init__
def recording(self, *args, **kwargs):
    original(self, *args, **kwargs)
    made.append(self.prog)
argparse.ArgumentParser.__init__ = recording
from ngixi_runtime.cli import main
try:
    main(sys.argv[2:])
finally:
    Path(sys.argv[1]).write_text(json.dumps({"parsers": made, "modules": sorted(set(sys.modules) - started)}))
"""
ENGINE_MODULES = {
    "wasmer": {"wasmer", "wasmer_compiler_cranelift", "ngixi_runtime.engines.wasmer"},
    "wasmtime": {
        "wasmtime",
        "ngixi_runtime.engines.wasmtime",
        "ngixi_runtime.engines.wasmtime_component",
        "ngixi_runtime.engines.wasmtime_fastpath",
        "ngixi_runtime.engines.wasmtime_fastpath.components",
    },
}
BUILD_SIDE = ("ngixi_build", "doit", "nodeenv", "watchdog", "tomli_w")
# The log capability, and the two every guest has.
GRANTED = {REGISTRY["baseline"], REGISTRY["data"], REGISTRY["log"]}
# Another command's (trust add), the signer's, what only a manifest error, a [build] table or [[smoke]] entries need
# (this manifest has none), an operator's policy (none given here), a TenantPool's threads, logging (without -v, a
# run's only messages are warnings, which logging's last resort prints unconfigured) and hashlib (spec/digests.py
# hashes with cryptography, loaded anyway to verify); dataclasses, with the inspect it imports (the run side's records
# are NamedTuples or plain classes: a dataclass compiles its methods from source at every start).
NOT_FOR_A_RUN = {
    *("ngixi_runtime.trust.editing", "minisign", "difflib", "shlex"),
    *("ngixi_runtime.trust.policy", "concurrent.futures", "ngixi_runtime.guest.build_command", "logging"),
    "ngixi_runtime.guest.smoke",
    *("hashlib", "_hashlib"),
    *("dataclasses", "inspect"),
}

# An isolated tenant's machinery: its class, the fork server's host side and the frames between them.
ISOLATED_ONLY = {"ngixi_runtime.loading.isolated", "ngixi_runtime.loading.zygote", "ngixi_runtime.loading.tenant_wire"}
# What only a fork server needs (its host side starts it with subprocess and talks to it over a socket): `ngixi run`
# forks its one tenant from itself. The host AOT cache, which only the child uses (the parent names its directory). And
# traceback (with linecache and tokenize): the child's error path prints with the interpreter's own hook.
NOT_IN_AN_ISOLATED_RUNS_PARENT = {
    *("socket", "subprocess", "pkgutil", "selectors", "ngixi_runtime.loading.aot_cache"),
    *("traceback", "linecache", "tokenize"),
}
# What a later run of the same bundle (its rollback state written: it writes nothing) does not import either:
# tempfile (with random), which the child's error file (a memfd) does not need.
NOT_IN_A_LATER_ISOLATED_RUNS_PARENT = {"tempfile", "random"}
# Nor does a later in-process run loading a verified Wasmer artifact: tempfile is Wasmer's for a compile's stderr, and
# the watchdog kills without `signal` (its enums).
NOT_IN_A_LATER_IN_PROCESS_WASMER_RUN = {"tempfile", "random", "signal"}


def engine_installed(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(find_spec(name) is None, reason=f"{name} is not installed")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyFiles]:
    directory = tmp_path_factory.mktemp("run_imports")
    keys = make_key(directory / "keys")
    return make_bundle(directory / "bundle", keys.key, wasm=WASM, manifest=MANIFEST), keys


def run_recorded(tmp_path: Path, bundle: tuple[Path, KeyFiles], *options: str) -> tuple[list[str], set[str]]:
    """The parsers `ngixi run OPTIONS BUNDLE add 2 3` made and the modules it imported, in a fresh process."""
    path, keys = bundle
    record = tmp_path / "record.json"
    command = [
        *("run", *options, "--trust", str(keys.trust), "--sandbox", str(tmp_path / "sandbox")),
        *("--state-dir", str(tmp_path / "state"), str(path), "add", "2", "3"),
    ]
    environment = {**os.environ, "NGIXI_AOT_CACHE": str(tmp_path / "aot")}
    environment.pop("NGIXI_ENGINE", None)
    probe = [sys.executable, "-c", PROBE, str(record), *command]
    result = subprocess.run(probe, capture_output=True, text=True, env=environment, check=False)
    assert (result.returncode, result.stdout) == (0, "5\n"), result.stderr
    recorded = json.loads(record.read_text())
    return recorded["parsers"], set(recorded["modules"])


def assert_lean(parsers: list[str], modules: set[str]) -> None:
    assert parsers == ["ngixi", "ngixi run"]
    assert not {m for m in modules if m.split(".")[0] in BUILD_SIDE}
    assert not NOT_FOR_A_RUN & modules
    assert {m for m in REGISTRY.values() if m in modules} <= GRANTED


@pytest.mark.parametrize(
    ("engine", "other"),
    [pytest.param("wasmer", "wasmtime", marks=engine_installed("wasmer")), ("wasmtime", "wasmer")],
)
def test_an_in_process_run_imports_the_chosen_engine_alone(
    tmp_path: Path, bundle: tuple[Path, KeyFiles], engine: str, other: str
) -> None:
    parsers, modules = run_recorded(tmp_path, bundle, "--in-process", "--engine", engine)
    assert_lean(parsers, modules)
    assert {m for m in REGISTRY.values() if m in modules} == GRANTED
    assert f"ngixi_runtime.engines.{engine}" in modules
    assert not ENGINE_MODULES[other] & modules
    assert "wasmtime.component" not in modules  # a core guest's run: no component machinery (it imports dataclasses)
    assert not ISOLATED_ONLY & modules


@engine_installed("wasmer")
def test_a_run_of_a_fitting_artifact_imports_no_host_aot_cache(tmp_path: Path) -> None:
    keys = make_key(tmp_path / "keys")
    artifact = host_artifact(tmp_path, WASM)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST, artifacts=[artifact])
    _, modules = run_recorded(tmp_path, (path, keys), "--in-process", "--engine", "wasmer")
    assert "ngixi_runtime.loading.aot_cache" not in modules
    _, later = run_recorded(tmp_path, (path, keys), "--in-process", "--engine", "wasmer")
    assert not NOT_IN_A_LATER_IN_PROCESS_WASMER_RUN & later


def test_an_isolated_runs_parent_imports_no_engine(tmp_path: Path, bundle: tuple[Path, KeyFiles]) -> None:
    parsers, modules = run_recorded(tmp_path, bundle)
    assert_lean(parsers, modules)
    assert not (ENGINE_MODULES["wasmer"] | ENGINE_MODULES["wasmtime"]) & modules
    assert not NOT_IN_AN_ISOLATED_RUNS_PARENT & modules
    _, later = run_recorded(tmp_path, bundle)
    assert not (NOT_IN_AN_ISOLATED_RUNS_PARENT | NOT_IN_A_LATER_ISOLATED_RUNS_PARENT) & later


def test_a_warning_reads_as_before_without_logging_configured(tmp_path: Path) -> None:
    keys, newer, older = signed_downgrade(tmp_path)
    for bundle_path, allow in ((newer, ()), (older, ("--allow-downgrade",))):
        result = ngixi(
            "verify", "--trust", str(keys.trust), "--state-dir", str(tmp_path / "state"), str(bundle_path), *allow
        )
        assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"{older}: accepting sequence 8 of guest ")
    assert result.stderr.endswith(" below 9 (--allow-downgrade)\n")
    assert result.stderr.count("\n") == 1


def test_the_fork_server_preloads_what_a_run_imports_only_when_needed(tmp_path: Path) -> None:
    lazy = ["ngixi_runtime.guest.smoke", "ngixi_runtime.loading.aot_cache", "ngixi_runtime.loading.tenant_child"]
    probe = (
        "import json, sys\n"
        "from ngixi_runtime.loading.zygote_server import _preload\n"
        "_preload()\n"
        f"print(json.dumps([m for m in {lazy!r} if m not in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert (result.returncode, json.loads(result.stdout or "null")) == (0, []), result.stderr
