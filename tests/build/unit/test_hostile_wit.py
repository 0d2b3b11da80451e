"""A project's `wit/` (or a guest's `world.wit`) someone else wrote reads nothing of the builder's: a link out of
it, or `wit/` itself a link out of the project, is refused before wasm-tools parses the catalog or a component
guest's world copies it (links followed). Before, `wit/deps/x -> DIR` made DIR's WIT part of the catalog, quoted the
first line of any `.wit` file there in the parse error, and copied all of DIR into each component guest's world."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.project import PACKAGED_WIT, Project
from ngixi_build.stages.component import guest_world
from ngixi_build.toolchains.wit import WitError
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.manifest import load_manifest
from tests.conftest import exit_code

Hostile = Callable[[Path, Path], Path]  # (project, the builder's folder) -> the link refused


def _deps_link(project: Path, outside: Path) -> Path:
    link = project / "wit" / "deps" / "secret"
    link.parent.mkdir()
    link.symlink_to(outside)
    return link


def _file_link(project: Path, outside: Path) -> Path:
    link = project / "wit" / "extra.wit"
    link.symlink_to(outside / "secret.wit")
    return link


def _relative_link(project: Path, outside: Path) -> Path:
    link = project / "wit" / "deps"
    link.symlink_to(Path("..", "..", outside.name))
    return link


def _wit_itself(project: Path, outside: Path) -> Path:
    (project / "wit" / "host.wit").unlink()
    (project / "wit").rmdir()
    (outside / "host.wit").write_bytes((PACKAGED_WIT / "host.wit").read_bytes())
    (project / "wit").symlink_to(outside)
    return project / "wit"


HOSTILE: dict[str, Hostile] = {
    "wit/deps/x -> a folder of the builder's": _deps_link,
    "wit/x.wit -> a file of the builder's": _file_link,
    "wit/deps -> ../../folder": _relative_link,
    "wit -> a folder of the builder's": _wit_itself,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "wit").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "p"\n\n[tool.ngixi]\n', encoding="utf-8")
    (root / "wit" / "host.wit").write_bytes((PACKAGED_WIT / "host.wit").read_bytes())
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "builder"
    folder.mkdir()
    (folder / "secret.wit").write_text("TOPSECRET\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("make", HOSTILE.values(), ids=list(HOSTILE))
def test_a_link_out_of_the_projects_wit_is_refused(project: Path, outside: Path, make: Hostile) -> None:
    link = make(project, outside)
    with pytest.raises(InvalidInput, match=rf"^{link}: a link out of the project's WIT folder") as refused:
        _ = Project(project).wit_dir
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("command", ["wit", "build"])
def test_ngixi_refuses_it_in_one_line(
    project: Path, outside: Path, command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _deps_link(project, outside)
    monkeypatch.chdir(project)
    assert exit_code([command]) == 2
    out, err = capsys.readouterr()
    assert "TOPSECRET" not in out + err
    assert err.count("\n") == 1 and "wit/deps/secret: a link out of the project's WIT folder" in err


def test_links_inside_the_project_are_kept(project: Path) -> None:
    (project / "shared").mkdir()
    (project / "shared" / "deps").mkdir()
    (project / "wit" / "deps").symlink_to(Path("..", "shared", "deps"))  # out of wit/: refused, even in the project
    with pytest.raises(InvalidInput):
        _ = Project(project).wit_dir
    (project / "wit" / "deps").unlink()
    (project / "wit" / "same.wit").symlink_to("host.wit")
    (project / "wit").rename(project / "catalog")
    (project / "wit").symlink_to("catalog")
    assert Project(project).wit_dir == project / "wit"


def test_a_guests_world_linked_out_of_its_folder_is_refused(project: Path, outside: Path) -> None:
    """wasm-tools' parse error quoted the first line of the file a guest's `world.wit` named."""
    (project / "guests" / "g").mkdir(parents=True)
    (project / "guests" / "g" / "world.wit").symlink_to(outside / "secret.wit")
    manifest = project / "g.toml"
    manifest.write_text(
        '[guest]\nname = "g"\nversion = "0.1.0"\nkind = "library"\nabi = "component"\n\n'
        '[exports.greet]\nparams = ["string"]\nresults = ["string"]\n',
        encoding="utf-8",
    )
    with pytest.raises(WitError, match=r"world\.wit: a link out of the guest's folder") as refused:
        guest_world(Project(project), load_manifest(manifest))
    assert "TOPSECRET" not in str(refused.value)
