"""A release-profile watch writes `doit build`'s outputs; doit notices what it rewrote, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.targets import host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.build.integration.test_watch import HELLO_SOURCE, new_project
from tests.integration import WatchProcess, ran_tasks, run, set_targets

pytestmark = pytest.mark.integration


def add(project: Project) -> int:
    bundle = read_bundle(project.bundle_path("hello", "0.1.0"), load_trust(project.dev_trust_file))
    (result,) = open_guest(bundle).call("add", (2, 3))
    assert isinstance(result, int)
    return result


def test_doit_build_redoes_the_tasks_whose_outputs_a_release_watch_rewrote(tmp_path: Path) -> None:
    project = new_project(tmp_path, ("hello",))
    set_targets(project.root, [host_triple()])  # no background steps: the first rebuild is the whole bundle
    run(project.root, "doit", "bundle:hello")
    source = project.guests_dir / "hello" / "assembly" / "index.ts"
    watch = WatchProcess(project.root, ("ngixi", "watch", "--release"))
    try:
        watch.until("watching")
        # The watcher's first build wrote the same bytes as doit did: nothing for doit to redo.
        assert ran_tasks(run(project.root, "doit", "bundle:hello").stdout) == set()
        source.write_text(HELLO_SOURCE.replace("return a + b;", "return a + b + 700;"))
        assert watch.until("hello: rebuilt", "hello: failed")[-1].text.startswith("hello: rebuilt")
    finally:
        assert watch.stop() == 0
    assert add(project) == 705
    source.write_text(HELLO_SOURCE)  # back to the sources doit built from, so its own records look current
    ran = ran_tasks(run(project.root, "doit", "bundle:hello").stdout)
    assert {"compile:hello", f"precompile:hello@{host_triple()}", "bundle:hello"} <= ran, ran
    assert add(project) == 5
