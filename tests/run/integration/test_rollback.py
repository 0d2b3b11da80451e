"""Rollback protection: the highest sequence accepted per trust file, guest and channel, and refusing lower ones."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import signal
import time
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import user_cache_dir
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from ngixi_runtime.spec.bundle_format import Channel
from ngixi_runtime.trust.choice import DEV_TRUST_FILE
from ngixi_runtime.trust.project_trust import dev_keys_file
from ngixi_runtime.trust.rollback import RollbackGuard, default_state_dir, state_file_for
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.run.unit.test_working_directory import fifo_released_later, foreign_link
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])


@pytest.fixture
def any_channel_keys(tmp_path: Path) -> KeyFiles:
    return make_key(tmp_path / "keys", channels=["dev", "release"])


def bundle(tmp_path: Path, keys: KeyFiles, sequence: int, *, guest: str = "hello", channel: Channel = "dev") -> Path:
    manifest = HELLO_MANIFEST.replace('name = "hello"', f'name = "{guest}"')
    directory = tmp_path / f"{guest}-{channel}-{sequence}"
    return make_bundle(
        directory, keys.key, wasm=WASM, manifest=manifest, guest=guest, channel=channel, sequence=sequence
    )


def accept(path: Path, keys: KeyFiles, state: Path, *, allow_downgrade: bool = False) -> int:
    guard = RollbackGuard.for_trust_file(keys.trust, state_dir=state, allow_downgrade=allow_downgrade)
    return read_bundle(path, load_trust(keys.trust), rollback=guard).index.sequence


def recorded(state: Path, trust: Path) -> object:
    document = json.loads(state_file_for(trust, state).read_text())
    assert document["trust_file"] == str(trust.absolute())
    return document["highest"]


def test_highest_sequence_is_recorded_and_a_lower_one_refused(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> None:
    assert accept(bundle(tmp_path, keys, 7), keys, state_dir) == 7
    assert accept(bundle(tmp_path, keys, 7), keys, state_dir) == 7
    with pytest.raises(VerificationError, match="sequence 6 of guest 'hello' on channel 'dev' is lower than 7"):
        accept(bundle(tmp_path, keys, 6), keys, state_dir)
    assert accept(bundle(tmp_path, keys, 9), keys, state_dir) == 9
    assert recorded(state_dir, keys.trust) == {"hello": {"dev": 9}}
    state_file = state_file_for(keys.trust, state_dir)
    assert sorted(state_dir.rglob("*")) == [state_dir / "rollback", state_file, Path(f"{state_file}.lock")]


def test_guests_and_channels_are_counted_apart(tmp_path: Path, any_channel_keys: KeyFiles, state_dir: Path) -> None:
    keys = any_channel_keys
    accept(bundle(tmp_path, keys, 9), keys, state_dir)
    accept(bundle(tmp_path, keys, 2, channel="release"), keys, state_dir)
    accept(bundle(tmp_path, keys, 3, guest="other"), keys, state_dir)
    assert recorded(state_dir, keys.trust) == {"hello": {"dev": 9, "release": 2}, "other": {"dev": 3}}


def test_allow_downgrade_accepts_but_keeps_the_highest(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> None:
    accept(bundle(tmp_path, keys, 9), keys, state_dir)
    assert accept(bundle(tmp_path, keys, 4), keys, state_dir, allow_downgrade=True) == 4
    assert recorded(state_dir, keys.trust) == {"hello": {"dev": 9}}


def test_a_refused_bundle_records_nothing(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> None:
    path = bundle(tmp_path, keys, 9)
    path.write_bytes(path.read_bytes().replace(WASM, WASM[:-1] + bytes([WASM[-1] ^ 1])))
    with pytest.raises(VerificationError, match=r"guest\.wasm does not match its digest"):
        accept(path, keys, state_dir)
    assert not state_file_for(keys.trust, state_dir).exists()


def test_rollback_is_refused_before_any_member_is_read(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> None:
    accept(bundle(tmp_path, keys, 9), keys, state_dir)
    path = bundle(tmp_path, keys, 8)
    path.write_bytes(path.read_bytes().replace(WASM, bytes(len(WASM))))
    with pytest.raises(VerificationError, match="is lower than 9"):
        accept(path, keys, state_dir)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": 2, "trust_file": "TRUST", "highest": {"hello": {"dev": "nine"}}}', r"highest\.hello: must map"),
        ('{"format": 2, "trust_file": "/elsewhere.toml", "highest": {}}', r"trust_file: must be TRUST, the trust file"),
        ('{"format": 1, "highest": {}}', "format: must be 2"),
        ("{not json", r"\(file\): not JSON"),
        ("", r"\(file\): not JSON"),
        ('{"format": 2, "trust_file": "TRUST", "highest": {"hel', r"\(file\): not JSON"),
    ],
    ids=["bad-sequence", "other-trust-file", "old-format", "not-json", "empty", "truncated"],
)
def test_a_damaged_state_file_is_named_with_what_to_do_and_kept(
    tmp_path: Path, keys: KeyFiles, state_dir: Path, content: str, message: str
) -> None:
    state_file = state_file_for(keys.trust, state_dir)
    state_file.parent.mkdir(parents=True)
    trust = str(keys.trust.absolute())
    state_file.write_text(content.replace("TRUST", trust))
    expected = re.escape(f"{state_file}: ") + message.replace("TRUST", re.escape(trust)) + ".*repair it, or remove it"
    with pytest.raises(InvalidInput, match=expected):
        accept(bundle(tmp_path, keys, 9), keys, state_dir)
    assert state_file.read_text() == content.replace("TRUST", trust)  # never silently reset


def test_a_state_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> None:
    """Its read waited for a writer (a link to /dev/zero read without end), where one line says what is wrong."""
    state_file = state_file_for(keys.trust, state_dir)
    state_file.parent.mkdir(parents=True)
    timer = fifo_released_later(state_file)
    try:
        with pytest.raises(InvalidInput, match=re.escape(f"{state_file}: a FIFO, not a regular file")):
            accept(bundle(tmp_path, keys, 9), keys, state_dir)
        assert timer.is_alive()
    finally:
        timer.cancel()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a symbolic link to another user needs root")
def test_a_state_directory_through_another_users_link_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    """$NGIXI_STATE_DIR=/tmp/state, a link another user made there to a directory of the operator's: its owner
    pointed it at another of the operator's directories once sequence 9 was recorded, and sequence 5 passed."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "kept").mkdir(mode=0o700)
    link = foreign_link(shared / "state", tmp_path / "kept")
    with pytest.raises(InvalidInput, match=re.escape(f"{link} is a symbolic link of user id 65534")):
        accept(bundle(tmp_path, keys, 9), keys, link)


