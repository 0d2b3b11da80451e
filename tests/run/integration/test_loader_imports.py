"""The slim loader: importing it loads no build-side tool and no capability that a guest must be granted."""

from __future__ import annotations

import subprocess
import sys

# The build side's tools, and what only the kv (sqlite3) and http (http.client, ssl) capabilities need.
NOT_FOR_THE_LOADER = ("doit", "nodeenv", "watchdog", "sqlite3", "http.client", "ssl")


def imported_modules(statement: str) -> set[str]:
    """The modules a fresh interpreter imports to run `statement`, as `-X importtime` lists them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
    )
    lines = (line.rpartition("|")[2].strip() for line in result.stderr.splitlines())
    return {line for line in lines if line and line != "imported package"}


def test_importing_the_loader_loads_no_build_tool_and_no_capability_it_was_not_asked_for() -> None:
    imported = imported_modules("import ngixi_runtime.loading.loader")
    assert "ngixi_runtime.loading.loader" in imported
    found = sorted(m for m in imported if any(m == name or m.startswith(f"{name}.") for name in NOT_FOR_THE_LOADER))
    assert found == []
