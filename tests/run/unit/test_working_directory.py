"""Attacks through the operator's working directory: a project someone else prepared (an unpacked tarball, a
clone, a shared directory) must not make them trust a key, run its machine code, or reach their files.

The defence: a project's dev trust file found from the working directory (or --project) is used only when no
one but this user (or root) can change it; then only for the dev channel; and its native_code only for dev keys
this user's own builds registered. A guest's sandbox under the project is refused when a symlink redirects it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import threading
from pathlib import Path

import pytest

from ngixi_build.stages.smoke import SmokeFailure, smoke_bundle
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.spec.bundle_format import Channel
from ngixi_runtime.trust.choice import DEV_TRUST_FILE, PROJECT_STATE_VARIABLE, TRUST_VARIABLE, chosen_trust_file
from ngixi_runtime.trust.local_paths import unsafe_because
from ngixi_runtime.trust.policy import load_policy
from ngixi_runtime.trust.project_trust import register_dev_key, registered_dev_keys
from ngixi_runtime.trust.rollback import STATE_VARIABLE, default_state_dir
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.run.unit.test_native_code import HONEST, crafted_artifact
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
FS_MANIFEST = HELLO_MANIFEST + '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'


def hostile_project(root: Path, *, channels: tuple[str, ...] = ("dev",), native_code: bool = True) -> KeyFiles:
    """A directory as an attacker ships it: a project whose dev trust file names the attacker's key."""
    (root / "pyproject.toml").parent.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[tool.ngixi]\n")
    return make_key(root / DEV_TRUST_FILE.parent, channels=channels, native_code=native_code)


