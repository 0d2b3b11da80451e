"""The `http` capability: outgoing HTTP requests to the manifest's allowlist, checked on every hop.

[capabilities.http]
allow = ["https://api.example.com", "http://127.0.0.1:8080"]   # scheme://host[:port]; *.example.com for subdomains
methods = ["GET", "POST"]
max_response_bytes = 1048576
timeout_ms = 10000

Core guests call `ngixi.http_fetch`, component guests the `http` interface's `fetch`; both reach
the same client (http_client.py), whose one exchange on the wire is http_wire.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ngixi_runtime.capabilities.base import (
    Bounds,
    Capability,
    ComponentFunction,
    at_most,
    bounded,
    ceiling_bound,
    host_failure,
    host_import,
    listing,
    members,
    optional_array,
    state_method,
)
from ngixi_runtime.capabilities.component import fallible, granted_state, outcome, utf8_length
from ngixi_runtime.capabilities.context import HostContext, Sandbox
from ngixi_runtime.capabilities.http_client import (
    DEFAULT_PORTS,
    HOST_NAME,
    HttpClient,
    HttpOptions,
    Origin,
    parse_headers,
)
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.schema import Problems, array, suggestion, type_name

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_METHODS = ("GET",)
RESPONSE_BYTES = Bounds(1 << 20, 1, 1 << 30)
HTTP_TIMEOUT_MS = Bounds(10_000, 1, 300_000)
_EVERY_HOST = 'would allow every host; list each origin, like "https://api.example.com"'


# --- options ---------------------------------------------------------------------------------------


def parse_origin(text: str) -> Origin | str:
    """An allowlist entry, or why `text` is not one (a phrase that follows the quoted text)."""
    problem = _shape_problem(text)
    if problem is not None:
        return problem
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


def _shape_problem(text: str) -> str | None:
    if "://" not in text:
        return _EVERY_HOST if text.strip() in ("*", "") else f'is not scheme://host[:port]; write "https://{text}"'
    if not text.isprintable() or " " in text:  # urlsplit drops tabs and newlines anywhere, silently
        return "is not scheme://host[:port]: it holds a space or a control character"
    return None


def _host_problem(host: str) -> str | None:
    if host == "*":
        return _EVERY_HOST
    if host.startswith("*."):
        if host.count(".") < 2 or not HOST_NAME.match(host[2:]):
            return 'has a wildcard that does not stand for subdomains of one domain, like "*.example.com"'
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME.match(host):
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
    methods = array(
        raw, "methods", f"{field}.methods", problems, item=method_item, default=DEFAULT_METHODS, identity=str
    )
    size = bounded(raw, "max_response_bytes", field, problems, RESPONSE_BYTES)
    timeout = bounded(raw, "timeout_ms", field, problems, HTTP_TIMEOUT_MS)
    return HttpOptions(allow, methods, size, timeout)


# --- the policy's ceiling --------------------------------------------------------------------------


class HttpCeiling(NamedTuple):
    allow: tuple[Origin, ...] | None
    methods: tuple[str, ...] | None
    max_response_bytes: int | None
    timeout_ms: int | None

    def exceeded(self, options: HttpOptions, field: str) -> list[str]:
        found = []
        if self.allow is not None:
            found = [
                f'{field}.allow[{index}]: "{asked}" is not covered by the policy\'s allow ({listing(self.allow)})'
                for index, asked in enumerate(options.allow)
                if not any(entry.covers(asked) for entry in self.allow)
            ]
        return [
            *found,
            *members(f"{field}.methods", options.methods, self.methods, default=DEFAULT_METHODS),
            *at_most(
                f"{field}.max_response_bytes",
                options.max_response_bytes,
                self.max_response_bytes,
                default=RESPONSE_BYTES.default,
            ),
            *at_most(f"{field}.timeout_ms", options.timeout_ms, self.timeout_ms, default=HTTP_TIMEOUT_MS.default),
        ]


def parse_http_ceiling(raw: Mapping[str, Any], field: str, problems: Problems) -> HttpCeiling:
    problems.unknown_keys(raw, ("allow", "methods", "max_response_bytes", "timeout_ms"), field)
    return HttpCeiling(
        allow=optional_array(raw, "allow", field, problems, origin_item),
        methods=optional_array(raw, "methods", field, problems, method_item),
        max_response_bytes=ceiling_bound(raw, "max_response_bytes", field, problems, RESPONSE_BYTES),
        timeout_ms=ceiling_bound(raw, "timeout_ms", field, problems, HTTP_TIMEOUT_MS),
    )


# --- the capability --------------------------------------------------------------------------------


class HttpResponse(NamedTuple):
    """The WIT `http.response` record; the engine lowers its fields by name."""

    status: int
    body: bytes


def _fetch(ctx: HostContext) -> ComponentFunction:
    def fetch(method: str, url: str, headers: str, body: bytes) -> Any:
        client: HttpClient = granted_state(ctx, "http")

        def request() -> HttpResponse:
            client.check_sizes(utf8_length(method), utf8_length(url), utf8_length(headers))
            response = client.fetch(method, url, parse_headers(headers), body)
            return HttpResponse(response.status, response.body)

        return outcome(request)

    return fetch


def _open_state(options: HttpOptions, context: HostContext, sandbox: Sandbox | None) -> HttpClient:
    routes = sandbox.http_routes if sandbox else {}
    return HttpClient(
        options,
        guest=context.guest,
        routes=routes,
        report=context.output.host_says,
        call_ends_at=lambda: context.call_ends_at,
        reserve_return_time=context.reserve_return_time,
    )


_HTTP_FETCH = host_import("ngixi", "http_fetch", " ".join(["i32"] * 11), "i32")

CAPABILITY = Capability(
    "http",
    "outgoing HTTP requests to the manifest's allowlist",
    {_HTTP_FETCH: state_method("http", HttpClient.http_fetch, host_failure)},
    parse_options=parse_http,
    parse_ceiling=parse_http_ceiling,
    open_state=_open_state,
    interface="http",
    component_host={"fetch": _fetch},
    component_types={
        "fetch": (("string", "string", "string", "list<u8>"), (fallible("record { status: u16, body: list<u8> }"),))
    },
)
