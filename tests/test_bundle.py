"""Bundle writing and verified reading, with real signatures over generated modules."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ngixi_build.runtime.bundle_reader import read_bundle
from ngixi_build.runtime.errors import VerificationError
from ngixi_build.runtime.verify import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])


def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def repack(path: Path, entries: list[tuple[str, bytes]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


def test_round_trip(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    bundle = read_bundle(path, load_trust(keys.trust))
    assert [n for n, _ in members(path)] == ["bundle.toml", "bundle.toml.minisig", "manifest.toml", "guest.wasm"]
    assert bundle.index.guest == "hello" and bundle.signer.key_id == keys.key.key_id
    assert bundle.data(bundle.index.member("wasm")) == WASM


def test_same_inputs_give_the_same_bytes(tmp_path: Path, keys: KeyFiles) -> None:
    first = make_bundle(tmp_path / "one", keys.key, wasm=WASM).read_bytes()
    second = make_bundle(tmp_path / "two", keys.key, wasm=WASM).read_bytes()
    assert first == second


def test_flipped_byte_in_the_wasm_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    entries = members(path)
    name, data = entries[3]
    entries[3] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    repack(path, entries)
    with pytest.raises(VerificationError, match=r"member guest\.wasm does not match its digest"):
        read_bundle(path, load_trust(keys.trust))


def test_edited_index_fails_the_signature(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    entries = members(path)
    entries[0] = (entries[0][0], entries[0][1].replace(b'version = "0.1.0"', b'version = "0.1.1"'))
    repack(path, entries)
    with pytest.raises(VerificationError, match="index signature does not verify"):
        read_bundle(path, load_trust(keys.trust))


def test_untrusted_key_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    other = make_key(tmp_path / "other")
    with pytest.raises(VerificationError, match=f"signed by key {keys.key.key_id}, which .* does not trust"):
        read_bundle(path, load_trust(other.trust))


def test_key_outside_its_scope_is_refused(tmp_path: Path) -> None:
    scoped = make_key(tmp_path / "k", guests=["other-*"])
    path = make_bundle(tmp_path / "b", scoped.key, wasm=WASM)
    with pytest.raises(VerificationError, match="may not sign guest 'hello' on channel 'dev'"):
        read_bundle(path, load_trust(scoped.trust))


def test_extra_member_and_path_trick_are_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    entries = members(path)
    repack(path, [*entries, ("../evil", b"x")])
    with pytest.raises(VerificationError, match=r"unexpected extra member '\.\./evil'"):
        read_bundle(path, load_trust(keys.trust))


def test_truncated_bundle_is_refused(tmp_path: Path, keys: KeyFiles) -> None:
    path = make_bundle(tmp_path / "b", keys.key, wasm=WASM)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(VerificationError):
        read_bundle(path, load_trust(keys.trust))
