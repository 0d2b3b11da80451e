"""Stage actions as doit runs them, including in workers that multiprocessing spawns."""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
from pathlib import Path

from doit.exceptions import TaskFailed

from ngixi_build import proc
from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages.precompile import wasmtime_artifact_is_current
from ngixi_build.workflows import pipeline as stages
from ngixi_build.workflows.tasks import as_action
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import NgixiError
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
    project = _hello_project(tmp_path)
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


def _hello_project(root: Path) -> Project:
    project = Project(root)
    project.wasm_path("hello").parent.mkdir(parents=True)
    project.wasm_path("hello").write_bytes(module(functions=[ADD]))
    project.manifests_dir.mkdir()
    project.manifest_path("hello").write_text(HELLO_MANIFEST)
    return project


def test_a_wasmtime_artifact_compiled_in_a_child_is_this_users_as_one_compiled_here(tmp_path: Path) -> None:
    project = _hello_project(tmp_path)
    hello = read_guest(project, "hello")
    stages.precompile_with_wasmtime_in_child(project, hello, "pulley64")
    artifact = project.artifact_path("hello", "pulley64", "wasmtime")
    sha256 = hashlib.sha256(project.wasm_path("hello").read_bytes()).hexdigest()
    target = project.wasmtime_target("pulley64")
    assert wasmtime_artifact_is_current(artifact, target=target, wasm_sha256=sha256, metered=False)


def test_stopping_the_running_tools_ends_a_wasmtime_compile_in_a_child_with_nothing_written(tmp_path: Path) -> None:
    """Watch mode's background artifacts: Wasmtime's compile of a JavaScript or Python component, in the watcher's own
    process, held back its Ctrl-C for as long as it ran."""
    project = _hello_project(tmp_path)
    hello = read_guest(project, "hello")
    failures: list[BaseException] = []

    def compile_it() -> None:
        try:
            stages.precompile_with_wasmtime_in_child(project, hello, "pulley64")
        except BaseException as failure:
            failures.append(failure)

    compiling = threading.Thread(target=compile_it)
    compiling.start()
    deadline = time.monotonic() + 30
    while not proc._RUNNING and compiling.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)  # the child's Python takes far longer to start than this to see it
    proc.stop_running_tools()
    compiling.join(timeout=30)
    assert len(failures) == 1 and isinstance(failures[0], NgixiError), failures
    assert not project.artifact_path("hello", "pulley64", "wasmtime").exists()
