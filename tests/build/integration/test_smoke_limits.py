"""A project's smoke calls run its guest, maybe someone else's, in the build's own process: they end at the guest's
limits there as they would in `ngixi run`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages import smoke
from ngixi_runtime.errors import NgixiError
from tests.conftest import HELLO_MANIFEST, KeyFiles, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module

SPIN_BODY = b"\x03\x40\x0c\x00\x0b" + ADD_BODY  # loop: br 0, for ever; then what `add` would return
SMOKE = """\
import sys
from pathlib import Path

from ngixi_build.stages.smoke import SmokeFailure, smoke_bundle

try:
    smoke_bundle(bundle_path=Path(sys.argv[1]), trust_file=Path(sys.argv[2]), label="m.toml")
except SmokeFailure as failure:
    print(failure)
"""


def test_a_smoke_call_that_spins_ends_at_its_timeout(tmp_path: Path, keys: KeyFiles) -> None:
    """On Wasmer, the first engine installed, which cannot stop a call in this process, a smoke call spinning for
    ever held `ngixi build` and a core. With no engine asked for ($NGIXI_ENGINE), smoke takes one that ends the call
    at limits.timeout_ms. Run in a process of its own, which the test can stop."""
    spinning = module(
        imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], SPIN_BODY)]
    )
    manifest = HELLO_MANIFEST + '[limits]\ntimeout_ms = 300\n\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    path = make_bundle(tmp_path, keys.key, wasm=spinning, manifest=manifest)
    environment = {name: value for name, value in os.environ.items() if name != "NGIXI_ENGINE"}
    finished = subprocess.run(
        [sys.executable, "-c", SMOKE, str(path), str(keys.trust)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=True,
    )
    failed = "m.toml: smoke[0]: add(2, 3) failed: hello: add exceeded its 300 ms timeout (limits.timeout_ms)\n"
    assert finished.stdout == failed


def test_a_smoke_child_stopped_at_the_time_limit_leaves_no_sandbox(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ngixi watch --smoke` kills a smoke child still running at its time limit, which then left its
    `ngixi-smoke-*` sandbox in the temporary folder, one per hung smoke run of a watcher that runs for hours."""
    spinning = module(
        imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], SPIN_BODY)]
    )
    manifest = HELLO_MANIFEST + '[limits]\ntimeout_ms = 600000\n\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=spinning, manifest=manifest)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # the child's
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # this process's
    monkeypatch.setattr(smoke, "SMOKE_TIMEOUT_SECONDS", 6.0)
    with pytest.raises(NgixiError, match=r"^m\.toml: its smoke calls gave no result within 6 s$"):
        smoke.smoke_in_child(path, trust_file=keys.trust, label="m.toml")
    assert list(temporary.iterdir()) == []


BUILD_SMOKE = """\
import sys
from pathlib import Path

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages import smoke
from ngixi_build.workflows import pipeline
from ngixi_runtime.errors import NgixiError

smoke.SMOKE_TIMEOUT_SECONDS = 5.0
project = Project(Path(sys.argv[1]))
try:
    pipeline.smoke(project, read_guest(project, "hello"))
except NgixiError as error:
    print(error)
"""


def test_the_builds_smoke_calls_are_stopped_at_the_time_limit_on_wasmer_too(tmp_path: Path, keys: KeyFiles) -> None:
    """With `NGIXI_ENGINE=wasmer`, which cannot stop a call in its process, a smoke call that spins held `doit smoke`
    and `ngixi smoke` for ever. The build runs a bundle's smoke calls in a child, as `ngixi watch
    --smoke` does, stopped at the time limit (5 s here), whatever the engine. Run in a process of its own, which the
    test can stop."""
    spinning = module(
        imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], SPIN_BODY)]
    )
    manifest = HELLO_MANIFEST + '[limits]\ntimeout_ms = 600000\n\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    project = Project(tmp_path / "project")
    (project.manifests_dir).mkdir(parents=True)
    project.manifest_path("hello").write_text(manifest)
    (project.guests_dir / "hello").mkdir(parents=True)
    built = make_bundle(tmp_path / "built", keys.key, wasm=spinning, manifest=manifest)
    project.bundle_path("hello", "0.1.0").parent.mkdir(parents=True)
    built.rename(project.bundle_path("hello", "0.1.0"))
    project.dev_trust_file.parent.mkdir(parents=True)
    shutil.copy(keys.trust, project.dev_trust_file)
    finished = subprocess.run(
        [sys.executable, "-c", BUILD_SMOKE, str(project.root)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NGIXI_ENGINE": "wasmer"},
        check=True,
    )
    assert finished.stdout == "manifests/hello.toml: its smoke calls gave no result within 5 s\n", finished.stderr
