"""Times a clean build, a no-op build and a one-guest rebuild in a temporary copy of the project.

Run: .venv/bin/python -m bench.build_times [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration import copy_project, run


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def edit_hello(project: Path, round_number: int) -> None:
    source = project / "guests" / "hello" / "assembly" / "index.ts"
    source.write_text(
        source.read_text() + f"\nexport function bench{round_number}(): i32 {{ return {round_number}; }}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = copy_project(Path(scratch) / "project")
        clean_with_toolchain = timed(lambda: run(project, "doit", "build"))
        run(project, "doit", "clean")
        clean = timed(lambda: run(project, "doit", "build"))
        noop = [timed(lambda: run(project, "doit", "build")) for _ in range(options.repeat)]
        rebuild = []
        for n in range(options.repeat):
            edit_hello(project, n)
            rebuild.append(timed(lambda: run(project, "doit", "build")))
    print(f"clean build incl. toolchain install: {clean_with_toolchain:6.2f} s")
    print(f"clean build (toolchain present):     {clean:6.2f} s")
    print(f"no-op build (median of {options.repeat}):         {statistics.median(noop):6.2f} s")
    print(f"one-guest rebuild (median of {options.repeat}):   {statistics.median(rebuild):6.2f} s")


if __name__ == "__main__":
    main()
