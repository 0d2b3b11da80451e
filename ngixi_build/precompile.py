"""Ahead-of-time artifacts: one Wasmer/Cranelift artifact per guest and target triple."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from .runtime import engine
from .runtime.bundle_format import ArtifactMeta
from .runtime.errors import InvalidInput
from .runtime.fsutil import write_atomic
from .runtime.targets import Target


def metadata_path(artifact_path: Path) -> Path:
    return artifact_path.with_suffix(".json")


def precompile_guest(*, wasm_path: Path, target: Target, out_path: Path) -> ArtifactMeta:
    """Cross-compiles the .wasm for `target`; writes the artifact and its metadata beside it."""
    wasm = wasm_path.read_bytes()
    artifact = engine.precompile(
        wasm,
        triple=target.triple,
        cpu_features=target.cpu_features,
        what=f"precompile {wasm_path} for {target.triple}",
    )
    ours = engine.current_engine()
    meta = ArtifactMeta(
        engine=ours.engine,
        engine_version=ours.engine_version,
        binding_version=ours.binding_version,
        compiler=ours.compiler,
        triple=target.triple,
        cpu_features=target.cpu_features,
        wasm_sha256=hashlib.sha256(wasm).hexdigest(),
    )
    write_atomic(out_path, artifact)
    write_atomic(metadata_path(out_path), (json.dumps(dataclasses.asdict(meta), indent=2) + "\n").encode())
    return meta


def read_metadata(artifact_path: Path) -> ArtifactMeta:
    path = metadata_path(artifact_path)
    try:
        raw = json.loads(path.read_text())
        return ArtifactMeta(**{**raw, "cpu_features": tuple(raw["cpu_features"])})
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InvalidInput(f"{path}: unreadable artifact metadata ({error}); run `doit clean` then build") from None
