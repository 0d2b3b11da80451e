"""Attacks on a guest's state (its sandbox's files and kv data) by a signer the operator trusts for other bundles:
a sandbox is named by tenant and guest, and another key allowed to sign that guest's name (on another channel, or
a project's dev key found from the working directory) must not read or change the state of the first key's."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.stages.signing import SigningKey, TrustEntry, render_trust_file
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.aot_cache import AotCache, CacheUnavailable
from ngixi_runtime.loading.aot_cache_dir import CACHE_VARIABLE
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.spec.bundle_format import BundleIndex, Channel
from ngixi_runtime.trust.choice import PROJECT_STATE_VARIABLE
from ngixi_runtime.trust.local_paths import enclosing_sandbox
from ngixi_runtime.trust.policy import load_policy
from ngixi_runtime.trust.rollback import STATE_VARIABLE, RollbackGuard
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.run.unit.test_working_directory import WASM
from tests.wasmgen import Func, Imp, call_import, load_i32, module, push

# put(v) keeps v under c/k; peek() returns what c/k holds (0 when nothing).
_STORE = b"\x36\x02\x00"  # i32.store align=2 offset=0
KV_GUEST = module(
    imports=[Imp("ngixi", "kv_get", ["i32"] * 7, ["i32"]), Imp("ngixi", "kv_set", ["i32"] * 6, ["i32"])],
    functions=[
        Func("put", ["i32"], ["i32"], push(16) + b"\x20\x00" + _STORE + call_import(1, 0, 1, 1, 1, 16, 4)),
        Func("peek", [], ["i32"], call_import(0, 0, 1, 1, 1, 32, 4, 48) + b"\x1a" + load_i32(32)),
    ],
    data=[(0, b"ck")],
)
KV_MANIFEST = """\
[guest]
name = "notes"
version = "0.1.0"

[exports.put]
params = ["i32"]
results = ["i32"]

[exports.peek]
results = ["i32"]

