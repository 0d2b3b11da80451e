"""`make test-loader` tests ngixi-runtime as a host installs it: from its distribution, without the build side."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import pytest

import ngixi_runtime
from tests.conftest import REPO, exit_code

pytestmark = pytest.mark.skipif(
    os.environ.get("NGIXI_TEST_INSTALLED_RUNTIME") != "1",
    reason="checks the environment where the Makefile installs ngixi-runtime alone (make test-loader)",
)


def test_the_run_side_comes_from_its_installed_distribution() -> None:
    assert REPO not in Path(ngixi_runtime.__file__).resolve().parents
    assert (Path(sys.executable).parent / "ngixi").is_file()


def test_the_build_side_is_not_installed() -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("ngixi-build")


def test_ngixi_offers_the_run_sides_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--help"]) == 0
    assert "{run,verify,inspect}" in capsys.readouterr().out
