"""Which trust file the loader trusts: the one the operator chooses, never one found near a bundle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import environment_path
from ngixi_runtime.spec.project import DEV_TRUST_NAME, STATE_DIR, find_project_root, project_state_dir
from ngixi_runtime.trust.local_paths import unsafe_because

TRUST_VARIABLE = "NGIXI_TRUST"
# Overrides where the project keeps its state (the build side's --state-dir), for doit and `ngixi run` alike.
PROJECT_STATE_VARIABLE = "NGIXI_PROJECT_STATE"
# Where a project's builds write the trust file of its development key, relative to the project's root.
DEV_TRUST_FILE = Path(STATE_DIR) / DEV_TRUST_NAME


def state_override(environ: Mapping[str, str] = os.environ) -> Path | None:
    """$NGIXI_PROJECT_STATE as a path, when set."""
    value = environ.get(PROJECT_STATE_VARIABLE)
    return Path(value) if value else None


def project_trust_file(start: Path, *, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The dev trust file of the project at or above `start`, when there is a project and it has one; refused
    when anyone but this user (or root) could change it (`local_paths.unsafe_because`)."""
    root = find_project_root(start)
    if root is None:
        return None
    trust = project_state_dir(root, state_override(environ)) / DEV_TRUST_NAME
    if not trust.is_file():
        return None
    problem = unsafe_because(trust)
    if problem is not None:
        raise InvalidInput(
            f"{trust}: not used as the trust file: {problem}; a project's dev trust file is used without --trust "
            "only when no one but you can change it (fix its owner or mode), else pass --trust FILE"
        )
    return trust


def is_implicit_choice(explicit: Path | None, *, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `chosen_trust_file` takes a project's dev trust file (found, not named): its keys then count only
    for the dev channel, and for native code only as `project_trust.project_trust_table` says."""
    return explicit is None and not environ.get(TRUST_VARIABLE)


def chosen_trust_file(
    explicit: Path | None, *, project: Path | None = None, environ: Mapping[str, str] = os.environ
) -> Path:
    """`explicit` (--trust), else $NGIXI_TRUST, else the dev trust file of the project at or above
    `project` (--project), by default the working directory; never a project found from the bundle."""
    if explicit is not None:
        return explicit
    from_environment = environment_path(TRUST_VARIABLE, environ)
    if from_environment is not None:
        return from_environment
    project_trust = project_trust_file(project or Path.cwd(), environ=environ)
    if project_trust is not None:
        return project_trust
    raise InvalidInput(
        f"no trust file: pass --trust FILE or set {TRUST_VARIABLE}"
        f" (or run inside a project, or name one with --project, whose builds wrote {DEV_TRUST_FILE})"
    )
