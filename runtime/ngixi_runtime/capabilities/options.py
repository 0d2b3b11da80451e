"""The options of each capability: `[capabilities.<name>]` tables read into frozen records."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from ngixi_runtime.spec.schema import SLUG_PATTERN, Problems, array, integer, string, string_item, suggestion, type_name

Mode = Literal["ro", "rw"]
MODES: tuple[Mode, ...] = ("ro", "rw")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_PREOPEN_KEYS = ("guest", "host", "mode")
_PREOPEN_EXAMPLE = '{ guest = "/data", host = "data", mode = "rw" }'


@dataclass(frozen=True)
class NoOptions:
    """A capability that takes no options."""


@dataclass(frozen=True)
class Preopen:
    guest: str  # absolute, normalized path the guest sees
    host: str  # normalized path relative to the tenant's sandbox root ("." is the root itself)
    mode: Mode


@dataclass(frozen=True)
class FsOptions:
    preopens: tuple[Preopen, ...]


@dataclass(frozen=True)
class Origin:
    """One `scheme://host[:port]` allowlist entry; a host `*.example.com` matches its subdomains."""

    scheme: str
    host: str  # lowercase; an IPv6 address without brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address this entry names literally, if it names one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def covers(self, other: Origin) -> bool:
        if (self.scheme, self.port) != (other.scheme, other.port):
            return False
        if self.host.startswith("*."):
            return other.host.endswith(self.host[1:])
        return self.host == other.host


@dataclass(frozen=True)
class HttpOptions:
    allow: tuple[Origin, ...]
    methods: tuple[str, ...]
    max_response_bytes: int
    timeout_ms: int

    def allowing(self, origin: Origin) -> Origin | None:
        return next((entry for entry in self.allow if entry.covers(origin)), None)


@dataclass(frozen=True)
class KvOptions:
    namespaces: tuple[str, ...]
    max_value_bytes: int
    max_keys: int


CapabilityOptions = NoOptions | FsOptions | HttpOptions | KvOptions
OptionsParser = Callable[[Mapping[str, Any], str, Problems], CapabilityOptions]


@dataclass(frozen=True)
class Bounds:
    """An integer option's default and its allowed range."""

    default: int
    low: int
    high: int


RESPONSE_BYTES = Bounds(1 << 20, 1, 1 << 30)
HTTP_TIMEOUT_MS = Bounds(10_000, 1, 300_000)
VALUE_BYTES = Bounds(65536, 1, 16 << 20)
KV_KEYS = Bounds(1000, 1, 1_000_000)


def bounded(raw: Mapping[str, Any], key: str, field: str, problems: Problems, bounds: Bounds) -> int:
    """The integer option `field.key`, its default when absent."""
    return integer(raw, key, f"{field}.{key}", problems, default=bounds.default, low=bounds.low, high=bounds.high)


def no_options(raw: Mapping[str, Any], field: str, problems: Problems) -> NoOptions:
    for key in raw:
        problems.add(f"{field}.{key}", f"unknown key; [{field}] takes no options")
    return NoOptions()


# --- fs ---------------------------------------------------------------------------------------


def host_path_problem(host: str) -> str | None:
    """Why a preopen's host path could leave the sandbox root, or None when it cannot."""
    if host.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", host):
        return "is absolute; give a path relative to the tenant's sandbox root"
    if ".." in re.split(r"[/\\]", host):
        return 'leaves the sandbox root; ".." is not allowed'
    if not host:
        return 'is empty; use "." for the sandbox root itself'
    return None


def normalized_host_path(host: str) -> str:
    """A host path checked by `host_path_problem`, with `/` separators and no `.` or repeated parts."""
    return posixpath.normpath(host.replace("\\", "/"))


def guest_path_problem(guest: str) -> str | None:
    """Why a guest path is not an absolute, normalized path, or None when it is."""
    if not guest.startswith("/") or guest.startswith("//") or posixpath.normpath(guest) != guest:
        return 'must be an absolute, normalized guest path like "/data"'
    return None


def within(path: str, directory: str) -> bool:
    """Whether normalized `path` is `directory` or lies under it (both relative, or both absolute)."""
    return directory in (".", path) or path.startswith(directory.rstrip("/") + "/")


def _preopen(value: object, field: str, problems: Problems) -> Preopen | None:
    if not isinstance(value, dict):
        problems.add(field, f"must be a table like {_PREOPEN_EXAMPLE}, not {type_name(value)}")
        return None
    problems.unknown_keys(value, _PREOPEN_KEYS, field)
    guest = string(value, "guest", f"{field}.guest", problems)
    host = string(value, "host", f"{field}.host", problems)
    mode = string(value, "mode", f"{field}.mode", problems, default="ro")
    count = len(problems.lines)
    if guest and (why := guest_path_problem(guest)):
        problems.add(f"{field}.guest", f'"{guest}" {why}')
    if isinstance(value.get("host"), str) and (why := host_path_problem(host)):
        problems.add(f"{field}.host", f'"{host}" {why}')
    if mode and mode not in MODES:
        problems.add(f"{field}.mode", f'"{mode}" must be "ro" (read-only) or "rw" (read-write)')
    if len(problems.lines) > count or not (guest and host):
        return None
    return Preopen(guest, normalized_host_path(host), cast(Mode, mode))


