"""A project's builds stay up to date wherever the project and ngixi-build live, with real doit runs: the project
moved (a CI cache restored into another folder) and the same ngixi-build imported from another place (another
environment, a moved checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ngixi_runtime.spec.targets import host_triple
from tests.integration import copy_project, installed_toolchain, keep_only_guests, ran_tasks, run, set_targets

pytestmark = [pytest.mark.integration]


def test_the_same_ngixi_build_elsewhere_leaves_a_moved_projects_tasks_up_to_date(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", toolchain_from=installed_toolchain())
    keep_only_guests(project, ["handmade", "hello"])  # the generators' bindings; an AssemblyScript library's compile
    set_targets(project, [host_triple()], ["host"])
    run(project, "doit", "build")
    elsewhere = tmp_path / "another-environment"
    elsewhere.mkdir()
    (project / "ngixi_build").rename(elsewhere / "ngixi_build")  # the copy doit imported: now from elsewhere
    moved = project.rename(tmp_path / "moved")
    path = os.pathsep.join(p for p in (str(elsewhere), os.environ.get("PYTHONPATH", "")) if p)
    assert ran_tasks(run(moved, "doit", "build", env={"PYTHONPATH": path}).stdout) == set()
    changed = elsewhere / "ngixi_build" / "toolchains" / "js" / "export_check.mjs"  # what asc compiles hello with
    changed.write_text(changed.read_text() + "\n")
    assert ran_tasks(run(moved, "doit", "build", env={"PYTHONPATH": path}).stdout) == {"compile:hello"}
