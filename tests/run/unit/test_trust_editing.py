"""Trust-file edits: each checked by the loader's parser, atomic, keeping what the operator wrote."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import minisign
import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.trust import editing
from ngixi_runtime.trust.editing import NewTrust, add_key, listed_keys, read_public_key, remove_key
from ngixi_runtime.trust.local_paths import unsafe_because
from ngixi_runtime.trust.signatures import TrustStore, key_id_of, load_trust
from tests.conftest import exit_code


def new_public_key() -> minisign.PublicKey:
    return minisign.KeyPair.generate().public_key


RELEASE_HELLO = NewTrust(("hello",), ("release",))


def test_add_makes_a_file_the_loader_reads_and_keeps_what_was_there(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    first, second = new_public_key(), new_public_key()
    add_key(trust, first, NewTrust(("hello", "wasi-*"), ("release", "dev"), native_code=True, comment='a "q"\n\x7f é'))
    trust.write_text("# the ops team's keys\n" + trust.read_text())
    add_key(trust, second, RELEASE_HELLO)
    assert trust.read_text().startswith("# the ops team's keys\n[[keys]]\n")
    keys = load_trust(trust).keys
    assert [(k.key_id, k.guests, k.channels, k.native_code) for k in keys] == [
        (key_id_of(first), ("hello", "wasi-*"), ("release", "dev"), True),
        (key_id_of(second), ("hello",), ("release",), False),
    ]
    assert listed_keys(trust)[0]["comment"] == 'a "q"\n\x7f é'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trust.toml"]  # no temporary file left


def test_add_refuses_a_key_already_there_and_a_file_the_loader_refuses(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    key = new_public_key()
    add_key(trust, key, RELEASE_HELLO)
    before = trust.read_bytes()
    with pytest.raises(InvalidInput, match=rf"key {key_id_of(key)} is already trusted there; .*trust remove"):
        add_key(trust, key, NewTrust(("*",), ("dev",)))
    broken = tmp_path / "broken.toml"
    broken.write_text('[[keys]]\nid = "00"\n')
    with pytest.raises(InvalidInput, match=r"broken\.toml: keys\[0\]: missing public_key, guests, channels \(a key "):
        add_key(broken, new_public_key(), RELEASE_HELLO)
    assert trust.read_bytes() == before and broken.read_text() == '[[keys]]\nid = "00"\n'


@pytest.mark.parametrize(
    ("guests", "message"),
    [((), "guests: must be a non-empty array"), (("",), r"guests\[0\]: '' can match no guest name")],
    ids=["no-guests", "empty-name"],
)
def test_add_writes_nothing_the_loader_would_refuse(tmp_path: Path, guests: tuple[str, ...], message: str) -> None:
    trust = tmp_path / "trust.toml"
    with pytest.raises(InvalidInput, match=message):
        add_key(trust, new_public_key(), NewTrust(guests, ("dev",)))
    assert not trust.exists()


def test_remove_cuts_out_one_table_and_refuses_unknown_ids_and_the_last_key(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    keys = [new_public_key() for _ in range(3)]
    for key in keys:
        add_key(trust, key, RELEASE_HELLO)
    trust.write_text(trust.read_text() + "# kept\n")
    remove_key(trust, key_id_of(keys[1]))
    assert [k.key_id for k in load_trust(trust).keys] == [key_id_of(keys[0]), key_id_of(keys[2])]
    assert trust.read_text().endswith("# kept\n")
    with pytest.raises(InvalidInput, match=rf"no key 'ABC' there \(it trusts: {key_id_of(keys[0])}, "):
        remove_key(trust, "ABC")
    assert remove_key(trust, key_id_of(keys[0]).lower()) == key_id_of(keys[0])  # as the operator may type it
    with pytest.raises(InvalidInput, match=r"is the only key there, .*remove the file instead"):
        remove_key(trust, key_id_of(keys[2]))


def test_remove_refuses_a_layout_it_cannot_cut(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    one, two = new_public_key(), new_public_key()
    add_key(trust, one, RELEASE_HELLO)
    add_key(trust, two, RELEASE_HELLO)
    inline = tmp_path / "inline.toml"
    tables = [
        f'{{ id = "{key_id_of(k)}", public_key = "{k.to_base64().decode()}", guests = ["a"], channels = ["dev"] }}'
        for k in (one, two)
    ]
    inline.write_text(f"keys = [{', '.join(tables)}]\n")
    with pytest.raises(InvalidInput, match="is not written as a \\[\\[keys\\]\\] table this command can remove"):
        remove_key(inline, key_id_of(one))


def test_removing_a_key_never_gives_another_key_its_text(tmp_path: Path) -> None:
    """A `[[keys]]` line inside a multi-line comment was cut as the removed key's table: the rest of the file then
    read differently, and the key kept took the removed one's comment as its own fields (every guest, native
    code). Every other key stays exactly as it was, comments included, or nothing is written."""
    kept, removed = new_public_key(), new_public_key()
    kept_id, removed_id = key_id_of(kept), key_id_of(removed)
    trust = tmp_path / "trust.toml"
    trust.write_text(
        f'[[keys]]\nid = "{kept_id}"\npublic_key = "{kept.to_base64().decode()}"\nchannels = ["dev"]\n'
        f'comment = """\n[[keys]]\nid = "{removed_id}"\nx = \'\'\'\n"""\nguests = ["b"] # \'\'\'\n'
        f'[[keys]]\nid = "{removed_id}"\npublic_key = "{removed.to_base64().decode()}"\nguests = ["a"]\n'
        'channels = ["dev"]\ncomment = """\nguests = ["*"]\nnative_code = true\n# """\n'
    )
    before = listed_keys(trust)[0]
    remove_key(trust, removed_id)
    assert listed_keys(trust) == [before]
    assert [(k.key_id, k.guests, k.native_code) for k in load_trust(trust).keys] == [(kept_id, ("b",), False)]