@pytest.fixture
def in_hostile_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.delenv(PROJECT_STATE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user-state"))
    root = tmp_path / "unpacked"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize("mode", [0o666, 0o646])
def test_a_dev_trust_file_others_may_write_is_refused(in_hostile_project: Path, mode: int) -> None:
    keys = hostile_project(in_hostile_project)
    keys.trust.chmod(mode)
    with pytest.raises(InvalidInput, match=r"not used as the trust file: .* may be written by any user"):
        chosen_trust_file(None)
    assert chosen_trust_file(keys.trust) == keys.trust  # named by the operator: their choice


def test_a_project_directory_others_may_write_is_refused(in_hostile_project: Path) -> None:
    hostile_project(in_hostile_project)
    in_hostile_project.chmod(0o777)  # a shared directory: anyone could swap .ngixi
    with pytest.raises(InvalidInput, match=f"{in_hostile_project} may be written by any user"):
        chosen_trust_file(None)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_dev_trust_file_of_another_user_is_refused(in_hostile_project: Path) -> None:
    keys = hostile_project(in_hostile_project)
    os.chown(keys.trust.parent, 65534, 65534)
    with pytest.raises(InvalidInput, match="belongs to user id 65534"):
        chosen_trust_file(None)


@pytest.mark.parametrize(
    ("writable", "mode", "refused"),
    [("file", 0o666, True), ("directory", 0o777, True), ("file", 0o664, False), ("directory", 0o1777, False)],
)
def test_a_named_trust_file_or_policy_any_user_may_change_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], writable: str, mode: int, refused: bool
) -> None:
    """A trust file or policy the operator names was used whatever its mode: one every user of the machine may write
    (or swap, in a directory above that any user may write and that is not sticky) let each of them choose whose code
    runs on the host. Refused at each read; a group's write (a team editing /etc/ngixi) and a sticky directory above
    (as /tmp) stay the operator's choice."""
    keys = make_key(tmp_path / "operator")
    policy = tmp_path / "operator" / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["stdio"]\n')
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM)
    for path in (keys.trust, policy) if writable == "file" else (keys.trust.parent,):
        path.chmod(mode)
    if not refused:
        assert load_trust(keys.trust).keys and load_policy(policy).capabilities == frozenset({"stdio"})
        return
    for path, what, load in ((keys.trust, "trust file", load_trust), (policy, "policy", load_policy)):
        place = path if writable == "file" else path.parent
        refusal = f"^{path}: not used as the {what}: {place} may be written by any user, .*chmod o-w {place}\\)$"
        with pytest.raises(InvalidInput, match=refusal):
            load(path)
    assert exit_code(["verify", str(bundle), "--trust", str(keys.trust)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sticky_world_writable_directories_above_are_safe(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: others cannot rename what is ours in it
    mine = shared / "mine"
    mine.mkdir(mode=0o755)
    assert unsafe_because(mine) is None


def give_by_acl(path: Path, tag: int, identity: int, permissions: int) -> None:
    """Lets user (tag 2) or group (tag 8) `identity` at `path` through a POSIX access ACL, as `setfacl -m` does; its
    mask (the group bits `stat` shows) then allows writing. Skips where the file system keeps no ACLs."""
    unset = 0xFFFFFFFF
    entries = [(0x01, 7, unset), (tag, permissions, identity), (0x04, 0, unset), (0x10, 7, unset), (0x20, 0, unset)]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in sorted(entries))  # by tag
    try:
        os.setxattr(path, "system.posix_acl_access", acl)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("this file system keeps no POSIX ACLs")
        raise


@pytest.mark.parametrize(("tag", "who"), [(0x02, "user id 65534"), (0x08, "the members of group id 65534")])
def test_a_directory_whose_acl_lets_another_user_write_is_unsafe(tmp_path: Path, tag: int, who: str) -> None:
    """Its mode said 0770 with this user's private group, which counted as this user's alone (umask 002 makes
    such directories), while its ACL let another user swap what is in it: a dev-keys record there (machine code
    for the keys it lists), a trust file, rollback state."""
    shared = tmp_path / "state"
    shared.mkdir(mode=0o700)
    give_by_acl(shared, tag, 65534, 7)
    assert unsafe_because(shared / "ngixi" / "dev-keys") == f"{shared} may be written by {who} (its ACL)"
    record = shared / "dev-keys"
    register_dev_key("a", record)
    assert registered_dev_keys(record) == ()


def test_an_acl_that_lets_others_only_read_is_safe(tmp_path: Path) -> None:
    readable = tmp_path / "state"
    readable.mkdir(mode=0o700)
    give_by_acl(readable, 0x02, 65534, 5)
    assert unsafe_because(readable) is None


def foreign_link(link: Path, target: Path) -> Path:
    """A symbolic link at `link` to `target`, given to user 65534, as one they made in a sticky directory."""
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)
    return link


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a symbolic link to another user needs root")
def test_a_symbolic_link_another_user_owns_on_the_way_is_unsafe(tmp_path: Path) -> None:
    """Only the directories a path resolves through were checked, not the links: /tmp/state -> ~/state, made by
    another user in sticky /tmp, passed, and its owner could point it at any directory later."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = foreign_link(shared / "state", mine)
    refused = f"{link} is a symbolic link of user id 65534, who may point it elsewhere"
    assert unsafe_because(link / "rollback") == refused
    (mine / "inner").symlink_to("../shared/state")  # ours, but it goes through theirs
    assert unsafe_because(mine / "inner" / "x") == refused
    os.lchown(link, 0, 0)
    assert unsafe_because(mine / "inner" / "x") is None


def test_a_found_dev_trust_file_trusts_no_key_for_release(
    in_hostile_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = hostile_project(in_hostile_project, channels=("dev", "release"))
    release = make_bundle(in_hostile_project / "out", keys.key, wasm=WASM, channel="release")
    assert exit_code(["verify", str(release)]) == 3
    err = capsys.readouterr().err
    assert "may not sign guest 'hello' on channel 'release'; the trust file" in err
    assert f"{keys.trust} was found from the working directory" in err
    assert "dev channel only, whatever it lists: pass --trust FILE" in err
    assert exit_code(["run", "--in-process", str(release), "add", "2", "3"]) == 3  # says the same as verify
    assert f"{keys.trust} was found from the working directory" in capsys.readouterr().err
    assert exit_code(["verify", "--trust", str(keys.trust), str(release)]) == 0


def test_a_found_dev_trust_file_with_release_keys_only_says_so(
    in_hostile_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = hostile_project(in_hostile_project, channels=("release",))
    release = make_bundle(in_hostile_project / "out", keys.key, wasm=WASM, channel="release")
    assert exit_code(["verify", str(release)]) == 2
    assert f"lists none for it: pass --trust {keys.trust}" in capsys.readouterr().err


def test_trust_commands_edit_no_found_trust_file_and_list_it_as_the_loader_reads_it(
    in_hostile_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's `ngixi trust add` in whatever project they stood in wrote the key into its dev trust file, which
    no host's run takes for release; `ngixi trust list` showed a found file's channels and native code as written,
    and `--project` was taken by the trust commands and ignored."""
    keys = hostile_project(in_hostile_project, channels=("dev", "release"))
    before = keys.trust.read_bytes()
    other = make_key(in_hostile_project.parent / "operator")
    add = ["trust", "add", str(other.public), "--guest", "hello", "--channel", "release"]
    assert exit_code(add) == 2
    assert f"{keys.trust}: found from the working directory; `ngixi trust add` edits only a trust file you name" in (
        capsys.readouterr().err
    )
    assert keys.trust.read_bytes() == before
    assert exit_code(["trust", "list"]) == 0
    listed = capsys.readouterr()
    assert listed.out.startswith(keys.key.key_id) and "channels dev,release; native code yes" in listed.out
    assert f"note: {keys.trust} was found from the working directory (or --project): its keys are trusted for " in (
        listed.err
    )
    elsewhere = in_hostile_project.parent / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert exit_code(["trust", "list", "--project", str(in_hostile_project)]) == 0
    assert capsys.readouterr().out.startswith(keys.key.key_id)


def _run_add(bundle: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = exit_code(["run", "--in-process", "--engine", "wasmtime", str(bundle), "add", "2", "3"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_found_dev_trust_file_runs_no_machine_code_of_an_unregistered_key(
    in_hostile_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = hostile_project(in_hostile_project)
    (in_hostile_project / "work").mkdir()
    crafted = crafted_artifact(in_hostile_project / "work", "wasmtime")
    bundle = make_bundle(
        in_hostile_project / "artifacts", keys.key, wasm=HONEST, manifest=HELLO_MANIFEST, artifacts=[crafted]
    )
    code, out, err = _run_add(bundle, capsys)
    assert (code, out) == (0, "5\n")  # the signed .wasm, compiled here: not the crafted artifact's 666
    assert "is not trusted with native code" in err
    register_dev_key(keys.key.public_base64)  # what this user's own build of the project does
    code, out, _ = _run_add(bundle, capsys)
    assert (code, out) == (0, "666\n")


def test_smoke_runs_no_machine_code_of_a_dev_key_that_came_with_the_project(in_hostile_project: Path) -> None:
    """`ngixi smoke` loads the project's bundles with its dev trust file, as `ngixi run` does when it finds that file:
    a shipped bundle (kept by a shipped doit record) signed by a shipped key with native_code = true ran its
    artifact."""
    keys = hostile_project(in_hostile_project)
    (in_hostile_project / "work").mkdir()
    crafted = crafted_artifact(in_hostile_project / "work", "wasmtime")
    smoke_call = '[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    bundle = make_bundle(
        in_hostile_project / "artifacts",
        keys.key,
        wasm=HONEST,
        manifest=HELLO_MANIFEST + smoke_call,
        artifacts=[crafted],
    )
    assert smoke_bundle(bundle_path=bundle, trust_file=keys.trust, label="m.toml") == 1  # compiled: not 666
    register_dev_key(keys.key.public_base64)  # what this user's own build of the project does
    with pytest.raises(SmokeFailure, match="returned 666"):
        smoke_bundle(bundle_path=bundle, trust_file=keys.trust, label="m.toml")


def test_a_symlink_in_a_found_projects_sandbox_is_refused(
    in_hostile_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = hostile_project(in_hostile_project)
    bundle = make_bundle(in_hostile_project / "artifacts", keys.key, wasm=WASM, manifest=FS_MANIFEST)
    precious = tmp_path / "home"
    precious.mkdir()
    guest_dir = in_hostile_project / ".ngixi" / "sandbox" / "dev" / "default" / "hello"
    guest_dir.mkdir(parents=True)
    (guest_dir / "files").symlink_to(precious)
    code, _, err = _run_add(bundle, capsys)
    assert code == 2
    assert f"{guest_dir / 'files'} is a symbolic link" in err
    assert list(precious.iterdir()) == []


@pytest.mark.parametrize("link", ["dev", "dev/default", "dev/default/hello/kv.sqlite3-wal"])
def test_no_symlink_below_the_sandboxes_directory_is_followed(tmp_path: Path, keys: KeyFiles, link: str) -> None:
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM, manifest=FS_MANIFEST)
    sandboxes = tmp_path / "sandboxes"
    (sandboxes / link).parent.mkdir(parents=True)
    (sandboxes / link).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="is a symbolic link"):
        open_tenant(bundle, trust_file=keys.trust, isolated=False, sandboxes=sandboxes, sandbox_per_channel=True)


def test_the_dev_key_record_keeps_the_latest_keys(tmp_path: Path) -> None:
    record = tmp_path / "dev-keys"
    for key in ("a", "b", "a"):
        register_dev_key(key, record)
    assert registered_dev_keys(record) == ("b", "a")
    record.chmod(0o666)
    assert registered_dev_keys(record) == ()  # anyone could have added theirs


def test_the_dev_key_record_made_under_a_permissive_umask_is_read(tmp_path: Path) -> None:
    """Under umask 000 the directories made above the record were world-writable, so the key just registered was
    never read back (and a dev bundle's machine code never ran from the project's dev trust file)."""
    record = tmp_path / "config" / "ngixi" / "dev-keys"
    umask = os.umask(0)
    try:
        register_dev_key("a", record)
    finally:
        os.umask(umask)
    assert registered_dev_keys(record) == ("a",)


def fifo_released_later(path: Path) -> threading.Timer:
    """A FIFO at `path`, whose other end is opened and closed after 5 s: a reader that waits on it (as the run side
    did) then reads nothing, rather than holding the suite for ever. Cancel the timer at the end."""
    os.mkfifo(path, 0o600)

    def release() -> None:
        with contextlib.suppress(OSError):  # ENXIO: no reader waited
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(5, release)
    timer.start()
    return timer


def test_a_dev_key_record_that_is_a_fifo_is_not_waited_on(tmp_path: Path) -> None:
    timer = fifo_released_later(tmp_path / "dev-keys")
    try:
        assert registered_dev_keys(tmp_path / "dev-keys") == ()
        assert timer.is_alive()  # answered at once: a `ngixi run` in a project waited here for ever
    finally:
        timer.cancel()


def test_a_found_project_others_may_write_holds_no_sandbox(
    in_hostile_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = hostile_project(in_hostile_project)
    (in_hostile_project / "pyproject.toml").chmod(0o666)  # its trust file is safe; the project is not
    bundle = make_bundle(in_hostile_project.parent / "out", keys.key, wasm=WASM, manifest=FS_MANIFEST)
    assert exit_code(["run", "--in-process", str(bundle), "add", "2", "3"]) == 2
    assert "not used for the guest's sandbox" in capsys.readouterr().err
    assert not (in_hostile_project / ".ngixi" / "sandbox").exists()


@pytest.mark.parametrize("channel", ["release", "dev"])
def test_a_bundle_another_trust_file_verifies_keeps_no_state_in_the_project_it_is_run_from(
    in_hostile_project: Path, tmp_path: Path, channel: Channel
) -> None:
    """An operator's own trust file, named, from a directory someone else shipped: the guest's state is the one in
    the user's state directory, never the project's `.ngixi/sandbox/`, which the tarball may hold ready with a
    `signer` record naming the operator's key (a public key) and the kv data and files its author chose."""
    hostile_project(in_hostile_project)
    operators = make_key(tmp_path / "operator", guests=["hello"], channels=[channel], native_code=False)
    bundle = make_bundle(tmp_path / "out", operators.key, wasm=WASM, manifest=FS_MANIFEST, channel=channel)
    planted = in_hostile_project / ".ngixi" / "sandbox" / channel / "default" / "hello"
    (planted / "files" / "data").mkdir(parents=True)
    (planted / "signer").write_text(operators.public.read_text().splitlines()[1] + "\n")
    before = sorted(planted.rglob("*"))
    assert exit_code(["run", "--in-process", "--trust", str(operators.trust), str(bundle), "add", "2", "3"]) == 0
    assert sorted(planted.rglob("*")) == before
    assert (default_state_dir() / "sandbox" / channel / "default" / "hello" / "files" / "data").is_dir()


def test_a_project_file_above_the_cwd_is_not_read_for_another_trust_files_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken pyproject.toml another user left in /tmp ended every `ngixi run --trust FILE` below it that named
    no --sandbox, whatever FILE was; the project is looked for only for its own dev trust file or --project now."""
    operators = make_key(tmp_path / "operator", guests=["hello"], channels=["release"], native_code=False)
    bundle = make_bundle(tmp_path / "out", operators.key, wasm=WASM, manifest=FS_MANIFEST, channel="release")
    (tmp_path / "pyproject.toml").write_text("[tool.ngixi\n")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert exit_code(["run", "--in-process", "--trust", str(operators.trust), str(bundle), "add", "2", "3"]) == 0


def test_the_projects_own_dev_trust_file_named_keeps_the_projects_sandbox(in_hostile_project: Path) -> None:
    keys = hostile_project(in_hostile_project)
    bundle = make_bundle(in_hostile_project / "out", keys.key, wasm=WASM, manifest=FS_MANIFEST)
    assert exit_code(["run", "--in-process", "--trust", str(DEV_TRUST_FILE), str(bundle), "add", "2", "3"]) == 0
    assert (in_hostile_project / ".ngixi" / "sandbox" / "dev" / "default" / "hello" / "files" / "data").is_dir()


@pytest.mark.parametrize("shared", ["state", "state/rollback"])
def test_a_rollback_state_others_may_write_is_refused(tmp_path: Path, keys: KeyFiles, shared: str) -> None:
    state = tmp_path / "state"
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM, channel="dev")
    argv = ["verify", "--trust", str(keys.trust), "--state-dir", str(state), str(bundle)]
    assert exit_code(argv) == 0
    (tmp_path / shared).chmod(0o777)  # another user could now remove or lower the recorded sequences
    assert exit_code(argv) == 2


def test_a_rollback_state_is_not_made_where_others_could_change_it(tmp_path: Path, keys: KeyFiles) -> None:
    """Made under a directory another user may write, its sequences could be removed by them from the first run."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM, channel="dev")
    argv = ["verify", "--trust", str(keys.trust), "--state-dir", str(shared / "state"), str(bundle)]
    assert exit_code(argv) == 2
    assert not (shared / "state").exists()


@pytest.mark.parametrize("name", ["pyproject.toml", "trust.toml"])
def test_deeply_nested_toml_is_one_line_not_a_traceback(
    in_hostile_project: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    nested = "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    (in_hostile_project / "pyproject.toml").write_text(nested if name == "pyproject.toml" else "[tool.ngixi]\n")
    named = [] if name == "pyproject.toml" else ["--trust", str(in_hostile_project / name)]  # else looked for
    if name == "trust.toml":
        (in_hostile_project / name).write_text(nested)
    bundle = make_bundle(in_hostile_project.parent / "out", keys.key, wasm=WASM)
    assert exit_code(["run", "--in-process", *named, str(bundle), "add", "2", "3"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("not valid TOML: TOML inline arrays/tables are nested more than the allowed 400 levels")


def test_a_kv_database_hard_linked_elsewhere_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    """Prepared so that another guest's files share the first guest's kv data."""
    bundle = make_bundle(tmp_path / "out", keys.key, wasm=WASM, manifest=FS_MANIFEST)
    sandboxes = tmp_path / "sandboxes"
    guest = sandboxes / "dev" / "default" / "hello"
    other = sandboxes / "dev" / "default" / "other" / "files" / "data"
    guest.mkdir(parents=True)
    other.mkdir(parents=True)
    (guest / "kv.sqlite3").write_bytes(b"")
    os.link(guest / "kv.sqlite3", other / "readable")
    with pytest.raises(InvalidInput, match=r"kv\.sqlite3 has other names"):
        open_tenant(bundle, trust_file=keys.trust, isolated=False, sandboxes=sandboxes, sandbox_per_channel=True)


@pytest.mark.parametrize("variable", [TRUST_VARIABLE, STATE_VARIABLE])
def test_a_relative_path_in_the_environment_is_refused(
    in_hostile_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """$NGIXI_TRUST=trust.toml (or a relative $NGIXI_STATE_DIR) in the operator's environment would take the file the
    working directory holds: the attacker's trust file, trusted for every channel and native code, or an empty
    rollback state under which an older signed bundle runs again."""
    keys = hostile_project(in_hostile_project, channels=("dev", "release"))
    release = make_bundle(in_hostile_project / "out", keys.key, wasm=WASM, channel="release")
    (in_hostile_project / "trust.toml").write_bytes(keys.trust.read_bytes())
    monkeypatch.setenv(TRUST_VARIABLE, "trust.toml" if variable == TRUST_VARIABLE else str(keys.trust))
    if variable == STATE_VARIABLE:
        monkeypatch.setenv(STATE_VARIABLE, "state")
    assert exit_code(["verify", str(release)]) == 2
    assert f"${variable}: must be an absolute path" in capsys.readouterr().err


def test_a_relative_project_state_directory_is_refused(
    in_hostile_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """$NGIXI_PROJECT_STATE=state, meant for the operator's own project, named `state/` of the working directory
    whatever --project said: the attacker's dev trust file there stood in for the project's, so a dev bundle of
    their key verified as the operator's project's own."""
    own = tmp_path / "own"
    make_key(own / "state")
    (own / "pyproject.toml").write_text("[tool.ngixi]\n")
    attacker = make_key(in_hostile_project / "state")
    (in_hostile_project / "pyproject.toml").write_text("[tool.ngixi]\n")
    bundle = make_bundle(in_hostile_project / "out", attacker.key, wasm=WASM)
    monkeypatch.setenv(PROJECT_STATE_VARIABLE, "state")
    assert exit_code(["verify", "--project", str(own), str(bundle)]) == 2
    assert f"${PROJECT_STATE_VARIABLE}: must be an absolute path, not 'state'" in capsys.readouterr().err