[capabilities.kv]
namespaces = ["c"]
"""


def _keys(directory: Path, channel: Channel) -> tuple[KeyFiles, KeyFiles, Path]:
    """The operator's key for notes on `channel`, and a developer's key for any guest on the dev channel (as a
    project's dev trust file found from the working directory trusts its key)."""
    owner = make_key(directory / "owner", guests=["notes"], channels=[channel])
    developer = make_key(directory / "developer", guests=["*"], channels=["dev"])
    trust = directory / "trust.toml"
    owned = TrustEntry(owner.key, ("notes",), (channel,), "owner")
    trust.write_bytes(render_trust_file([owned, TrustEntry(developer.key, ("*",), ("dev",), "developer")]))
    return owner, developer, trust


def _bundle(directory: Path, keys: KeyFiles, channel: Channel = "dev") -> Path:
    return make_bundle(directory, keys.key, wasm=KV_GUEST, manifest=KV_MANIFEST, guest="notes", channel=channel)


def _call(bundle: Path, trust: Path, sandboxes: Path, export: str, *args: int, per_channel: bool = False) -> int:
    with open_tenant(
        bundle, trust_file=trust, isolated=False, sandboxes=sandboxes, sandbox_per_channel=per_channel
    ) as tenant:
        return int(tenant.call(export, args).values[0])


@pytest.mark.parametrize(
    ("channel", "per_channel"),
    [("release", False), ("dev", True)],
    ids=["one sandboxes directory for every channel", "another dev key"],
)
def test_another_signers_bundle_of_the_same_guest_gets_none_of_its_state(
    tmp_path: Path, channel: Channel, per_channel: bool
) -> None:
    """The developer's dev bundle named notes must not read what the owner's bundle of notes keeps: in one
    sandboxes directory for every channel (`--sandbox DIR`, a TenantPool's), or on the same channel."""
    owner, developer, trust = _keys(tmp_path, channel)
    sandboxes = tmp_path / "sandboxes"
    shipped = _bundle(tmp_path / "owner-out", owner, channel)
    assert _call(shipped, trust, sandboxes, "put", 4242, per_channel=per_channel) == 0
    forged = _bundle(tmp_path / "developer-out", developer)
    with pytest.raises(InvalidInput, match=r"notes: its sandbox .* holds the state of bundles signed by key "):
        _call(forged, trust, sandboxes, "peek", per_channel=per_channel)
    assert _call(shipped, trust, sandboxes, "peek", per_channel=per_channel) == 4242  # its own signer's keep it


def _with_id_of(key: SigningKey, other: SigningKey) -> SigningKey:
    """`key` made to carry `other`'s key id, as anyone may make a key: minisign's id is any 8 bytes its maker chose."""
    key.secret._keynum_sk.key_id[:] = other.secret._keynum_sk.key_id
    return SigningKey(key.secret, key.secret.get_public_key())


def test_another_key_carrying_the_signers_key_id_gets_none_of_its_state(tmp_path: Path) -> None:
    """A sandbox named its signer by key id alone: a project's dev key made with the id of a release key (read from
    any of its bundles' signatures), trusted by the dev trust file found there, read the release guest's kv data in
    one --sandbox DIR. The record names the public key now; one of an id alone goes to the first key of that id."""
    owner = make_key(tmp_path / "owner", guests=["notes"], channels=["release"])
    forged = _with_id_of(make_key(tmp_path / "forger").key, owner.key)
    assert forged.key_id == owner.key.key_id
    dev_trust = tmp_path / "dev-trust.toml"
    dev_trust.write_bytes(render_trust_file([TrustEntry(forged, ("*",), ("dev",), "a project's dev key")]))
    sandboxes = tmp_path / "sandboxes"
    shipped = _bundle(tmp_path / "owner-out", owner, "release")
    assert _call(shipped, owner.trust, sandboxes, "put", 4242) == 0
    planted = make_bundle(tmp_path / "forged-out", forged, wasm=KV_GUEST, manifest=KV_MANIFEST, guest="notes")
    with pytest.raises(InvalidInput, match=rf"signed by key {owner.key.key_id} \(public key .*, and key "):
        _call(planted, dev_trust, sandboxes, "peek")
    record = sandboxes / "default" / "notes" / "signer"
    assert record.read_text() == owner.key.public_base64
    record.write_text(owner.key.key_id)  # a record from before they named the public key: the first key of its id
    assert _call(shipped, owner.trust, sandboxes, "peek") == 4242
    assert record.read_text() == owner.key.public_base64
    with pytest.raises(InvalidInput, match="holds the state of bundles signed by key"):
        _call(planted, dev_trust, sandboxes, "peek")


def test_a_guests_sandbox_is_private_to_this_user(tmp_path: Path) -> None:
    """Its files and kv data are the guest's: no other local user may list or read them, whatever the umask."""
    owner, _, trust = _keys(tmp_path, "release")
    _call(_bundle(tmp_path / "out", owner, "release"), trust, tmp_path / "sandboxes", "put", 1)
    guest = tmp_path / "sandboxes" / "default" / "notes"
    assert stat.S_IMODE(guest.stat().st_mode) == 0o700


@pytest.mark.parametrize("shared", ["the state directory", "the project file"])
def test_a_default_sandbox_another_user_could_swap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], shared: str
) -> None:
    """Without --sandbox, a guest's state goes to the project at or above the working directory, else to the user's
    state directory: not when another user could change that project (its pyproject.toml, say one planted in /tmp
    above the operator's own directory) or a directory above the state ($XDG_STATE_HOME=/tmp/x), where they could
    put their own directory, or symbolic links, in the sandbox's place."""
    owner, _, trust = _keys(tmp_path, "release")
    bundle = _bundle(tmp_path / "out", owner, "release")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if shared == "the project file":  # its state goes there for the project's own dev trust file alone
        planted = tmp_path / "pyproject.toml"
        planted.write_text("[tool.ngixi]\n")
        planted.chmod(0o666)
        (tmp_path / ".ngixi").mkdir()
        trust = Path(shutil.copy(trust, tmp_path / ".ngixi" / "trust.toml"))
    else:
        (tmp_path / "x").mkdir(mode=0o777)
        (tmp_path / "x").chmod(0o777)
        monkeypatch.setenv(STATE_VARIABLE, str(tmp_path / "x" / "ngixi"))
    assert exit_code(["run", "--in-process", "--trust", str(trust), str(bundle), "put", "1"]) == 2
    assert "may be written by any user" in capsys.readouterr().err  # its sandbox, or its rollback state there
    assert not list(tmp_path.glob("**/kv.sqlite3")) and not list(tmp_path.glob("x/**/rollback"))
    if shared == "the project file":  # a guest that keeps no state runs there as before
        log = HELLO_MANIFEST.replace('"hello"', '"notes"')
        stateless = make_bundle(tmp_path / "l", owner.key, wasm=WASM, manifest=log, guest="notes", channel="release")
        assert exit_code(["run", "--in-process", "--trust", str(trust), str(stateless), "add", "2", "3"]) == 0


