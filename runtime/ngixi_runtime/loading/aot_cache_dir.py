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
LIMIT_VARIABLE = "NGIXI_AOT_CACHE_MAX_MB"
DEFAULT_LIMIT_MB = 1024
_MIB = 1 << 20


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
    except (RuntimeError, InvalidInput) as error:  # no home directory to be found
        raise CacheUnavailable(f"{error}; set {CACHE_VARIABLE}") from None


def cache_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The bytes the cache's entries may take together: $NGIXI_AOT_CACHE_MAX_MB MiB, else `DEFAULT_LIMIT_MB`."""
    value = environ.get(LIMIT_VARIABLE, "").strip()
    if not value:
        return DEFAULT_LIMIT_MB * _MIB
    if not value.isascii() or not value.isdigit():
        raise CacheUnavailable(
            f"${LIMIT_VARIABLE}: {value[:40]!r} is not a whole number of MiB; set it to one (0 keeps nothing, "
            f"the default is {DEFAULT_LIMIT_MB})"
        )
    return int(value) * _MIB
