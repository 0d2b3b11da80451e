"""`ngixi trust add/list/remove` on keys the real `minisign` made, checked by loading bundles they signed."""

from __future__ import annotations

import io
import re
import stat
import subprocess
import tarfile
from pathlib import Path

import minisign
import pytest

from ngixi_build.stages.signing import load_signing_key as signing_key_of
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.spec.bundle_format import INDEX_NAME, SIGNATURE_NAME, parse_index, trusted_comment
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


HELLO_ON_RELEASE = ["trust", "add", "--guest", "hello", "--channel", "release"]


def resigned_by_minisign(bundle: Path, tool: Path, secret: Path, scratch: Path) -> Path:
    """The bundle with its index signed again by the real `minisign -S`, every other member as it was."""
    with tarfile.open(bundle) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]  # type: ignore[union-attr]
    index_bytes = dict((m.name, data) for m, data in members)[INDEX_NAME]
    index = scratch / INDEX_NAME
    index.write_bytes(index_bytes)
    comment = trusted_comment(parse_index(index_bytes, source=str(bundle)))
    subprocess.run(
        [str(tool), "-S", "-s", str(secret), "-m", str(index), "-t", comment], check=True, capture_output=True
    )
    signature = (scratch / f"{INDEX_NAME}.minisig").read_bytes()
    resigned = scratch / bundle.name
    with tarfile.open(resigned, "w", format=tarfile.USTAR_FORMAT) as archive:
        for member, original in members:
            data = signature if member.name == SIGNATURE_NAME else original
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return resigned


def test_a_bundle_the_real_minisign_signed_loads_after_trust_add(tmp_path: Path, minisign_tool: Path) -> None:
    public, secret = minisign_key(minisign_tool, tmp_path, "author")
    made = make_bundle(tmp_path / "made", signing_key_of(secret), wasm=WASM, channel="release", sequence=3)
    resigned = resigned_by_minisign(made, minisign_tool, secret, tmp_path)
    assert resigned.read_bytes() != made.read_bytes()  # minisign's own signature, not ours
    trust = tmp_path / "host" / "trust.toml"
    assert exit_code([*HELLO_ON_RELEASE, str(public), "--trust", str(trust)]) == 0
    assert read_bundle(resigned, load_trust(trust)).index.sequence == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--guest", "Hello", "--channel", "release"], r"guests\[0\]: 'Hello' can match no guest name"),
        (["--guest", "hello world", "--channel", "release"], r"guests\[0\]: 'hello world' can match no guest name"),
        (["--guest", "", "--channel", "release"], r"guests\[0\]: '' can match no guest name"),
    ],
    ids=["upper-case", "space", "empty"],
)
def test_a_guest_pattern_no_guest_could_match_is_refused_as_the_loader_refuses_it(
    tmp_path: Path, minisign_tool: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    public, _ = minisign_key(minisign_tool, tmp_path, "k")
    trust = tmp_path / "trust.toml"
    assert exit_code(["trust", "add", str(public), *options, "--trust", str(trust)]) == 2
    assert re.search(rf"^ngixi: error: {re.escape(str(trust))}: keys\[0\]\.{message}", capsys.readouterr().err)
    assert not trust.exists()


def test_the_loader_refuses_a_channel_that_does_not_exist(tmp_path: Path, minisign_tool: Path) -> None:
    public, _ = minisign_key(minisign_tool, tmp_path, "k")
    trust = tmp_path / "trust.toml"
    assert exit_code([*HELLO_ON_RELEASE, str(public), "--trust", str(trust)]) == 0
    trust.write_text(trust.read_text().replace('channels = ["release"]', 'channels = ["prod"]'))
    with pytest.raises(InvalidInput, match=r"keys\[0\]\.channels\[0\]: 'prod' is not a channel; the channels are"):
        load_trust(trust)


def test_an_edit_through_a_symlink_keeps_the_link_and_the_files_mode(tmp_path: Path, minisign_tool: Path) -> None:
    first, _ = minisign_key(minisign_tool, tmp_path, "first")
    second, _ = minisign_key(minisign_tool, tmp_path, "second")
    real, link = tmp_path / "config" / "trust.toml", tmp_path / "etc" / "trust.toml"
    add = ["--guest", "hello", "--channel", "release", "--trust", str(link)]
    real.parent.mkdir()
    link.parent.mkdir()
    link.symlink_to(real)
    assert exit_code(["trust", "add", str(first), *add]) == 0
    real.chmod(0o640)
    assert exit_code(["trust", "add", str(second), *add]) == 0
    assert link.is_symlink() and len(load_trust(link).keys) == 2
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_a_trust_file_that_is_not_toml_is_named_and_kept(
    tmp_path: Path, minisign_tool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public, _ = minisign_key(minisign_tool, tmp_path, "k")
    trust = tmp_path / "trust.toml"
    trust.write_text("[[keys]\n")
    assert exit_code([*HELLO_ON_RELEASE, str(public), "--trust", str(trust)]) == 2
    assert exit_code(["trust", "list", "--trust", str(trust)]) == 2
    assert capsys.readouterr().err.count(f"ngixi: error: {trust}: ") == 2
    assert trust.read_text() == "[[keys]\n"


def test_a_secret_key_given_as_the_public_one_is_named_as_such(
    tmp_path: Path, minisign_tool: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, secret = minisign_key(minisign_tool, tmp_path, "k")
    encrypted = minisign.KeyPair.generate().secret_key
    encrypted.encrypt("a password")
    (tmp_path / "encrypted.key").write_bytes(bytes(encrypted) + b"\n")
    for path in (secret, tmp_path / "encrypted.key"):
        assert exit_code([*HELLO_ON_RELEASE, str(path), "--trust", str(tmp_path / "trust.toml")]) == 2
        assert f"{path}: a minisign SECRET key: give its public half" in capsys.readouterr().err