@pytest.mark.parametrize("shared", ["default", "default/notes"])
def test_a_sandbox_directory_another_user_could_change_is_refused(tmp_path: Path, shared: str) -> None:
    """`--sandbox /tmp` or a shared sandboxes directory: another user who made (or may write) a directory on the
    way to the guest's sandbox could read its state or swap its kv database for a link after it is checked."""
    owner, _, trust = _keys(tmp_path, "release")
    sandboxes = tmp_path / "sandboxes"
    (sandboxes / shared).mkdir(parents=True)
    (sandboxes / shared).chmod(0o1777)  # as /tmp: whoever comes first makes the entries below
    with pytest.raises(InvalidInput, match=f"{sandboxes / shared} may be written by any user"):
        _call(_bundle(tmp_path / "out", owner, "release"), trust, sandboxes, "put", 1)
    assert not list(sandboxes.glob("**/kv.sqlite3"))


@pytest.mark.parametrize(
    ("place", "make", "kind"),
    [
        ("default/notes/kv.sqlite3", Path.mkdir, "a regular file"),
        ("default/notes/signer", os.mkfifo, "a regular file"),
        ("default/notes", Path.touch, "a directory"),
    ],
    ids=["kv database a directory", "signer record a FIFO", "guest's sandbox a file"],
)
def test_a_sandbox_entry_of_the_wrong_kind_is_named_as_such(
    tmp_path: Path, place: str, make: Callable[[Path], object], kind: str
) -> None:
    """What a sandbox keeps at each name must be a directory or a regular file; a directory named kv.sqlite3 was
    reported as a hard link (its link count)."""
    owner, _, trust = _keys(tmp_path, "release")
    sandboxes = tmp_path / "sandboxes"
    (sandboxes / place).parent.mkdir(parents=True, exist_ok=True)
    make(sandboxes / place)
    with pytest.raises(InvalidInput, match=rf"{sandboxes / place} is not {kind}: a guest's sandbox under "):
        _call(_bundle(tmp_path / "out", owner, "release"), trust, sandboxes, "peek")


def test_a_load_refused_before_it_runs_claims_no_sandbox(tmp_path: Path) -> None:
    """The first key to use a sandbox keeps it: a bundle refused for what its caller passed has not used it."""
    owner, _, trust = _keys(tmp_path, "release")
    bundle = _bundle(tmp_path / "out", owner, "release")
    with pytest.raises(InvalidInput, match="MODE"):
        open_tenant(bundle, trust_file=trust, isolated=False, sandboxes=tmp_path / "sandboxes", env={"MODE": "x"})
    assert not (tmp_path / "sandboxes").exists()


