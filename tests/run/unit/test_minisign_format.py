"""The loader's own reading of minisign's formats agrees with py-minisign's on every signature and key."""

from __future__ import annotations

import base64
from collections.abc import Callable

import minisign
import pytest

from ngixi_runtime.errors import VerificationError
from ngixi_runtime.trust.minisign_format import FormatError, public_key_from_base64, signature_from_bytes
from ngixi_runtime.trust.signatures import TrustedKey, TrustStore, key_id_of, verify_index

PAIR = minisign.KeyPair.generate()
OTHER = minisign.KeyPair.generate()
INDEX = b'{"guest": "hello"}'
COMMENT = "ngixi-bundle guest=hello version=0.1.0"


def signed(data: bytes = INDEX, *, prehash: bool = True, pair: minisign.KeyPair = PAIR) -> bytes:
    return bytes(pair.secret_key.sign(data, prehash=prehash, trusted_comment=COMMENT))


def trust(public: minisign.PublicKey = PAIR.public_key) -> TrustStore:
    ours = public_key_from_base64(public.to_base64())
    return TrustStore("trust.toml", (TrustedKey(key_id_of(public), ours, ("*",), ("dev",)),))


def ours_accept(signature: bytes, data: bytes = INDEX) -> bool:
    try:
        verify_index(data, signature, trust(), source="bundle")
    except VerificationError:
        return False
    return True


def py_minisign_accepts(signature: bytes, data: bytes = INDEX) -> bool:
    try:
        PAIR.public_key.verify(data, minisign.Signature.from_bytes(signature))
    except (minisign.Error, ValueError):
        return False
    return True


def test_the_fields_are_py_minisigns() -> None:
    theirs = minisign.Signature.from_bytes(signed())
    ours = signature_from_bytes(signed())
    assert ours.is_prehashed and theirs.is_prehashed()
    assert ours.trusted_comment == theirs.trusted_comment == COMMENT
    assert public_key_from_base64(PAIR.public_key.to_base64()).to_base64() == PAIR.public_key.to_base64()
    assert key_id_of(public_key_from_base64(PAIR.public_key.to_base64())) == key_id_of(PAIR.public_key)


def replace_line(number: int, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def edit(signature: bytes) -> bytes:
        lines = signature.split(b"\n")
        lines[number] = change(lines[number])
        return b"\n".join(lines)

    return edit


def flip_decoded(offset: int) -> Callable[[bytes], bytes]:
    def flip(line: bytes) -> bytes:
        raw = bytearray(base64.b64decode(line))
        raw[offset] ^= 1
        return base64.b64encode(bytes(raw))

    return flip


EDITS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("as made", lambda s: s),
    ("CRLF line ends", lambda s: s.replace(b"\n", b"\r\n")),
    ("trailing newline", lambda s: s + b"\n"),
    ("a fifth line", lambda s: s + b"\nmore"),
    ("three lines", lambda s: b"\n".join(s.split(b"\n")[:3])),
    ("untrusted comment without its prefix", replace_line(0, lambda line: line[2:])),
    ("untrusted comment altered", replace_line(0, lambda line: line + b" (edited)")),
    ("trusted comment altered", replace_line(2, lambda line: line + b" sequence=99")),
    ("trusted comment without its prefix", replace_line(2, lambda line: line.replace(b"trusted comment: ", b""))),
    ("trusted comment not UTF-8", replace_line(2, lambda line: line + b"\xff")),
    ("algorithm Ed instead of ED", replace_line(1, lambda line: base64.b64encode(b"Ed" + base64.b64decode(line)[2:]))),
    ("unknown algorithm", replace_line(1, lambda line: base64.b64encode(b"XX" + base64.b64decode(line)[2:]))),
    ("other key id", replace_line(1, flip_decoded(3))),
    ("flipped signature bit", replace_line(1, flip_decoded(40))),
    ("flipped global signature bit", replace_line(3, flip_decoded(5))),
    ("signature line too short", replace_line(1, lambda line: base64.b64encode(base64.b64decode(line)[:-1]))),
    ("global signature too long", replace_line(3, lambda line: base64.b64encode(base64.b64decode(line) + b"\0"))),
    ("base64 with a space", replace_line(1, lambda line: line[:8] + b" " + line[8:])),
    ("base64 without padding", replace_line(3, lambda line: line.rstrip(b"="))),
    ("empty", lambda s: b""),
]


ACCEPTED = {"as made", "CRLF line ends", "trailing newline", "untrusted comment altered"}


@pytest.mark.parametrize(("name", "edit"), EDITS, ids=[name for name, _ in EDITS])
def test_we_accept_a_prehashed_signature_exactly_when_py_minisign_does(
    name: str, edit: Callable[[bytes], bytes]
) -> None:
    signature = edit(signed())
    if name == "algorithm Ed instead of ED":  # a legacy signature: we refuse it, py-minisign checks the file itself
        assert not ours_accept(signature) and py_minisign_accepts(signed(prehash=False))
        return
    assert ours_accept(signature) == py_minisign_accepts(signature)
    assert ours_accept(signature) is (name in ACCEPTED)


def test_a_legacy_signature_is_refused_though_it_verifies() -> None:
    legacy = signed(prehash=False)
    assert py_minisign_accepts(legacy)
    with pytest.raises(VerificationError, match=r"not prehashed \(minisign -H\)"):
        verify_index(INDEX, legacy, trust(), source="bundle")


def test_other_data_and_another_keys_signature_are_refused() -> None:
    assert not ours_accept(signed(), INDEX + b" ") and not py_minisign_accepts(signed(), INDEX + b" ")
    with pytest.raises(VerificationError, match=r"which trust\.toml does not trust"):
        verify_index(INDEX, signed(pair=OTHER), trust(), source="bundle")


@pytest.mark.parametrize(
    "line",
    [
        base64.b64encode(b"ED" + bytes(40)).decode(),  # the prehashed algorithm is for signatures only
        base64.b64encode(b"Ed" + bytes(39)).decode(),
        "not base64!",
        "",
    ],
)
def test_a_key_py_minisign_refuses_is_refused(line: str) -> None:
    with pytest.raises(minisign.Error):
        minisign.PublicKey.from_base64(line)
    with pytest.raises(FormatError):
        public_key_from_base64(line)


def test_a_verdict_kept_for_exact_bytes_holds_for_those_bytes_alone() -> None:
    good = signed()
    for _ in range(2):
        assert ours_accept(good)
        assert not ours_accept(good, INDEX + b" ")
        assert not ours_accept(good, INDEX.replace(b"hello", b"hellp"))
        assert not ours_accept(signed(pair=OTHER))
    # A trust entry that names the signer's key id but holds another key: the same signature and index, refused.
    other = public_key_from_base64(OTHER.public_key.to_base64())
    posing = TrustStore("trust.toml", (TrustedKey(key_id_of(PAIR.public_key), other, ("*",), ("dev",)),))
    with pytest.raises(VerificationError, match="does not verify with key"):
        verify_index(INDEX, good, posing, source="bundle")
