"""Standard input, environment variables and stdio descriptors for component guests, as for core guests.

The core test modules of tests/run/integration/test_wasi_grants.py (test_cli_grants.py runs them as core
guests), made components by the build's stage (the pinned adapter over Wasmtime's WASI), under the same
manifests as components: `ngixi run` passes its stdin to a guest granted it, isolated and in-process, within
the same max_bytes, and the API takes bytes. A module showing fd_fdstat_get of fds 0-3 answers the same
as a core guest on either engine and as a component.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from ngixi_build.project import Project
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.tenants import open_tenant
from tests.build.integration.test_wasi_testsuite_component import as_component, componentized
from tests.conftest import REPO, KeyFiles, make_bundle, make_key
from tests.integration import copy_project
from tests.run.integration.test_cli_grants import ngixi
from tests.run.integration.test_wasi_grants import COMMAND, ENV_GRANT, ENVIRON, STDIN_ECHO, STDIN_GRANT

pytestmark = pytest.mark.integration

WHERE = pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["isolated", "in-process"])
# Writes fd_fdstat_get's record of fds 0 to 3 (24 bytes each, at 400) and its errnos (at 600) to stdout.
FDSTAT = bytes(
    wasmtime.wat2wasm(r"""
(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 16)
  (data (i32.const 100) "\90\01\00\00\d8\00\00\00")
  (func (export "_start")
    (local $fd i32)
    (loop $each
      (i32.store (i32.add (i32.const 600) (i32.shl (local.get $fd) (i32.const 2)))
        (call $fdstat (local.get $fd) (i32.add (i32.const 400) (i32.mul (local.get $fd) (i32.const 24)))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $fd) (i32.const 4))))
    (drop (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))
""")
)
STDIO_GRANT = COMMAND + "[capabilities.stdio]\n[capabilities.stdin]\n"
GUESTS: dict[str, tuple[bytes, str]] = {
    "echo": (STDIN_ECHO, STDIN_GRANT),
    "environ": (ENVIRON, ENV_GRANT),
    "no-grants": (ENVIRON, COMMAND + "[capabilities.stdio]\n[capabilities.env]\n"),
    "fdstat": (FDSTAT, STDIO_GRANT),
    "fdstat-fs": (FDSTAT, STDIO_GRANT + "[capabilities.fs]\npreopens = []\n"),
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
        bundles[f"{name}-core"] = make_bundle(directory / f"{name}-core", keys.key, wasm=core, manifest=manifest)
    return keys, bundles


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
    with open_tenant(bundles["echo"], trust_file=keys.trust, isolated=isolated) as tenant:
        assert tenant.run().stdout == b""  # granted, given nothing: end of file at once


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


@pytest.mark.parametrize(
    "guest",
    [
        "fdstat",
        pytest.param(
            "fdstat-fs",
            marks=pytest.mark.xfail(
                strict=True,
                reason="with fs, a core guest's descriptor table gives stdio more rights (fdstat_set_flags, "
                "filestat_get, poll) and inherits none; Wasmtime's WASI gives fd_read or fd_write, inherited",
            ),
        ),
    ],
)
def test_stdio_descriptors_are_described_alike(components: tuple[KeyFiles, dict[str, Path]], guest: str) -> None:
    keys, bundles = components
    seen = {}
    for bundle, engine in ((f"{guest}-core", "wasmer"), (f"{guest}-core", "wasmtime"), (guest, "wasmtime")):
        pytest.importorskip(engine)
        with open_tenant(bundles[bundle], trust_file=keys.trust, isolated=False, engine=engine) as tenant:
            seen[f"{bundle} on {engine}"] = tenant.run().stdout
    assert len(set(seen.values())) == 1, seen
