"""Writes signed, byte-reproducible bundles (see docs/bundle-format.md)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from ngixi_build.stages.signing import SigningKey, sign
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import atomic_output, read_input_bytes, toml_tables
from ngixi_runtime.spec.bundle_format import (
    FORMAT_VERSION,
    INDEX_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    WASM_NAME,
    ArtifactMeta,
    BuildProfile,
    BundleIndex,
    Channel,
    Member,
    MemberKind,
    artifact_path,
    trusted_comment,
)


@dataclass(frozen=True)
class ArtifactInput:
    path: Path
    meta: ArtifactMeta


def _member(path: str, kind: MemberKind, data: bytes, artifact: ArtifactMeta | None = None) -> Member:
    return Member(path, kind, len(data), hashlib.sha256(data).hexdigest(), blake3.blake3(data).hexdigest(), artifact)


def _manifest_table(path: Path, text: bytes) -> dict[str, Any]:
    """The manifest's TOML table, for the index; every value a manifest field takes has a JSON form."""
    try:
        table = toml_tables(text.decode("utf-8"), source=str(path))
        json.dumps(table, allow_nan=False)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not a valid TOML manifest: {error}") from None
    except (TypeError, ValueError):
        raise NgixiError(f"{path}: holds a date, time, inf or nan, which no manifest field takes; remove it") from None
    return table


def render_index(index: BundleIndex) -> bytes:
    """The index as canonical JSON: sorted keys, no spaces, ASCII only, one final newline."""

    def member_table(member: Member) -> dict[str, Any]:
        table: dict[str, Any] = {
            "path": member.path,
            "kind": member.kind,
            "size": member.size,
            "sha256": member.sha256,
            "blake3": member.blake3,
        }
        if member.artifact is not None:
            table["artifact"] = {
                **member.artifact._asdict(),
                "cpu_features": list(member.artifact.cpu_features),
            }
        return table

    document = {
        "format": index.format,
        "guest": index.guest,
        "version": index.version,
        "channel": index.channel,
        "profile": index.profile,
        "sequence": index.sequence,
        "members": [member_table(m) for m in index.members],
        "manifest": index.manifest,
    }
    return (
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode() + b"\n"
    )


def _tar_entry(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_bundle(
    *,
    guest: str,
    version: str,
    manifest_path: Path,
    wasm_path: Path,
    artifacts: Sequence[ArtifactInput],
    key: SigningKey,
    channel: Channel,
    sequence: int,
    out_path: Path,
    profile: BuildProfile = "release",
) -> BundleIndex:
    """Writes the bundle atomically; the same inputs always give the same bytes."""
    if channel == "release" and profile != "release":
        raise NgixiError(f"{out_path}: a {profile}-profile build cannot be signed on the release channel")
    payload = {MANIFEST_NAME: read_input_bytes(manifest_path, what="the manifest"), WASM_NAME: wasm_path.read_bytes()}
    members = [
        _member(MANIFEST_NAME, "manifest", payload[MANIFEST_NAME]),
        _member(WASM_NAME, "wasm", payload[WASM_NAME]),
    ]
    wasm_sha256 = members[1].sha256
    for artifact in sorted(artifacts, key=lambda a: artifact_path(a.meta.triple, a.meta.engine)):
        if artifact.meta.wasm_sha256 != wasm_sha256:
            raise NgixiError(f"{artifact.path}: built from another {wasm_path.name}; rebuild the artifact")
        name = artifact_path(artifact.meta.triple, artifact.meta.engine)
        payload[name] = artifact.path.read_bytes()
        members.append(_member(name, "artifact", payload[name], artifact.meta))
    manifest = _manifest_table(manifest_path, payload[MANIFEST_NAME])
    index = BundleIndex(FORMAT_VERSION, guest, version, channel, sequence, tuple(members), manifest, profile)
    index_bytes = render_index(index)
    signature = sign(index_bytes, key, trusted_comment=trusted_comment(index))
    with (
        atomic_output(out_path) as stream,
        tarfile.open(fileobj=stream, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        _tar_entry(tar, INDEX_NAME, index_bytes, sequence)
        _tar_entry(tar, SIGNATURE_NAME, signature, sequence)
        for member in members:
            _tar_entry(tar, member.path, payload[member.path], sequence)
    return index
