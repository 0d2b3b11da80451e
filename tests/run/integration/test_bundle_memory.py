"""A sparse, unsigned, nearly 1 GiB bundle watched for the reader's peak memory, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ngixi_runtime.spec.bundle_format import INDEX_NAME, SIGNATURE_NAME
from ngixi_runtime.spec.targets import host_triple
from tests.conftest import KeyFiles, sparse_archive
from tests.peak_rss import DEFINE_PEAK_RSS_KIB

MIB = 1024 * 1024
ARTIFACT = f"aot/{host_triple()}.wasmer"
# Reads the bundle both ways, expecting refusals; prints how much the peak resident size grew, in KiB, a second later.
CHILD = (
    DEFINE_PEAK_RSS_KIB
    + """
import sys, time
from pathlib import Path
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import VerificationError
from ngixi_runtime.trust.signatures import load_trust

path, trust, prefetch = Path(sys.argv[1]), load_trust(Path(sys.argv[2])), sys.argv[3]
before = peak_rss_kib()
for defer_members in (False, True):
    try:
        read_bundle(path, trust, defer_members=defer_members, prefetch=[prefetch])
    except VerificationError as refusal:
        print(refusal, file=sys.stderr)
    else:
        sys.exit("accepted")
time.sleep(1)  # a thread left reading after the refusal would grow the peak meanwhile
print(peak_rss_kib() - before)
"""
)
HEAD = [
    (INDEX_NAME, b'{"format":3}\n'),
    (SIGNATURE_NAME, b"untrusted comment: none\nRUQ=\n"),
    ("manifest.toml", b"x"),
    ("guest.wasm", b"\0asm"),
]


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        ([ARTIFACT] * 15, "appears twice"),
        ([f"aot/x86_64-unknown-linux-v{n}.wasmer" for n in range(15)], "not minisign's format"),
    ],
    ids=["one artifact name", "distinct artifact names"],
)
def test_an_unsigned_sparse_bundle_costs_no_memory(
    tmp_path: Path, keys: KeyFiles, names: list[str], reason: str
) -> None:
    path = sparse_archive(tmp_path / "sparse.ngx", HEAD, [(name, 64 * MIB - 1) for name in names])
    assert path.stat().st_size > 900 * MIB
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(keys.trust), names[0]],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert child.stderr.count(reason) == 2
    assert int(child.stdout) < 8 * 1024  # KiB: headers, the index and the signature only
