"""Artifacts in bundles: stored as they are, read lazily by the loader and checked before use."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from ngixi_build.stages.bundle import ArtifactInput, render_index
from ngixi_build.stages.signing import sign
from ngixi_runtime.bundles import reader as bundle_reader
from ngixi_runtime.bundles.reader import VerifiedBundle, read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.spec.bundle_format import ArtifactMeta, BundleIndex, parse_index, trusted_comment
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import WASMER_ENGINE, KeyFiles, entries, exit_code, make_bundle, repack
from tests.run.unit.test_bundle import WASM

ARTIFACT_BYTES = b"wasmer-universal" + bytes(100_000)  # over _WORTH_A_THREAD: read ahead on a thread
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
    updated[position] = updated[position]._replace(**changes)  # type: ignore[arg-type]
    return index._replace(members=tuple(updated))


def test_artifact_is_stored_as_it_is_and_read_back(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    bundle = read_bundle(path, load_trust(keys.trust))
    (member,) = bundle.index.artifacts
    assert (member.size, member.sha256) == (len(ARTIFACT_BYTES), hashlib.sha256(ARTIFACT_BYTES).hexdigest())
    assert dict(entries(path))[ARTIFACT] == ARTIFACT_BYTES == bundle.data(member)


PREFETCH_WAYS = ["when used", "read ahead", "read ahead of another"]


def lazy_read(path: Path, keys: KeyFiles, way: str) -> VerifiedBundle:
    """The loader's read; the artifact hashed when used, or while the signature is checked."""
    ahead = {"read ahead": [ARTIFACT], "read ahead of another": ["aot/x86_64-apple-darwin.wasmer"]}.get(way, [])
    return read_bundle(path, load_trust(keys.trust), defer_members=True, prefetch=ahead)


@pytest.mark.parametrize("way", PREFETCH_WAYS)
def test_lazily_read_artifact_is_the_signed_one(tmp_path: Path, keys: KeyFiles, way: str) -> None:
    data = b"wasmer-universal" + random.Random(way).randbytes(700_000)
    lazy = lazy_read(bundle_with(tmp_path, keys, data), keys, way)
    assert lazy.data(lazy.index.member("wasm")) == WASM
    assert lazy.data(lazy.index.artifacts[0]) == data


@pytest.mark.parametrize("way", PREFETCH_WAYS)
def test_damaged_artifact_is_refused_by_a_full_read_and_when_used(tmp_path: Path, keys: KeyFiles, way: str) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    items = entries(path)
    name, data = items[-1]
    items[-1] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    repack(path, items)
    message = rf"member {ARTIFACT} does not match its digest"
    with pytest.raises(VerificationError, match=message):
        read_bundle(path, load_trust(keys.trust))
    lazy = lazy_read(path, keys, way)
    assert lazy.data(lazy.index.member("wasm")) == WASM
    with pytest.raises(VerificationError, match=message):
        lazy.data(lazy.index.artifacts[0])


def test_damaged_wasm_is_refused_by_a_lazy_read_when_used(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    items = entries(path)
    position = next(n for n, (name, _) in enumerate(items) if name == "guest.wasm")
    items[position] = ("guest.wasm", WASM[:-1] + bytes([WASM[-1] ^ 1]))
    repack(path, items)
    lazy = read_bundle(path, load_trust(keys.trust), defer_members=True)
    with pytest.raises(VerificationError, match=r"member guest\.wasm does not match its digest"):
        lazy.data(lazy.index.member("wasm"))


def test_artifact_replaced_after_the_read_is_refused_when_used(tmp_path: Path, keys: KeyFiles) -> None:
    """The lazy read checks the bytes it reads, not the file that was there when the bundle was verified."""
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    lazy = read_bundle(path, load_trust(keys.trust), defer_members=True)
    items = entries(path)
    items[-1] = (items[-1][0], ARTIFACT_BYTES[:-1] + b"\1")
    repack(path, items)
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not match its digest"):
        lazy.data(lazy.index.artifacts[0])
    path.write_bytes(path.read_bytes()[:2048])
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} is truncated"):
        lazy.data(lazy.index.artifacts[0])


@pytest.mark.parametrize("way", PREFETCH_WAYS)
def test_a_lying_blake3_is_refused_by_both_reads(tmp_path: Path, keys: KeyFiles, way: str) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    resign(path, keys, lambda index: replace_member(index, 2, blake3="0" * 64))
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not match its digest"):
        read_bundle(path, load_trust(keys.trust))
    lazy = lazy_read(path, keys, way)
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not match its digest"):
        lazy.data(lazy.index.artifacts[0])


def test_a_lying_sha256_is_refused_by_a_full_read_while_loads_check_only_blake3(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    resign(path, keys, lambda index: replace_member(index, 2, sha256="0" * 64))
    with pytest.raises(VerificationError, match=rf"member {ARTIFACT} does not match its digest"):
        read_bundle(path, load_trust(keys.trust))
    lazy = read_bundle(path, load_trust(keys.trust), defer_members=True, prefetch=(ARTIFACT,))
    assert lazy.data(lazy.index.artifacts[0]) == ARTIFACT_BYTES


def test_index_refuses_artifact_metadata_on_other_members(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    resign(path, keys, lambda index: replace_member(index, 1, artifact=index.members[2].artifact))
    with pytest.raises(VerificationError, match=r"members\[1\]\.artifact: only artifacts carry this object"):
        read_bundle(path, load_trust(keys.trust))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("compiler", "\x1b]0;pwned\x07"),
        ("engine_version", "2.1.1\nngixi: ok"),
        ("binding_version", "1.1.0 \u202e"),
        ("cpu_features", ("sse2", "avx\x1b[2J")),
    ],
)
def test_index_refuses_artifact_metadata_that_is_not_a_plain_word(
    tmp_path: Path, keys: KeyFiles, field: str, value: object
) -> None:
    """These strings are the signer's to choose and `ngixi inspect` and a load's note show them."""
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    meta = artifact(tmp_path, ARTIFACT_BYTES).meta
    lie = meta._replace(**{field: value})  # type: ignore[arg-type]
    resign(path, keys, lambda index: replace_member(index, 2, artifact=lie))
    with pytest.raises(VerificationError, match=rf"members\[2\]\.artifact\.{field}: .*letters, digits and _\.\+-"):
        read_bundle(path, load_trust(keys.trust))


def test_inspect_shows_artifact_metadata(tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    assert exit_code(["inspect", "--json", "--trust", str(keys.trust), str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    member = document["members"][2]
    assert member["size"] == len(ARTIFACT_BYTES) and "stored" not in member
    assert member["artifact"]["triple"] == host_triple() and member["artifact"]["cpu_features"] == ["sse2"]
    engine = document["host"]["engine"]
    fit = None if engine == "wasmer" else f"built by wasmer, this host runs {engine}"
    assert member["misfit"] == fit
    assert exit_code(["inspect", "--trust", str(keys.trust), str(path)]) == 0
    text = capsys.readouterr().out
    digests = f"sha256 {member['sha256'][:16]}  blake3 {member['blake3'][:16]}"
    assert f"{ARTIFACT:<40} {len(ARTIFACT_BYTES):>10}  {digests}" in text
    assert member["blake3"] == blake3.blake3(ARTIFACT_BYTES).hexdigest()
    assert f"wasmer 2.1.1 (binding 1.1.0) cranelift {host_triple()} cpu=sse2" in text
    assert f"→ {fit or 'fits this host'}" in text


def test_a_read_that_fails_on_the_hashing_thread_is_reported_by_the_load(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)

    def failing_read(descriptor: int, size: int, offset: int) -> bytes:
        os.close(descriptor)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(bundle_reader, "_read_and_close", failing_read)
    lazy = lazy_read(path, keys, "read ahead")
    with pytest.raises(InvalidInput, match=r"hello-0\.1\.0\.ngx: cannot read the bundle: Input/output error"):
        lazy.data(lazy.index.artifacts[0])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_a_member_read_ahead_and_never_used_leaves_no_descriptor_open(tmp_path: Path, keys: KeyFiles) -> None:
    path = bundle_with(tmp_path, keys, ARTIFACT_BYTES)
    open_before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        lazy_read(path, keys, "read ahead")
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/fd")) > open_before and time.monotonic() < deadline:
        time.sleep(0.01)  # the hashing thread closes its descriptor once it has read the member
    assert len(os.listdir("/proc/self/fd")) <= open_before  # fewer if an earlier test's thread closed one meanwhile
