"""A host function's unexpected exception (a bug) ends the call as one trap line, on both engines, in-process
and isolated: never a traceback, never a killed child. A tenant child's own failure (a bug outside the guest)
reaches the operator as the child's last words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, call_import, module

# `ngixi` with the log capability's host function broken; an isolated tenant is forked from this process.
BROKEN_NGIXI = """
import sys
from ngixi_runtime.capabilities import log
def broken(*_): raise ZeroDivisionError("division by zero")
log.write_log = broken
from ngixi_runtime.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("isolation", [["--in-process"], []], ids=["in-process", "isolated"])
def test_a_host_function_bug_is_a_one_line_trap(
    tmp_path: Path, keys: KeyFiles, isolation: list[str], engine_name: str
) -> None:
    body = call_import(0, 2, 0, 1) + ADD_BODY
    wasm = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], body)])
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm)
    argv = ["run", *isolation, "--trust", str(keys.trust), str(bundle), "add", "2", "3"]
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_NGIXI, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "ngixi: error: hello: a host function of capability log failed (ZeroDivisionError: division by zero); "
        "the call was stopped: report it with the guest and its input"
    )
    assert done.returncode == 5, engine_name


# `ngixi` whose forked tenant child fails before it reads its first request (a bug in the child's own code).
BROKEN_CHILD = """
import sys
from ngixi_runtime.loading import tenant_child
def broken(*_): raise ZeroDivisionError("division by zero")
tenant_child.serve = broken
from ngixi_runtime.cli import main
sys.exit(main())
"""


def test_a_tenant_childs_own_failure_is_printed_to_its_error_file(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]))
    argv = ["run", "--trust", str(keys.trust), str(bundle), "add", "2", "3"]
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_CHILD, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    (line,) = done.stderr.splitlines()
    assert line.startswith("ngixi: error: hello: prepare: the tenant process died (exit status 1): "), line
    assert "in broken" in line, line  # the traceback's last 500 bytes (Python 3.13's marks its lines: longer)
    assert line.endswith("\\nZeroDivisionError: division by zero"), line
