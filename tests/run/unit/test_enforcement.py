"""Capabilities enforced end to end: signed bundle → loader → real engine instance → host functions, on each engine."""

from __future__ import annotations

import ctypes
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from ngixi_build.stages.smoke import http_server
from ngixi_build.stages.validate import validate
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import HOST_LOG_LEVEL, Address, Sandbox
from ngixi_runtime.capabilities.wasi_paths import ESCAPE
from ngixi_runtime.errors import GuestError, InvalidInput, VerificationError
from ngixi_runtime.guest.manifest import ManifestError
from ngixi_runtime.loading.loader import Guest, open_guest
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.spec.abi import OFLAG_CREAT, RIGHT_FD_READ, RIGHT_FD_WRITE, Errno, Status
from ngixi_runtime.trust.policy import load_policy
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import DROP, I64, Func, Imp, call_import, load_i32, module, push

pytestmark = pytest.mark.usefixtures("engine_name")

GUEST = '[guest]\nname = "probe"\nversion = "0.1.0"\n'
I32 = "i32"
PATH_OPEN = Imp("wasi_snapshot_preview1", "path_open", [I32] * 5 + ["i64", "i64", I32, I32], [I32])
FD_WRITE = Imp("wasi_snapshot_preview1", "fd_write", [I32] * 4, [I32])
HTTP_FETCH = Imp("ngixi", "http_fetch", [I32] * 11, [I32])
KV_SET = Imp("ngixi", "kv_set", [I32] * 6, [I32])
OUT, IOV, RESULT, BUFFER = 4096, 4200, 4300, 8192


def exports(*names: str) -> str:
    return "".join(f'[exports.{name}]\nresults = ["i32"]\n' for name in names)


def load(tmp_path: Path, keys: KeyFiles, wasm: bytes, manifest: str) -> Guest:
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=manifest, guest="probe")
    return open_guest(read_bundle(bundle, load_trust(keys.trust)), sandbox=Sandbox.under(tmp_path / "sandbox"))


def host_lines(guest: Guest) -> list[str]:
    return [line.message for line in guest.output.logs if line.level == HOST_LOG_LEVEL]


def returns(guest: Guest, export: str) -> int:
    (result,) = guest.call(export, ())
    assert isinstance(result, int)
    return result


# --- fs ----------------------------------------------------------------------------------------

FS = (
    "[capabilities.fs]\n"
    'preopens = [{ guest = "/data", host = "data", mode = "rw" }, { guest = "/config", host = "config" }]\n'
    "[capabilities.stdio]\n"  # fds 1 and 2: a guest writing through fs's fd_write needs it too
)
NAMES = {"note": (100, b"note.txt"), "settings": (120, b"settings.txt"), "escape": (140, b"../config/settings.txt")}


def open_file(fd: int, name: str, oflags: int, rights: int) -> bytes:
    pointer, raw = NAMES[name]
    return call_import(0, fd, 0, pointer, len(raw), oflags, I64(rights), I64(0), 0, OUT)


FS_WASM = module(
    imports=[PATH_OPEN, FD_WRITE],
    functions=[
        Func("create_note", (), [I32], open_file(3, "note", OFLAG_CREAT, RIGHT_FD_WRITE)),
        Func("create_settings", (), [I32], open_file(4, "settings", OFLAG_CREAT, RIGHT_FD_WRITE)),
        Func("escape", (), [I32], open_file(3, "escape", OFLAG_CREAT, RIGHT_FD_WRITE)),
        # Opens settings.txt read-only, then writes "note.txt" into it through the descriptor.
        Func(
            "overwrite_settings",
            (),
            [I32],
            open_file(4, "settings", 0, RIGHT_FD_READ) + DROP + load_i32(OUT) + push(IOV, 1, RESULT) + b"\x10\x01",
        ),
    ],
    data=[(pointer, raw) for pointer, raw in NAMES.values()]
    + [(IOV, (100).to_bytes(4, "little") + bytes([8, 0, 0, 0]))],
)
FS_MANIFEST = GUEST + exports("create_note", "create_settings", "escape", "overwrite_settings") + FS


