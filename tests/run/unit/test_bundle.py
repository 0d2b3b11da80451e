"""Bundle writing and verified reading, with real signatures over generated modules and fake artifacts."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import tarfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from ngixi_build.stages.bundle import ArtifactInput, render_index
from ngixi_build.stages.signing import sign
from ngixi_runtime.bundles import reader as bundle_reader
from ngixi_runtime.bundles.reader import read_bundle, reopen_verified
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.loading.loader import verified_manifest
from ngixi_runtime.spec.bundle_format import (
    INDEX_NAME,
    MAX_INDEX_BYTES,
    SIGNATURE_NAME,
    ArtifactMeta,
    BundleIndex,
    Channel,
    trusted_comment,
)
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import load_trust, trusted_key_from_table
from tests.conftest import (
    HELLO_MANIFEST,
    WASMER_ENGINE,
    Entry,
    File,
    KeyFiles,
    entries,
    exit_code,
    make_bundle,
    make_key,
    repack,
)
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
TRIPLES = ("aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu")
SEQUENCE = 5


def fake_artifacts(directory: Path) -> list[ArtifactInput]:
    """Artifact members for the reader (it never deserializes them); sizes differ per triple."""
    ours = WASMER_ENGINE
    wasm_sha256 = hashlib.sha256(WASM).hexdigest()
    inputs = []
    for number, triple in enumerate(TRIPLES):
        path = directory / f"{triple}.wasmer"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"wasmer-universal" + random.Random(number).randbytes(40 + number))
        meta = ArtifactMeta(
            ours.engine, ours.engine_version, ours.binding_version, ours.compiler, triple, (), wasm_sha256
        )
        inputs.append(ArtifactInput(path, meta))
    return inputs


def build(directory: Path, keys: KeyFiles, *, channel: Channel = "dev", manifest: str = HELLO_MANIFEST) -> Path:
    artifacts = fake_artifacts(directory / "aot")
    return make_bundle(
        directory, keys.key, wasm=WASM, manifest=manifest, channel=channel, sequence=SEQUENCE, artifacts=artifacts
    )


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def flip(data: bytes, position: int = -1) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 1
    return bytes(changed)


@dataclass
class Scenario:
    """A valid bundle (sequence 5, two fake artifacts), its keys, and what the reader is given."""

    path: Path
    keys: KeyFiles
    directory: Path
    state: Path
    trust: Path

    @property
    def items(self) -> list[File]:
        return entries(self.path)

    def edit(self, position: int, change: Callable[[bytes], bytes]) -> None:
        items = self.items
        name, data = items[position]
        items[position] = (name, change(data))
        repack(self.path, items)

    def index(self) -> BundleIndex:
        return read_bundle(self.path, load_trust(self.keys.trust)).index

    def resign(self, index: BundleIndex, comment: str | None = None) -> None:
        """Replaces the index and its signature, signed by the trusted key."""
        data = render_index(index)
        signature = sign(data, self.keys.key, trusted_comment=comment or trusted_comment(index))
        self.resign_bytes(data, signature)

    def resign_bytes(self, index_bytes: bytes, signature: bytes) -> None:
        repack(self.path, [(INDEX_NAME, index_bytes), (SIGNATURE_NAME, signature), *self.items[2:]])

    def sign_raw(self, index_bytes: bytes) -> None:
        """Signs arbitrary index bytes with the trusted key: a signer whose index is malformed."""
        self.resign_bytes(index_bytes, sign(index_bytes, self.keys.key, trusted_comment=trusted_comment(self.index())))


@pytest.fixture
def scenario(tmp_path: Path, keys: KeyFiles, state_dir: Path) -> Scenario:
    path = build(tmp_path / "b", keys)
    return Scenario(path, keys, tmp_path, state_dir, keys.trust)


def swap_artifacts(s: Scenario) -> None:
    items = s.items
    items[4], items[5] = (items[4][0], items[5][1]), (items[5][0], items[4][1])
    repack(s.path, items)


def relabel_artifact(s: Scenario) -> None:
    s.edit(0, lambda data: data.replace(b"aarch64-unknown-linux-gnu", b"x86_64-unknown-linux-gnu"))


def relabel_and_resign(s: Scenario) -> None:
    index = s.index()
    artifact = index.members[2]
    assert artifact.artifact is not None
    moved = artifact._replace(artifact=artifact.artifact._replace(triple="x86_64-apple-darwin"))
    s.resign(index._replace(members=(*index.members[:2], moved, *index.members[3:])))


def swap_in_from_another_bundle(s: Scenario) -> None:
    other = build(s.directory / "other", s.keys, manifest=HELLO_MANIFEST + '\n[capabilities.kv]\nnamespaces = ["n"]\n')
    items = s.items
    items[2] = entries(other)[2]
    repack(s.path, items)


def insert(position: int, item: Entry) -> Callable[[Scenario], None]:
    def tamper(s: Scenario) -> None:
        items: list[Entry] = [*s.items]
        items.insert(position, item)
        repack(s.path, items)

    return tamper


def replace(position: int, item: Entry) -> Callable[[Scenario], None]:
    def tamper(s: Scenario) -> None:
        items: list[Entry] = [*s.items]
        items[position] = item
        repack(s.path, items)

    return tamper


def remove(position: int) -> Callable[[Scenario], None]:
    def tamper(s: Scenario) -> None:
        items = s.items
        del items[position]
        repack(s.path, items)

    return tamper


def move_wasm_first(s: Scenario) -> None:
    items = s.items
    items[2], items[3] = items[3], items[2]
    repack(s.path, items)


def truncate_inside_a_member(s: Scenario) -> None:
    with tarfile.open(s.path) as tar:
        cut = tar.getmembers()[3].offset_data + 10
    s.path.write_bytes(s.path.read_bytes()[:cut])


def truncate_between_members(s: Scenario) -> None:
    with tarfile.open(s.path) as tar:
        cut = tar.getmembers()[4].offset
    s.path.write_bytes(s.path.read_bytes()[:cut])


def damage_a_later_header(s: Scenario) -> None:
    with tarfile.open(s.path) as tar:
        header = tar.getmembers()[4].offset
    s.path.write_bytes(flip(s.path.read_bytes(), header + 3))


def append_after_the_end(s: Scenario) -> None:
    s.path.write_bytes(s.path.read_bytes() + b"\x7fELF" + bytes(508))


def pax_member(s: Scenario) -> None:
    items = s.items
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name == "guest.wasm":
                info.pax_headers = {"comment": "hidden"}
            tar.addfile(info, io.BytesIO(data))
    s.path.write_bytes(buffer.getvalue())


def untrusted_key(s: Scenario) -> None:
    s.trust = make_key(s.directory / "other-key").trust


def key_outside_its_guests(s: Scenario) -> None:
    scoped = make_key(s.directory / "scoped", guests=["other-*"])
    s.path = build(s.directory / "scoped-bundle", scoped)
    s.trust = scoped.trust


def key_outside_its_channels(s: Scenario) -> None:
    s.path = build(s.directory / "release-bundle", s.keys, channel="release")


def lower_sequence(s: Scenario) -> None:
    RollbackGuard.for_trust_file(s.trust, state_dir=s.state).record(
        s.index()._replace(sequence=SEQUENCE + 2), source="earlier"
    )


def oversized_index(s: Scenario) -> None:
    s.edit(0, lambda data: data + b"#" * MAX_INDEX_BYTES)


def altered_trusted_comment(s: Scenario) -> None:
    s.edit(1, lambda data: data.replace(b"sequence=5", b"sequence=9"))


def mismatched_trusted_comment(s: Scenario) -> None:
    index = s.index()
    s.resign(index, comment=trusted_comment(index._replace(sequence=9)))


def wrong_format_version(s: Scenario) -> None:
    s.resign(s.index()._replace(format=2))


def legacy_signature(s: Scenario) -> None:
    data = s.items[0][1]
    signature = s.keys.key.secret.sign(data, prehash=False, trusted_comment=trusted_comment(s.index()))
    replace(1, (SIGNATURE_NAME, bytes(signature) + b"\n"))(s)


def not_a_tar_file(s: Scenario) -> None:
    s.path.write_bytes(b"\x00junk" * 300)


def format_1_bundle(s: Scenario) -> None:
    """The layout of format 1: a TOML index in bundle.toml, signed in bundle.toml.minisig."""
    items = s.items
    repack(s.path, [("bundle.toml", b"format = 1\n"), ("bundle.toml.minisig", items[1][1]), *items[2:]])


def gnu_header(s: Scenario) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in s.items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s.path.write_bytes(buffer.getvalue())


def signed_size(s: Scenario) -> None:
    """The signature's header gives its size as -1, which Python's int(..., 8) reads and tar refuses; its bytes
    are left out, so the next header follows at once."""
    buffer = io.BytesIO()
    for position, (name, data) in enumerate(s.items):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
        kept = data if position != 1 else b""
        if position == 1:
            header[124:136], header[148:156] = b"-1".ljust(12, b"\0"), b" " * 8
            header[148:156] = b"%06o\0 " % sum(header)
        buffer.write(bytes(header) + kept + bytes(-len(kept) % 512))
    s.path.write_bytes(buffer.getvalue() + bytes(1024))


def repeated_key_in_the_index(s: Scenario) -> None:
    data = s.items[0][1]
    s.sign_raw(data.replace(b'{"channel":', b'{"guest":"other","channel":', 1))


def not_json_index(s: Scenario) -> None:
    s.sign_raw(b"format = 2\n")


def malformed_digest(algorithm: str, change: Callable[[str], str] = str.upper) -> Callable[[Scenario], None]:
    def tamper(s: Scenario) -> None:
        digest = getattr(s.index().members[0], algorithm)
        s.sign_raw(s.items[0][1].replace(digest.encode(), change(digest).encode(), 1))

    return tamper


BAD_SIGNATURE = "the index signature does not verify with key"
TAMPERS: list[tuple[str, Callable[[Scenario], None], str]] = [
    ("flipped byte in the index", lambda s: s.edit(0, flip), BAD_SIGNATURE),
    ("flipped byte in the signature", lambda s: s.edit(1, lambda d: flip(d, 0)), "not minisign's format"),
    ("flipped byte in the manifest", lambda s: s.edit(2, flip), "member manifest.toml does not match its digest"),
    ("flipped byte in the wasm", lambda s: s.edit(3, flip), "member guest.wasm does not match its digest"),
    ("flipped byte in an artifact", lambda s: s.edit(4, flip), "aarch64-unknown-linux-gnu.wasmer does not match"),
    ("artifacts swapped between triples", swap_artifacts, r"gnu\.wasmer is \d+ bytes, the index says"),
    ("artifact relabelled in the index", relabel_artifact, BAD_SIGNATURE),
    ("artifact relabelled and re-signed", relabel_and_resign, r"members\[2\]\.path: .* does not match its triple"),
    ("member from another bundle", swap_in_from_another_bundle, r"manifest\.toml is \d+ bytes, the index says \d+"),
    ("truncated inside a member", truncate_inside_a_member, "is truncated: the file ends inside it"),
    ("truncated between members", truncate_between_members, "the archive is truncated at byte"),
    ("damaged later header", damage_a_later_header, "the archive has a damaged header at byte"),
    ("negative size", signed_size, r"the archive has a damaged header at byte \d+$"),
    ("bytes after the end", append_after_the_end, "unexpected bytes after its end-of-archive marker"),
    ("extra member at the end", insert(6, ("notes.txt", b"x")), "unexpected extra member 'notes.txt'"),
    ("unknown member inside", insert(3, ("notes.txt", b"x")), "unknown member 'notes.txt' where guest.wasm belongs"),
    ("member twice", insert(3, ("manifest.toml", b"x")), "member 'manifest.toml' appears twice"),
    ("missing member", remove(5), "member aot/x86_64-unknown-linux-gnu.wasmer is missing"),
    ("members out of order", move_wasm_first, "member guest.wasm is out of order: manifest.toml comes first"),
    ("path with ..", insert(6, ("aot/../../evil", b"x")), r"member 'aot/\.\./\.\./evil' leaves the bundle"),
    ("absolute path", insert(6, ("/etc/cron.d/evil", b"x")), "member '/etc/cron.d/evil' has an absolute path"),
    ("symbolic link", replace(3, special("guest.wasm", tarfile.SYMTYPE, "/etc/passwd")), "is a symbolic link"),
    ("hard link", replace(3, special("guest.wasm", tarfile.LNKTYPE, "manifest.toml")), "is a hard link"),
    ("device", insert(6, special("aot/zero", tarfile.CHRTYPE)), "member 'aot/zero' is a device"),
    ("directory", insert(6, special("aot/more", tarfile.DIRTYPE)), "member 'aot/more' is a directory"),
    ("pax extended header", pax_member, "member 'guest.wasm' carries pax extended headers"),
    (
        "untrusted key",
        untrusted_key,
        r"which (.*trust.toml) does not trust; if you trust its signer, .*`ngixi trust add KEY\.pub --guest NAME "
        r"--channel CHANNEL --trust \1`$",
    ),
    (
        "key outside its guests",
        key_outside_its_guests,
        r"key ([0-9A-F]{1,16}) may not sign guest 'hello' on channel 'dev'; (.*trust.toml) trusts it for guests \S+ on "
        r"channels dev only\. If its signer should sign this too, `ngixi trust remove \1 --trust \2` and `ngixi trust "
        r"add`",
    ),
    ("key outside its channels", key_outside_its_channels, "may not sign guest 'hello' on channel 'release'"),
    ("lower sequence", lower_sequence, "sequence 5 of guest 'hello' on channel 'dev' is lower than 7"),
    ("oversized index", oversized_index, "member bundle.json is \\d+ bytes, over its limit of 65536"),
    ("trusted comment altered", altered_trusted_comment, "trusted comment was altered"),
    ("trusted comment not the index's", mismatched_trusted_comment, "trusted comment .* does not match the index"),
    ("wrong format version", wrong_format_version, "format: unsupported format 2; this loader reads 3: rebuild"),
    ("format 1 bundle", format_1_bundle, "a format 1 bundle .* rebuild the bundle with this ngixi-build"),
    ("GNU tar header", gnu_header, "the tar header at byte 0 is not POSIX USTAR"),
    ("repeated key in the index", repeated_key_in_the_index, r"bundle\.json: \(file\): not valid JSON: .* repeats"),
    ("index not JSON", not_json_index, r"bundle\.json: \(file\): not valid JSON: Expecting value"),
    ("upper-case sha256", malformed_digest("sha256"), r"members\[0\]\.sha256: is not a sha256 hex digest"),
    ("upper-case blake3", malformed_digest("blake3"), r"members\[0\]\.blake3: is not a blake3 hex digest"),
    (
        "a non-hex digit inside",
        malformed_digest("sha256", lambda d: d[:31] + "g" + d[32:]),
        r"\.sha256: is not a sha256",
    ),
    (
        "a short digest",
        malformed_digest("blake3", lambda d: d[:63]),
        r"\.blake3: is not a blake3 hex digest \(64",
    ),
    ("legacy signature", legacy_signature, r"not prehashed \(minisign -H\)"),
    ("not a tar file", not_a_tar_file, "not a valid bundle archive"),
]


def test_round_trip(scenario: Scenario) -> None:
    bundle = read_bundle(scenario.path, load_trust(scenario.trust))
    names = [n for n, _ in scenario.items]
    assert names == ["bundle.json", "bundle.json.minisig", "manifest.toml", "guest.wasm"] + [
        f"aot/{t}.wasmer" for t in TRIPLES
    ]
    assert bundle.index.guest == "hello" and bundle.signer.key_id == scenario.keys.key.key_id
    assert bundle.data(bundle.index.member("wasm")) == WASM


def test_same_inputs_give_the_same_bytes(tmp_path: Path, keys: KeyFiles) -> None:
    assert build(tmp_path / "one", keys).read_bytes() == build(tmp_path / "two", keys).read_bytes()


@pytest.mark.parametrize(("tamper", "reason"), [(t, r) for _, t, r in TAMPERS], ids=[n for n, _, _ in TAMPERS])
def test_tampered_bundle_is_refused_with_its_reason(
    scenario: Scenario, tamper: Callable[[Scenario], None], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(scenario)
    with pytest.raises(VerificationError, match=reason):
        read_bundle(
            scenario.path,
            load_trust(scenario.trust),
            rollback=RollbackGuard.for_trust_file(scenario.trust, state_dir=scenario.state),
        )
    assert exit_code(["verify", str(scenario.path), "--trust", str(scenario.trust)]) == 3
    error = capsys.readouterr().err
    assert re.search(reason, error) and len(error.splitlines()) == 1 and "Traceback" not in error


@pytest.mark.parametrize("tamper", [altered_trusted_comment, mismatched_trusted_comment])
def test_a_load_refuses_a_trusted_comment_that_is_not_the_index_s(
    scenario: Scenario, tamper: Callable[[Scenario], None]
) -> None:
    """A load checks only the index's signature, and holds the (then unchecked) comment to the signed index."""
    tamper(scenario)
    with pytest.raises(VerificationError, match=r"trusted comment '.*sequence=9' does not match the index"):
        read_bundle(scenario.path, load_trust(scenario.trust), defer_members=True)


