"""What a load keeps for the next one (the members a signed index lists, what a .wasm declares) is kept per exact
bytes: an edited bundle takes effect on the next load, and one bundle's entry never serves another's bytes."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import PolicyError, VerificationError
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from ngixi_runtime.spec.bundle_format import INDEX_NAME, parse_index
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.wasmgen import Func, module

NOP = Func("nop")
MANIFEST = '[guest]\nname = "hello"\nversion = "0.1.0"\n\n[exports.nop]\n'


def _index_bytes(bundle: Path) -> bytes:
    with tarfile.open(bundle) as archive:
        member = archive.extractfile(INDEX_NAME)
        assert member is not None
        return member.read()


def test_an_edited_bundle_is_read_with_its_own_members(tmp_path: Path, keys: KeyFiles) -> None:
    trust = load_trust(keys.trust)
    small, large = module(functions=[NOP]), module(functions=[NOP], data=[(0, b"x" * 300)])
    first = read_bundle(make_bundle(tmp_path, keys.key, wasm=small, manifest=MANIFEST), trust)
    edited = read_bundle(make_bundle(tmp_path, keys.key, wasm=large, manifest=MANIFEST), trust)
    assert first.index.member("wasm").size == len(small)
    assert edited.index.member("wasm").size == len(large) and edited.contents["guest.wasm"] == large


def test_an_index_is_parsed_once_per_exact_bytes(tmp_path: Path, keys: KeyFiles) -> None:
    data = _index_bytes(make_bundle(tmp_path, keys.key, wasm=module(functions=[NOP]), manifest=MANIFEST))
    first, again = parse_index(data, source="a.ngx"), parse_index(bytes(data), source="a.ngx")
    assert again.members is first.members and again.manifest is not first.manifest
    raw = json.loads(data)
    raw["members"][1]["size"] += 1
    resized = parse_index(json.dumps(raw).encode(), source="a.ngx")
    assert resized.members[1].size == first.members[1].size + 1
    raw["members"][1]["blake3"] = "not a digest"
    with pytest.raises(VerificationError, match=r"^a.ngx: .*members\[1\]\.blake3: is not a blake3 hex digest"):
        parse_index(json.dumps(raw).encode(), source="a.ngx")


def test_a_wasm_with_other_memories_is_held_to_its_own(tmp_path: Path, keys: KeyFiles) -> None:
    """Wasmer does not cap growth, so what the .wasm declares is checked: a changed .wasm anew on its next load."""
    pytest.importorskip("wasmer")
    bounded = module(functions=[NOP])
    unbounded = module(functions=[NOP], memory=(1, None))
    for wasm in (bounded, unbounded, bounded):
        bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=MANIFEST)
        if wasm is unbounded:
            with pytest.raises(PolicyError, match=r"^hello: "):
                open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmer")
            continue
        with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmer") as tenant:
            assert isinstance(tenant, InProcessTenant) and tenant.call("nop").metrics.outcome == "ok"


def test_an_edited_manifest_takes_effect_and_a_load_owns_its_manifest(tmp_path: Path, keys: KeyFiles) -> None:
    trust, wasm = load_trust(keys.trust), module(functions=[NOP])
    granted = MANIFEST + "\n[capabilities.log]\n"
    limited = granted + "\n[limits]\ntimeout_ms = 250\n"
    first = read_bundle(make_bundle(tmp_path, keys.key, wasm=wasm, manifest=granted), trust).manifest
    again = read_bundle(make_bundle(tmp_path, keys.key, wasm=wasm, manifest=granted), trust).manifest
    edited = read_bundle(make_bundle(tmp_path, keys.key, wasm=wasm, manifest=limited), trust).manifest
    assert again == first and edited.limits.timeout_ms == 250 != first.limits.timeout_ms
    assert again.capabilities is not first.capabilities
    assert isinstance(first.capabilities, dict)
    first.capabilities.clear()  # a careless caller changes nothing of the next load's
    assert read_bundle(make_bundle(tmp_path, keys.key, wasm=wasm, manifest=granted), trust).manifest.grants == {"log"}


def test_a_changed_signature_is_checked_anew(tmp_path: Path, keys: KeyFiles) -> None:
    trust = load_trust(keys.trust)
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[NOP]), manifest=MANIFEST)
    read_bundle(bundle, trust)
    other = make_key(tmp_path / "other")
    resigned = make_bundle(tmp_path / "resigned", other.key, wasm=module(functions=[NOP]), manifest=MANIFEST)
    with pytest.raises(VerificationError, match=r"signed by key [0-9A-F]+, which .* does not trust; "):
        read_bundle(resigned, trust)
    read_bundle(bundle, trust)
