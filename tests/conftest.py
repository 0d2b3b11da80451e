"""Shared fixtures: keys, trust files, bundles made from generated modules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngixi_build.bundle import ArtifactInput, write_bundle
from ngixi_build.runtime.bundle_format import Channel
from ngixi_build.signing import SigningKey, TrustEntry, generate_key_pair, render_trust_file

REPO = Path(__file__).resolve().parents[1]

HELLO_MANIFEST = """\
[guest]
name = "hello"
version = "0.1.0"

[exports.add]
params = ["i32", "i32"]
results = ["i32"]

[capabilities.log]
"""


@dataclass(frozen=True)
class KeyFiles:
    key: SigningKey
    secret: Path
    public: Path
    trust: Path


def make_key(directory: Path, *, guests: Sequence[str] = ("*",), channels: Sequence[str] = ("dev",)) -> KeyFiles:
    directory.mkdir(parents=True, exist_ok=True)
    secret, public = directory / "test.key", directory / "test.pub"
    key = generate_key_pair(secret_path=secret, public_path=public, comment="test")
    trust = directory / "trust.toml"
    trust.write_bytes(render_trust_file([TrustEntry(key, tuple(guests), tuple(channels), "test key")]))
    return KeyFiles(key, secret, public, trust)


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return make_key(tmp_path / "keys")


def make_bundle(
    directory: Path,
    key: SigningKey,
    *,
    wasm: bytes,
    manifest: str = HELLO_MANIFEST,
    guest: str = "hello",
    version: str = "0.1.0",
    channel: Channel = "dev",
    sequence: int = 1,
    artifacts: Sequence[ArtifactInput] = (),
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path, wasm_path = directory / f"{guest}.toml", directory / f"{guest}.wasm"
    manifest_path.write_text(manifest)
    wasm_path.write_bytes(wasm)
    out = directory / f"{guest}-{version}.ngx"
    write_bundle(
        guest=guest,
        version=version,
        manifest_path=manifest_path,
        wasm_path=wasm_path,
        artifacts=artifacts,
        key=key,
        channel=channel,
        sequence=sequence,
        out_path=out,
    )
    return out
