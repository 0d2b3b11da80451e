"""Attacks on what a process keeps between loads, by a signer trusted for one guest only: nothing one bundle's
load keeps (host AOT cache entries, a .wasm's declaration) serves another bundle's code or checks."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from ngixi_build.stages.bundle import render_index
from ngixi_build.stages.signing import TrustEntry, render_trust_file, sign
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.env import EnvOptions
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE, AotCache, CacheUnavailable, default_cache_dir
from ngixi_runtime.loading.isolated import child_environment
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from ngixi_runtime.spec.bundle_format import INDEX_NAME, SIGNATURE_NAME, BundleIndex, trusted_comment
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, entries, make_bundle, make_key, repack
from tests.run.unit.test_working_directory import foreign_link
from tests.wasmgen import ADD_BODY, Func, module

ADD = '[exports.add]\nparams = ["i32", "i32"]\nresults = ["i32"]\n'
HONEST = module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
FORGED = module(functions=[Func("add", ["i32", "i32"], ["i32"], b"\x41\xe6\x04")])  # i32.const 614


def _manifest(guest: str) -> str:
    return f'[guest]\nname = "{guest}"\nversion = "0.1.0"\n\n{ADD}'


def _signers(directory: Path) -> tuple[KeyFiles, KeyFiles, Path]:
    """A victim's key and an attacker's, each trusted for its own guest only, without native code."""
    victim = make_key(directory / "victim", guests=["victim"], native_code=False)
    attacker = make_key(directory / "attacker", guests=["evil"], native_code=False)
    trust = directory / "trust.toml"
    entries_ = [
        TrustEntry(victim.key, ("victim",), ("dev",), "victim", native_code=False),
        TrustEntry(attacker.key, ("evil",), ("dev",), "attacker", native_code=False),
    ]
    trust.write_bytes(render_trust_file(entries_))
    return victim, attacker, trust


def _resigned(bundle: Path, keys: KeyFiles, index: BundleIndex) -> Path:
    """The bundle with `index` in place of its own, signed by `keys`: what a signer may make of its own guest."""
    data = render_index(index)
    signature = sign(data, keys.key, trusted_comment=trusted_comment(index))
    repack(bundle, [(INDEX_NAME, data), (SIGNATURE_NAME, signature), *entries(bundle)[2:]])
    return bundle


def _claiming(bundle: Path, keys: KeyFiles, trust: Path, **digests: str | int) -> Path:
    index = read_bundle(bundle, load_trust(trust)).index
    wasm = index.member("wasm")._replace(**digests)  # type: ignore[arg-type]
    members = tuple(wasm if m.kind == "wasm" else m for m in index.members)
    return _resigned(bundle, keys, index._replace(members=members))


def _sum(bundle: Path, trust: Path, engine: str) -> int:
    with open_tenant(bundle, trust_file=trust, isolated=False, engine=engine) as tenant:
        assert isinstance(tenant, InProcessTenant)
        result = tenant.call("add", [2, 3])
        assert result.metrics.outcome == "ok", result
        return int(result.values[0])


@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_a_claimed_sha256_does_not_poison_the_host_aot_cache(tmp_path: Path, engine: str) -> None:
    """The attacker's index gives its own .wasm the victim's SHA-256 (a load checks the BLAKE3 alone): the code
    compiled from the attacker's .wasm must never be what the victim's next load runs."""
    pytest.importorskip(engine)
    victim, attacker, trust = _signers(tmp_path)
    honest = make_bundle(tmp_path / "v", victim.key, wasm=HONEST, manifest=_manifest("victim"), guest="victim")
    evil = make_bundle(tmp_path / "e", attacker.key, wasm=FORGED, manifest=_manifest("evil"), guest="evil")
    evil = _claiming(evil, attacker, trust, sha256=hashlib.sha256(HONEST).hexdigest())
    with contextlib.suppress(NgixiError):  # refusing the forged claim is as good
        _sum(evil, trust, engine)
    assert _sum(honest, trust, engine) == 5


@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_a_claimed_blake3_borrows_nothing_but_the_code_it_names(tmp_path: Path, engine: str) -> None:
    """An index giving its own .wasm the victim's BLAKE3 and size, after the victim's load kept what its .wasm
    declares and its compiled code, is refused: it ran the victim's code (the host AOT cache's entry, whose hit
    reads no .wasm), under the attacker's manifest and grants, code its signer never shipped, though `ngixi verify`
    refuses the bundle. The cache's entries are its signers' now."""
    pytest.importorskip(engine)
    victim, attacker, trust = _signers(tmp_path)
    honest = make_bundle(tmp_path / "v", victim.key, wasm=HONEST, manifest=_manifest("victim"), guest="victim")
    assert _sum(honest, trust, engine) == 5
    padded = FORGED + bytes(len(HONEST) - len(FORGED)) if len(FORGED) < len(HONEST) else FORGED
    evil = make_bundle(tmp_path / "e", attacker.key, wasm=padded, manifest=_manifest("evil"), guest="evil")
    honest_member = read_bundle(honest, load_trust(trust)).index.member("wasm")
    evil = _claiming(evil, attacker, trust, blake3=honest_member.blake3, size=honest_member.size)
    with pytest.raises(VerificationError, match=r"member guest\.wasm does not match its digest in the signed index"):
        _sum(evil, trust, engine)


def test_trust_taken_back_holds_on_the_next_load(tmp_path: Path) -> None:
    """Kept signature verdicts and parsed trust files serve exact bytes only: a key dropped from the trust file,
    or one trusted for another guest, is refused on the next load of a bundle it signed."""
    victim, attacker, trust = _signers(tmp_path)
    bundle = make_bundle(tmp_path / "v", victim.key, wasm=HONEST, manifest=_manifest("victim"), guest="victim")
    read_bundle(bundle, load_trust(trust))
    trust.write_bytes(render_trust_file([TrustEntry(attacker.key, ("evil",), ("dev",), "attacker")]))
    with pytest.raises(VerificationError, match=r"which .* does not trust; "):
        read_bundle(bundle, load_trust(trust))
    trust.write_bytes(render_trust_file([TrustEntry(victim.key, ("evil",), ("dev",), "victim, elsewhere")]))
    with pytest.raises(VerificationError, match=r"may not sign guest 'victim'"):
        read_bundle(bundle, load_trust(trust))


def test_loads_of_one_signed_index_share_no_mutable_option(tmp_path: Path, keys: KeyFiles) -> None:
    """A host changing what one load's manifest fixes (an env variable) changes nothing of the next load's."""
    manifest = _manifest("hello") + '\n[capabilities.env]\nfixed = { MODE = "production" }\n'
    bundle = make_bundle(tmp_path, keys.key, wasm=HONEST, manifest=manifest)
    first = read_bundle(bundle, load_trust(keys.trust)).manifest.options(EnvOptions)
    assert first is not None
    with pytest.raises(TypeError):
        first.fixed["MODE"] = "debug"  # type: ignore[index]
    again = read_bundle(bundle, load_trust(keys.trust)).manifest.options(EnvOptions)
    assert again is not None and dict(again.fixed) == {"MODE": "production"}


@pytest.mark.parametrize("way", ["below it", "through a symbolic link in it"])
def test_a_cache_directory_another_user_could_swap_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """$XDG_CACHE_HOME in a directory any user may write (a /tmp/x someone else made): whoever made it could put
    a directory of their choice in the place of ngixi/aot, whose entries are machine code this host runs."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    cache_home = shared
    if way != "below it":
        (tmp_path / "mine").mkdir()
        cache_home = shared / "cache"
        cache_home.symlink_to(tmp_path / "mine")
    monkeypatch.delenv(CACHE_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    with pytest.raises(CacheUnavailable, match=f"{shared} may be written by any user"):
        AotCache.opened()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a symbolic link to another user needs root")
def test_a_cache_directory_through_another_users_link_is_not_used(tmp_path: Path) -> None:
    """NGIXI_AOT_CACHE=/tmp/aot, a link another user made in sticky /tmp to a directory of the operator's, was
    used: its owner could point it at any directory of the operator's whose files they can have the operator write
    (a guest's rw preopen), and the next load ran those bytes as this host's compiled code."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (tmp_path / "mine").mkdir(mode=0o700)
    link = foreign_link(shared / "aot", tmp_path / "mine" / "not-yet")
    with pytest.raises(CacheUnavailable, match=f"{link} is a symbolic link of user id 65534"):
        AotCache.opened(link)
    assert list((tmp_path / "mine").iterdir()) == []  # nothing made where their link leads


def test_a_cache_the_host_may_not_use_is_not_used_by_its_tenants_either(tmp_path: Path) -> None:
    """A relative $NGIXI_AOT_CACHE is refused (it would name a directory of whatever folder ngixi runs in): an
    isolated tenant's child was handed no cache then, and found the default one, silently."""
    host = {CACHE_VARIABLE: "cache", "HOME": str(tmp_path)}
    with pytest.raises(CacheUnavailable, match=r"\$NGIXI_AOT_CACHE: must be an absolute path"):
        default_cache_dir(host)
    child = child_environment(environ=host)
    with pytest.raises(CacheUnavailable, match=r"\$NGIXI_AOT_CACHE: must be an absolute path"):
        default_cache_dir(child)
