"""The operator policy's ceilings on each capability's options: its `[capabilities.<name>]` tables.

A key left out sets no ceiling. Entries follow the manifest's own rules: origins are
`scheme://host[:port]` where `https://*.example.com` covers every subdomain (and narrower
wildcards) but not example.com itself; host roots are relative to the tenant's sandbox root.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ngixi_runtime.capabilities.options import (
    HTTP_TIMEOUT_MS,
    KV_KEYS,
    RESPONSE_BYTES,
    VALUE_BYTES,
    Bounds,
    CapabilityOptions,
    FsOptions,
    HttpOptions,
    KvOptions,
    Origin,
    guest_path_problem,
    host_path_problem,
    method_item,
    namespace_item,
    no_options,
    normalized_host_path,
    origin_item,
    within,
)
from ngixi_runtime.spec.schema import Problems, array, integer, type_name


class Ceiling(Protocol):
    def exceeded(self, options: CapabilityOptions, field: str) -> list[str]:
        """One line per option of a granted capability that asks for more than this ceiling."""
        ...


CeilingParser = Callable[[Mapping[str, Any], str, Problems], Ceiling]


def at_most(field: str, asked: int | None, ceiling: int | None) -> list[str]:
    """`asked` None is an optional limit left unset, so unlimited: over any ceiling."""
    if ceiling is None or (asked is not None and asked <= ceiling):
        return []
    if asked is None:
        return [f"{field}: not set, so unlimited; the policy allows at most {ceiling}"]
    return [f"{field}: asks for {asked}, the policy allows at most {ceiling}"]


def _listing(items: Sequence[object]) -> str:
    return ", ".join(str(item) for item in items) or "none"


def _members(field: str, asked: Sequence[str], allowed: Sequence[str] | None) -> list[str]:
    if allowed is None:
        return []
    return [
        f'{field}[{index}]: "{item}" is not allowed by the policy (it allows: {_listing(allowed)})'
        for index, item in enumerate(asked)
        if item not in allowed
    ]


def _ceiling(raw: Mapping[str, Any], key: str, field: str, problems: Problems, bounds: Bounds) -> int | None:
    if key not in raw:
        return None
    return integer(raw, key, f"{field}.{key}", problems, default=0, low=bounds.low, high=bounds.high)


def _optional_array(
    raw: Mapping[str, Any], key: str, field: str, problems: Problems, item: Callable[[object, str, Problems], Any]
) -> tuple[Any, ...] | None:
    return array(raw, key, f"{field}.{key}", problems, item=item, identity=str) if key in raw else None


@dataclass(frozen=True)
class NoCeiling:
    """A capability without options: allowing it is all there is to say."""

    def exceeded(self, options: CapabilityOptions, field: str) -> list[str]:
        return []


def no_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> NoCeiling:
    no_options(raw, field, problems)
    return NoCeiling()


# --- fs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FsCeiling:
    host_roots: tuple[str, ...] | None  # preopen host paths must lie within one of these
    guest_roots: tuple[str, ...] | None  # preopen guest paths must lie within one of these
    writable: bool  # whether a preopen may be "rw"

    def exceeded(self, options: CapabilityOptions, field: str) -> list[str]:
        assert isinstance(options, FsOptions)
        found = []
        for index, preopen in enumerate(options.preopens):
            at = f"{field}.preopens[{index}]"
            found += _outside(f"{at}.host", preopen.host, self.host_roots, "host_roots")
            found += _outside(f"{at}.guest", preopen.guest, self.guest_roots, "guest_roots")
            if preopen.mode == "rw" and not self.writable:
                found.append(f'{at}.mode: "rw" is not allowed: the policy allows only read-only mounts')
        return found


def _outside(field: str, path: str, roots: tuple[str, ...] | None, key: str) -> list[str]:
    if roots is None or any(within(path, root) for root in roots):
        return []
    return [f'{field}: "{path}" is outside the policy\'s {key} ({_listing(roots)})']


def _host_root(value: object, field: str, problems: Problems) -> str | None:
    if not isinstance(value, str):
        problems.add(field, f'must be a string like "data", not {type_name(value)}')
        return None
    if why := host_path_problem(value):
        problems.add(field, f'"{value}" {why}')
        return None
    return normalized_host_path(value)


def _guest_root(value: object, field: str, problems: Problems) -> str | None:
    if not isinstance(value, str):
        problems.add(field, f'must be a string like "/data", not {type_name(value)}')
        return None
    if why := guest_path_problem(value):
        problems.add(field, f'"{value}" {why}')
        return None
    return value


def parse_fs_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> FsCeiling:
    problems.unknown_keys(raw, ("host_roots", "guest_roots", "writable"), field)
    writable = raw.get("writable", True)
    if not isinstance(writable, bool):
        problems.add(f"{field}.writable", f"must be true or false, not {type_name(writable)}")
    return FsCeiling(
        host_roots=_optional_array(raw, "host_roots", field, problems, _host_root),
        guest_roots=_optional_array(raw, "guest_roots", field, problems, _guest_root),
        writable=writable is not False,
    )


# --- http -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCeiling:
    allow: tuple[Origin, ...] | None
    methods: tuple[str, ...] | None
    max_response_bytes: int | None
    timeout_ms: int | None

    def exceeded(self, options: CapabilityOptions, field: str) -> list[str]:
        assert isinstance(options, HttpOptions)
        found = []
        if self.allow is not None:
            found = [
                f'{field}.allow[{index}]: "{asked}" is not covered by the policy\'s allow ({_listing(self.allow)})'
                for index, asked in enumerate(options.allow)
                if not any(entry.covers(asked) for entry in self.allow)
            ]
        return [
            *found,
            *_members(f"{field}.methods", options.methods, self.methods),
            *at_most(f"{field}.max_response_bytes", options.max_response_bytes, self.max_response_bytes),
            *at_most(f"{field}.timeout_ms", options.timeout_ms, self.timeout_ms),
        ]


def parse_http_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> HttpCeiling:
    problems.unknown_keys(raw, ("allow", "methods", "max_response_bytes", "timeout_ms"), field)
    return HttpCeiling(
        allow=_optional_array(raw, "allow", field, problems, origin_item),
        methods=_optional_array(raw, "methods", field, problems, method_item),
        max_response_bytes=_ceiling(raw, "max_response_bytes", field, problems, RESPONSE_BYTES),
        timeout_ms=_ceiling(raw, "timeout_ms", field, problems, HTTP_TIMEOUT_MS),
    )


# --- kv ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KvCeiling:
    namespaces: tuple[str, ...] | None
    max_value_bytes: int | None
    max_keys: int | None

    def exceeded(self, options: CapabilityOptions, field: str) -> list[str]:
        assert isinstance(options, KvOptions)
        return [
            *_members(f"{field}.namespaces", options.namespaces, self.namespaces),
            *at_most(f"{field}.max_value_bytes", options.max_value_bytes, self.max_value_bytes),
            *at_most(f"{field}.max_keys", options.max_keys, self.max_keys),
        ]


def parse_kv_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> KvCeiling:
    problems.unknown_keys(raw, ("namespaces", "max_value_bytes", "max_keys"), field)
    return KvCeiling(
        namespaces=_optional_array(raw, "namespaces", field, problems, namespace_item),
        max_value_bytes=_ceiling(raw, "max_value_bytes", field, problems, VALUE_BYTES),
        max_keys=_ceiling(raw, "max_keys", field, problems, KV_KEYS),
    )