@pytest.fixture
def fs_guest(tmp_path: Path, keys: KeyFiles) -> Iterator[tuple[Guest, Path]]:
    files = tmp_path / "sandbox" / "files"
    (files / "config").mkdir(parents=True)
    (files / "config" / "settings.txt").write_text("original\n")
    with load(tmp_path, keys, FS_WASM, FS_MANIFEST) as guest:
        yield guest, files


def test_a_guest_importing_path_open_without_fs_is_refused_at_build_and_at_load(tmp_path: Path, keys: KeyFiles) -> None:
    manifest = FS_MANIFEST.replace(FS, "")
    expected = "capabilities.fs: import wasi_snapshot_preview1.path_open needs [capabilities.fs]"
    (tmp_path / "probe.toml").write_text(manifest)
    (tmp_path / "probe.wasm").write_bytes(FS_WASM)
    with pytest.raises(ManifestError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        validate(manifest_path=tmp_path / "probe.toml", wasm_path=tmp_path / "probe.wasm")
    with pytest.raises(VerificationError, match=r"path_open needs \[capabilities\.fs\]"):
        load(tmp_path, keys, FS_WASM, manifest)


def test_the_rw_mount_is_writable(fs_guest: tuple[Guest, Path]) -> None:
    guest, files = fs_guest
    assert returns(guest, "create_note") == Errno.SUCCESS
    assert (files / "data" / "note.txt").exists()


def test_the_ro_mount_cannot_be_written(fs_guest: tuple[Guest, Path]) -> None:
    guest, files = fs_guest
    assert returns(guest, "create_settings") == Errno.PERM
    assert returns(guest, "overwrite_settings") == Errno.PERM
    assert (files / "config" / "settings.txt").read_text() == "original\n"


def test_dotdot_cannot_escape_the_preopen(fs_guest: tuple[Guest, Path]) -> None:
    guest, files = fs_guest
    assert returns(guest, "escape") == ESCAPE
    assert (files / "config" / "settings.txt").read_text() == "original\n"


def test_a_preopen_symlinked_out_of_the_sandbox_is_refused_at_load(tmp_path: Path, keys: KeyFiles) -> None:
    files = tmp_path / "sandbox" / "files"
    files.mkdir(parents=True)
    (files / "data").symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match=r'preopens\[0\]\.host: "data" resolves to .*, outside the sandbox'):
        load(tmp_path, keys, FS_WASM, FS_MANIFEST)


@pytest.mark.parametrize("state", ["XDG_STATE_HOME", "NGIXI_AOT_CACHE", "project", "trust file", "rollback", "policy"])
def test_a_preopen_holding_ngixis_own_state_is_refused_at_load(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    """A sandbox placed where ngixi keeps state (a --sandbox over the home directory, a state directory set inside
    a sandbox) let a guest read this user's keys or write its dev-keys record, AOT cache, the trust file or
    rollback state, and so widen its own or another guest's rights. Such a grant is refused, whatever its mode."""
    data = tmp_path / "sandboxes" / "default" / "probe" / "files" / "data"
    data.mkdir(parents=True)
    held = data / "inner"
    trust, rollback, policy = keys.trust, None, None
    if state == "project":
        (data / "pyproject.toml").write_text("[tool.ngixi]\n")
        monkeypatch.delenv("NGIXI_PROJECT_STATE", raising=False)
        monkeypatch.chdir(data)
        held = data / ".ngixi"
    elif state == "trust file":
        trust = data / "trust.toml"
        trust.write_bytes(keys.trust.read_bytes())
        held = trust
    elif state == "policy":  # the operator's: rewritten, it would let this guest or another do more next time
        held = data / "policy.toml"
        held.write_text('[capabilities]\nallow = ["fs", "stdio"]\n')
        policy = load_policy(held)
    elif state == "rollback":
        rollback = RollbackGuard.for_trust_file(keys.trust, state_dir=held)
        held = held / "rollback"
    else:
        monkeypatch.setenv(state, str(held))
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=FS_WASM, manifest=FS_MANIFEST, guest="probe")
    message = rf"^probe: capabilities\.fs\.preopens\[0\]\.host: {data} holds {held}(/ngixi)?, ngixi's own state"
    with pytest.raises(InvalidInput, match=message):
        open_tenant(
            bundle, trust_file=trust, rollback=rollback, policy=policy, isolated=False, sandboxes=tmp_path / "sandboxes"
        )