def test_a_trust_file_link_that_loops_is_refused_in_one_line(tmp_path: Path) -> None:
    link = tmp_path / "one.toml"
    link.symlink_to(tmp_path / "two.toml")
    (tmp_path / "two.toml").symlink_to(link)
    refused = r"one\.toml: a symbolic link that never ends in a file \(a loop\)"
    with pytest.raises(InvalidInput, match=refused):
        add_key(link, new_public_key(), RELEASE_HELLO)
    with pytest.raises(InvalidInput, match=refused):
        remove_key(link, "AB")


def test_a_public_key_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "key.pub"
    path.write_text("not a key\n")
    with pytest.raises(InvalidInput, match=r"key\.pub: not a minisign public key file"):
        read_public_key(path)


def test_the_cli_refuses_an_unknown_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["trust", "add", str(tmp_path / "k.pub"), "--guest", "x", "--channel", "relase", "--trust", "t.toml"]
    assert exit_code(args) == 2
    assert "invalid choice: 'relase'" in capsys.readouterr().err


def test_concurrent_adds_lose_no_key(tmp_path: Path) -> None:
    trust = tmp_path / "trust.toml"
    keys = [new_public_key() for _ in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda key: add_key(trust, key, RELEASE_HELLO), keys))
    assert sorted(k.key_id for k in load_trust(trust).keys) == sorted(key_id_of(k) for k in keys)


@pytest.mark.parametrize("edit", ["add", "remove"])
def test_a_hand_edit_made_while_ngixi_edits_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str) -> None:
    """The operator revokes a key by hand while `ngixi trust add` (or remove) runs: the command wrote back the text
    it had read, with the revoked key in it. It now refuses and leaves the operator's edit."""
    trust = tmp_path / "trust.toml"
    revoked, kept, added = new_public_key(), new_public_key(), new_public_key()
    for key in (revoked, kept, added):
        add_key(trust, key, RELEASE_HELLO)
    remove_key(trust, key_id_of(added))
    by_hand = "".join(trust.read_text().partition("[[keys]]")[1:]).split("\n\n", 1)[1]  # the first table cut out
    real_trusted = editing._trusted

    def revoking_meanwhile(text: str, trust_file: Path) -> TrustStore:
        trust.write_text(by_hand)
        return real_trusted(text, trust_file)

    monkeypatch.setattr(editing, "_trusted", revoking_meanwhile)
    with pytest.raises(InvalidInput, match=r"it changed while ngixi edited it .*nothing was written: run the command"):
        add_key(trust, added, RELEASE_HELLO) if edit == "add" else remove_key(trust, key_id_of(kept))
    assert trust.read_text() == by_hand
    assert [k.key_id for k in load_trust(trust).keys] == [key_id_of(kept)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trust.toml"]


def test_add_under_a_permissive_umask_makes_directories_no_one_else_may_change(tmp_path: Path) -> None:
    """Under umask 000 the directories made above a new trust file were world-writable, so a loader looking for it
    (the project's or the user's) then refused it as one another user could swap."""
    trust = tmp_path / "etc" / "ngixi" / "trust.toml"
    umask = os.umask(0)
    try:
        add_key(trust, new_public_key(), RELEASE_HELLO)
    finally:
        os.umask(umask)
    assert unsafe_because(trust) is None
    assert stat.S_IMODE(trust.parent.stat().st_mode) == 0o755  # others may read the keys trusted
