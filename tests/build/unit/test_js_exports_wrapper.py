"""The JavaScript build's exports wrapper (`artifacts/wasm/.NAME.exports.mjs`): where it goes, that nothing left at
its path is followed, and that it is gone after a build that failed or was interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.languages import javascript as javascript_language
from ngixi_build.project import Project
from ngixi_build.toolchains import javascript
from ngixi_runtime.guest.manifest import load_manifest
from tests.build.unit.test_language_component import MANIFEST

WRAPPER = Path("artifacts/wasm/.tally.exports.mjs")
SOURCE = "export function bump(by) { return by; }\n"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "artifacts" / "wasm").mkdir(parents=True)
    (tmp_path / "guests" / "tally").mkdir(parents=True)
    (tmp_path / "guests" / "tally" / "index.js").write_text(SOURCE)
    (tmp_path / "tally.toml").write_text(MANIFEST)
    return Project(tmp_path)


def wrapper_of(project: Project, manifest_text: str = MANIFEST) -> Path | None:
    (project.root / "tally.toml").write_text(manifest_text)
    manifest = load_manifest(project.root / "tally.toml")
    return javascript_language._exports_wrapper(project, manifest, project.root / "artifacts/wasm/tally.wasm")


def test_the_wrapper_sits_beside_the_component_for_every_guest(project: Project) -> None:
    """It hands every guest's exports their arguments as the guest's own values; granted log, it reports what they
    throw; not granted random, or clock and stdio, it refuses to draw, or to set timers."""
    assert wrapper_of(project) == WRAPPER
    assert wrapper_of(project, MANIFEST.replace("[capabilities.log]\n", "")) == WRAPPER
    granted = "[capabilities.random]\n[capabilities.clock]\n"
    assert wrapper_of(project, MANIFEST.replace("[capabilities.log]\n", granted)) == WRAPPER


@pytest.mark.parametrize("target", ["guests/tally/index.js", "/etc/passwd"])
def test_a_link_at_the_wrappers_path_is_not_followed(project: Project, target: str) -> None:
    """A project may come with anything under artifacts/: a link there named like the wrapper must neither make the
    build write (and then delete) the file it points to, nor end the build with a traceback."""
    (project.root / WRAPPER).symlink_to(target if target.startswith("/") else project.root / target)
    assert wrapper_of(project) == WRAPPER


def test_a_component_directory_outside_the_project_has_no_wrapper(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (project.root / "artifacts" / "wasm").rmdir()
    (project.root / "artifacts" / "wasm").symlink_to(elsewhere, target_is_directory=True)
    assert wrapper_of(project) is None


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, javascript.JavaScriptBuildError])
def test_the_wrapper_is_removed_when_the_driver_is_interrupted(
    project: Project, monkeypatch: pytest.MonkeyPatch, interruption: type[BaseException]
) -> None:
    """Killed by Ctrl-C or at the timeout, the driver cannot remove what it wrote; the build does. A link left at
    the path is removed before the driver runs, and what it pointed to is untouched."""
    index = project.root / "guests" / "tally" / "index.js"
    (project.root / WRAPPER).symlink_to(index)
    seen: list[bool] = []

    def driver_killed_midway(command: list[object], **_: object) -> None:
        seen.append((project.root / WRAPPER).is_symlink())
        (project.root / WRAPPER).write_text("// the wrapper\n")
        raise interruption("interrupted")

    monkeypatch.setattr(javascript, "run", driver_killed_midway)
    toolchain = javascript.JavaScriptToolchain(project.root / "toolchain", project.root / "node")
    with pytest.raises(interruption):
        javascript.build_component(
            toolchain,
            entry=Path("guests/tally/index.js"),
            world_dir=project.root / "wit",
            world="tally",
            out_path=project.root / "artifacts/wasm/tally.wasm",
            cwd=project.root,
            grants={"log"},
            exports_wrapper=WRAPPER,
        )
    assert seen == [False]
    assert not (project.root / WRAPPER).exists() and not (project.root / WRAPPER).is_symlink()
    assert index.read_text() == SOURCE


def test_a_guest_without_log_is_built_from_its_entry_as_before(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[object]] = []
    monkeypatch.setattr(javascript, "run", lambda command, **_: commands.append(command))
    toolchain = javascript.JavaScriptToolchain(project.root / "toolchain", project.root / "node")
    out = project.root / "artifacts/wasm/tally.wasm"
    entry = Path("guests/tally/index.js")
    javascript.build_component(
        toolchain, entry=entry, world_dir=project.root / "wit", world="tally", out_path=out, cwd=project.root, grants=()
    )
    disabled = ",".join(javascript.WASI_FEATURES)
    assert commands == [
        [toolchain.node, javascript.DRIVER, toolchain.root, entry, project.root / "wit", "tally", out, disabled]
    ]