def test_a_preopen_a_link_leads_outside_the_policys_host_roots_is_refused_at_load(
    tmp_path: Path, keys: KeyFiles
) -> None:
    """A policy's host_roots were held to the manifest's paths alone: a guest granted public/ rw could make a link
    public/link -> ../private, and a bundle of its signer preopening public/link (within host_roots by its path)
    then had private/, which the operator kept out of reach. A preopen must lie within host_roots once resolved."""
    files = tmp_path / "sandboxes" / "default" / "probe" / "files"
    (files / "private").mkdir(parents=True)
    (files / "public").mkdir()
    (files / "public" / "link").symlink_to("../private")
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["fs", "stdio"]\n[capabilities.fs]\nhost_roots = ["public"]\n')
    preopens = '[{ guest = "/data", host = "public/link", mode = "rw" }, { guest = "/config", host = "public" }]'
    manifest = FS_MANIFEST.replace(FS, f"[capabilities.fs]\npreopens = {preopens}\n[capabilities.stdio]\n")
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=FS_WASM, manifest=manifest, guest="probe")
    refused = rf"^probe: capabilities\.fs\.preopens\[0\]\.host: resolves to {files}/private, outside the policy's"
    with pytest.raises(InvalidInput, match=refused + r" host_roots \(public\)"):
        open_tenant(
            bundle, trust_file=keys.trust, policy=load_policy(policy), isolated=False, sandboxes=files.parents[2]
        )


_MS_BIND, _MNT_DETACH = 4096, 2  # mount(2), umount2(2)


@pytest.mark.parametrize("mounted", ["over the preopen", "state directory deeper", "trust file deeper"])
def test_a_preopen_bind_mounted_over_or_holding_ngixis_own_state_is_refused_at_load(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, mounted: str
) -> None:
    """A bind mount (a container given one directory at two paths) shows this user's state directory at a path no
    state path resolves under: the preopen is known by what it is too. Mounted further down in a preopen (the state
    directory, or the trust file alone), it is neither the preopen's path nor what it is: every mount this process
    sees inside a preopen is looked at too."""
    data = tmp_path / "sandboxes" / "default" / "probe" / "files" / "data"
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    source, target = {
        "over the preopen": (state, data),
        "state directory deeper": (state, data / "deep dir" / "x"),  # mountinfo writes the space as \040
        "trust file deeper": (keys.trust, data / "trust.toml"),
    }[mounted]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.mkdir() if source.is_dir() else target.touch()
    held = f"{state}/ngixi" if source.is_dir() else str(keys.trust)
    where = "" if target == data else rf" \(mounted at {target}\)"
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=FS_WASM, manifest=FS_MANIFEST, guest="probe")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(bytes(source), bytes(target), None, _MS_BIND, None) != 0:
        pytest.skip(f"no bind mount here: {os.strerror(ctypes.get_errno())}")
    try:
        message = rf"^probe: capabilities\.fs\.preopens\[0\]\.host: {data} holds {held}{where}, ngixi's own state"
        with pytest.raises(InvalidInput, match=message):
            open_tenant(bundle, trust_file=keys.trust, isolated=False, sandboxes=tmp_path / "sandboxes")
    finally:
        assert libc.umount2(bytes(target), _MNT_DETACH) == 0  # detached even while a guest it loaded holds it


# --- http --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Address]:
    with http_server() as address:
        yield address


