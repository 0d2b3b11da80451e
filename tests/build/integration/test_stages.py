"""Stage actions as doit runs them, including in workers that multiprocessing spawns."""

from __future__ import annotations

import pickle
from pathlib import Path

from doit.exceptions import TaskFailed

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.workflows import pipeline as stages
from ngixi_build.workflows.tasks import as_action
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.spec.targets import SUPPORTED_TARGETS, host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST
from tests.run.unit.test_loader import ADD
from tests.wasmgen import module


def test_actions_survive_pickling_for_spawned_workers(tmp_path: Path) -> None:
    target = SUPPORTED_TARGETS["x86_64-apple-darwin"]
    action, _, _ = as_action(stages.precompile, project=Project(tmp_path), guest="hello", target=target)
    assert pickle.loads(pickle.dumps(action)) == action


def test_an_ngixi_error_becomes_a_clean_task_failure(tmp_path: Path) -> None:
    action, _, _ = as_action(stages.validate, project=Project(tmp_path), guest="missing")
    failure = pickle.loads(pickle.dumps(action))()
    assert isinstance(failure, TaskFailed)
    assert "missing.toml" in failure.message


def test_the_bundle_stage_adds_wasmtime_artifacts_beside_wasmer_ones(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.wasm_path("hello").parent.mkdir(parents=True)
    project.wasm_path("hello").write_bytes(module(functions=[ADD]))
    project.manifests_dir.mkdir()
    project.manifest_path("hello").write_text(HELLO_MANIFEST)
    stages.validate(project, "hello")  # the bundle stage takes only a validated .wasm
    host = SUPPORTED_TARGETS[host_triple()]
    stages.precompile(project, "hello", host)
    hello = read_guest(project, "hello")
    for triple in (host_triple(), "pulley64"):
        stages.precompile_with_wasmtime(project, hello, triple)
    path = stages.bundle(project, hello, [host.triple], wasmtime_triples=[host_triple(), "pulley64"])
    bundle = read_bundle(path, load_trust(project.dev_trust_file))
    assert [(m.path, m.artifact.engine) for m in bundle.index.artifacts if m.artifact] == [
        ("aot/pulley64.cwasm", "wasmtime"),
        (f"aot/{host_triple()}.cwasm", "wasmtime"),
        (f"aot/{host_triple()}.wasmer", "wasmer"),
    ]
