"""Component guests using WASI, end to end: real asc, the pinned adapter, wasm-tools, Wasmtime's WASI.

Besides the sample (notes-component), a probe guest made here imports every WASI preview 1 function
of the capability registry, so the capabilities' WASI preview 2 grants cannot miss one, and tries what a
guest must not do: change a read-only mount, leave its mounts, flood stdout.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.toolchains.component_world import read_component_world
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.base import WASI
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.capabilities.registry import every_capability
from ngixi_runtime.engines import wasmtime_component
from ngixi_runtime.errors import GuestError, VerificationError
from ngixi_runtime.guest.check import check_component
from ngixi_runtime.guest.manifest import parse_manifest
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import REPO, KeyFiles, exit_code, make_bundle
from tests.integration import copy_project, run

pytestmark = pytest.mark.integration

SAMPLE = "notes-component"
SAMPLE_BUNDLE = f"artifacts/bundles/{SAMPLE}-0.1.0.ngx"
PROBE = "wasi-probe"
EPERM, ENOENT, EBADF = 63, 44, 8
WASI_CAPABILITIES = ("stdio", "fs", "clock", "random", "args", "env")
PROBE_EXPORTS = {"change": 2, "peek": 1, "shout": 1, "argc": 0, "envc": 0, "every": 1}
PREOPENS = """preopens = [
    { guest = "/data", host = "data", mode = "rw" },
    { guest = "/config", host = "config", mode = "ro" },
]
"""


def probe_manifest(
    capabilities: tuple[str, ...] = WASI_CAPABILITIES, *, name: str = PROBE, abi: str = "component", stdout: int = 100
) -> str:
    """The probe's manifest; as a core guest (bench/components.py) it builds from the same source."""
    exports = "".join(
        f'[exports.{e}]\nparams = {json.dumps(["i32"] * n)}\nresults = ["i32"]\n' for e, n in PROBE_EXPORTS.items()
    )
    options = {"fs": PREOPENS, "env": 'allow = ["ONLY"]\n'}  # the variable the probe is given
    grants = "".join(f"[capabilities.{c}]\n" + options.get(c, "") for c in capabilities)
    guest = f'[guest]\nname = "{name}"\nversion = "0.1.0"\nabi = "{abi}"\n'
    return f"{guest}{exports}{grants}[limits]\nstdout_bytes = {stdout}\n"