def fetcher(urls: dict[str, str]) -> bytes:
    """One export per URL that GETs it and returns the status code; `status` returns the last HTTP status."""
    placed = {name: (64 + 256 * index, url.encode()) for index, (name, url) in enumerate(urls.items())}
    functions = [
        Func(name, (), [I32], call_import(0, 16, 3, pointer, len(raw), 0, 0, 0, 0, BUFFER, 1024, RESULT))
        for name, (pointer, raw) in placed.items()
    ]
    functions.append(Func("status", (), [I32], load_i32(RESULT)))
    return module(imports=[HTTP_FETCH], functions=functions, data=[(16, b"GET"), *placed.values()])


def http_guest(tmp_path: Path, keys: KeyFiles, allow: str, urls: dict[str, str]) -> Guest:
    manifest = GUEST + exports(*urls, "status") + f'[capabilities.http]\nallow = ["{allow}"]\n'
    return load(tmp_path, keys, fetcher(urls), manifest)


def test_http_is_allowed_only_where_the_list_says(tmp_path: Path, keys: KeyFiles, server: Address) -> None:
    _, port = server
    urls = {
        "allowed": f"http://127.0.0.1:{port}/hello",
        "other_host": f"http://localhost:{port}/hello",
        "redirected": f"http://127.0.0.1:{port}/redirect?to=http://localhost:{port}/hello",
    }
    with http_guest(tmp_path, keys, f"http://127.0.0.1:{port}", urls) as guest:
        assert returns(guest, "allowed") == Status.OK and returns(guest, "status") == 200
        assert returns(guest, "other_host") == Status.DENIED
        assert returns(guest, "redirected") == Status.DENIED
        assert [r.split(" refused: ")[1] for r in host_lines(guest)] == [
            f"http://localhost:{port} is not in [capabilities.http] allow; localhost is a loopback address, which only "
            f'its own entry allows: add "http://127.0.0.1:{port}" and fetch that'
        ] * 2


def test_loopback_is_refused_when_the_list_does_not_name_it(tmp_path: Path, keys: KeyFiles, server: Address) -> None:
    _, port = server
    urls = {"by_name": f"http://localhost:{port}/hello"}
    with http_guest(tmp_path, keys, f"http://localhost:{port}", urls) as guest:
        assert returns(guest, "by_name") == Status.ADDRESS_REFUSED
        assert "loopback address" in host_lines(guest)[0]


# --- kv ----------------------------------------------------------------------------------------

KV_WASM = module(
    imports=[KV_SET],
    functions=[
        Func("set_a", (), [I32], call_import(0, 16, 8, 32, 1, 64, 4)),
        Func("set_a_too_big", (), [I32], call_import(0, 16, 8, 32, 1, 64, 100)),
        Func("set_b", (), [I32], call_import(0, 16, 8, 33, 1, 64, 4)),
        Func("set_elsewhere", (), [I32], call_import(0, 48, 5, 32, 1, 64, 4)),
    ],
    data=[(16, b"counters"), (32, b"ab"), (48, b"other"), (64, b"v" * 100)],
)
KV_MANIFEST = (
    GUEST
    + exports("set_a", "set_a_too_big", "set_b", "set_elsewhere")
    + '[capabilities.kv]\nnamespaces = ["counters"]\nmax_value_bytes = 64\nmax_keys = 1\n'
)


def test_kv_quotas_hold_on_real_sqlite(tmp_path: Path, keys: KeyFiles) -> None:
    with load(tmp_path, keys, KV_WASM, KV_MANIFEST) as guest:
        assert returns(guest, "set_a") == Status.OK
        assert returns(guest, "set_a_too_big") == Status.TOO_LARGE
        assert returns(guest, "set_b") == Status.QUOTA_EXCEEDED
        assert returns(guest, "set_elsewhere") == Status.DENIED
    with sqlite3.connect(tmp_path / "sandbox" / "kv.sqlite3") as db:
        assert db.execute("SELECT namespace, key, value FROM entries").fetchall() == [("counters", b"a", b"vvvv")]


