"""The operator's policy: ceilings on what any bundle may ask for, written by the host owner.

[limits]                 # the most any manifest may set
memory_pages = 256
timeout_ms = 10000
[capabilities]
allow = ["log", "stdio", "clock", "random"]
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from .capabilities import CAPABILITIES
from .errors import InvalidInput, PolicyError
from .fsutil import read_toml_file
from .manifest import DEFAULT_LIMITS, Manifest


@dataclass(frozen=True)
class Policy:
    source: str
    limits: dict[str, int]
    capabilities: frozenset[str]

    def exceeded(self, manifest: Manifest) -> list[str]:
        """Each way the manifest asks for more than this policy allows."""
        found = []
        for key, ceiling in sorted(self.limits.items()):
            asked = getattr(manifest.limits, key)
            if asked > ceiling:
                found.append(f"limits.{key}: asks for {asked}, the policy allows at most {ceiling}")
        allowed = ", ".join(sorted(self.capabilities)) or "none"
        for name in sorted(manifest.grants - self.capabilities):
            found.append(f"capabilities.{name}: not allowed by the policy (it allows: {allowed})")
        return found

    def check(self, manifest: Manifest) -> None:
        problems = self.exceeded(manifest)
        if problems:
            guest = f"{manifest.guest.name} {manifest.guest.version}"
            raise PolicyError(f"{self.source} refuses {guest}:\n  " + "\n  ".join(problems))


def _unknown(table: dict[str, object], allowed: list[str], field: str, source: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f'did you mean "{close[0]}"?' if close else f"allowed: {', '.join(allowed)}"
            raise InvalidInput(f"{source}: {field}{key}: unknown key; {hint}")


def load_policy(path: Path) -> Policy:
    source = str(path)
    raw = read_toml_file(path, what="the policy")
    _unknown(raw, ["limits", "capabilities"], "", source)
    limits = raw.get("limits", {})
    _unknown(limits, list(DEFAULT_LIMITS), "limits.", source)
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{source}: limits.{key}: must be a non-negative integer")
    capabilities = raw.get("capabilities", {})
    _unknown(capabilities, ["allow"], "capabilities.", source)
    allow = capabilities.get("allow", sorted(CAPABILITIES))
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise InvalidInput(f"{source}: capabilities.allow: must be an array of capability names")
    for index, name in enumerate(allow):
        if name not in CAPABILITIES:
            raise InvalidInput(f"{source}: capabilities.allow[{index}]: unknown capability {name!r}")
    return Policy(source, dict(limits), frozenset(allow))
