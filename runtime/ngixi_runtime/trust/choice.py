"""Which trust file the loader trusts: the one the operator chooses, never one found near a bundle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import environment_path
from ngixi_runtime.spec.project import DEV_TRUST_NAME, STATE_DIR, find_project_root, project_state_dir
from ngixi_runtime.trust.local_paths import refuse_unsafe_project_trust

TRUST_VARIABLE = "NGIXI_TRUST"
# Overrides where the project keeps its state (the build side's --state-dir), for doit and `ngixi run` alike.
PROJECT_STATE_VARIABLE = "NGIXI_PROJECT_STATE"
# Where a project's builds write the trust file of its development key, relative to the project's root.
DEV_TRUST_FILE = Path(STATE_DIR) / DEV_TRUST_NAME


def state_override(environ: Mapping[str, str] = os.environ) -> Path | None:
    """$NGIXI_PROJECT_STATE as a path, when set; refused unless absolute (`files.environment_path`): a relative one
    named a directory of the working directory, whatever project --project named."""
    return environment_path(PROJECT_STATE_VARIABLE, environ)


def project_trust_file(start: Path, *, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The dev trust file of the project at or above `start`, when there is a project and it has one; refused
    when anyone but this user (or root) could change it (`local_paths.unsafe_because`)."""
    root = find_project_root(start)
    if root is None:
        return None
    trust = project_state_dir(root, state_override(environ)) / DEV_TRUST_NAME
    if not trust.is_file():
        return None
    refuse_unsafe_project_trust(trust)
    return trust


def is_implicit_choice(explicit: Path | None, *, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `chosen_trust_file` takes a project's dev trust file (found, not named): its keys then count only
    for the dev channel, and for native code only as `project_trust.project_trust_table` says."""
    return explicit is None and not environ.get(TRUST_VARIABLE)


def chosen_trust_file(
    explicit: Path | None,
    *,
    project: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    existing: bool = False,
) -> Path:
    """`explicit` (--trust), else $NGIXI_TRUST, else the dev trust file of the project at or above
    `project` (--project), by default the working directory; never a project found from the bundle. `existing`: a
    file the option or the variable names must be there (for a command that reads it, not one that makes it),
    refused naming which of them named it."""
    if explicit is not None:
        return _named(explicit, f"--trust {explicit}", "name the operator's trust file", existing=existing)
    from_environment = environment_path(TRUST_VARIABLE, environ)
    if from_environment is not None:
        named = f"${TRUST_VARIABLE} ({from_environment})"
        advice = f"set {TRUST_VARIABLE} to the operator's trust file, or unset it"
        return _named(from_environment, named, advice, existing=existing)
    start = project or Path.cwd()
    project_trust = project_trust_file(start, environ=environ)
    if project_trust is not None:
        return project_trust
    why = _why_no_project_trust(start, environ)
    raise InvalidInput(f"no trust file: pass --trust FILE or set {TRUST_VARIABLE}{why}")


def _named(path: Path, named: str, advice: str, *, existing: bool) -> Path:
    if existing and path.is_dir():
        raise InvalidInput(f"{named}: a directory, not a trust file; {advice}")
    if existing and not path.exists():
        raise InvalidInput(f"{named}: no such file; {advice}")
    return path


def _why_no_project_trust(start: Path, environ: Mapping[str, str]) -> str:
    """Why no project's dev trust file stood in for --trust: no project, or where the project's state was looked
    for (its builds write it there; $NGIXI_PROJECT_STATE moves it)."""
    root = find_project_root(start)
    if root is None:
        return f" (or run inside a project, or name one with --project, whose builds wrote {DEV_TRUST_FILE})"
    override = state_override(environ)
    trust = project_state_dir(root, override) / DEV_TRUST_NAME
    moved = "" if override is None else f" (${PROJECT_STATE_VARIABLE} moves its state)"
    return f"; the project at {root} has no {trust}{moved}: its builds write it (doit build)"
