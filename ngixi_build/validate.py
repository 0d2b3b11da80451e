"""The build's validate step: the manifest's schema, then the .wasm against the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .runtime.check import check_module
from .runtime.fsutil import write_atomic
from .runtime.manifest import Manifest, ManifestError, load_manifest
from .runtime.wasm import read_module_info


def validate(*, manifest_path: Path, wasm_path: Path | None = None) -> Manifest:
    """Checks a manifest, and a .wasm against it when given; raises with every problem found."""
    manifest = load_manifest(manifest_path)
    if wasm_path is not None:
        info = read_module_info(wasm_path.read_bytes(), source=str(wasm_path))
        problems = check_module(manifest, info)
        if problems:
            raise ManifestError(problems)
    return manifest


def validate_guest(*, manifest_path: Path, wasm_path: Path, record_path: Path) -> Manifest:
    """Validates and records what was checked, so the bundle step depends on a passed check."""
    manifest = validate(manifest_path=manifest_path, wasm_path=wasm_path)
    record = {
        "guest": manifest.guest.name,
        "version": manifest.guest.version,
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "wasm_sha256": hashlib.sha256(wasm_path.read_bytes()).hexdigest(),
    }
    write_atomic(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return manifest
