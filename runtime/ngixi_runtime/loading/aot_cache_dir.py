"""Where the host AOT cache (aot_cache.py) lives, and why it cannot be used: apart from it, for an isolated
tenant's parent, which names it in the child's environment but neither reads nor writes it, and for the loader,
which imports the cache only when it compiles."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import environment_path, user_cache_dir

CACHE_VARIABLE = "NGIXI_AOT_CACHE"


class CacheUnavailable(Exception):
    """Why the cache cannot be used here; the guest is then compiled without it."""


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$NGIXI_AOT_CACHE (an absolute path), else $XDG_CACHE_HOME/ngixi/aot, else ~/.cache/ngixi/aot."""
    try:
        chosen = environment_path(CACHE_VARIABLE, environ)
    except InvalidInput as error:
        raise CacheUnavailable(str(error)) from None
    if chosen is not None:
        return chosen
    try:
        return user_cache_dir(environ) / "aot"
    except RuntimeError as error:  # no home directory to be found
        raise CacheUnavailable(f"{error}; set {CACHE_VARIABLE}") from None
