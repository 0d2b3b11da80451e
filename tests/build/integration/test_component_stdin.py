"""Standard input and environment variables for component guests, as for core guests (test_cli_grants.py).

The core test modules of tests/run/integration/test_wasi_grants.py, made components by the build's stage
(the pinned adapter over Wasmtime's WASI), under the same manifests as components: `ngixi run` passes its
stdin to a guest granted it, isolated and in-process, within the same max_bytes, and the API takes bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.tenants import open_tenant
from tests.build.integration.test_wasi_testsuite_component import as_component, componentized
from tests.conftest import REPO, KeyFiles, make_bundle, make_key
from tests.integration import copy_project
from tests.run.integration.test_wasi_grants import COMMAND, ENV_GRANT, ENVIRON, STDIN_ECHO, STDIN_GRANT

pytestmark = pytest.mark.integration

NGIXI = Path(sys.executable).parent / "ngixi"
WHERE = pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
GUESTS = {
    "echo": (STDIN_ECHO, STDIN_GRANT),
    "environ": (ENVIRON, ENV_GRANT),
    "no-grants": (ENVIRON, COMMAND + "[capabilities.stdio]\n[capabilities.env]\n"),
}


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyFiles, dict[str, Path]]:
    directory = tmp_path_factory.mktemp("component-stdin")
    keys = make_key(directory / "keys")
    project = Project(copy_project(directory / "project", toolchain_from=REPO))
    bundles = {}
    for name, (core, manifest) in GUESTS.items():
        core_path = directory / f"{name}.core.wasm"
        core_path.write_bytes(core)
        wasm = componentized(project, "hello", as_component(manifest), core_path)
        bundles[name] = make_bundle(directory / name, keys.key, wasm=wasm, manifest=as_component(manifest))
    return keys, bundles


def ngixi(
    *arguments: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [NGIXI, *arguments], cwd=cwd, input=stdin, capture_output=True, env={**os.environ, **(env or {})}, check=False
    )


@WHERE
def test_run_passes_stdin_and_env_to_a_component_granted_them(
    tmp_path: Path, components: tuple[KeyFiles, dict[str, Path]], where: tuple[str, ...]
) -> None:
    keys, bundles = components
    trust = ("--trust", str(keys.trust))
    echoed = ngixi("run", *where, *trust, str(bundles["echo"]), cwd=tmp_path, stdin=b"ping")
    assert (echoed.returncode, echoed.stdout) == (0, b"ping"), echoed.stderr
    run = ["run", *where, *trust, str(bundles["environ"]), "--env", "LANG=C.UTF-8", "--env", "DEBUG"]
    shown = ngixi(*run, cwd=tmp_path, env={"DEBUG": "1"})
    assert (shown.returncode, shown.stdout) == (0, b"MODE=prod\0LANG=C.UTF-8\0DEBUG=1\0"), shown.stderr  # as given


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_the_api_gives_a_component_bytes_its_instance_reads_once(
    components: tuple[KeyFiles, dict[str, Path]], isolated: bool
) -> None:
    keys, bundles = components
    with open_tenant(bundles["echo"], trust_file=keys.trust, isolated=isolated, stdin=b"ping\0pong") as tenant:
        assert tenant.run().stdout == b"ping\0pong"
        assert tenant.run().stdout == b""  # as a core guest's: the same instance, at the end of its input


def test_run_refuses_stdin_beyond_the_components_max_bytes(
    tmp_path: Path, components: tuple[KeyFiles, dict[str, Path]]
) -> None:
    keys, bundles = components
    refused = ngixi("run", "--trust", str(keys.trust), str(bundles["echo"]), cwd=tmp_path, stdin=b"x" * 101)
    assert refused.returncode != 0
    assert refused.stderr == (
        b"ngixi: error: hello: its standard input is over capabilities.stdin.max_bytes = 100 bytes; "
        b"give less, or raise max_bytes in the manifest\n"
    )


def test_a_component_not_granted_stdin_reads_nothing_and_is_given_nothing(
    tmp_path: Path, components: tuple[KeyFiles, dict[str, Path]]
) -> None:
    keys, bundles = components
    ran = ngixi("run", "--trust", str(keys.trust), str(bundles["no-grants"]), cwd=tmp_path, stdin=b"not for it")
    assert (ran.returncode, ran.stdout) == (0, b""), ran.stderr
    with pytest.raises(InvalidInput, match=r"not granted \[capabilities.stdin\], so it takes no standard input"):
        open_tenant(bundles["no-grants"], trust_file=keys.trust, isolated=False, stdin=b"bytes")