def test_a_symlinked_state_file_is_followed_and_a_dangling_one_refused(
    tmp_path: Path, keys: KeyFiles, state_dir: Path
) -> None:
    state_file, kept_elsewhere = state_file_for(keys.trust, state_dir), tmp_path / "volume" / "state.json"
    state_file.parent.mkdir(parents=True)
    state_file.symlink_to(kept_elsewhere)
    with pytest.raises(InvalidInput, match=r"\(file\): a symbolic link to .*state\.json, which is missing.*repair"):
        accept(bundle(tmp_path, keys, 5), keys, state_dir)
    kept_elsewhere.parent.mkdir()
    kept_elsewhere.write_text(json.dumps({"format": 2, "trust_file": str(keys.trust.absolute()), "highest": {}}))
    assert accept(bundle(tmp_path, keys, 5), keys, state_dir) == 5
    assert state_file.is_symlink() and json.loads(kept_elsewhere.read_text())["highest"] == {"hello": {"dev": 5}}


def test_a_trust_file_link_whose_target_a_deployment_swaps_keeps_its_state(
    tmp_path: Path, keys: KeyFiles, state_dir: Path
) -> None:
    link, versions = tmp_path / "etc" / "trust.toml", [tmp_path / "v1.toml", tmp_path / "v2.toml"]
    link.parent.mkdir()
    for version in versions:
        version.write_bytes(keys.trust.read_bytes())
    link.symlink_to(versions[0])
    linked = dataclasses.replace(keys, trust=link)
    assert accept(bundle(tmp_path, keys, 5), linked, state_dir) == 5
    link.unlink()
    link.symlink_to(versions[1])
    with pytest.raises(VerificationError, match="sequence 4 of guest 'hello' on channel 'dev' is lower than 5"):
        accept(bundle(tmp_path, keys, 4), linked, state_dir)


def _record_many(trust: str, state_dir: str, path: str, sequences: list[int]) -> None:
    guard = RollbackGuard.for_trust_file(Path(trust), state_dir=Path(state_dir), allow_downgrade=True)  # races lose
    index = read_bundle(Path(path), load_trust(Path(trust))).index
    for sequence in sequences:
        guard.record(index._replace(sequence=sequence), source="racer")
        highest = recorded(Path(state_dir), Path(trust))["hello"]["dev"]  # type: ignore[index]
        assert highest >= sequence, f"recorded {sequence}, then another racer wrote {highest} over it"