PROBE_MANIFEST = probe_manifest()
# What the probe does; `every` only makes the module import every WASI function of the registry.
PROBE_SOURCE = """
const scratch = memory.data(64);
const LINE = String.UTF8.encode("0123456789\\n");

/** An open descriptor, or minus the WASI errno. */
function open(dir: i32, path: string, oflags: i32, rights: u64): i32 {
  const name = String.UTF8.encode(path);
  const errno = wasi_path_open(dir, 0, changetype<usize>(name), name.byteLength, oflags, rights, 0, 0, scratch + 8);
  return errno == 0 ? load<i32>(scratch + 8) : -errno;
}

/** Bytes moved, or minus the WASI errno. */
function transfer(fd: i32, buffer: ArrayBuffer, length: i32, write: bool): i32 {
  store<u32>(scratch, changetype<usize>(buffer));
  store<u32>(scratch, length, 4);
  const errno = write ? wasi_fd_write(fd, scratch, 1, scratch + 8) : wasi_fd_read(fd, scratch, 1, scratch + 8);
  return errno == 0 ? load<i32>(scratch + 8) : -errno;
}

function writeTo(dir: i32, path: string, oflags: i32): i32 {
  const fd = open(dir, path, oflags, 1 << 6);
  if (fd < 0) return -fd;
  const written = transfer(fd, LINE, LINE.byteLength, true);
  wasi_fd_close(fd);
  return written < 0 ? -written : 0;
}

/** One change under the preopen `dir`: 0, or the WASI errno. */
export function change(op: i32, dir: i32): i32 {
  if (op == 0) return writeTo(dir, "new.txt", 1 | 8);
  if (op == 1) return writeTo(dir, "existing.txt", 0);
  if (op == 2) return writeTo(dir, "existing.txt", 8);
  const name = String.UTF8.encode(op == 3 ? "made" : op == 4 ? "new.txt" : "existing.txt");
  const path = changetype<usize>(name);
  if (op == 3) return wasi_path_create_directory(dir, path, name.byteLength);
  if (op == 4) return wasi_path_unlink_file(dir, path, name.byteLength);
  const to = String.UTF8.encode("moved.txt");
  return wasi_path_rename(dir, path, name.byteLength, dir, changetype<usize>(to), to.byteLength);
}

/** Bytes read from a path, or minus the WASI errno: what the probe can reach from /data (fd 3). */
export function peek(which: i32): i32 {
  const paths = ["existing.txt", "../outside.txt", "up/outside.txt", "abs/hostname", "/etc/hostname"];
  const dir = which < paths.length ? 3 : 5;
  const fd = open(dir, paths[which % paths.length], 0, 1 << 1);
  if (fd < 0) return fd;
  const buffer = new ArrayBuffer(64);
  const read = transfer(fd, buffer, buffer.byteLength, false);
  wasi_fd_close(fd);
  return read;
}

/** Writes `times` lines to stdout: 0, or minus the WASI errno of the first refused write. */
export function shout(times: i32): i32 {
  for (let i = 0; i < times; i++) {
    const written = transfer(1, LINE, LINE.byteLength, true);
    if (written < 0) return written;
  }
  return 0;
}

export function argc(): i32 {
  wasi_args_sizes_get(scratch, scratch + 4);
  return load<i32>(scratch);
}

export function envc(): i32 {
  wasi_environ_sizes_get(scratch, scratch + 4);
  return load<i32>(scratch);
}
"""


COMMAND = "hello-command"
COMMAND_MANIFEST = f"""\
[guest]
name = "{COMMAND}"
version = "0.1.0"
kind = "command"
abi = "component"

[capabilities.log]
[capabilities.stdio]
[capabilities.args]

[[smoke]]
call = "_start"
stdout = "Hello from a WASI component\\n"

[[smoke]]  # its argv reaches it: it exits with 3, which WASI 0.2 reports as failure, 1
call = "_start"
args = ["an-argument"]
expect_exit = 1
"""
# Built with the WASI shim, whose `_start` runs this; given arguments, it exits with 3.
COMMAND_SOURCE = """
import { log } from "ngixi-host";
log.write("starting");
console.log("Hello from a WASI component");
if (process.argv.length > 1) process.exit(3);
"""


def probe_source() -> str:
    """The probe's declarations of every registry WASI function, its code, and `every`, which calls them all."""
    imports = {i.name: i for c in every_capability() for i in c.imports if i.module == WASI}
    declarations, calls = [], []
    for index, (name, imp) in enumerate(sorted(imports.items())):
        params = ", ".join(f"a{n}: {t}" for n, t in enumerate(imp.signature.params))
        result = imp.signature.results[0] if imp.signature.results else "void"
        declarations.append(f'@external("{WASI}", "{name}")\ndeclare function wasi_{name}({params}): {result};')
        call = f"wasi_{name}({', '.join('0' for _ in imp.signature.params)})"
        calls.append(f"  if (which == {index}) {call if result == 'void' else f'return {call}'};")
    every = "export function every(which: i32): i32 {\n" + "\n".join(calls) + "\n  return 0;\n}\n"
    return "\n".join(declarations) + PROBE_SOURCE + every


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_toolchain(state_dir=REPO / ".ngixi")
    project = copy_project(tmp_path_factory.mktemp("component-wasi") / "project", toolchain_from=REPO)
    add_probe(project, PROBE, PROBE_MANIFEST)
    (project / "guests" / COMMAND / "assembly").mkdir(parents=True)
    (project / "guests" / COMMAND / "assembly" / "index.ts").write_text(COMMAND_SOURCE)
    (project / "manifests" / f"{COMMAND}.toml").write_text(COMMAND_MANIFEST)
    run(project, "doit", *(f"bundle:{guest}" for guest in (SAMPLE, PROBE, COMMAND)))
    return project


