"""Signing keys: the release key is only ever loaded, from a path given explicitly."""

from __future__ import annotations

import os
from pathlib import Path

import minisign
import pytest

from ngixi_build.stages.signing import (
    PASSWORD_VARIABLE,
    RELEASE_KEY_VARIABLE,
    SigningKey,
    ensure_dev_key,
    generate_key_pair,
    release_signing_key,
)
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.trust.project_trust import registered_dev_keys
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles


def test_release_key_from_an_explicit_path(keys: KeyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RELEASE_KEY_VARIABLE, raising=False)
    assert release_signing_key(keys.secret).key_id == keys.key.key_id


def test_release_key_from_the_environment(keys: KeyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELEASE_KEY_VARIABLE, str(keys.secret))
    assert release_signing_key().key_id == keys.key.key_id


def test_release_signing_without_a_key_fails_and_creates_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(RELEASE_KEY_VARIABLE, raising=False)
    with pytest.raises(InvalidInput, match=f"^{RELEASE_KEY_VARIABLE} is not set: .* no key is ever created$"):
        release_signing_key()
    missing = tmp_path / "release.key"
    monkeypatch.setenv(RELEASE_KEY_VARIABLE, str(missing))
    with pytest.raises(  # named as the variable gave it: the operator may not know it is set
        InvalidInput,
        match=rf"^\${RELEASE_KEY_VARIABLE} \({missing}\): no release signing key there; it is never created",
    ):
        release_signing_key()
    assert list(tmp_path.iterdir()) == []


def test_release_key_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_text("untrusted comment: nothing\nAAAA\n")
    with pytest.raises(InvalidInput, match=f"^{junk}: not a minisign secret key"):
        release_signing_key(junk)


def test_encrypted_release_key_needs_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key_pair(secret_path=tmp_path / "plain.key", public_path=tmp_path / "k.pub", comment="test")
    secret = minisign.SecretKey.from_file(tmp_path / "plain.key")
    secret.encrypt("correct horse", opslimit=1 << 15, memlimit=1 << 20)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(bytes(secret) + b"\n")
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    with pytest.raises(InvalidInput, match=f"the key is encrypted; put its password in {PASSWORD_VARIABLE}"):
        release_signing_key(encrypted)
    monkeypatch.setenv(PASSWORD_VARIABLE, "wrong")
    with pytest.raises(InvalidInput, match=f"wrong password in {PASSWORD_VARIABLE}"):
        release_signing_key(encrypted)
    monkeypatch.setenv(PASSWORD_VARIABLE, "correct horse")
    assert release_signing_key(encrypted).key_id == key.key_id


def test_dev_key_files_lost_in_a_killed_build_are_written_again(tmp_path: Path) -> None:
    keys_dir, trust = tmp_path / "keys", tmp_path / "trust.toml"
    key, created = ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    public = (keys_dir / "dev.pub").read_bytes()
    (keys_dir / "dev.pub").unlink()
    trust.unlink()
    again, created_again = ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    assert (created, created_again) == (True, False) and again.key_id == key.key_id
    assert (keys_dir / "dev.pub").read_bytes() == public
    assert load_trust(trust).keys[0].key_id == key.key_id


def test_a_dev_trust_file_from_before_native_code_is_given_it_unless_edited(tmp_path: Path) -> None:
    keys_dir, trust = tmp_path / "keys", tmp_path / "trust.toml"
    ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    assert load_trust(trust).keys[0].native_code
    old = trust.read_text().replace("native_code = true\n", "")
    trust.write_text(old)
    ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    assert load_trust(trust).keys[0].native_code
    edited = old.replace('["dev"]', '["dev", "release"]')
    trust.write_text(edited)
    ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    assert trust.read_text() == edited and not load_trust(trust).keys[0].native_code


def _racing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_dir: Path) -> SigningKey:
    """Makes another process's key pair at keys_dir/dev.{key,pub} while ours is being generated."""
    theirs = generate_key_pair(secret_path=tmp_path / "theirs.key", public_path=tmp_path / "theirs.pub", comment="t")
    generate = minisign.KeyPair.generate

    def meanwhile() -> minisign.KeyPair:
        keys_dir.mkdir(parents=True, exist_ok=True)
        for suffix in ("key", "pub"):
            (keys_dir / f"dev.{suffix}").write_bytes((tmp_path / f"theirs.{suffix}").read_bytes())
        return generate()

    monkeypatch.setattr(minisign.KeyPair, "generate", meanwhile)
    return theirs


def test_a_key_made_by_another_process_meanwhile_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / "keys"
    _racing(tmp_path, monkeypatch, keys_dir)
    secret = (tmp_path / "theirs.key").read_bytes()
    with pytest.raises(InvalidInput, match=r"dev\.key: already exists; move it away or choose another path$"):
        generate_key_pair(secret_path=keys_dir / "dev.key", public_path=keys_dir / "dev.pub", comment="ours")
    assert (keys_dir / "dev.key").read_bytes() == secret and sorted(os.listdir(keys_dir)) == ["dev.key", "dev.pub"]


def test_two_builds_making_the_first_dev_key_at_once_end_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir, trust = tmp_path / "keys", tmp_path / "trust.toml"
    theirs = _racing(tmp_path, monkeypatch, keys_dir)
    key, created = ensure_dev_key(keys_dir=keys_dir, trust_file=trust)
    assert not created and key.key_id == theirs.key_id == load_trust(trust).keys[0].key_id


def test_only_a_dev_key_this_build_made_is_recorded_as_this_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project that came with .ngixi/keys/dev.key (a tarball, a clone): building it uses that key, but never
    records it, so its author's later bundles get no native code from a dev trust file found near them."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    shipped = tmp_path / "theirs" / "keys"
    theirs = generate_key_pair(secret_path=shipped / "dev.key", public_path=shipped / "dev.pub", comment="theirs")
    used, created = ensure_dev_key(keys_dir=shipped, trust_file=tmp_path / "theirs" / "trust.toml")
    assert not created and used.key_id == theirs.key_id
    assert theirs.public_base64 not in registered_dev_keys()
    ours, created = ensure_dev_key(keys_dir=tmp_path / "ours" / "keys", trust_file=tmp_path / "ours" / "trust.toml")
    assert created and registered_dev_keys() == (ours.public_base64,)