def test_concurrent_recorders_never_lose_the_highest(tmp_path: Path, keys: KeyFiles) -> None:
    path, state_dir = bundle(tmp_path, keys, 1), tmp_path / "state"
    racers = [
        multiprocessing.get_context("fork").Process(
            target=_record_many, args=(str(keys.trust), str(state_dir), str(path), list(range(start, 400, 4)))
        )
        for start in range(4)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    assert [r.exitcode for r in racers] == [0] * 4
    assert recorded(state_dir, keys.trust) == {"hello": {"dev": 399}}


def test_unwritable_state_directory_says_how_to_choose_another(tmp_path: Path, keys: KeyFiles) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInput, match=r"file, which is not a directory; set NGIXI_STATE_DIR"):
        accept(bundle(tmp_path, keys, 9), keys, tmp_path / "file" / "state")


@pytest.mark.parametrize("trust", ["dev trust file", "operator trust file"])
def test_cli_refuses_a_state_dir_that_is_a_file_for_every_bundle(
    tmp_path: Path, keys: KeyFiles, trust: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project's dev bundles never touch the state, but a mistyped --state-dir is still named, not ignored."""
    trust_file = keys.trust
    if trust == "dev trust file":
        trust_file = tmp_path / "project" / DEV_TRUST_FILE
        trust_file.parent.mkdir(parents=True)
        (tmp_path / "project" / "pyproject.toml").write_text("[tool.ngixi]\n")
        trust_file.write_bytes(keys.trust.read_bytes())
    (tmp_path / "file").write_text("")
    for command in (["run", "--in-process"], ["verify"]):
        argv = [
            *command,
            "--trust",
            str(trust_file),
            "--state-dir",
            str(tmp_path / "file"),
            str(bundle(tmp_path, keys, 9)),
        ]
        assert exit_code(argv + (["add", "2", "3"] if command[0] == "run" else [])) == 2
        err = capsys.readouterr().err
        assert err == (
            f"ngixi: error: --state-dir {tmp_path / 'file'}: it is not a directory; name a directory (it is made if "
            "missing)\n"
        )
        without_option = [a for a in argv if a not in ("--state-dir", str(tmp_path / "file"))]
        with pytest.MonkeyPatch.context() as environment:  # named as the variable gave it
            environment.setenv("NGIXI_STATE_DIR", str(tmp_path / "file" / "state"))
            assert exit_code(without_option + (["add", "2", "3"] if command[0] == "run" else [])) == 2
        assert capsys.readouterr().err == (
            f"ngixi: error: $NGIXI_STATE_DIR ({tmp_path / 'file' / 'state'}): the rollback state directory is under "
            f"{tmp_path / 'file'}, which is not a directory; set NGIXI_STATE_DIR (or --state-dir) to a writable "
            "directory\n"
        )


def test_default_state_directory() -> None:
    home = Path.home()
    assert default_state_dir({"NGIXI_STATE_DIR": "/s", "XDG_STATE_HOME": "/x"}) == Path("/s")
    assert default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/ngixi")
    assert default_state_dir({"XDG_STATE_HOME": "relative"}) == home / ".local" / "state" / "ngixi"
    assert default_state_dir({}) == home / ".local" / "state" / "ngixi"


@pytest.mark.parametrize("home", ["", "relative", "missing"])
def test_a_home_that_names_no_directory_is_refused_rather_than_written_under(
    tmp_path: Path, keys: KeyFiles, home: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As root, HOME="" made the state directory and caches /.local and /.cache (Python takes an empty HOME as
    /), and HOME=/nonexistent made /nonexistent."""
    given = str(tmp_path / home) if home == "missing" else home
    for name in ("NGIXI_STATE_DIR", "XDG_STATE_HOME", "NGIXI_AOT_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", given)
    monkeypatch.chdir(tmp_path)
    shown = repr(given)
    problem = "is not an existing directory" if home == "missing" else "is not an absolute path"
    assert exit_code(["run", "--trust", str(keys.trust), str(bundle(tmp_path, keys, 1)), "add", "2", "3"]) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: $HOME: {shown} {problem}, and the state directory would be kept under it; set HOME to your "
        "home directory, or name the directory with $NGIXI_STATE_DIR or $XDG_STATE_HOME\n"
    )
    assert not (tmp_path / "missing").exists() and not (tmp_path / ".local").exists()
    with pytest.raises(InvalidInput, match=r"^\$HOME: .*name the directory with \$XDG_CACHE_HOME$"):
        user_cache_dir()
    with pytest.raises(InvalidInput, match=r"^\$HOME: .*this user's keys would be kept under it; .* \$XDG_STATE_HOME$"):
        dev_keys_file()


def test_cli_refuses_a_rollback_unless_allowed(
    tmp_path: Path,
    keys: KeyFiles,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer, older = bundle(tmp_path, keys, 9), bundle(tmp_path, keys, 8)
    assert exit_code(["run", "--trust", str(keys.trust), str(newer), "add", "2", "3"]) == 0
    assert exit_code(["run", "--trust", str(keys.trust), str(older), "add", "2", "3"]) == 3
    assert "is lower than 9" in capsys.readouterr().err
    assert exit_code(["verify", "--trust", str(keys.trust), str(older), "--allow-downgrade"]) == 0
    assert [r.message for r in caplog.records if "accepting" in r.message] == [
        f"{older}: accepting sequence 8 of guest 'hello' on channel 'dev' below 9 (--allow-downgrade)"
    ]
    elsewhere = tmp_path / "elsewhere"
    assert exit_code(["verify", "--trust", str(keys.trust), str(older), "--state-dir", str(elsewhere)]) == 0
    assert recorded(elsewhere, keys.trust) == {"hello": {"dev": 8}}
    assert recorded(state_dir, keys.trust) == {"hello": {"dev": 9}}


def wait_until_dead(pid: int) -> None:
    """Until the process is a zombie or reaped (by the fork server that is its parent): dead, its pipes closed."""
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):  # reaped before or while /proc was read
            return
        time.sleep(0.01)


def test_a_respawned_tenant_refuses_a_bundle_rolled_back_under_it(
    tmp_path: Path, keys: KeyFiles, state_dir: Path
) -> None:
    """An older bundle written over the checked one is refused at the restart: its index is not the one checked."""
    path, older = bundle(tmp_path, keys, 9), bundle(tmp_path, keys, 8).read_bytes()
    guard = RollbackGuard.for_trust_file(keys.trust, state_dir=state_dir)
    with open_tenant(path, trust_file=keys.trust, rollback=guard) as tenant:
        assert tenant.call("add", (2, 3)).values == (5,)
        path.write_bytes(older)
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        os.kill(tenant.pid, signal.SIGKILL)
        wait_until_dead(tenant.pid)  # so the call's request meets a closed pipe, not a dying child
        with pytest.raises(CallFailed, match="the tenant process died"):
            tenant.call("add", (2, 3))
        with pytest.raises(VerificationError, match="the bundle changed since it was verified"):
            tenant.call("add", (2, 3))


def test_two_trust_domains_keep_separate_state_for_same_named_guests(tmp_path: Path, state_dir: Path) -> None:
    """Two operators' trust files (or two projects') on one host: one's sequences never refuse the other's."""
    first, second = make_key(tmp_path / "first"), make_key(tmp_path / "second")
    assert accept(bundle(tmp_path / "a", first, 1796319643, guest="textstats"), first, state_dir) == 1796319643
    assert accept(bundle(tmp_path / "b", second, 3, guest="textstats"), second, state_dir) == 3
    assert recorded(state_dir, first.trust) == {"textstats": {"dev": 1796319643}}
    assert recorded(state_dir, second.trust) == {"textstats": {"dev": 3}}


def test_a_projects_own_dev_builds_never_trip_it_but_its_release_channel_does(tmp_path: Path, state_dir: Path) -> None:
    """The dev trust file a project's builds write: checking out an older commit rebuilds with a lower
    sequence (its commit time), which runs; a release-channel bundle it trusts is still guarded."""
    keys = make_key(tmp_path / "keys", channels=["dev", "release"])
    dev_trust = tmp_path / "project" / DEV_TRUST_FILE
    dev_trust.parent.mkdir(parents=True)
    (tmp_path / "project" / "pyproject.toml").write_text("[tool.ngixi]\n")
    dev_trust.write_bytes(keys.trust.read_bytes())
    project_keys = KeyFiles(keys.key, keys.secret, keys.public, dev_trust)
    assert accept(bundle(tmp_path, project_keys, 1796319643), project_keys, state_dir) == 1796319643
    assert accept(bundle(tmp_path, project_keys, 1796300000), project_keys, state_dir) == 1796300000
    assert not state_file_for(dev_trust, state_dir).exists()
    accept(bundle(tmp_path, project_keys, 5, channel="release"), project_keys, state_dir)
    with pytest.raises(VerificationError, match="sequence 4 of guest 'hello' on channel 'release' is lower than 5"):
        accept(bundle(tmp_path, project_keys, 4, channel="release"), project_keys, state_dir)


@pytest.mark.parametrize("parent, stem", [("proj", "trust"), ("my proj", "dé-v.1"), ("a/b", "ключи"), ("x" * 80, "t")])
def test_state_file_name_keeps_what_it_kept(tmp_path: Path, parent: str, stem: str) -> None:
    """The state file's readable part is the trust file's directory and stem with every other character "_" (as
    `re.sub(r"[^A-Za-z0-9_.-]", "_", …)` made it): a changed name would lose the sequences already accepted."""
    trust = tmp_path / parent / f"{stem}.toml"
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{trust.parent.name}-{stem}")[:64]
    assert state_file_for(trust, tmp_path).name.startswith(f"{readable}-")
