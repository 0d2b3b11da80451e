"""Attacks on the reader's order of work: nothing but headers, the index and its signature is read before the
signature verifies; a refused bundle leaves no reading thread and no descriptor behind."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import tarfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime.bundles import reader as bundle_reader
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.bundle_format import (
    INDEX_NAME,
    MAX_MEMBERS,
    SIGNATURE_NAME,
    BundleIndex,
    parse_index,
)
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import File, KeyFiles, entries, exit_code, make_bundle, repack, sparse_archive
from tests.run.unit.test_bundle import WASM, fake_artifacts
from tests.run.unit.test_bundle_artifacts import artifact, resign
from tests.wasmgen import Func, Imp, module

ARTIFACT = f"aot/{host_triple()}.wasmer"
MIB = 1024 * 1024
# Headers (a block each), the index, the signature and the end-of-archive check: all a refused scan may read.
SCAN_BUDGET = 128 * 1024


def unsigned_head() -> list[File]:
    return [(INDEX_NAME, b'{"format":3}\n'), (SIGNATURE_NAME, b"untrusted comment: none\nRUQ=\n")]


class Reads:
    """Every `os.pread` the reader makes, and when each ended."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.ended: list[float] = []

    def wrap(self, pread: Callable[[int, int, int], bytes]) -> Callable[[int, int, int], bytes]:
        def counted(descriptor: int, size: int, offset: int) -> bytes:
            try:
                return pread(descriptor, size, offset)
            finally:
                self.sizes.append(size)
                self.ended.append(time.monotonic())

        return counted


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    found = Reads()
    monkeypatch.setattr(os, "pread", found.wrap(os.pread))
    return found


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ranges each reading thread was started with."""
    started: list[int] = []
    start = bundle_reader._hash_on_a_thread

    def counted(extents: list[Any], finished: Any) -> None:
        started.append(len(extents))
        start(extents, finished)

    monkeypatch.setattr(bundle_reader, "_hash_on_a_thread", counted)
    return started


def open_descriptors() -> int:
    """This process's open descriptors but sockets, once the collector has closed those of objects nobody holds.
    A refusal opens no socket, and an earlier test's leftovers closed during a test would otherwise count as one of
    its own closed: test_enforcement's HTTP server answers a /slow request it gave up on seconds later, from a thread
    of its own, then closes that socket."""
    gc.collect()
    return sum(not _is_socket(fd) for fd in os.listdir("/proc/self/fd"))


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:  # closed meanwhile
        return True


def refused(path: Path, keys: KeyFiles, reason: str, **options: Any) -> None:
    with pytest.raises(VerificationError, match=reason):
        read_bundle(path, load_trust(keys.trust), **options)


def test_an_unsigned_sparse_gigabyte_of_one_artifact_name_is_refused_from_its_headers(
    tmp_path: Path, keys: KeyFiles, reads: Reads, threads: list[int]
) -> None:
    """The issue's attack: 15 members of one artifact name, 64 MiB each; once ~957 MiB were read ahead."""
    head = [*unsigned_head(), ("manifest.toml", b"x"), ("guest.wasm", b"\0asm")]
    path = sparse_archive(tmp_path / "sparse.ngx", head, [(ARTIFACT, 64 * MIB - 1)] * 15)
    assert path.stat().st_size > 900 * MIB
    tracemalloc.start()
    try:
        for defer_members in (False, True):
            refused(path, keys, f"member '{ARTIFACT}' appears twice", defer_members=defer_members, prefetch=[ARTIFACT])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(reads.sizes) < 2 * SCAN_BUDGET and peak < MIB and threads == []


