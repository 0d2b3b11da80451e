"""The order doit runs a guest's tasks in."""

from __future__ import annotations

from pathlib import Path

from ngixi_build.project import Project
from ngixi_build.workflows.dodo_tasks import ProjectTasks
from tests.conftest import HELLO_MANIFEST
from tests.wasmgen import module


def test_every_precompile_waits_for_the_guest_to_pass_validation(tmp_path: Path) -> None:
    """A large module (a 16 MB ruby.wasm takes Wasmer over two minutes) is never compiled to be refused after."""
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nwasmtime_targets = ["host"]\n')
    project = Project(tmp_path)
    project.manifests_dir.mkdir()
    project.manifest_path("hello").write_text(HELLO_MANIFEST)
    (project.guests_dir / "hello").mkdir(parents=True)
    (project.guests_dir / "hello" / "hello.wasm").write_bytes(module())
    precompiles = list(ProjectTasks(project).task_precompile())
    assert len(precompiles) == len(project.targets()) + 1
    assert all(task["task_dep"] == ["validate:hello"] for task in precompiles)
