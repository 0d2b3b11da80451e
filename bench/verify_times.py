"""Times writing and fully verifying bundles (signature, every digest, rollback record) by size.

Run: .venv/bin/python -m bench.verify_times [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from bench.build_times import timed
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.trust.rollback import RollbackGuard
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key

SIZES_MIB = (0.1, 4, 64)


def measure(directory: Path, keys: KeyFiles, size_mib: float, repeat: int) -> tuple[float, float]:
    """Median seconds to write (and sign) a bundle with a member of this size, then to verify it."""
    wasm = random.randbytes(int(size_mib * (1 << 20)))
    out = directory / f"{size_mib}"
    write = statistics.median(timed(lambda: make_bundle(out, keys.key, wasm=wasm)) for _ in range(repeat))
    trust, guard = load_trust(keys.trust), RollbackGuard.for_trust_file(keys.trust, state_dir=directory / "state")
    bundle = out / "hello-0.1.0.ngx"
    verify = statistics.median(timed(lambda: read_bundle(bundle, trust, rollback=guard)) for _ in range(repeat))
    return write, verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        keys = make_key(directory / "keys")
        for size in SIZES_MIB:
            write, verify = measure(directory, keys, size, options.repeat)
            print(
                f"{size:6.1f} MiB member: write+sign {write * 1000:8.1f} ms, "
                f"verify {verify * 1000:8.1f} ms (median of {options.repeat})"
            )


if __name__ == "__main__":
    main()
