"""A trust file is parsed once per exact text in a process, and read anew on every load: an edit holds at once."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.trust.project_trust import chosen_trust
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, entries, exit_code, make_bundle, make_key, repack
from tests.run.unit.test_loader import MANIFEST, WASM


def bundle_of(directory: Path, keys: KeyFiles) -> Path:
    return make_bundle(directory / "bundle", keys.key, wasm=WASM, manifest=MANIFEST)


def add(bundle: Path, trust: Path) -> tuple[int, ...]:
    with open_tenant(bundle, trust_file=trust, isolated=False) as tenant:
        return tenant.call("add", (2, 3)).values


def test_the_same_text_is_parsed_once_and_named_by_its_own_path(tmp_path: Path, keys: KeyFiles) -> None:
    store = load_trust(keys.trust)
    assert load_trust(keys.trust) is store
    copy = tmp_path / "copy.toml"
    shutil.copyfile(keys.trust, copy)
    assert load_trust(copy).source == str(copy)
    assert load_trust(copy).keys == store.keys


def test_an_edited_trust_file_holds_at_the_next_load(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = bundle_of(tmp_path, keys)
    trusted = keys.trust.read_bytes()
    assert add(bundle, keys.trust) == (5,)
    narrowed = make_key(tmp_path / "narrowed", guests=("other",))
    keys.trust.write_bytes(trusted.replace(b'"*"', b'"other"'))
    with pytest.raises(VerificationError, match="may not sign guest 'hello'"):
        add(bundle, keys.trust)
    keys.trust.write_bytes(narrowed.trust.read_bytes())  # another key altogether
    with pytest.raises(VerificationError):
        add(bundle, keys.trust)
    keys.trust.write_bytes(trusted)
    assert add(bundle, keys.trust) == (5,)


@pytest.mark.parametrize("content", [b"[[keys]\n", b"\xff\xfe", b"keys = []\n"])
def test_a_bad_trust_file_is_refused_each_time_and_not_remembered(
    tmp_path: Path, keys: KeyFiles, content: bytes
) -> None:
    bundle = bundle_of(tmp_path, keys)
    trusted = keys.trust.read_bytes()
    keys.trust.write_bytes(content)
    for _ in range(2):
        with pytest.raises(InvalidInput, match=f"^{keys.trust}: "):
            add(bundle, keys.trust)
    keys.trust.write_bytes(trusted)
    assert add(bundle, keys.trust) == (5,)


def _entry(public_key: str, key_id: str, guests: str) -> str:
    return f'[[keys]]\nid = "{key_id}"\npublic_key = "{public_key}"\nguests = [{guests}]\nchannels = ["dev"]\n'


def test_two_entries_for_one_key_id_are_refused_naming_both(tmp_path: Path, keys: KeyFiles) -> None:
    """A signature names its key by id alone, and the first entry with that id was taken: a signer trusted for one
    guest who made a key of another signer's id (minisign's id is any 8 bytes) shadowed that signer's entry,
    found or named, for every load (or a second entry for one key was silently never read)."""
    victim = load_trust(keys.trust).keys[0]
    raw = base64.b64decode(load_trust(make_key(tmp_path / "other").trust).keys[0].public_key.to_base64())
    forged = base64.b64encode(raw[:2] + int(victim.key_id, 16).to_bytes(8, "little") + raw[10:]).decode()
    public = victim.public_key.to_base64().decode()
    trust = tmp_path / "trust.toml"
    trust.write_text(_entry(public, victim.key_id, '"hello"') + _entry(forged, victim.key_id, '"*"'))
    message = (
        rf"^{trust}: keys\[0\] \(line 1\) and keys\[1\] \(line 6\) both trust key {victim.key_id}, and a signature "
        r"is matched by key id alone; keep one entry for it \(list all its guests and channels there\) and delete "
        r"the other$"
    )
    with pytest.raises(InvalidInput, match=message):
        load_trust(trust)
    with pytest.raises(InvalidInput, match=message):
        chosen_trust(trust, found=True)


def test_a_found_trust_file_names_the_entries_of_a_repeated_id_as_written(tmp_path: Path, keys: KeyFiles) -> None:
    """A found project's trust file is scoped to its dev entries before it is read: a repeated id was numbered
    among those (keys[0] for the file's keys[1]) without lines, and one in an entry for release alone passed there
    where --trust refused the same file."""
    victim = load_trust(keys.trust).keys[0]
    public = victim.public_key.to_base64().decode()
    release = _entry(public, victim.key_id, '"*"').replace('["dev"]', '["release"]')
    trust = tmp_path / "trust.toml"
    trust.write_text(release + _entry(public, victim.key_id, '"hello"'))
    message = rf"^{trust}: keys\[0\] \(line 1\) and keys\[1\] \(line 6\) both trust key {victim.key_id}"
    with pytest.raises(InvalidInput, match=message):
        chosen_trust(trust, found=True)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('comment = "test key"', "comment = 5"), r"keys\[0\]\.comment: must be a string$"),
        (
            ('comment = "test key"', 'coment = "x"'),
            r"keys\[0\]: unknown keys \['coment'\]; did you mean \"comment\"\?$",
        ),
        (("channels = ", "# channels = "), r"keys\[0\]: missing channels \(a key entry holds id, public_key, guests, "),
        (("[[keys]]", '[[key]]\nid = "x"\n[[keys]]'), r"trust\.toml: unknown keys \['key'\]; did you mean \"keys\"\?$"),
    ],
    ids=["comment not a string", "misspelt key", "missing channels", "misspelt table"],
)
def test_a_trust_entry_says_which_key_is_wrong_or_missing(
    tmp_path: Path, keys: KeyFiles, edit: tuple[str, str], message: str
) -> None:
    """A comment of another type was taken (and printed by `ngixi trust list` as its Python repr), a misspelt key
    got no suggestion, and a missing public_key read as one of an invalid length."""
    trust = tmp_path / "trust.toml"
    trust.write_text(keys.trust.read_text().replace(*edit))
    with pytest.raises(InvalidInput, match=message):
        load_trust(trust)


def test_a_public_key_given_as_the_trust_file_is_named_as_such(keys: KeyFiles) -> None:
    """`--trust release.pub` was 'not valid TOML: Expected '=' after a key', which says nothing of trust files."""
    with pytest.raises(InvalidInput, match=r"test\.pub: a minisign key file, not a trust file: .*`ngixi trust add "):
        load_trust(keys.public)


# Ed25519 points of small order (libsodium's list, which minisign refuses): y = 0, 1, p - 1 and the two of order 8.
_P = 2**255 - 19
_ORDER_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
SMALL_ORDER_KEYS = [
    bytes(32),
    (1).to_bytes(32, "little"),
    (_P - 1).to_bytes(32, "little"),
    _ORDER_8,
    (_P - int.from_bytes(_ORDER_8, "little")).to_bytes(32, "little"),
    _P.to_bytes(32, "little"),  # 0 spelt another way (not canonical)
]


def _trust_file_of(directory: Path, ed25519: bytes, key_id: bytes = bytes(range(8))) -> Path:
    line = base64.b64encode(b"Ed" + key_id + ed25519).decode()
    shown = f"{int.from_bytes(key_id, 'little'):X}"
    trust = directory / "forged-trust.toml"
    trust.write_text(f'[[keys]]\nid = "{shown}"\npublic_key = "{line}"\nguests = ["hello"]\nchannels = ["dev"]\n')
    return trust


def test_a_bundle_no_one_signed_never_verifies_against_a_key_of_small_order(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trust entry a vendor handed over with the identity point as its Ed25519 key (`ngixi trust add their.pub`):
    R = identity, S = 0 verifies any message against it, so anyone, a registry or a man in the middle, could sign
    that guest's bundles (with its native code, had the key native_code). minisign (libsodium) refuses such keys."""
    bundle = bundle_of(tmp_path, keys)
    identity = (1).to_bytes(32, "little")
    items = entries(bundle)
    signed = base64.b64encode(b"ED" + bytes(range(8)) + identity + bytes(32)).decode()
    comment = items[1][1].decode().splitlines()[2]
    global_line = base64.b64encode(identity + bytes(32)).decode()
    forged = f"untrusted comment: nobody\n{signed}\n{comment}\n{global_line}\n".encode()
    repack(bundle, [items[0], ("bundle.json.minisig", forged), *items[2:]])
    trust = _trust_file_of(tmp_path, identity)
    assert exit_code(["verify", "--trust", str(trust), "--state-dir", str(tmp_path / "s"), str(bundle)]) == 2
    assert "keys[0].public_key: not a minisign public key (its Ed25519 key" in capsys.readouterr().err


@pytest.mark.parametrize("ed25519", SMALL_ORDER_KEYS, ids=range(len(SMALL_ORDER_KEYS)))
def test_every_ed25519_key_of_small_order_is_refused(tmp_path: Path, ed25519: bytes) -> None:
    with pytest.raises(InvalidInput, match="small order"):
        load_trust(_trust_file_of(tmp_path, ed25519))


def test_trust_add_refuses_a_public_key_of_small_order_naming_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = tmp_path / "vendor.pub"
    public.write_text(f"untrusted comment: vendor\n{base64.b64encode(b'Ed' + bytes(8) + bytes(32)).decode()}\n")
    trust = tmp_path / "trust.toml"
    assert exit_code(["trust", "add", str(public), "--guest", "hello", "--channel", "dev", "--trust", str(trust)]) == 2
    assert f"{public}: not a minisign public key file (its Ed25519 key is a point of small order" in (
        capsys.readouterr().err
    )
    assert not trust.exists()
