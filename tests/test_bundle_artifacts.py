"""Artifacts in bundles: stored compressed when it pays, checked before they are inflated, inflation capped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.bundle import ArtifactInput, render_index
from ngixi_build.runtime.bundle_format import ArtifactMeta, BundleIndex, StoredForm, parse_index, trusted_comment
from ngixi_build.runtime.bundle_reader import read_bundle
from ngixi_build.runtime.errors import VerificationError
from ngixi_build.runtime.targets import host_triple
from ngixi_build.runtime.verify import load_trust
from ngixi_build.signing import sign
from tests.conftest import WASMER_ENGINE, KeyFiles, entries, exit_code, make_bundle, repack
from tests.test_bundle import WASM

COMPRESSIBLE = b"wasmer-universal" + bytes(60_000)
ARTIFACT = f"aot/{host_triple()}.wasmer"


def artifact(directory: Path, data: bytes) -> ArtifactInput:
    """Artifact bytes with this host's metadata; these tests never deserialize them."""
    ours = WASMER_ENGINE
    path = directory / "artifact.wasmer"
    path.write_bytes(data)
    meta = ArtifactMeta(
        ours.engine,
        ours.engine_version,
        ours.binding_version,
        ours.compiler,
        host_triple(),
        ("sse2",),
        hashlib.sha256(WASM).hexdigest(),
    )
    return ArtifactInput(path, meta)


def bundle_with(tmp_path: Path, keys: KeyFiles, data: bytes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_bundle(tmp_path / "b", keys.key, wasm=WASM, artifacts=[artifact(tmp_path, data)])


def resign(path: Path, keys: KeyFiles, change: Callable[[BundleIndex], BundleIndex]) -> None:
    """Rewrites the index and signs it again with the trusted key: a signer that lies."""
    items = entries(path)
    index = change(parse_index(items[0][1], source="test"))
    index_bytes = render_index(index)
    items[0] = (items[0][0], index_bytes)
    items[1] = (items[1][0], sign(index_bytes, keys.key, trusted_comment=trusted_comment(index)))
    repack(path, items)


def replace_member(index: BundleIndex, position: int, **changes: object) -> BundleIndex:
    updated = list(index.members)
    updated[position] = dataclasses.replace(updated[position], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(index, members=tuple(updated))


def test_compressible_artifact_is_stored_with_zlib_and_read_back(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, COMPRESSIBLE)
    bundle = read_bundle(path, load_trust(keys.trust))
    (member,) = bundle.index.artifacts
    assert member.stored is not None and member.stored.encoding == "zlib"
    assert (member.size, member.sha256) == (len(COMPRESSIBLE), hashlib.sha256(COMPRESSIBLE).hexdigest())
    assert dict(entries(path))[ARTIFACT] != COMPRESSIBLE
    assert len(dict(entries(path))[ARTIFACT]) == member.stored.size < member.size // 10
    assert bundle.data(member) == COMPRESSIBLE


def test_incompressible_artifact_is_stored_as_it_is(tmp_path: Path, keys: KeyFiles) -> None:
    noise = os.urandom(4096)
    path = bundle_with(tmp_path, keys, noise)
    (member,) = read_bundle(path, load_trust(keys.trust)).index.artifacts
    assert member.stored is None
    assert dict(entries(path))[ARTIFACT] == noise


def test_damaged_artifact_is_refused_by_a_full_read_and_when_used(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, COMPRESSIBLE)
    items = entries(path)
    name, data = items[-1]
    items[-1] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    repack(path, items)
    trust = load_trust(keys.trust)
    message = rf"member {ARTIFACT} \(stored\) does not match its digest"
    with pytest.raises(VerificationError, match=message):
        read_bundle(path, trust)
    lazy = read_bundle(path, trust, check_artifacts=False)
    assert lazy.data(lazy.index.member("wasm")) == WASM
    with pytest.raises(VerificationError, match=message):
        lazy.data(lazy.index.artifacts[0])


def test_inflating_stops_at_the_signed_size(tmp_path: Path, keys: KeyFiles) -> None:
    bomb = bytes(8 * 1024 * 1024)
    path = bundle_with(tmp_path, keys, bomb)
    resign(path, keys, lambda index: replace_member(index, 2, size=1000))
    lazy = read_bundle(path, load_trust(keys.trust), check_artifacts=False)
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not decompress to the 1000 bytes"):
        lazy.data(lazy.index.artifacts[0])


def test_a_full_read_checks_the_digest_of_the_inflated_bytes_too(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, COMPRESSIBLE)
    resign(path, keys, lambda index: replace_member(index, 2, sha256="0" * 64))
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not match its digest"):
        read_bundle(path, load_trust(keys.trust))


@pytest.mark.parametrize(
    ("position", "stored", "message"),
    [
        (1, StoredForm("zlib", 10, "0" * 64), r"members\[1\]\.stored: only artifacts carry this table"),
        (2, StoredForm("lz4", 10, "0" * 64), r"members\[2\]\.stored\.encoding: 'lz4' is not one of \('zlib',\)"),  # type: ignore[arg-type]
        (2, StoredForm("zlib", -1, "0" * 64), r"members\[2\]\.stored\.size: -1 is outside"),
    ],
)
def test_index_refuses_bad_stored_tables(
    tmp_path: Path, keys: KeyFiles, position: int, stored: StoredForm, message: str
) -> None:
    path = bundle_with(tmp_path, keys, COMPRESSIBLE)
    resign(path, keys, lambda index: replace_member(index, position, stored=stored))
    with pytest.raises(VerificationError, match=message):
        read_bundle(path, load_trust(keys.trust))


def test_inspect_shows_stored_size_and_artifact_metadata(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bundle_with(tmp_path, keys, COMPRESSIBLE)
    assert exit_code(["inspect", "--json", "--trust", str(keys.trust), str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    member = document["members"][2]
    assert member["stored"]["encoding"] == "zlib" and member["stored"]["size"] < member["size"] == len(COMPRESSIBLE)
    assert member["artifact"]["triple"] == host_triple() and member["artifact"]["cpu_features"] == ["sse2"]
    assert document["members"][1]["stored"] is None
    engine = document["host"]["engine"]
    fit = None if engine == "wasmer" else f"built by wasmer, this host runs {engine}"
    assert member["misfit"] == fit
    assert exit_code(["inspect", "--trust", str(keys.trust), str(path)]) == 0
    text = capsys.readouterr().out
    assert f"stored zlib {member['stored']['size']:>9}" in text
    assert f"wasmer 2.1.1 (binding 1.1.0) cranelift {host_triple()} cpu=sse2" in text
    assert f"→ {fit or 'fits this host'}" in text
