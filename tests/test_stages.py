"""Stage actions as doit runs them, including in workers that multiprocessing spawns."""

from __future__ import annotations

import pickle
from pathlib import Path

from doit.exceptions import TaskFailed

from ngixi_build import stages
from ngixi_build.project import Project
from ngixi_build.runtime.targets import SUPPORTED_TARGETS


def test_actions_survive_pickling_for_spawned_workers(tmp_path: Path) -> None:
    target = SUPPORTED_TARGETS["x86_64-apple-darwin"]
    action, _, _ = stages.as_action(stages.precompile, project=Project(tmp_path), guest="hello", target=target)
    assert pickle.loads(pickle.dumps(action)) == action


def test_an_ngixi_error_becomes_a_clean_task_failure(tmp_path: Path) -> None:
    action, _, _ = stages.as_action(stages.validate, project=Project(tmp_path), guest="missing")
    failure = pickle.loads(pickle.dumps(action))()
    assert isinstance(failure, TaskFailed)
    assert "missing.toml" in failure.message
