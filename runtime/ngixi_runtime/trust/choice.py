"""Which trust file the loader trusts: the one the operator chooses, never one found near a bundle."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ngixi_runtime.errors import InvalidInput

TRUST_VARIABLE = "NGIXI_TRUST"
# Where a project's builds write the trust file of its development key, relative to the project's root.
DEV_TRUST_FILE = Path(".ngixi") / "trust.toml"


def chosen_trust_file(explicit: Path | None, *, environ: Mapping[str, str] = os.environ) -> Path:
    """`explicit` (--trust), else $NGIXI_TRUST, else the dev trust file of the project in the working directory."""
    if explicit is not None:
        return explicit
    if environ.get(TRUST_VARIABLE):
        return Path(environ[TRUST_VARIABLE])
    project_trust = Path.cwd() / DEV_TRUST_FILE
    if project_trust.is_file():
        return project_trust
    raise InvalidInput(
        f"no trust file: pass --trust FILE or set {TRUST_VARIABLE}"
        f" (or run in a project directory whose builds wrote {DEV_TRUST_FILE})"
    )
