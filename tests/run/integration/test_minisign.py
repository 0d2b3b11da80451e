"""Interop with Debian's reference `minisign`: it verifies our signatures, we verify its own."""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import minisign
import pytest

from ngixi_build.stages.signing import TrustEntry, load_signing_key, render_trust_file
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.spec.bundle_format import INDEX_NAME, SIGNATURE_NAME, trusted_comment
from ngixi_runtime.trust.signatures import key_id_of, load_trust
from tests.conftest import KeyFiles, entries, make_bundle, make_key, repack
from tests.run.unit.test_bundle import WASM


def minisign_run(tool: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), *arguments], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )


def extract_index(bundle: Path, directory: Path) -> None:
    with tarfile.open(bundle) as tar:
        for name in (INDEX_NAME, SIGNATURE_NAME):
            (directory / name).write_bytes(tar.extractfile(name).read())  # type: ignore[union-attr]


def test_minisign_verifies_our_index_signature(tmp_path: Path, keys: KeyFiles, minisign_tool: Path) -> None:
    bundle = make_bundle(tmp_path / "b", keys.key, wasm=WASM, sequence=12)
    extract_index(bundle, tmp_path)
    verified = minisign_run(
        minisign_tool, "-V", "-H", "-p", str(keys.public), "-m", INDEX_NAME, "-x", SIGNATURE_NAME, cwd=tmp_path
    )
    assert verified.returncode == 0, verified.stderr
    expected = trusted_comment(read_bundle(bundle, load_trust(keys.trust)).index)
    assert f"Trusted comment: {expected}" in verified.stdout and "sequence=12" in expected


def key_with_a_leading_zero(directory: Path) -> KeyFiles:
    """A key whose id's top hex digit is 0 (1 in 16 are), which minisign prints without it."""
    for attempt in range(400):
        keys = make_key(directory / str(attempt))
        if len(keys.key.key_id) < 16:
            return keys
    pytest.fail("no key id with a leading zero in 400 keys")


@pytest.mark.parametrize("leading_zero", [False, True])
def test_minisign_spells_our_key_ids_as_we_do(
    tmp_path: Path, keys: KeyFiles, minisign_tool: Path, leading_zero: bool
) -> None:
    """minisign names both key ids when a signature and a public key disagree."""
    signer = key_with_a_leading_zero(tmp_path / "zero") if leading_zero else keys
    extract_index(make_bundle(tmp_path / "b", signer.key, wasm=WASM), tmp_path)
    other = make_key(tmp_path / "other")
    refused = minisign_run(
        minisign_tool, "-V", "-p", str(other.public), "-m", INDEX_NAME, "-x", SIGNATURE_NAME, cwd=tmp_path
    )
    assert refused.returncode != 0
    assert re.findall(r"Signature key id in \S+ is ([0-9A-F]+)", refused.stderr) == [signer.key.key_id]
    assert re.findall(r"key id in the public key is ([0-9A-F]+)", refused.stderr) == [other.key.key_id]
    assert signer.public.read_text().splitlines()[0] == f"untrusted comment: minisign public key {signer.key.key_id}"


def test_we_verify_a_signature_minisign_made(tmp_path: Path, minisign_tool: Path) -> None:
    made = minisign_run(minisign_tool, "-G", "-W", "-p", "ms.pub", "-s", "ms.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    public = minisign.PublicKey.from_file(tmp_path / "ms.pub")
    assert (tmp_path / "ms.pub").read_text().startswith(f"untrusted comment: minisign public key {key_id_of(public)}\n")
    key = load_signing_key(tmp_path / "ms.key")
    trust = tmp_path / "trust.toml"
    trust.write_bytes(render_trust_file([TrustEntry(key, ("hello",), ("release",), "made by minisign -G")]))

    bundle = make_bundle(tmp_path / "b", key, wasm=WASM, channel="release", sequence=3)
    extract_index(bundle, tmp_path)
    comment = trusted_comment(read_bundle(bundle, load_trust(trust)).index)
    signed = minisign_run(
        minisign_tool,
        "-S",
        "-H",
        "-s",
        "ms.key",
        "-m",
        INDEX_NAME,
        "-x",
        "by-minisign.sig",
        "-t",
        comment,
        cwd=tmp_path,
    )
    assert signed.returncode == 0, signed.stderr
    items = entries(bundle)
    items[1] = (SIGNATURE_NAME, (tmp_path / "by-minisign.sig").read_bytes())
    assert items[1][1] != (tmp_path / SIGNATURE_NAME).read_bytes()
    repack(bundle, items)
    verified = read_bundle(bundle, load_trust(trust))
    assert verified.signer.key_id == key_id_of(public) and verified.index.sequence == 3
    signature = minisign.Signature.from_file(tmp_path / "by-minisign.sig")
    public.verify((tmp_path / INDEX_NAME).read_bytes(), signature)  # py-minisign accepts what we accepted