def test_what_a_run_makes_under_a_permissive_umask_it_uses_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a umask of 000 (or 002 with a group that others share), the first run made the directories above the
    guest's sandbox, its files/, its rollback state and the AOT cache writable by others, so every later run refused
    them."""
    owner, _, trust = _keys(tmp_path, "release")
    files = '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'
    bundle = make_bundle(
        tmp_path / "out", owner.key, wasm=KV_GUEST, manifest=KV_MANIFEST + files, guest="notes", channel="release"
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "pyproject.toml").write_text("[tool.ngixi]\n")
    monkeypatch.chdir(work)
    monkeypatch.setenv(STATE_VARIABLE, str(tmp_path / "state" / "ngixi"))
    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "cache" / "ngixi" / "aot"))
    run = ["run", "--in-process", "--trust", str(trust), str(bundle), "put", "1"]
    umask = os.umask(0)
    try:
        assert [exit_code(run), exit_code(run)] == [0, 0]
    finally:
        os.umask(umask)
    made = [path for path in (tmp_path / "state", tmp_path / "cache", work / ".ngixi") if path.exists()]
    made_by_ngixi = [p for m in made for p in (m, *m.rglob("*")) if "files" not in p.parent.parts]  # not the guest
    assert made and not [p for p in made_by_ngixi if p.is_dir() and p.stat().st_mode & 0o022]


def test_only_a_projects_own_dev_trust_file_leaves_its_dev_channel_unguarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any trust file named `.ngixi/trust.toml` went unguarded on the dev channel, so a production trust file kept
    so (an unpacked directory, a deployment's own `.ngixi/`) let a signer trusted for dev roll its guests back. It is
    a project's dev trust file only beside a project's pyproject.toml, or in $NGIXI_PROJECT_STATE."""
    monkeypatch.delenv(PROJECT_STATE_VARIABLE, raising=False)
    trust = tmp_path / "deployment" / ".ngixi" / "trust.toml"
    trust.parent.mkdir(parents=True)
    trust.write_text("")

    def unguarded(path: Path) -> frozenset[str]:
        return RollbackGuard.for_trust_file(path, state_dir=tmp_path / "state").unguarded_channels

    assert unguarded(trust) == frozenset()
    (tmp_path / "deployment" / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert unguarded(trust) == frozenset()
    (tmp_path / "deployment" / "pyproject.toml").write_text("[tool.ngixi]\n")
    assert unguarded(trust) == {"dev"}
    moved = tmp_path / "project-state" / "trust.toml"
    moved.parent.mkdir()
    assert unguarded(moved) == frozenset()
    monkeypatch.setenv(PROJECT_STATE_VARIABLE, str(moved.parent))
    assert unguarded(moved) == {"dev"}


def _hard_linked_trust_file(state: Path, keys: KeyFiles) -> Callable[[], object]:
    trust = state / "trust.toml"
    trust.write_bytes(keys.trust.read_bytes())
    os.link(trust, state / "granted" / "trust.toml")
    return lambda: load_trust(trust)


def _hard_linked_policy(state: Path, keys: KeyFiles) -> Callable[[], object]:
    policy = state / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["fs"]\n')
    os.link(policy, state / "granted" / "policy.toml")
    return lambda: load_policy(policy)


def _hard_linked_rollback_state(state: Path, keys: KeyFiles) -> Callable[[], object]:
    guard = RollbackGuard.for_trust_file(keys.trust, state_dir=state / "rollback")
    guard.record(BundleIndex(1, "hello", "0.1.0", "release", 3, (), {}), source="here.ngx")
    os.link(guard.state_file, state / "granted" / "rollback.json")
    return lambda: guard.check(BundleIndex(1, "hello", "0.1.0", "release", 3, (), {}), source="here.ngx")


def _hard_linked_key(state: Path, keys: KeyFiles) -> Callable[[], object]:
    AotCache.opened(state / "aot")  # makes the key, under $XDG_STATE_HOME
    os.link(state / "ngixi" / "aot-cache.key", state / "granted" / "aot-cache.key")
    return lambda: AotCache.opened(state / "aot")


HARD_LINKED = {
    "trust file": _hard_linked_trust_file,
    "policy": _hard_linked_policy,
    "rollback state": _hard_linked_rollback_state,
    "AOT cache key": _hard_linked_key,
}


@pytest.mark.parametrize("state_file", HARD_LINKED)
def test_ngixis_own_state_with_another_name_is_refused_naming_it(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, state_file: str
) -> None:
    """A hard link puts a file in a folder a guest is granted with no path or directory in common: a trust file,
    policy, rollback state or key linked there, the guest could read this user's key or rewrite what decides what
    runs. Checks of paths, devices and inodes of directories cannot find it; such a file is refused where it is
    read, naming it and what to do."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    (tmp_path / "granted").mkdir()
    use = HARD_LINKED[state_file](tmp_path, keys)
    refused = r"has 1 other name\(s\) \(hard links\), and is not used"
    with pytest.raises((InvalidInput, CacheUnavailable), match=refused):
        use()


@pytest.mark.parametrize(
    ("mode", "owner", "refused"),
    [
        (0o444, 0, False),
        (0o644, 0, False),
        (0o444, 1000, False),
        (0o644, 1000, True),
        (0o440, 0, True),
        (0o664, 0, True),
        (0o646, 0, "may be written by any user"),
    ],
)
def test_a_linked_state_file_this_user_can_neither_change_nor_keep_secret_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, owner: int, refused: bool | str
) -> None:
    """An OS image's or package store's files have several names (ostree links /usr into its repository, Nix
    links identical files together): a policy or trust file shipped there was refused. A guest given another name
    of it could only read what anyone may read; a file this user (not root) may change, or others may not read,
    is still refused."""
    (tmp_path / "store").mkdir()
    policy = tmp_path / "store" / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["fs"]\n')
    os.link(policy, tmp_path / "policy.toml")
    policy.chmod(mode)
    real_stat = os.fstat
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "fstat", lambda fd: _owned_by(real_stat(fd), owner))
    if refused:
        with pytest.raises(InvalidInput, match=refused if isinstance(refused, str) else r"has 1 other name\(s\)"):
            load_policy(tmp_path / "policy.toml")
    else:
        assert load_policy(tmp_path / "policy.toml").capabilities == frozenset({"fs"})


def _owned_by(status: os.stat_result, owner: int) -> os.stat_result:
    fields = list(status)
    fields[stat.ST_UID] = owner
    return os.stat_result(fields)


def test_a_sandbox_inside_another_guests_files_is_refused(tmp_path: Path) -> None:
    """Sandboxes nested by the operator (`--sandbox` inside a guest's own files) let that guest, through its
    preopens, rewrite the other guest's kv data, files and signer record: the inner sandbox is refused, naming the
    guest whose files hold it. So is a sandbox that is another guest's files/ (a guest named "files" in a sandboxes
    directory laid out per channel, DIR/release/notes/files, where DIR/release/notes is tenant release's notes)."""
    owner, _, trust = _keys(tmp_path, "release")
    bundle = _bundle(tmp_path / "out", owner, "release")
    outer = tmp_path / "sandboxes"
    assert _call(bundle, trust, outer, "put", 7) == 0
    enclosing = outer / "default" / "notes"
    inner = enclosing / "files" / "data" / "nested"
    refused = rf"^notes: its sandbox {inner}/default/notes lies in {enclosing}/files, where the guest of the sandbox"
    with pytest.raises(InvalidInput, match=refused):
        _call(bundle, trust, inner, "put", 8)
    assert not (inner / "default").exists()
    assert enclosing_sandbox(enclosing / "files") == enclosing
    assert enclosing_sandbox(enclosing) is None


def test_a_sandbox_whose_files_already_hold_another_guests_is_not_claimed(tmp_path: Path) -> None:
    """The same nesting made in the other order: the inner sandbox first, then the guest whose files/ hold it was
    given them, and through a preopen its kv data and signer record. A guest named "files" of tenant hello, in a
    sandboxes directory laid out per channel (DIR/release/hello/files), is the files/ of tenant release's hello."""
    owner, _, trust = _keys(tmp_path, "release")
    bundle = _bundle(tmp_path / "out", owner, "release")
    outer = tmp_path / "sandboxes"
    inner = outer / "default" / "notes" / "files" / "data" / "nested"
    assert _call(bundle, trust, inner, "put", 8) == 0
    held = rf"^notes: its sandbox {outer}/default/notes holds the sandbox {inner}/default/notes of another guest in "
    with pytest.raises(InvalidInput, match=held):
        _call(bundle, trust, outer, "put", 7)
    assert not (outer / "default" / "notes" / "signer").exists()
    assert _call(bundle, trust, inner, "peek") == 8