def add_probe(project: Path, name: str, manifest: str) -> None:
    """Adds a probe guest to a copy of the project."""
    (project / "guests" / name / "assembly").mkdir(parents=True)
    (project / "guests" / name / "assembly" / "index.ts").write_text(probe_source())
    (project / "manifests" / f"{name}.toml").write_text(manifest)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """A sandbox whose /data holds a file and two links out of it, beside a file outside both mounts."""
    files = tmp_path / "sandbox" / "files"
    for mount in ("data", "config"):
        (files / mount).mkdir(parents=True)
        (files / mount / "existing.txt").write_text("kept\n")
    (files / "config" / "new.txt").write_text("kept\n")
    (files / "outside.txt").write_text("outside\n")
    (files / "data" / "up").symlink_to("..")
    (files / "data" / "abs").symlink_to("/etc")
    return Sandbox.under(tmp_path / "sandbox")


@pytest.fixture
def probe(built: Path, sandbox: Sandbox) -> Iterator[Guest]:
    bundle = read_bundle(built / f"artifacts/bundles/{PROBE}-0.1.0.ngx", load_trust(built / ".ngixi" / "trust.toml"))
    with open_guest(bundle, sandbox=sandbox, args=("one", "two"), env={"ONLY": "this"}) as guest:
        yield guest


def test_the_sample_saves_shows_and_cannot_deface_through_the_cli(built: Path) -> None:
    for where in ((), ("--in-process",)):
        with any_umask():
            assert run(built, "ngixi", "run", *where, SAMPLE_BUNDLE, "save").stdout == "0\n"
        shown = run(built, "ngixi", "run", *where, SAMPLE_BUNDLE, "show")
        assert (shown.stdout, shown.stderr) == ("remember the milk\n18\n", "")
        assert run(built, "ngixi", "run", *where, SAMPLE_BUNDLE, "deface").stdout == f"{EPERM}\n"
    files = built / ".ngixi" / "sandbox" / "dev" / "default" / SAMPLE / "files"
    assert (files / "data" / "note.txt").read_text() == "remember the milk\n"
    assert stat.S_IMODE((files / "data" / "note.txt").stat().st_mode) == 0o600  # made isolated, under umask 000
    assert list((files / "config").iterdir()) == []
    assert f"smoke:{SAMPLE} ok" in run(built, "doit", f"smoke:{SAMPLE}").stdout


def test_a_command_component_runs_its_start(built: Path) -> None:
    bundle = f"artifacts/bundles/{COMMAND}-0.1.0.ngx"
    ran = run(built, "ngixi", "run", bundle)
    assert (ran.stdout, ran.stderr) == ("Hello from a WASI component\n", "info: starting\n")
    failed = run(built, "ngixi", "run", bundle, "an-argument", check=False)
    assert (failed.returncode, failed.stdout) == (1, "Hello from a WASI component\n")  # WASI 0.2: exit 3 is failure
    assert f"smoke:{COMMAND} ok" in run(built, "doit", f"smoke:{COMMAND}").stdout
    shown = run(built, "ngixi", "inspect", bundle).stdout
    assert "  export wasi:cli/run@0.2.12#run: () -> (result)\n" in shown


def test_each_tenant_has_its_own_files(built: Path) -> None:
    assert run(built, "ngixi", "run", "--tenant", "alice", SAMPLE_BUNDLE, "save").stdout == "0\n"
    assert run(built, "ngixi", "run", "--tenant", "bob", SAMPLE_BUNDLE, "show").stdout == f"-{ENOENT}\n"


