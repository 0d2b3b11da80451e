"""`[tool.ngixi] shared_sources`: folders of C and Zig code guests share, checked, listed and followed by watch."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.guests import folders_without_manifest
from ngixi_build.project import Project
from ngixi_build.workflows.watch import Debouncer, _observing, changed_inputs, watched_folders
from ngixi_runtime.errors import InvalidInput

FIELD = "tool.ngixi.shared_sources"


def project_sharing(root: Path, shared: str) -> Project:
    for name, source in (("a", "main.c"), ("b", "main.zig"), ("js", "index.js")):
        (root / "guests" / name).mkdir(parents=True)
        (root / "guests" / name / source).write_text("\n")
        (root / "manifests").mkdir(exist_ok=True)
        (root / "manifests" / f"{name}.toml").write_text(f'guest = {{ name = "{name}", version = "0.1.0" }}\n')
    (root / "guests" / "common").mkdir()
    (root / "guests" / "common" / "util.h").write_text("#define ONE 1\n")
    (root / "lib" / "sub").mkdir(parents=True)
    (root / "lib" / "sub" / "math.h").write_text("\n")
    (root / "lib" / ".swp").write_text("\n")
    (root / "lib" / ".defs.h").write_text("\n")  # hidden, but `#include ".defs.h"` reads it
    (root / "pyproject.toml").write_text(f"[tool.ngixi]\nshared_sources = {shared}\n")
    return Project(root)


def test_shared_folders_are_listed_with_their_files_and_are_no_guest(tmp_path: Path) -> None:
    project = project_sharing(tmp_path, '["guests/common", "lib/", "lib/sub"]')
    project.check_config()
    assert project.shared_sources() == (tmp_path / "guests/common", tmp_path / "lib", tmp_path / "lib/sub")
    files = ["guests/common/util.h", "lib/.defs.h", "lib/sub/math.h"]
    assert project.shared_source_files() == [tmp_path / name for name in files]
    assert folders_without_manifest(project) == []
    assert changed_inputs(project, tmp_path / "lib" / "sub" / "math.h") == ["a", "b"]  # the C and Zig guests
    assert changed_inputs(project, tmp_path / "guests" / "common" / "util.h") == ["a", "b"]
    assert changed_inputs(project, tmp_path / "lib" / ".util.h.swp") == []
    assert changed_inputs(project, tmp_path / "lib" / ".defs.h") == ["a", "b"]
    assert changed_inputs(project, tmp_path / "guests" / "js" / "index.js") == ["js"]
    assert changed_inputs(project, tmp_path / "README.md") == []
    assert watched_folders(project) == "guests/, manifests/, lib/ and lib/sub/"
    assert watched_folders(Project(tmp_path / "none")) == "guests/ and manifests/"


@pytest.mark.parametrize(
    ("shared", "problem"),
    [
        ('"lib"', "must be an array of folders of the project"),
        ("[3]", "[0]: must be a folder's path relative to the project root"),
        ('["/etc"]', "[0]: must be a folder's path relative to the project root"),
        ('["lib", "../outside"]', "[1]: '../outside' is outside the project ("),
        ('["guests/missing"]', "[0]: 'guests/missing' is not a folder of the project; make it"),
        ('["."]', "[0]: '.' holds or is in .ngixi/"),
        ('["artifacts/wasm"]', "[0]: 'artifacts/wasm' holds or is in artifacts/"),
        ('[".git"]', "[0]: '.git' holds or is in .git/"),
        ('["linked"]', "[0]: 'linked' is outside the project ("),
        ('["lib"]', "[0]: {root}/lib/key is a link out of 'lib' (to "),
    ],
)
def test_a_wrong_shared_folder_is_refused_in_one_line(tmp_path: Path, shared: str, problem: str) -> None:
    project = project_sharing(tmp_path / "p", shared)
    (tmp_path / "outside").mkdir()
    (tmp_path / "p" / "artifacts" / "wasm").mkdir(parents=True)
    (tmp_path / "p" / ".git").mkdir()
    (tmp_path / "p" / "linked").symlink_to(tmp_path / "outside")
    if "link out" in problem:
        (tmp_path / "p" / "lib" / "key").symlink_to(tmp_path / "outside")
    with pytest.raises(InvalidInput) as refused:
        project.check_config()
    message = str(refused.value)
    assert message.startswith(f"{project.root}/pyproject.toml: {FIELD}"), message
    assert problem.format(root=project.root) in message and "\n" not in message, message


def test_watch_sees_an_edit_in_a_shared_folder_outside_guests(tmp_path: Path) -> None:
    project = project_sharing(tmp_path, '["lib"]')
    debouncer = Debouncer(0.05)
    with _observing(project, debouncer, poll=False):
        (tmp_path / "lib" / "sub" / "math.h").write_text("#define TWO 2\n")
        assert debouncer.next_batch(block=True, on_arrival=lambda _guest: None) == {"a", "b"}
