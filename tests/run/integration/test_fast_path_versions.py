"""On a wasmtime-py the fast path was not tested on (`engines/wasmtime_fastpath/`), nothing private is imported and
calls take the public API: core exports and components alike. Each in a fresh interpreter, as such a host starts:
reloading the fast path in a test process would free the C callbacks Wasmtime still holds for the host functions
that process defined through it, and the next collection of one of those would call freed code (a 3.13 worker
crashed so)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("wasmtime")

pytestmark = pytest.mark.integration

CORE_CALL = """
import sys
import wasmtime
from ngixi_runtime.engines import base
base.installed_version = lambda *_: "999.0.0"
for private in ("_ffi", "_func"):  # a wasmtime-py without the private modules the fast path uses
    delattr(wasmtime, private)
    sys.modules[f"wasmtime.{private}"] = None  # so that importing it fails
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.base import as_results
from ngixi_runtime.engines.wasmtime import export_call
from tests.run.unit.test_wasmtime_calls import FUNCTIONS
from tests.wasmgen import module
store = wasmtime.Store()
instance = wasmtime.Instance(store, wasmtime.Module(store.engine, module(functions=FUNCTIONS)), [])
call = export_call(instance.exports(store)["same"], store)
assert not wasmtime_fastpath.ACTIVE and not isinstance(call, wasmtime_fastpath.NumericExport)
print(as_results(call(store, (1, 2, 3.0, 4.0))))
"""

COMPONENT_CALL = """
import sys
from ngixi_runtime.engines import base
base.installed_version = lambda *_: "999.0.0"
import wasmtime
import wasmtime.component as wc
delattr(wc, "_enter")  # a wasmtime-py without the private module the component fast path uses
sys.modules["wasmtime.component._enter"] = None  # so that importing it fails
from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.wasmtime_fastpath import components
from tests.run.unit.test_component_lists import COMPONENT
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
function = wc.Linker(engine).instantiate(store, wc.Component(engine, COMPONENT)).get_func(store, "echo-u8")
assert not wasmtime_fastpath.ACTIVE and components.component_export(function, store) is None
print(function(store, b"\\x00\\xff").hex())
"""


@pytest.mark.parametrize(("script", "printed"), [(CORE_CALL, "(1, 2, 3.0, 4.0)"), (COMPONENT_CALL, "00ff")])
def test_on_another_wasmtime_py_nothing_private_is_imported_and_calls_take_the_public_api(
    script: str, printed: str
) -> None:
    ran = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert (ran.returncode, ran.stdout) == (0, f"{printed}\n"), ran.stderr