def test_a_policy_ceiling_on_fs_holds_for_a_component(built: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities.fs]\nhost_roots = ["data"]\n')
    refused = run(built, "ngixi", "run", "--policy", str(policy), SAMPLE_BUNDLE, "show", check=False)
    assert refused.returncode == 6
    assert refused.stderr.splitlines()[1:] == [
        '  capabilities.fs.preopens[1].host: "config" is outside the policy\'s host_roots (data)'
    ]


def test_a_read_write_mount_takes_every_change(probe: Guest, sandbox: Sandbox) -> None:
    assert [probe.call("change", (op, 3)) for op in range(6)] == [(0,)] * 6
    data = sandbox.files / "data"
    assert sorted(p.name for p in data.iterdir()) == ["abs", "made", "moved.txt", "up"]


def test_what_a_component_makes_is_its_users_alone_whatever_the_umask(probe: Guest, sandbox: Sandbox) -> None:
    with any_umask():
        assert [probe.call("change", (op, 3)) for op in (0, 3)] == [(0,), (0,)]
        assert os.umask(0) == 0  # the umask the caller had is back after each call
    data = sandbox.files / "data"
    assert [stat.S_IMODE((data / name).stat().st_mode) for name in ("new.txt", "made")] == [0o600, 0o700]


@contextmanager
def any_umask() -> Iterator[None]:
    """A umask that takes nothing away, as a careless operator's."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_a_read_only_mount_refuses_every_change(probe: Guest, sandbox: Sandbox) -> None:
    assert [probe.call("change", (op, 4)) for op in range(6)] == [(EPERM,)] * 6
    config = sandbox.files / "config"
    assert sorted((p.name, p.read_text()) for p in config.iterdir()) == [
        ("existing.txt", "kept\n"),
        ("new.txt", "kept\n"),
    ]


def test_nothing_outside_the_mounts_is_reachable(probe: Guest) -> None:
    assert probe.call("peek", (0,)) == (5,)
    assert [probe.call("peek", (which,)) for which in range(1, 5)] == [(-EPERM,)] * 4  # .., links out, absolute
    assert probe.call("peek", (5,)) == (-EBADF,)  # fd 5: no third preopen


def test_a_mount_swapped_for_a_symlink_after_its_check_is_still_the_checked_directory(
    built: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wasmtime's WASI opened each preopen again by its path after the loader had checked and opened it: a
    directory swapped for a symlink out of the sandbox meanwhile (by another instance of the tenant, whose
    rw mount holds it) became the component's /data. Wasmtime now gets the descriptor the loader opened."""
    outside = sandbox.files.parent.parent / "elsewhere"
    outside.mkdir()
    (outside / "existing.txt").write_text("the host's own\n")
    real_instantiate = wasmtime_component.instantiate

    def swapped_first(*args: Any, **kwargs: Any) -> Any:
        (sandbox.files / "data").rename(sandbox.files / "checked")
        (sandbox.files / "data").symlink_to(outside)
        return real_instantiate(*args, **kwargs)

    monkeypatch.setattr(wasmtime_component, "instantiate", swapped_first)
    bundle = read_bundle(built / f"artifacts/bundles/{PROBE}-0.1.0.ngx", load_trust(built / ".ngixi" / "trust.toml"))
    with open_guest(bundle, sandbox=sandbox) as guest:
        assert guest.call("peek", (0,)) == (len("kept\n"),)  # not the 15 bytes of the file outside
        assert guest.call("change", (0, 3)) == (0,)
    assert (sandbox.files / "checked" / "new.txt").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["existing.txt"]


def test_stdout_is_captured_within_its_quota(probe: Guest) -> None:
    assert probe.call("shout", (3,)) == (0,)
    taken = probe.output.take()
    assert (bytes(taken.stdout), dict(taken.host_calls)) == (b"0123456789\n" * 3, {"stdio": 3})
    with pytest.raises(GuestError, match="stdout/stderr exceeded its quota of 100 bytes") as refused:
        probe.call("shout", (1000,))
    assert refused.value.outcome == "quota"
    assert probe.output.stdout == b"0123456789\n" * 9


