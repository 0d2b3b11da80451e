"""A project's builds stay up to date wherever the project and ngixi-build live, with real doit runs: the project
moved (a CI cache restored into another folder) and the same ngixi-build imported from another place (another
environment, a moved checkout); but only for the user whose builds made them, not for a project someone else made
that came with its outputs and doit's record."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ngixi_runtime.spec.targets import host_triple
from tests.conftest import REPO
from tests.integration import copy_project, installed_toolchain, keep_only_guests, ran_tasks, run, set_targets
from tests.wasmgen import Func, module

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


def answer_module(value: int) -> bytes:
    """A module whose `answer()` returns `value` (0-63: one byte of i32.const)."""
    return module(functions=[Func("answer", (), ("i32",), bytes([0x41, value]))])


def test_outputs_that_came_with_a_project_are_built_again_from_its_sources(tmp_path: Path) -> None:
    """doit's record names files relative to the project and checks an output by size and SHA-256, so a project
    that came with its artifacts/ and .ngixi/ (doit's record) kept them up to date wherever it was unpacked: for a
    guest with no AOT artifacts of its own (`targets = []`) the shipped bundle ran code its sources do not hold.
    Here the author built other code, then put back the sources shown with the built file's size and time."""
    author = {"XDG_STATE_HOME": str(tmp_path / "author-state")}
    user = {"XDG_STATE_HOME": str(tmp_path / "user-state"), "HOME": str(tmp_path / "user-home")}
    project = tmp_path / "made-elsewhere"
    source = project / "guests" / "answer" / "answer.wasm"
    source.parent.mkdir(parents=True)
    (project / "manifests").mkdir()
    (project / "manifests" / "answer.toml").write_text(
        'guest = { name = "answer", version = "0.1.0" }\nexports.answer = { results = ["i32"] }\n'
    )
    (project / "pyproject.toml").write_text("[tool.ngixi]\ntargets = []\nwasmtime_targets = []\n")
    shutil.copy(REPO / "dodo.py", project)
    source.write_bytes(answer_module(7))
    run(project, "doit", "build", env=author)
    built = source.stat()
    source.write_bytes(answer_module(42))
    os.utime(source, ns=(built.st_atime_ns, built.st_mtime_ns))  # doit's record of the source still holds
    unpacked = tmp_path / "unpacked"
    shutil.copytree(project, unpacked, symlinks=True)
    assert ran_tasks(run(unpacked, "doit", "build", env=author).stdout) == set()  # the author's own copy keeps
    assert {"compile:answer", "bundle:answer"} <= ran_tasks(run(unpacked, "doit", "build", env=user).stdout)
    bundle = "artifacts/bundles/answer-0.1.0.ngx"
    assert run(unpacked, "ngixi", "run", bundle, "answer", env=user).stdout == "42\n"  # was 7
    assert ran_tasks(run(unpacked, "doit", "build", env=user).stdout) == set()  # now this user's own


def answer_project(project: Path, build: str = "") -> Path:
    """A project of one wasm guest, `answer` (its module not written), with no AOT targets: a build of it is quick."""
    (project / "guests" / "answer").mkdir(parents=True)
    (project / "manifests").mkdir()
    (project / "manifests" / "answer.toml").write_text(
        f'guest = {{ name = "answer", version = "0.1.0" }}\nexports.answer = {{ results = ["i32"] }}\n{build}'
    )
    (project / "pyproject.toml").write_text("[tool.ngixi]\ntargets = []\nwasmtime_targets = []\n")
    shutil.copy(REPO / "dodo.py", project)
    return project


@pytest.mark.parametrize("build", ["", '[build]\noutput = "out/answer.wasm"\n'])
def test_a_wasm_guests_module_linked_from_elsewhere_is_never_signed(tmp_path: Path, build: str) -> None:
    """A wasm guest's module, committed or a [build] output, was read through a link: a project someone else made
    with `answer.wasm -> ~/work/other/artifacts/wasm/x.wasm` had the builder's own module signed into its bundle."""
    builders = tmp_path / "builders-module.wasm"
    builders.write_bytes(answer_module(42))
    project = answer_project(tmp_path / "made-elsewhere", build)
    module = project / "guests" / "answer" / ("out/answer.wasm" if build else "answer.wasm")
    module.parent.mkdir(exist_ok=True)
    module.symlink_to(builders)
    refused = run(project, "ngixi", "build", check=False)
    assert refused.returncode != 0
    assert f"{module}: is {builders}, outside the guest's folder" in refused.stdout + refused.stderr
    assert not (project / "artifacts" / "bundles" / "answer-0.1.0.ngx").exists()


@pytest.mark.parametrize("link", ["artifacts", "artifacts/validated", ".ngixi", ".ngixi/keys"])
def test_a_link_among_the_outputs_that_came_with_a_project_is_refused(tmp_path: Path, link: str) -> None:
    """The build writes by fixed names under artifacts/ and .ngixi/, so a project that came with `artifacts ->
    ~/.config/app` (or `artifacts/validated -> ...`) had `ngixi build` and `doit build` write `<guest>.json` (a guest
    named `settings` over an editor's settings.json), `wasm/`, `bundles/` and the dev key and trust file into the
    builder's folders. Both refuse it in one line naming the link, before anything is written."""
    project = answer_project(tmp_path / "made-elsewhere")
    (project / "guests" / "answer" / "answer.wasm").write_bytes(answer_module(7))
    builders = tmp_path / "builders-folder"
    builders.mkdir()
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(builders, target_is_directory=True)
    for command in (("ngixi", "build"), ("doit", "build")):
        refused = run(project, *command, check=False)
        assert refused.returncode == 2, refused
        assert f"{project / link}: is a symbolic link" in refused.stderr
    assert list(builders.iterdir()) == []
