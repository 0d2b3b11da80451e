"""The run side stays slim: loading and running a bundle imports nothing from the build side."""

from __future__ import annotations

import json
import subprocess
import sys

BUILD_SIDE = {"doit", "nodeenv", "watchdog", "tomli_w"}
BUILD_MODULES = {"toolchain", "compile", "bundle", "precompile", "stages", "signing", "reporter", "validate", "smoke"}


def test_loader_imports_no_build_side_module() -> None:
    code = (
        "import sys, json\n"
        "import ngixi_build.runtime.loader, ngixi_build.runtime.bundle_reader, ngixi_build.runtime.verify\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    assert not {m.split(".")[0] for m in loaded} & BUILD_SIDE
    assert not {f"ngixi_build.{m}" for m in BUILD_MODULES} & loaded
