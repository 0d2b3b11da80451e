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
        "import ngixi_runtime.loading.tenant_child, ngixi_runtime.capabilities.component_host\n"
        "before = sorted(sys.modules)\n"
        "from ngixi_runtime.capabilities.http import HttpClient\n"
        "from ngixi_runtime.capabilities.options import HttpOptions\n"
        "HttpClient(HttpOptions(allow=(), methods=('GET',), max_response_bytes=1, timeout_ms=1), guest='probe')\n"
        "print(json.dumps([before, sorted(sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    before, after = (set(modules) for modules in json.loads(result.stdout))
    assert not {"http.client", "ssl"} & before
    assert {"http.client", "ssl"} <= after