def test_members_of_distinct_names_are_not_read_before_the_signature_verifies(
    tmp_path: Path, keys: KeyFiles, reads: Reads, threads: list[int]
) -> None:
    """Every header is fine, so only the signature can refuse: nothing but the index and signature is read first."""
    triples = [f"x86_64-unknown-linux-v{n}" for n in range(14)]
    declared = [("manifest.toml", 1), ("guest.wasm", 64 * MIB), *((f"aot/{t}.wasmer", 64 * MIB) for t in triples)]
    path = sparse_archive(tmp_path / "sparse.ngx", unsigned_head(), declared)
    before = open_descriptors()
    refused(path, keys, "not minisign's format", prefetch=[f"aot/{triples[0]}.wasmer"], defer_members=True)
    refused(path, keys, "not minisign's format")
    assert max(reads.sizes) < SCAN_BUDGET and sum(reads.sizes) < SCAN_BUDGET and threads == []
    assert open_descriptors() == before


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        ([("guest.wasm", 300 * MIB)], r"member guest\.wasm is \d+ bytes, over its limit of 268435456"),
        ([("guest.wasm", 8**11 - 1)], "over its limit"),
        ([("guest.wasm", 1), (ARTIFACT, 200 * MIB)], f"member {ARTIFACT} is truncated: the file ends inside it"),
        ([(INDEX_NAME, 1)], r"member 'bundle\.json' appears twice"),
        ([("guest.wasm", 1), (INDEX_NAME, 1)], r"member 'bundle\.json' appears twice"),
        ([(SIGNATURE_NAME, 1)], r"member 'bundle\.json\.minisig' appears twice"),
        ([("guest.wasm", 1), (ARTIFACT + "\n", 1)], "unexpected extra member"),
        ([("guest.wasm", 1), ("aot/x.so", 1)], r"unexpected extra member 'aot/x\.so': only artifacts"),
        (
            [("guest.wasm", 1), *((f"aot/t{n}.wasmer", 0) for n in range(MAX_MEMBERS))],
            f"more than {MAX_MEMBERS} members after the signature",
        ),
    ],
    ids=[
        "over the member cap",
        "largest octal size",
        "declared past the end of the file",
        "index named twice",
        "index named twice, later",
        "signature named twice",
        "artifact name with a newline",
        "not an artifact name",
        "many tiny members",
    ],
)
def test_headers_are_refused_before_any_member_or_the_signature_is_read(
    tmp_path: Path, keys: KeyFiles, reads: Reads, threads: list[int], *, declared: list[tuple[str, int]], reason: str
) -> None:
    """Sizes are declared, not written: the file ends right after the last header."""
    head = [*unsigned_head(), ("manifest.toml", b"x")]
    path = sparse_archive(tmp_path / "b.ngx", head, declared, cut_after_headers=True)
    refused(path, keys, reason)
    assert sum(reads.sizes) < SCAN_BUDGET and threads == []


def cut(at: Callable[[list[tarfile.TarInfo]], int]) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        with tarfile.open(path) as tar:
            position = at(tar.getmembers())
        path.write_bytes(path.read_bytes()[:position])

    return tamper


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (cut(lambda members: members[3].offset + 100), "the archive is truncated at byte"),
        (cut(lambda members: members[0].offset_data + 10), r"member bundle\.json is truncated"),
        (cut(lambda members: members[1].offset), "the archive is truncated at byte"),
        (cut(lambda members: members[-1].offset_data + 10), "is truncated: the file ends inside it"),
        (cut(lambda members: 0), "member bundle.json is missing"),
    ],
    ids=["inside a header", "inside the index", "after the index", "inside the last member", "empty"],
)
def test_truncated_archives_are_refused_before_the_signature_is_checked(
    tmp_path: Path, keys: KeyFiles, threads: list[int], tamper: Callable[[Path], None], reason: str
) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=WASM, artifacts=fake_artifacts(tmp_path / "aot"))
    tamper(path)
    if path.stat().st_size == 0:
        path.write_bytes(bytes(10240))
    refused(path, keys, reason)
    assert threads == []


@pytest.fixture
def large_bundle(tmp_path: Path, keys: KeyFiles) -> Path:
    """A signed bundle whose artifact is read ahead on a thread."""
    data = b"wasmer-universal" + random.Random(1).randbytes(4 * MIB)
    return make_bundle(tmp_path / "b", keys.key, wasm=WASM, artifacts=[artifact(tmp_path, data)])