def test_args_and_env_are_only_what_the_caller_gives(probe: Guest) -> None:
    assert os.environ
    assert (probe.call("argc", ()), probe.call("envc", ())) == ((3,), (1,))


def test_every_registry_wasi_function_maps_to_its_capabilities(built: Path) -> None:
    wasm = built / "artifacts" / "wasm" / f"{PROBE}.wasm"
    info = wasmtime_component.prepare(guest=PROBE, wasm=wasm.read_bytes()).info
    assert read_component_world(wasm) == info  # validate's view of WASI's interfaces and resources is the engine's

    def problems(*without: str) -> str:
        capabilities = tuple(c for c in WASI_CAPABILITIES if c not in without)
        manifest = parse_manifest(probe_manifest(capabilities), source="probe.toml", stem=PROBE)
        return "\n".join(check_component(manifest, info))

    assert problems() == ""
    for capability in ("fs", "clock", "random", "args", "env"):
        assert f"probe.toml: capabilities.{capability}: the component imports " in problems(capability)
    assert "which needs [capabilities.stdio] or [capabilities.fs]" in problems("stdio", "fs")
    assert "[capabilities.stdio]" not in problems("stdio")  # what stdout needs, fs grants too (as fd_write)


SAMPLE_TEXT = (REPO / "manifests" / f"{SAMPLE}.toml").read_text()
SAMPLE_WITHOUT_FS = SAMPLE_TEXT.split("[capabilities.fs]")[0]


def test_wasi_the_manifest_does_not_grant_is_refused_at_build(built: Path, tmp_path: Path) -> None:
    manifest = tmp_path / f"{SAMPLE}.toml"
    manifest.write_text(SAMPLE_WITHOUT_FS)
    result = run(built, "ngixi", "validate", str(manifest), "--wasm", f"artifacts/wasm/{SAMPLE}.wasm", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ngixi: error: {manifest}: capabilities.fs: the component imports [method]descriptor.open-at "
        "from wasi:filesystem/types@0.2.12, which needs [capabilities.fs]; grant it in the manifest or remove the "
        "import",
        f"{manifest}: capabilities.stdin: the component imports [method]descriptor.read-via-stream from "
        "wasi:filesystem/types@0.2.12, which needs [capabilities.stdin] or [capabilities.fs]; grant it in the "
        "manifest or remove the import",
    ]  # the adapter reads stdin through read-via-stream too; files need fs's descriptors, from open-at


def test_a_command_must_export_run(built: Path, tmp_path: Path) -> None:
    manifest = tmp_path / f"{SAMPLE}.toml"
    manifest.write_text(SAMPLE_TEXT.replace('kind = "library"', 'kind = "command"').split("[[smoke]]")[0])
    result = run(built, "ngixi", "validate", str(manifest), "--wasm", f"artifacts/wasm/{SAMPLE}.wasm", check=False)
    assert result.stderr == (
        f"ngixi: error: {manifest}: guest.kind: a command component must export wasi:cli/run: build it with "
        "the WASI shim, whose _start the command adapter turns into run\n"
    )


def test_wasi_the_manifest_does_not_grant_is_refused_at_load(built: Path, keys: KeyFiles, tmp_path: Path) -> None:
    wasm = (built / "artifacts" / "wasm" / f"{SAMPLE}.wasm").read_bytes()
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=SAMPLE_WITHOUT_FS, guest=SAMPLE)
    with pytest.raises(VerificationError, match=r"capabilities.fs: the component imports \[method\]descriptor"):
        open_guest(read_bundle(bundle, load_trust(keys.trust)), sandbox=Sandbox.under(tmp_path))
    assert exit_code(["run", "--trust", str(keys.trust), str(bundle), "show"]) == 3
