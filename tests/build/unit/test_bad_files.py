"""The build side's readers of project files: bad ones are one InvalidInput naming the file, never a hang."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.guests import read_guest
from ngixi_build.project import Project, find_project
from ngixi_build.workflows.release_history import parse_history
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_input_bytes

DEEP = "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"


def test_deeply_nested_release_record_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"^releases\.toml: not valid TOML: .*; restore it from git$"):
        parse_history(DEEP, source="releases.toml")


@pytest.mark.parametrize("text", ["[tool]\nngixi = 3\n", 'tool = "x"\n', DEEP])
def test_a_project_file_of_the_wrong_shape_is_invalid_input(tmp_path: Path, text: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(InvalidInput, match=r"pyproject\.toml: "):
        Project(tmp_path).config  # noqa: B018


def test_a_wrong_config_value_is_refused_when_the_project_is_found(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nrelease = "x"\n')
    with pytest.raises(InvalidInput, match=r"tool\.ngixi\.release: must be an array of guest names"):
        find_project(tmp_path)


def test_a_manifest_that_is_a_fifo_is_read_leniently_without_waiting(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    os.mkfifo(tmp_path / "manifests" / "hi.toml")
    assert read_guest(Project(tmp_path), "hi").version


@pytest.mark.parametrize("make", [os.mkfifo, Path.mkdir], ids=["fifo", "directory"])
def test_only_a_regular_file_is_read(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "input"
    make(path)
    with pytest.raises(InvalidInput, match=r"input: a (FIFO|directory), not a regular file; name the file of it"):
        read_input_bytes(path, what="it")


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(bytes(11))
    with pytest.raises(InvalidInput, match=r"big: over 10 bytes, too large for it"):
        read_input_bytes(tmp_path / "big", what="it", limit=10)
    assert read_input_bytes(tmp_path / "big", what="it", limit=11) == bytes(11)
