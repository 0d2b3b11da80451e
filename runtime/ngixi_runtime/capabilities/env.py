"""The `env` capability: WASI environment variables, those the manifest fixes and those it lets the caller pass.

[capabilities.env]
allow = ["LANG", "DEBUG"]           # names the caller may set (ngixi run --env K=V, --env K; the API's env=)
fixed = { MODE = "production" }     # set for every run; the caller cannot change them

The host's own environment never reaches a guest: only these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ngixi_runtime.capabilities.base import (
    Capability,
    listing,
    members,
    optional_array,
    string_table,
    wasi_string_problem,
    wasi_string_shown,
)
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import NAME_BYTES, Problems, array, string_item, table, too_long, type_name

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
name_item = string_item(NAME_PATTERN, "is not a variable name: letters, digits and _, not starting with a digit")


class EnvOptions(NamedTuple):
    allow: tuple[str, ...]  # names the caller may set
    fixed: Mapping[str, str]  # set for every run


def _fixed(raw: Mapping[str, Any], field: str, problems: Problems) -> dict[str, str]:
    fixed = {}
    for name, value in table(raw, "fixed", f"{field}.fixed", problems).items():
        if why := too_long(name, NAME_BYTES):
            problems.add(f"{field}.fixed.{name}", f"the name {why}")
        elif not NAME_PATTERN.match(name):
            problems.add(f"{field}.fixed.{name}", "is not a variable name: letters, digits and _")
        elif not isinstance(value, str) or "\0" in value:
            problems.add(f"{field}.fixed.{name}", f"must be a string without NUL, not {type_name(value)}")
        else:
            fixed[name] = value
    return fixed


def parse_env(raw: Mapping[str, Any], field: str, problems: Problems) -> EnvOptions:
    problems.unknown_keys(raw, ("allow", "fixed"), field)
    allow = array(raw, "allow", f"{field}.allow", problems, item=name_item, identity=str)
    fixed = _fixed(raw, field, problems)
    for index, name in enumerate(allow):
        if name in fixed:
            problems.add(f"{field}.allow[{index}]", f'"{name}" is also fixed; a caller cannot change a fixed value')
    return EnvOptions(allow, MappingProxyType(fixed))  # read-only: loads of the same signed index share it


class EnvCeiling(NamedTuple):
    allow: tuple[str, ...] | None  # names a manifest may let callers set, or fix

    def exceeded(self, options: EnvOptions, field: str) -> list[str]:
        return members(f"{field}.allow", options.allow, self.allow, default=None) + members(
            f"{field}.fixed", sorted(options.fixed), self.allow, default=None
        )


def parse_env_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> EnvCeiling:
    problems.unknown_keys(raw, ("allow",), field)
    return EnvCeiling(optional_array(raw, "allow", field, problems, name_item))


def guest_environment(guest: str, options: EnvOptions | None, given: Mapping[str, str]) -> dict[str, str]:
    """The variables a guest granted `options` (None: not granted) sees: its fixed ones and those the caller
    gives, each of which the manifest must allow."""
    if options is None:
        if given:
            raise InvalidInput(
                f"{guest}: it is not granted [capabilities.env], so it takes no environment variables "
                f"(given: {listing(sorted(given))})"
            )
        return {}
    for name, value in given.items():
        if name in options.fixed:
            raise InvalidInput(f"{guest}: environment variable {name} is fixed by its manifest; do not pass it")
        if name not in options.allow:
            raise InvalidInput(
                f"{guest}: environment variable {name} is not allowed by its manifest; "
                f"capabilities.env.allow lists: {listing(options.allow)}"
            )
        problem = wasi_string_problem(value)
        if problem is not None:
            raise InvalidInput(f"{guest}: environment variable {name}: its value {wasi_string_shown(value)} {problem}")
    return {**options.fixed, **given}


CAPABILITY = Capability(
    "env",
    "WASI environment variables",
    string_table("environ", lambda ctx: [f"{k}={v}".encode() + b"\0" for k, v in ctx.env.items()]),
    parse_options=parse_env,
    parse_ceiling=parse_env_ceiling,
    wasi_p2={"wasi:cli/environment": frozenset({"get-environment"})},
)
