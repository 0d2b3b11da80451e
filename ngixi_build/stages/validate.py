"""The build's validate step: the manifest's schema, then the .wasm against the manifest.

It refuses what a load on any engine would refuse of the .wasm, with the loader's own checks
(guest/check.py, guest/limits.py), so that the build never signs a bundle the loader refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

from ngixi_build.toolchains.component_world import read_component_world
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_input_bytes, sha256_of, write_atomic
from ngixi_runtime.guest.check import check_component, check_core_guest
from ngixi_runtime.guest.component_memory import component_memory_problems
from ngixi_runtime.guest.limits import compile_cost_problem
from ngixi_runtime.guest.manifest import Manifest, ManifestError, load_manifest
from ngixi_runtime.spec.bundle_format import MAX_MEMBER_BYTES
from ngixi_runtime.spec.wasm import read_module_info
from ngixi_runtime.trust.policy import Policy


def validate(*, manifest_path: Path, wasm_path: Path | None = None, policy: Policy | None = None) -> Manifest:
    """Checks a manifest, and a .wasm against it when given, then that an operator's policy allows it.

    Raises with every problem found: a `ManifestError`, or the `PolicyError` a loader would raise.
    """
    manifest = load_manifest(manifest_path)
    if wasm_path is not None:
        problems = _problems(manifest, wasm_path)
        if problems:
            raise ManifestError(problems)
    if policy is not None:
        policy.check(manifest)
    return manifest


def _problems(manifest: Manifest, wasm_path: Path) -> list[str]:
    wasm = read_input_bytes(wasm_path, what="the .wasm", limit=MAX_MEMBER_BYTES)
    too_many = compile_cost_problem(wasm, source=str(wasm_path))  # a load refuses it before compiling it
    if too_many is not None:
        return [f"{wasm_path}: {too_many}"]
    if manifest.guest.type.is_component:
        memory_problems = component_memory_problems(manifest, wasm, source=str(wasm_path))  # refuses a core module
        return check_component(manifest, read_component_world(wasm_path)) + memory_problems
    return check_core_guest(manifest, read_module_info(wasm, source=str(wasm_path)))


def _digests(manifest_path: Path, wasm_path: Path) -> dict[str, str | None]:
    return {"manifest_sha256": sha256_of(manifest_path), "wasm_sha256": sha256_of(wasm_path)}


def validate_guest(*, manifest_path: Path, wasm_path: Path, record_path: Path) -> Manifest:
    """Validates and records what was checked, so the bundle step depends on a passed check."""
    manifest = validate(manifest_path=manifest_path, wasm_path=wasm_path)
    record = {"guest": manifest.guest.name, "version": manifest.guest.version, **_digests(manifest_path, wasm_path)}
    write_atomic(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return manifest


def check_validated(*, record_path: Path, manifest_path: Path, wasm_path: Path) -> None:
    """Raises unless the record says that this very manifest and .wasm passed validation."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    expected = _digests(manifest_path, wasm_path)
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in expected.items()):
        raise InvalidInput(f"{wasm_path}: not validated against {manifest_path} as it is now; build again")