def test_tamper_cases_have_distinct_reasons() -> None:
    """Only edits of the signed index share a reason: the signature is all that can tell."""
    reasons = [r for _, _, r in TAMPERS if r != BAD_SIGNATURE]
    assert len(TAMPERS) >= 15 and len(set(reasons)) == len(reasons)


def test_any_flipped_byte_is_refused_or_changes_nothing(scenario: Scenario) -> None:
    original = read_bundle(scenario.path, load_trust(scenario.trust)).contents
    data = scenario.path.read_bytes()
    trust = load_trust(scenario.trust)
    refused = 0
    for position in range(0, len(data), 37):
        scenario.path.write_bytes(flip(data, position))
        try:
            assert read_bundle(scenario.path, trust).contents == original, position
        except VerificationError:
            refused += 1
    assert refused > 0


@pytest.mark.parametrize("defer_members", [False, True])
def test_signed_manifest_must_agree_with_the_index(
    tmp_path: Path, keys: KeyFiles, defer_members: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reader refuses it, so `ngixi verify` refuses what a load refuses."""
    manifest = HELLO_MANIFEST.replace("0.1.0", "0.0.9").encode()
    path = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=manifest)
    reason = r"guest\.version: 0\.0\.9 differs from the signed index's 0\.1\.0"
    with pytest.raises(VerificationError, match=reason):
        read_bundle(path, load_trust(keys.trust), defer_members=defer_members)
    assert exit_code(["verify", str(path), "--trust", str(keys.trust)]) == 3
    assert re.search(reason, capsys.readouterr().err)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"# \xff\n", r"hello\.toml: not a valid TOML manifest: 'utf-8' codec"),
        (b"[guest.built]\nat = 1979-05-27\n", r"hello\.toml: holds a date, time, inf or nan"),
        (b"[guest.built]\nat = inf\n", r"hello\.toml: holds a date, time, inf or nan"),
    ],
)
def test_a_manifest_the_index_cannot_copy_is_never_signed(
    tmp_path: Path, keys: KeyFiles, extra: bytes, reason: str
) -> None:
    with pytest.raises(NgixiError, match=reason):
        make_bundle(tmp_path, keys.key, wasm=WASM, manifest=HELLO_MANIFEST.encode() + extra)


@pytest.mark.parametrize("shown", ["1.0", "true"])
def test_the_manifest_member_is_held_to_the_types_of_the_signed_copy(
    tmp_path: Path, keys: KeyFiles, state_dir: Path, shown: str
) -> None:
    """Python's == holds `1.0` equal to 1 (and `true` to 1): manifest.toml, what a reviewer reads in the archive,
    passed `ngixi verify` showing a value of another type than the one in the signed index the loader uses."""
    path = build(tmp_path / "b", keys, manifest=f"{HELLO_MANIFEST}\n[limits]\ntimeout_ms = 1\n")
    bundle = Scenario(path, keys, tmp_path, state_dir, keys.trust)
    index = bundle.index()
    bundle.edit(2, lambda text: text.replace(b"timeout_ms = 1\n", f"timeout_ms = {shown}\n".encode()))
    shown_bytes = bundle.items[2][1]
    member = index.member("manifest")._replace(
        size=len(shown_bytes),
        sha256=hashlib.sha256(shown_bytes).hexdigest(),
        blake3=blake3.blake3(shown_bytes).hexdigest(),
    )
    bundle.resign(index._replace(members=tuple(member if m.kind == "manifest" else m for m in index.members)))
    with pytest.raises(VerificationError, match=r"member manifest\.toml differs from the manifest in the signed index"):
        read_bundle(path, load_trust(keys.trust))


def test_loads_take_the_manifest_from_the_signed_index(scenario: Scenario) -> None:
    """A load never parses manifest.toml: its copy in the signed index is what the full read holds it to."""
    index = scenario.index()
    limits = {"log_bytes": 77}
    scenario.resign(index._replace(manifest={**index.manifest, "limits": limits}))
    with pytest.raises(VerificationError, match=r"member manifest\.toml differs from the manifest in the signed index"):
        read_bundle(scenario.path, load_trust(scenario.trust))
    loaded = read_bundle(scenario.path, load_trust(scenario.trust), defer_members=True)
    assert verified_manifest(loaded).limits.log_bytes == 77


def test_oversized_bundle_is_refused_before_reading(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_reader, "MAX_BUNDLE_BYTES", 1000)
    with pytest.raises(VerificationError, match="bytes is over the 1000 bundle limit"):
        read_bundle(scenario.path, load_trust(scenario.trust))


def test_a_bundle_replaced_while_it_is_read_is_read_from_the_file_opened(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild renames a new bundle over the path; a reader already inside the old one keeps to it."""
    newer = build(scenario.directory / "newer", scenario.keys, manifest="# rebuilt\n" + HELLO_MANIFEST)
    read_ahead = bundle_reader._Archive.hash_ahead

    def replace_then_read_ahead(
        archive: bundle_reader._Archive, members: dict[str, bundle_reader._Entry], prefetch: Collection[str]
    ) -> bundle_reader._ReadAhead:
        newer.replace(scenario.path)
        return read_ahead(archive, members, prefetch)

    monkeypatch.setattr(bundle_reader._Archive, "hash_ahead", replace_then_read_ahead)
    bundle = read_bundle(scenario.path, load_trust(scenario.trust), defer_members=True, prefetch=["manifest.toml"])
    assert bundle.data(bundle.index.member("manifest")) == HELLO_MANIFEST.encode()


def rewritten_in_place(path: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    """Overwrites one member's bytes in the bundle file itself, at the same size (a writer with access to it)."""
    with tarfile.open(path) as archive:
        member = archive.getmember(name)
    with path.open("r+b") as file:
        file.seek(member.offset_data)
        data = change(file.read(member.size))
        assert len(data) == member.size
        file.seek(member.offset_data)
        file.write(data)


def test_a_reopened_bundle_is_held_to_the_verified_index_without_the_trust_file(scenario: Scenario) -> None:
    """A tenant's child reads again the bundle its parent verified, from the same open file, with the index bytes and
    signer the parent checked: the trust file is not read again, a changed index is refused at once, and a member
    changed in place after the check is refused when read, never returned."""
    descriptor = bundle_reader.open_bundle_file(scenario.path)
    try:
        verified = read_bundle(scenario.path, load_trust(scenario.trust), defer_members=True, descriptor=descriptor)
        signer = trusted_key_from_table(verified.signer.to_table(), source="the parent")
        assert signer == verified.signer
        scenario.trust.unlink()
        source = str(scenario.path)
        again = reopen_verified(descriptor, source, verified.index_bytes, signer)
        assert (again.index, again.manifest, again.signer) == (verified.index, verified.manifest, verified.signer)
        assert again.data(again.index.member("wasm")) == WASM
        with pytest.raises(VerificationError, match="the bundle changed since it was verified"):
            reopen_verified(descriptor, source, verified.index_bytes + b" ", signer)
        rewritten_in_place(scenario.path, "guest.wasm", lambda wasm: wasm[:-1] + bytes([wasm[-1] ^ 1]))
        again = reopen_verified(descriptor, source, verified.index_bytes, signer)
        with pytest.raises(VerificationError, match=r"guest\.wasm does not match its digest in the signed index"):
            again.data(again.index.member("wasm"))
    finally:
        os.close(descriptor)
