"""What `doit clean` removes besides the tasks' targets: leftovers of killed builds, watch mode's outputs, and the
Python packages installed for guests that list none any more."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ngixi_build.locking import build_lock
from ngixi_build.project import Project
from ngixi_build.toolchains import python_deps
from ngixi_runtime.files import is_temporary_name

log = logging.getLogger(__name__)


def leftovers(project: Project) -> Iterator[Path]:
    """Temporaries our writers left in the build's own directories; never the sandbox or the toolchain."""
    searched = [*project.artifacts_dir.rglob("*"), *_entries(project.state_dir), *_entries(project.keys_dir)]
    return (p for p in searched if is_temporary_name(p.name))


def remove_leftovers(project: Project) -> list[Path]:
    """Removes leftover temporaries, dev-profile outputs, watch scratch files and unused Python packages; returns what
    it removed."""
    dev_outputs = dataclasses.replace(project, profile="dev").outputs_dir
    with build_lock(project.state_dir):  # exclusive: no build is writing a temporary meanwhile
        unused = python_deps.unused_installs(project.state_dir, project.guests_dir)
        removed = [*leftovers(project), dev_outputs, project.watch_dir, *unused]
        removed = [p for p in removed if os.path.lexists(p)]
        for path in removed:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return removed


def clean(project: Project) -> None:
    """`doit clean`'s own step: removes what `remove_leftovers` finds and says what it removed."""
    for path in remove_leftovers(project):
        log.info("removed %s", path.relative_to(project.root))


def _entries(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []
