"""The operator's policy: ceilings on what any bundle may ask for, written by the host owner.

[limits]                     # the most any manifest may set
memory_pages = 256
timeout_ms = 10000
fuel = 1000000000            # optional: every manifest must then set limits.fuel, at most this
[capabilities]
allow = ["log", "stdio", "http"]
[capabilities.http]          # ceilings on an allowed capability's options (its module's parse_ceiling)
allow = ["https://*.example.com"]

The format in full is in docs/host-policy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ngixi_runtime.capabilities.base import Ceiling, at_most
from ngixi_runtime.capabilities.fs import FsCeiling, FsOptions
from ngixi_runtime.capabilities.registry import GRANTABLE, capability
from ngixi_runtime.errors import InvalidInput, PolicyError
from ngixi_runtime.files import read_toml_file
from ngixi_runtime.guest.manifest import DEFAULT_LIMITS, LIMIT_KEYS, Manifest
from ngixi_runtime.printable import printable
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import Problems, reported, suggestion, table, type_name
from ngixi_runtime.trust.local_paths import refuse_if_anyone_may_change


class Policy(NamedTuple):
    source: str
    limits: dict[str, int]
    capabilities: frozenset[str]
    ceilings: Mapping[str, Ceiling]  # per allowed capability that has a [capabilities.<name>] table

    def exceeded(self, manifest: Manifest) -> list[str]:
        """Each way the manifest asks for more than this policy allows, one line each naming the field."""
        found = []
        for key, ceiling in sorted(self.limits.items()):
            found += at_most(f"limits.{key}", getattr(manifest.limits, key), ceiling, default=DEFAULT_LIMITS.get(key))
        allowed = ", ".join(sorted(self.capabilities)) or "none"
        for name, options in sorted(manifest.capabilities.items()):
            if name not in self.capabilities:
                found.append(f"capabilities.{name}: not allowed by the policy (it allows: {allowed})")
            elif name in self.ceilings:
                found += self.ceilings[name].exceeded(options, f"capabilities.{name}")
        fs, fs_ceiling = manifest.options(FsOptions), self.ceilings.get("fs")
        if manifest.guest.type.is_component and fs is not None and isinstance(fs_ceiling, FsCeiling):
            found += fs_ceiling.unheld_by_a_component(fs, "capabilities.fs")
        return found

    @property
    def host_roots(self) -> tuple[str, ...] | None:
        """The directories of a guest's sandbox its preopens must lie within (capabilities.fs.host_roots)."""
        fs_ceiling = self.ceilings.get("fs")
        return fs_ceiling.host_roots if isinstance(fs_ceiling, FsCeiling) else None

    def check(self, manifest: Manifest) -> None:
        problems = self.exceeded(manifest)
        if problems:
            guest = f"{manifest.guest.name} {manifest.guest.version}"
            raise PolicyError(f"{self.source} refuses {guest}:\n  " + "\n  ".join(map(printable, problems)))


def _limits(raw: Mapping[str, Any], problems: Problems) -> dict[str, int]:
    limits = table(raw, "limits", "limits", problems)
    problems.unknown_keys(limits, LIMIT_KEYS, "limits")
    valid = {}
    for key, value in limits.items():
        if key not in LIMIT_KEYS:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.add(f"limits.{key}", "must be a non-negative integer")
        else:
            valid[key] = value
    return valid


def _allow(capabilities: Mapping[str, Any], problems: Problems) -> frozenset[str]:
    allow = capabilities.get("allow", sorted(GRANTABLE))
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        problems.add("capabilities.allow", "must be an array of capability names")
        return frozenset()
    for index, name in enumerate(allow):
        if name not in GRANTABLE:
            problems.add(
                f"capabilities.allow[{index}]",
                f"unknown capability {name!r}; {suggestion(name, sorted(GRANTABLE), 'known')}",
            )
    return frozenset(allow)


def _ceilings(capabilities: Mapping[str, Any], allow: frozenset[str], problems: Problems) -> dict[str, Ceiling]:
    ceilings = {}
    for name, options in capabilities.items():
        field = f"capabilities.{name}"
        if name == "allow":
            continue
        if name not in GRANTABLE:
            problems.add(field, f"unknown key; {suggestion(name, ['allow', *sorted(GRANTABLE)], 'allowed')}")
        elif not isinstance(options, dict):
            problems.add(field, f"must be a table of ceilings, not {type_name(options)}")
        elif name not in allow:
            problems.add(field, f'sets ceilings on a capability capabilities.allow leaves out; add "{name}" to allow')
        else:
            ceilings[name] = capability(name).parse_ceiling(options, field, problems)
    return ceilings


def load_policy(path: Path) -> Policy:
    """Reads a policy file; every problem in it is reported at once, one `FILE: field: message` line each. Refused
    when any user may change it."""
    refuse_if_anyone_may_change(path, "the policy")
    raw = read_toml_file(path, what="the policy", own_state=True)
    problems = Problems(str(path))
    problems.unknown_keys(raw, ("limits", "capabilities"), "")
    limits = _limits(raw, problems)
    capabilities = table(raw, "capabilities", "capabilities", problems)
    allow = _allow(capabilities, problems)
    ceilings = _ceilings(capabilities, allow, problems)
    if problems.lines:
        raise InvalidInput(reported(problems.lines))
    return Policy(str(path), limits, allow, ceilings)
