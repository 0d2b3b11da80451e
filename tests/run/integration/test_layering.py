"""The run side stays slim: loading and running a bundle imports nothing from the build side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ngixi_runtime.capabilities.registry import REGISTRY
from tests.conftest import KeyFiles, make_bundle
from tests.run.unit.test_loader import MANIFEST, WASM

BUILD_SIDE = {"doit", "nodeenv", "watchdog", "tomli_w"}
BUILD_MODULES = {"toolchain", "compile", "bundle", "precompile", "stages", "signing", "reporter", "validate", "smoke"}


def test_loader_imports_no_build_side_module() -> None:
    code = (
        "import sys, json\n"
        "import ngixi_runtime.loading.loader, ngixi_runtime.bundles.reader, ngixi_runtime.trust.signatures\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout))
    assert not {m.split(".")[0] for m in loaded} & BUILD_SIDE
    assert not {f"ngixi_build.{m}" for m in BUILD_MODULES} & loaded


def test_http_client_and_ssl_are_imported_only_for_a_guest_granted_http() -> None:
    """They take about a tenth of a tenant child's start: a host imports them when it creates an http client."""
    code = (
        "import sys, json\n"
        "import ngixi_runtime.loading.tenant_child, ngixi_runtime.capabilities.http\n"
        "before = sorted(sys.modules)\n"
        "from ngixi_runtime.capabilities.http_client import HttpClient, HttpOptions\n"
        "HttpClient(HttpOptions(allow=(), methods=('GET',), max_response_bytes=1, timeout_ms=1), guest='probe')\n"
        "print(json.dumps([before, sorted(sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    before, after = (set(modules) for modules in json.loads(result.stdout))
    assert not {"http.client", "ssl"} & before
    assert {"http.client", "ssl"} <= after


def test_opening_a_log_only_guest_imports_no_other_capability(tmp_path: Path, keys: KeyFiles) -> None:
    """Storage, files and the network stay unimported for a guest granted only log; so do their capabilities."""
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST)
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from ngixi_runtime.loading.loader import open_guest\n"
        "from ngixi_runtime.bundles.reader import read_bundle\n"
        "from ngixi_runtime.trust.signatures import load_trust\n"
        "with open_guest(read_bundle(Path(sys.argv[1]), load_trust(Path(sys.argv[2])))) as guest:\n"
        "    assert guest.call('add', (2, 3)) == (5,)\n"
        "    guest.call('greet', ())\n"
        "    assert guest.output.host_calls == {'log': 1}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(bundle), str(keys.trust)], capture_output=True, check=True)
    loaded = set(json.loads(result.stdout))
    assert not {"sqlite3", "http.client", "ssl", "ngixi_runtime.capabilities.wasi_files"} & loaded
    always = {REGISTRY["baseline"], REGISTRY["data"]}  # granted to every guest
    assert set(REGISTRY.values()) & loaded == {*always, REGISTRY["log"]}
