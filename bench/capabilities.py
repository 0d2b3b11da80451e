"""Calls per second through each host capability, in-process, with the sample guests.

Run: .venv/bin/python -m bench.capabilities [--seconds S]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ngixi_build.stages.smoke import http_server
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO
from tests.integration import copy_project, run

CASES = [
    ("hello", "add", "no host call"),
    ("counter", "increment", "kv_get + kv_set (SQLite, one transaction each)"),
    ("notes", "write_note", "path_open + fd_write + fd_close"),
    ("notes", "read_note", "path_open + fd_read + fd_close + fd_write to stdout"),
    ("fetch", "fetch_hello", "http_fetch to a local server"),
    ("fetch", "fetch_elsewhere", "http_fetch refused by the allowlist"),
]


def rate(project: Path, sandbox: Sandbox, guest: str, export: str, seconds: float) -> float:
    bundle = read_bundle(
        project / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx", load_trust(project / ".ngixi/trust.toml")
    )
    with open_guest(bundle, sandbox=sandbox) as loaded:
        args = (1, 2) if export == "add" else ()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            loaded.call(export, args)
            loaded.output.take()
            calls += 1
        return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    options = parser.parse_args()
    installed = REPO if (REPO / ".ngixi" / "toolchain").is_dir() else None
    with tempfile.TemporaryDirectory() as scratch, http_server() as server:
        project = copy_project(Path(scratch) / "project", toolchain_from=installed)
        run(project, "doit", *(f"bundle:{guest}" for guest in sorted({case[0] for case in CASES})))
        sandbox = Sandbox.under(Path(scratch) / "sandbox")._replace(http_routes={("127.0.0.1", 18080): server})
        for guest, export, what in CASES:
            per_second = rate(project, sandbox, guest, export, options.seconds)
            print(f"{guest}.{export:<16} {per_second:9.0f} calls/s  ({what})")


if __name__ == "__main__":
    main()