def reachable_for_writing(ro: str, mounts: list[tuple[str, Mode]]) -> bool:
    """Whether a read-only host directory lies in a read-write one (so the guest could write it there)."""
    return any(mode == "rw" and within(ro, directory) for directory, mode in mounts)


def parse_fs(raw: Mapping[str, Any], field: str, problems: Problems) -> FsOptions:
    problems.unknown_keys(raw, ("preopens",), field)
    count = len(problems.lines)
    preopens = array(
        raw,
        "preopens",
        f"{field}.preopens",
        problems,
        item=_preopen,
        required=f"name the directories the guest may open, like [{_PREOPEN_EXAMPLE}]",
        identity=lambda p: p.guest,
    )
    mounts = [(p.host, p.mode) for p in preopens]
    indexes_are_exact = len(problems.lines) == count
    for index, preopen in enumerate(preopens):
        if indexes_are_exact and preopen.mode == "ro" and reachable_for_writing(preopen.host, mounts):
            problems.add(
                f"{field}.preopens[{index}].host",
                f'"{preopen.host}" is read-only, but a rw preopen reaches it; move it out or make both ro',
            )
    return FsOptions(preopens)


# --- http -------------------------------------------------------------------------------------


_EVERY_HOST = 'would allow every host; list each origin, like "https://api.example.com"'


def parse_origin(text: str) -> Origin | str:
    """An allowlist entry, or why `text` is not one (a phrase that follows the quoted text)."""
    if "://" not in text:
        return _EVERY_HOST if text.strip() in ("*", "") else f'is not scheme://host[:port]; write "https://{text}"'
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return "is not scheme://host[:port]: the scheme must be http or https"
    if "@" in parts.netloc:
        return f'must not contain user info; write "{scheme}://{parts.netloc.rpartition("@")[2]}"'
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        return f'is an origin without path, query or fragment; write "{scheme}://{parts.netloc}"'
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return "is not scheme://host[:port]: the port must be a number from 1 to 65535"
    host = (parts.hostname or "").lower()
    return _host_problem(host) or Origin(scheme, host, port)


def _host_problem(host: str) -> str | None:
    if host == "*":
        return _EVERY_HOST
    if host.startswith("*."):
        if host.count(".") < 2 or not _HOST_NAME.match(host[2:]):
            return 'has a wildcard that does not stand for subdomains of one domain, like "*.example.com"'
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.match(host):
            return f'is not scheme://host[:port]: "{host}" is not a host name or IP address'
    return None


def origin_item(value: object, field: str, problems: Problems) -> Origin | None:
    if not isinstance(value, str):
        problems.add(field, f'must be a string like "https://api.example.com", not {type_name(value)}')
        return None
    parsed = parse_origin(value)
    if isinstance(parsed, str):
        problems.add(field, f'"{value}" {parsed}')
        return None
    return parsed


def method_item(value: object, field: str, problems: Problems) -> str | None:
    if isinstance(value, str) and value in HTTP_METHODS:
        return value
    shown = f'"{value}"' if isinstance(value, str) else type_name(value)
    guess = value.upper() if isinstance(value, str) else ""
    problems.add(field, f"{shown} is not an HTTP method; {suggestion(guess, HTTP_METHODS, 'choices')}")
    return None


def parse_http(raw: Mapping[str, Any], field: str, problems: Problems) -> HttpOptions:
    problems.unknown_keys(raw, ("allow", "methods", "max_response_bytes", "timeout_ms"), field)
    allow = array(
        raw,
        "allow",
        f"{field}.allow",
        problems,
        item=origin_item,
        required='list the origins the guest may fetch, like ["https://api.example.com"]',
        identity=str,
    )
    methods = array(raw, "methods", f"{field}.methods", problems, item=method_item, default=("GET",), identity=str)
    size = bounded(raw, "max_response_bytes", field, problems, RESPONSE_BYTES)
    timeout = bounded(raw, "timeout_ms", field, problems, HTTP_TIMEOUT_MS)
    return HttpOptions(allow, methods, size, timeout)


# --- kv ---------------------------------------------------------------------------------------


namespace_item = string_item(SLUG_PATTERN, 'must be lowercase letters, digits, "-" and "_", starting with a letter')


def parse_kv(raw: Mapping[str, Any], field: str, problems: Problems) -> KvOptions:
    problems.unknown_keys(raw, ("namespaces", "max_value_bytes", "max_keys"), field)
    namespaces = array(
        raw,
        "namespaces",
        f"{field}.namespaces",
        problems,
        item=namespace_item,
        required='name the namespaces the guest may use, like ["counters"]',
        identity=str,
    )
    value_bytes = bounded(raw, "max_value_bytes", field, problems, VALUE_BYTES)
    keys = bounded(raw, "max_keys", field, problems, KV_KEYS)
    return KvOptions(namespaces, value_bytes, keys)
