"""`ngixi build` runs doit with the project's own `[tool.doit]`, read and checked by us, from any directory."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.project import Project
from ngixi_build.workflows.dodo_tasks import declare, project_tasks
from ngixi_build.workflows.doit_run import doit_settings, run_task
from ngixi_runtime.errors import InvalidInput

NGIXI = "[tool.ngixi]\n"


def project_with(root: Path, text: str) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(text)
    return Project(root)


def test_the_settings_are_doits_layout_of_tool_doit(tmp_path: Path) -> None:
    project = project_with(tmp_path, NGIXI + '[tool.doit]\nverbosity = 2\n[tool.doit.tasks.build]\nx = "y"\n')
    assert doit_settings(project) == {"GLOBAL": {"verbosity": 2}, "task:build": {"x": "y"}}
    assert doit_settings(project_with(tmp_path / "plain", NGIXI)) == {}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("tool = {ngixi = {}, doit = 3}\n", "tool.doit"),
        (NGIXI + "[tool.doit]\ntasks = 3\n", "tool.doit.tasks"),
        (NGIXI + "[tool.doit.commands]\nrun = 3\n", "tool.doit.commands"),
    ],
)
def test_a_tool_doit_of_the_wrong_shape_is_one_error(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(InvalidInput, match=rf"pyproject\.toml: {field}: "):
        doit_settings(project_with(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[tool.doit.plugins.reporter]\nx = 'antigravity:C'\n", "tool.doit.plugins"),
        ("[tool.doit]\noutfile = 'VICTIM'\n", "tool.doit.outfile"),
        ("[tool.doit]\ndep_file = 'VICTIM'\n", "tool.doit.dep_file"),
        ("[tool.doit.commands.run]\nverbosity = 2\noutfile = 'VICTIM'\n", "tool.doit.commands.run.outfile"),
        ("[tool.doit]\nloader = 'evil'\n", "tool.doit.loader"),
        ("[tool.doit.tasks.release]\nallow_dirty = true\n", "tool.doit.tasks.release.allow_dirty"),
    ],
)
def test_doit_settings_naming_code_or_files_are_refused_before_doit_runs(tmp_path: Path, text: str, field: str) -> None:
    """A project someone else made chose its pyproject.toml: `[tool.doit] outfile` had `ngixi build` truncate and
    write any file of the builder's, every plugin listed had doit import that module (`antigravity` opened a web
    browser), before any task ran, and `[tool.doit.tasks.release] allow_dirty` released a tree with the builder's
    uncommitted files in it without their --allow-dirty."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the builder's\n")
    project = project_with(tmp_path / "p", NGIXI + text.replace("VICTIM", str(victim)))
    with pytest.raises(InvalidInput, match=rf"pyproject\.toml: {re.escape(field)}: .*: remove"):
        run_task(project, "build")
    assert victim.read_text() == "the builder's\n"
    assert "antigravity" not in sys.modules


def test_a_broken_pyproject_in_the_working_directory_is_not_doits_to_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_with(tmp_path / "project", NGIXI)
    (tmp_path / "pyproject.toml").write_text("[[[ not TOML\n")
    monkeypatch.chdir(tmp_path)
    assert run_task(project, "build") == 0  # no guests: nothing to do, and no traceback from doit's reading


def test_tasks_run_in_the_root_name_its_files_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """doit keeps its record by a file's name: relative ones keep a moved project up to date."""
    project = project_with(tmp_path / "p", NGIXI)
    (project.guests_dir / "g").mkdir(parents=True)
    (project.guests_dir / "g" / "g.wasm").write_bytes(b"\0asm\1\0\0\0")
    project.manifests_dir.mkdir()
    project.manifest_path("g").write_text('[guest]\nname = "g"\nversion = "0.1.0"\nlanguage = "wasm"\n')

    def compile_task() -> dict[str, Any]:
        task: dict[str, Any]
        (task,) = declare(project)["task_compile"]()
        return task

    monkeypatch.chdir(project.root)
    assert compile_task()["file_dep"] == ["guests/g/g.wasm", "manifests/g.toml"]
    assert compile_task()["targets"] == ["artifacts/wasm/g.wasm"]
    monkeypatch.chdir(tmp_path)  # `doit --dir` elsewhere: names that hold from there
    assert compile_task()["file_dep"] == [str(project.guests_dir / "g" / "g.wasm"), str(project.manifest_path("g"))]


def test_plain_doit_says_what_is_wrong_in_tool_ngixi_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doit build` loads dodo.py, which hands doit the project's tasks: a bad [tool.ngixi] ends it as `ngixi build`
    ends, not with a traceback of the dodo.py doit could not load."""
    project = project_with(tmp_path, NGIXI + "targets = 3\n")
    with pytest.raises(SystemExit) as ended:
        project_tasks(project.root)
    assert ended.value.code == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: {tmp_path / 'pyproject.toml'}: tool.ngixi.targets: must be an array of target triples or "
        "{ triple, cpu_features } tables\n"
    )
