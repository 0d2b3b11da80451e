"""`ngixi trust add/list/remove` on keys the real `minisign` made, checked by loading bundles they signed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import minisign
import pytest

from ngixi_build.stages.signing import load_signing_key as signing_key_of
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import VerificationError
from ngixi_runtime.trust.signatures import key_id_of, load_trust
from tests.conftest import HELLO_MANIFEST, exit_code, make_bundle
from tests.run.unit.test_bundle import WASM


def minisign_key(tool: Path, directory: Path, name: str) -> tuple[Path, Path]:
    """A key pair made by `minisign -G` (unencrypted): its public and secret key files."""
    public, secret = directory / f"{name}.pub", directory / f"{name}.key"
    subprocess.run([str(tool), "-G", "-W", "-p", str(public), "-s", str(secret)], check=True, capture_output=True)
    return public, secret


def test_trust_commands_round_trip_keys_minisign_made(
    tmp_path: Path, minisign_tool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice_pub, alice_secret = minisign_key(minisign_tool, tmp_path, "alice")
    bob_pub, bob_secret = minisign_key(minisign_tool, tmp_path, "bob")
    alice_id, bob_id = (key_id_of(minisign.PublicKey.from_file(p)) for p in (alice_pub, bob_pub))
    trust = tmp_path / "host" / "trust.toml"
    add = ["trust", "add", "--trust", str(trust)]
    assert exit_code([*add, str(alice_pub), "--guest", "hello", "--channel", "release", "--comment", "Alice"]) == 0
    assert exit_code([*add, str(bob_pub), "--guest", "other-*", "--channel", "release", "--native-code"]) == 0
    capsys.readouterr()
    assert exit_code(["trust", "list", "--trust", str(trust)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{alice_id}  guests hello; channels release; native code no  # Alice",
        f"{bob_id}  guests other-*; channels release; native code yes",
    ]
    store = load_trust(trust)  # what the loader makes of the file the commands wrote
    assert [(k.key_id, k.guests, k.native_code) for k in store.keys] == [
        (alice_id, ("hello",), False),
        (bob_id, ("other-*",), True),
    ]

    by_alice = make_bundle(tmp_path / "a", signing_key_of(alice_secret), wasm=WASM, channel="release", sequence=2)
    assert read_bundle(by_alice, store).signer.key_id == alice_id
    by_bob = make_bundle(tmp_path / "b", signing_key_of(bob_secret), wasm=WASM, channel="release", sequence=2)
    with pytest.raises(VerificationError, match=f"key {bob_id} may not sign guest 'hello'"):
        read_bundle(by_bob, store)

    assert exit_code(["trust", "remove", alice_id, "--trust", str(trust)]) == 0
    with pytest.raises(VerificationError, match=f"signed by key {alice_id}, which {trust} does not trust"):
        read_bundle(by_alice, load_trust(trust))
    other = HELLO_MANIFEST.replace('name = "hello"', 'name = "other-x"')
    signed = make_bundle(
        tmp_path / "c", signing_key_of(bob_secret), wasm=WASM, manifest=other, guest="other-x", channel="release"
    )
    assert read_bundle(signed, load_trust(trust)).signer.key_id == bob_id


def test_minisign_verifies_with_the_key_a_trust_entry_names(tmp_path: Path, minisign_tool: Path) -> None:
    """The id `ngixi trust list` prints is the one minisign prints for the same public key file."""
    public, secret = minisign_key(minisign_tool, tmp_path, "k")
    trust = tmp_path / "trust.toml"
    assert exit_code(["trust", "add", str(public), "--guest", "*", "--channel", "dev", "--trust", str(trust)]) == 0
    message = tmp_path / "message"
    message.write_bytes(b"signed by minisign")
    subprocess.run([str(minisign_tool), "-S", "-s", str(secret), "-m", str(message)], check=True, capture_output=True)
    (entry,) = load_trust(trust).keys
    verified = subprocess.run(
        [str(minisign_tool), "-V", "-p", str(public), "-m", str(message)], capture_output=True, text=True, check=True
    )
    assert "Signature and comment signature verified" in verified.stdout
    assert public.read_text().splitlines()[0].endswith(f"minisign public key {entry.key_id}")
