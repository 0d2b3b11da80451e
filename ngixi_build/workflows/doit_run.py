"""`ngixi build`, `ngixi smoke` and `ngixi release`: one of a project's doit tasks, run without a dodo.py.

`doit` itself reads pyproject.toml's `[tool.doit]` before it loads any dodo.py, so a broken pyproject.toml
shows doit's traceback there; here the project file is read and checked first, and doit is handed its
settings from the project's root whatever the working directory: only those that change how doit runs the tasks.
A project someone else made chooses its pyproject.toml, and doit's other settings name code doit imports (every
plugin listed, whichever is used) or a file it writes (`outfile`, which it truncates).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitConfig, DoitMain

from ngixi_build.project import Project
from ngixi_build.workflows.dodo_tasks import declare, with_state_dir
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_toml_file
from ngixi_runtime.spec.project import PROJECT_FILE

_SECTIONS = ("commands", "tasks")
# doit's settings that name no file and no code: how many processes, what it shows, which tasks by default.
_RUN_SETTINGS = frozenset(
    (
        "verbosity",
        "failure_verbosity",
        "num_process",
        "par_type",
        "continue",
        "always",
        "single",
        "auto_delayed_regex",
        "default_tasks",
        "minversion",
        "action_string_formatting",
    )
)


def run_task(project: Project, task: str, *options: str) -> int:
    """Runs `task` of `project` (as `find_project` gives it) as `doit TASK OPTIONS...` in its root would; doit's exit
    status."""
    settings = doit_settings(project)
    with _switched_to(project.root):  # as doit runs a dodo.py: the tasks name the project's files from its root
        tasks = declare(with_state_dir(project))
        return int(DoitMain(ModuleTaskLoader(tasks), config_filenames=(), extra_config=settings).run([task, *options]))


@contextmanager
def _switched_to(directory: Path) -> Iterator[None]:
    """The working directory is `directory` within, the one before it after."""
    previous = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(previous)


def doit_settings(project: Project) -> dict[str, dict[str, Any]]:
    """The project's `[tool.doit]` in doit's own layout; a table of the wrong shape is an InvalidInput."""
    path = project.root / PROJECT_FILE
    if not path.is_file():
        return {}
    tool = read_toml_file(path, what="the project file").get("tool", {})
    table = tool.get("doit", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise InvalidInput(f"{path}: tool.doit: must be a table ([tool.doit]); see doit's documentation")
    for section in _SECTIONS:
        entries = table.get(section, {})
        if not isinstance(entries, dict) or not all(isinstance(value, dict) for value in entries.values()):
            raise InvalidInput(f"{path}: tool.doit.{section}: must be a table of tables")
    _refuse_files_and_code(path, table)
    return dict(DoitConfig().load_config_toml(str(path), "tool.doit"))


# Task options that are the choice of whoever runs the task, never the project's: its option on the command line.
_BUILDERS_OWN = {"release": {"allow_dirty": "allow-dirty"}, "publish": {"force": "force"}}


def _refuse_files_and_code(path: Path, table: dict[str, Any]) -> None:
    """Refuses a doit setting of `table` (`[tool.doit]`) that names code for doit to import or a file for it to use."""
    if "plugins" in table:
        raise InvalidInput(
            f"{path}: tool.doit.plugins: ngixi build does not load doit plugins, modules doit would import whatever "
            "the project: remove the table (the project's own dodo.py, run by `doit`, may add its plugins)"
        )
    for task, options in _BUILDERS_OWN.items():
        chosen = sorted(set(table.get("tasks", {}).get(task, {})) & set(options))
        if chosen:
            raise InvalidInput(
                f"{path}: tool.doit.tasks.{task}.{chosen[0]}: not taken from a project: it is the choice of whoever "
                f"runs `ngixi {task}` (--{options[chosen[0]]} on its command line): remove it"
            )
    settings = {"tool.doit": table, **{f"tool.doit.commands.{n}": v for n, v in table.get("commands", {}).items()}}
    for where, values in settings.items():
        refused = sorted(key for key in values if key not in _RUN_SETTINGS and key not in _SECTIONS)
        if refused:
            raise InvalidInput(
                f"{path}: {where}.{refused[0]}: not taken from a project by ngixi build, which takes only settings "
                f"naming no file and no code ({', '.join(sorted(_RUN_SETTINGS))}): remove it"
            )