@pytest.fixture
def slow_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Reads of the hashing thread that take a while, so that a refusal comes while one runs."""
    found = Reads()
    read_and_close = bundle_reader._read_and_close

    def slow(descriptor: int, size: int, offset: int) -> bytes:
        try:
            time.sleep(0.2)
            return read_and_close(descriptor, size, offset)
        finally:
            found.sizes.append(size)
            found.ended.append(time.monotonic())

    monkeypatch.setattr(bundle_reader, "_read_and_close", slow)
    yield found


def test_a_refusal_after_the_signature_stops_the_reading_thread_and_closes_its_descriptors(
    large_bundle: Path, keys: KeyFiles, slow_reads: Reads, threads: list[int]
) -> None:
    items = entries(large_bundle)
    items[2] = (items[2][0], items[2][1].replace(b"hello", b"hellp"))  # manifest.toml: same size, other digest
    repack(large_bundle, items)
    before = open_descriptors()
    refused(large_bundle, keys, r"member manifest\.toml does not match its digest")
    refused_at = time.monotonic()
    assert threads == [1] and all(ended <= refused_at for ended in slow_reads.ended)
    assert open_descriptors() == before


def test_a_refusal_drops_the_ranges_the_thread_has_not_begun(
    tmp_path: Path, keys: KeyFiles, slow_reads: Reads, threads: list[int]
) -> None:
    inputs = []
    for triple in ("aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"):
        (tmp_path / triple).mkdir()
        made = artifact(tmp_path / triple, random.Random(triple).randbytes(MIB))
        inputs.append(dataclasses.replace(made, meta=made.meta._replace(triple=triple)))
    bundle = make_bundle(tmp_path / "b", keys.key, wasm=WASM, artifacts=inputs)
    items = entries(bundle)
    items[2] = (items[2][0], items[2][1].replace(b"hello", b"hellp"))
    repack(bundle, items)
    before = open_descriptors()
    refused(bundle, keys, r"member manifest\.toml does not match its digest")
    assert threads == [2] and [size for size in slow_reads.sizes if size == MIB] == [MIB]  # the other: never read
    assert open_descriptors() == before


def test_a_verified_bundle_is_still_read_ahead(large_bundle: Path, keys: KeyFiles, threads: list[int]) -> None:
    bundle = read_bundle(large_bundle, load_trust(keys.trust), defer_members=True, prefetch=[ARTIFACT])
    assert threads == [1]
    assert bundle.data(bundle.index.by_path(ARTIFACT)).startswith(b"wasmer-universal")


def relabel_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[BundleIndex], BundleIndex]:
    def relabel(index: BundleIndex) -> BundleIndex:
        manifest = {**index.manifest, "guest": dict(index.manifest["guest"])}
        change(manifest)
        return index._replace(manifest=manifest)

    return relabel


def other_wasm(index: BundleIndex) -> BundleIndex:
    member = index.members[2]
    assert member.artifact is not None
    moved = member._replace(artifact=member.artifact._replace(wasm_sha256="0" * 64))
    return index._replace(members=(*index.members[:2], moved))


def unknown_engine(index: BundleIndex) -> BundleIndex:
    member = index.members[2]
    assert member.artifact is not None
    renamed = member._replace(path=f"aot/{host_triple()}.cwasm", artifact=member.artifact._replace(engine="cwasm"))
    return index._replace(members=(*index.members[:2], renamed))


def rename_guest(manifest: dict[str, Any]) -> None:
    manifest["guest"]["name"] = "other"


def change_version(manifest: dict[str, Any]) -> None:
    manifest["guest"]["version"] = "9.9.9"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (relabel_manifest(rename_guest), r'guest\.name: "other" must match the file name "hello\.toml"'),
        (relabel_manifest(change_version), r"guest\.version: 9\.9\.9 differs from the signed index's 0\.1\.0"),
        (other_wasm, r"members\[2\]\.artifact\.wasm_sha256: built from another guest\.wasm than this bundle's"),
        (unknown_engine, r"members\[2\]\.artifact\.engine: 'cwasm' is not one of"),
    ],
    ids=["guest name", "guest version", "artifact from another wasm", "unknown engine"],
)
def test_verify_refuses_what_a_load_refuses(
    large_bundle: Path,
    keys: KeyFiles,
    change: Callable[[BundleIndex], BundleIndex],
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    resign(large_bundle, keys, change)
    before = open_descriptors()
    for defer_members in (False, True):
        refused(large_bundle, keys, reason, defer_members=defer_members, prefetch=[ARTIFACT])
    assert open_descriptors() == before
    assert exit_code(["verify", str(large_bundle), "--trust", str(keys.trust)]) == 3
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "Traceback" not in error


def test_an_index_listing_more_members_than_the_limit_is_refused() -> None:
    index = {
        "format": 3,
        "guest": "hello",
        "version": "0.1.0",
        "channel": "dev",
        "profile": "release",
        "sequence": 1,
        "manifest": {},
        "members": [{}] * (MAX_MEMBERS + 1),
    }
    with pytest.raises(VerificationError, match=f"lists {MAX_MEMBERS + 1} members, over the limit of {MAX_MEMBERS}"):
        parse_index(json.dumps(index).encode(), source="test")


@pytest.mark.parametrize(
    ("wasm", "reason"),
    [
        (
            module(imports=[Imp("ngixi", "not_a_host_function")], functions=[Func("add", ["i32", "i32"], ["i32"])]),
            "not_a_host_function",
        ),
        (module(functions=[Func("add", ["i32", "i32"], ["i32"])], memory=(1, None)), "declares no maximum"),
        (module(functions=[Func("sub", ["i32", "i32"], ["i32"])]), "add"),
    ],
    ids=["unknown import", "memory without a maximum", "missing export"],
)
def test_verify_refuses_a_wasm_a_load_refuses(
    tmp_path: Path, keys: KeyFiles, wasm: bytes, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_bundle(tmp_path, keys.key, wasm=wasm)
    with pytest.raises(NgixiError, match=reason):
        open_guest(read_bundle(path, load_trust(keys.trust), defer_members=True))
    assert exit_code(["verify", str(path), "--trust", str(keys.trust)]) != 0
    assert reason in capsys.readouterr().err
