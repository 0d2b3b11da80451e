"""`make test-loader` tests ngixi-runtime as a host installs it: from its distribution, without the build side."""

from __future__ import annotations

import os
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

import ngixi_runtime

pytestmark = pytest.mark.skipif(
    os.environ.get("NGIXI_TEST_INSTALLED_RUNTIME") != "1",
    reason="checks the environment where the Makefile installs ngixi-runtime alone (make test-loader)",
)
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])


def test_the_run_side_comes_from_its_installed_distribution() -> None:
    assert SITE_PACKAGES in Path(ngixi_runtime.__file__).resolve().parents


def test_the_environment_has_the_run_side_and_not_the_build_side() -> None:
    installed = {d.metadata["Name"] for d in metadata.distributions(path=[str(SITE_PACKAGES)])}
    assert "ngixi-runtime" in installed
    assert "ngixi-build" not in installed