def test_fs_and_kv_need_a_sandbox(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=KV_WASM, manifest=KV_MANIFEST, guest="probe")
    with pytest.raises(
        InvalidInput,
        match=r"^probe: its kv capability keeps state in a sandbox directory: give one \(ngixi run --sandbox DIR; "
        r"sandboxes=DIR to open_tenant or TenantPool\)$",
    ):
        open_guest(read_bundle(bundle, load_trust(keys.trust)))


# --- guest memory ------------------------------------------------------------------------------

LOG = Imp("ngixi", "log", [I32] * 3)
PAGE = 65536
MEMORY_WASM = module(
    imports=[LOG, FD_WRITE],
    functions=[
        Func("log_last_byte", (), [I32], call_import(0, 2, PAGE - 1, 1) + push(0)),
        Func("log_past_the_end", (), [I32], call_import(0, 2, PAGE - 4, 5) + push(0)),
        Func("write_count_past_the_end", (), [I32], call_import(1, 1, IOV, 1, PAGE - 2)),
    ],
    memory=(1, 1),
    data=[(IOV, (OUT).to_bytes(4, "little") + (2).to_bytes(4, "little")), (OUT, b"hi"), (PAGE - 1, b"!")],
)
MEMORY_MANIFEST = (
    GUEST + exports("log_last_byte", "log_past_the_end", "write_count_past_the_end") + "[capabilities.log]\n"
    "[capabilities.stdio]\n"
)


def test_host_functions_refuse_pointers_outside_the_guest_s_memory(tmp_path: Path, keys: KeyFiles) -> None:
    with load(tmp_path, keys, MEMORY_WASM, MEMORY_MANIFEST) as guest:
        assert returns(guest, "log_last_byte") == 0
        assert [line.message for line in guest.output.logs] == ["!"]
        with pytest.raises(GuestError, match=rf"probe: pointer {PAGE - 4}\+5 is outside the guest's memory"):
            guest.call("log_past_the_end", ())
        with pytest.raises(GuestError, match=rf"probe: pointer {PAGE - 2}\+4 is outside the guest's memory"):
            guest.call("write_count_past_the_end", ())


OPENER = bytes(
    wasmtime.wat2wasm(f"""(module
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (data (i32.const 100) "note.txt")
  (func (export "opened") (result i32)
    (local $n i32)
    (block $refused (loop $more
      (br_if $refused (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8) (i32.const {OFLAG_CREAT})
        (i64.const {RIGHT_FD_READ}) (i64.const 0) (i32.const 0) (i32.const 200)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $n) (i32.const 1000)))))
    (local.get $n)))""")
)
PREOPEN = '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'


@pytest.mark.parametrize(("limit", "opened"), [("", 126), ("open_files = 300\n", 298)])
def test_limits_open_files_bounds_the_descriptors_a_guest_holds(
    tmp_path: Path, keys: KeyFiles, limit: str, opened: int
) -> None:
    """128 by default, stdin (at its end without the grant) and the preopen among them: a program keeping 200 files
    open (fine under Wasmtime, which has no such limit) declares what it needs, as far as the operator's policy
    allows."""
    with load(tmp_path, keys, OPENER, GUEST + exports("opened") + PREOPEN + f"[limits]\n{limit}") as guest:
        assert returns(guest, "opened") == opened


def test_preopens_over_limits_open_files_are_refused(tmp_path: Path, keys: KeyFiles) -> None:
    mounts = ", ".join(f'{{ guest = "/d{n}", host = "d{n}" }}' for n in range(9))
    manifest = GUEST + exports("opened") + f"[capabilities.fs]\npreopens = [{mounts}]\n[limits]\nopen_files = 8\n"
    with pytest.raises(InvalidInput, match=r"^probe: limits\.open_files = 8 does not hold its 9 preopens and stdio"):
        load(tmp_path, keys, OPENER, manifest)
