"""The `http` capability's client: fetches with the manifest's allowlist checked on every hop.

Redirects are followed here, not by a library, so that each hop is checked like the first one.
Host names are resolved here too, and the connection goes to the address that was checked (a
second lookup could answer differently). Loopback, private, link-local (cloud metadata) and
other non-public addresses are refused unless an allow entry names that exact address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

from ngixi_runtime.capabilities.context import Address
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, GuestMemory, Status, read_utf8

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Headers = tuple[tuple[str, str], ...]

MAX_REDIRECTS = 5
# A guest's name lookups still running at once. A resolver that never answers keeps its thread after the fetch has
# timed out; without a bound, a guest granted `*.example.org` whose DNS does not answer, looking up a new name each
# millisecond under timeout_ms = 1, left a thread per fetch in the host, until it could start no more.
MAX_LOOKUPS = 4
# What a guest's request may hold, checked before its memory is read; its body is bounded by that memory.
MAX_METHOD_BYTES, MAX_URL_BYTES, MAX_HEADERS_BYTES = 32, 8192, 65536
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address in its last 32 bits
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a network's own translation, to anything
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291), but for these two:
UNSPECIFIED_AND_LOOPBACK = frozenset(ipaddress.IPv6Address(a) for a in ("::", "::1"))
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765's SIIT form
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
# A host name as an allowlist entry has it, and as a guest's URL must: labels of letters, digits and hyphens. Any
# other byte (a backslash, an escaped dot) a resolver may read as another name than the allowlist check saw.
HOST_NAME = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z")
_UNSAFE_IN_TARGET = re.compile(r"[^\x21-\x7e]")  # a request target is visible ASCII: anything else is percent-encoded
# What a header's value may not hold (RFC 9110, 5.5): controls but a tab (NUL too, which some servers and proxies end a
# line at), and what HTTP/1.1's ISO-8859-1 cannot carry.
_UNSAFE_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# The host sets these itself; a guest could use them to smuggle a second request or another Host.
_HOST_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade"}
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class Origin(NamedTuple):
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


class HttpOptions(NamedTuple):
    """The `[capabilities.http]` table (read by http.py)."""

    allow: tuple[Origin, ...]
    methods: tuple[str, ...]
    max_response_bytes: int
    timeout_ms: int

    def allowing(self, origin: Origin) -> Origin | None:
        return next((entry for entry in self.allow if entry.covers(origin)), None)


class Response(NamedTuple):
    status: int
    body: bytes


class Request(NamedTuple):
    method: str
    url: str
    origin: Origin
    target: str  # path and query
    headers: Headers
    body: bytes


def address_kind(address: IPAddress) -> str | None:
    """Why a guest may not reach this address by default (None for a public address). An IPv6 address that carries
    an IPv4 one is judged by what it carries before Python's own flags, which differ between versions (3.13 counts
    all of 6to4 and NAT64 local-use as private, 3.12 as global)."""
    if isinstance(address, ipaddress.IPv6Address) and address not in UNSPECIFIED_AND_LOOPBACK:
        if address.ipv4_mapped is not None:
            return _own_kind(address.ipv4_mapped)
        if address in NAT64_LOCAL_USE:
            return "NAT64 local-use"
        if address.is_site_local:
            return "site-local"
        embedded, how = _embedded_ipv4(address)
        if embedded is not None:
            kind = _own_kind(embedded)
            return None if kind is None else f"{kind} ({embedded} {how})"
    return _own_kind(address)


def _own_kind(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for kind, flagged in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
    ):
        if flagged:
            return kind
    return None if address.is_global else "non-public"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 address carries to, and how: a NAT64 gateway translates 64:ff9b::a9fe:a9fe to
    169.254.169.254 (DNS64 networks answer such addresses for every IPv4-only name), a 6to4 relay 2002:a9fe:a9fe::
    likewise, and the IPv4-compatible and -translated forms name it too. Python counts all of them as global."""
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64_WELL_KNOWN:
        return low, "through NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "through 6to4"
    if address in IPV4_COMPATIBLE or address in IPV4_TRANSLATED:
        return low, "as IPv4"
    return None, ""


def parse_headers(text: str) -> Headers:
    """`Name: value` lines (LF or CRLF separated) as the guest passes them."""
    headers = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.match(name) or _UNSAFE_IN_VALUE.search(value) or name.lower() in _HOST_HEADERS:
            raise AbiFault(Status.INVALID)
        headers.append((name, value))
    return tuple(headers)


class HttpClient:
    """Fetches for one guest instance.

    `routes` are the operator's (host, port) → address overrides; `report` tells the operator
    why a request was refused; `call_ends_at` says when the guest's current call reaches its own
    timeout: a fetch ends with TIMEOUT at its timeout_ms or at that, whichever comes first, and in the second
    case `reserve_return_time` leaves the guest time to return.
    """

    def __init__(
        self,
        options: HttpOptions,
        *,
        guest: str,
        routes: Mapping[Address, Address] | None = None,
        report: Callable[[str], None] | None = None,
        call_ends_at: Callable[[], float] = lambda: math.inf,
        reserve_return_time: Callable[[], None] = lambda: None,
    ) -> None:
        self.options = options
        self.call_ends_at = call_ends_at
        self.reserve_return_time = reserve_return_time
        self.guest = guest
        self.routes = dict(routes or {})
        self.report = report or (lambda message: None)
        self._lookups = threading.BoundedSemaphore(MAX_LOOKUPS)
        from ngixi_runtime.capabilities.http_wire import exchange  # here, not per fetch: it imports http.client and ssl

        self._send = exchange

    def close(self) -> None:
        """Nothing to release: each exchange has its own connection."""

    def http_fetch(
        self,
        memory: GuestMemory,
        method: int,
        method_length: int,
        url: int,
        url_length: int,
        headers: int,
        headers_length: int,
        body: int,
        body_length: int,
        buffer: int,
        buffer_size: int,
        result: int,
    ) -> None:
        self.check_sizes(method_length, url_length, headers_length)
        method_text, url_text = read_utf8(memory, method, method_length), read_utf8(memory, url, url_length)
        fields = parse_headers(read_utf8(memory, headers, headers_length))
        # The body's length is the guest's, up to its whole memory: a request the allowlist or methods refuse is
        # refused before it is copied.
        self._request(method_text, url_text, fields, b"", first=url_text)
        response = self.fetch(method_text, url_text, fields, memory.read(body, body_length))
        memory.write(result, struct.pack("<II", response.status, len(response.body)))
        memory.write(buffer, response.body[:buffer_size])

    def check_sizes(self, method: int, url: int, headers: int) -> None:
        """A request's method, URL and headers (their lengths in UTF-8 bytes) within what any guest may send, core or
        component, checked before they are read or parsed: else TOO_LARGE, and the operator is told which."""
        for part, length, most in (
            ("method", method, MAX_METHOD_BYTES),
            ("URL", url, MAX_URL_BYTES),
            ("headers", headers, MAX_HEADERS_BYTES),
        ):
            if length > most:
                self._refuse(Status.TOO_LARGE, "a request", f"its {part} is {length} bytes, at most {most}")

    def fetch(self, method: str, url: str, headers: Headers = (), body: bytes = b"") -> Response:
        """Follows redirects itself, checking every hop; refusals raise `AbiFault` with a `Status`."""
        deadline = min(time.monotonic() + self.options.timeout_ms / 1000, self.call_ends_at())
        request = self._request(method, url, headers, body, first=url)
        try:
            for _ in range(MAX_REDIRECTS):
                status, location, payload = self._exchange(request, deadline)
                if location is None:
                    return Response(status, payload)
                request = self._redirected(request, status, urljoin(request.url, location), first=url)
        except AbiFault as fault:
            if fault.code == Status.TIMEOUT and self._cut_by_the_call(deadline):
                self.reserve_return_time()
            raise
        self._refuse(Status.TOO_MANY_REDIRECTS, f"{method} {url}", f"more than {MAX_REDIRECTS} redirects")

    def _cut_by_the_call(self, deadline: float) -> bool:
        """Whether the guest's own call's deadline, not [capabilities.http] timeout_ms, ended the fetch."""
        return self.call_ends_at() <= deadline

    def _request(self, method: str, url: str, headers: Headers, body: bytes, *, first: str) -> Request:
        what = f"{method} {url}" + (f" (redirected from {first})" if url != first else "")
        if method not in self.options.methods:
            self._refuse(
                Status.METHOD_NOT_ALLOWED,
                what,
                f'{method} is not in [capabilities.http] methods; add "{method}" to allow it',
            )
        origin, target = _split_url(url)
        if self.options.allowing(origin) is None:
            self._refuse(Status.DENIED, what, f"{origin} is not in [capabilities.http] allow; {_to_allow(origin)}")
        return Request(method, url, origin, target, headers, body)

    def _redirected(self, request: Request, status: int, url: str, *, first: str) -> Request:
        method, body = request.method, request.body
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), b""
        headers = request.headers
        if _split_url(url)[0] != request.origin:
            headers = tuple(h for h in headers if h[0].lower() not in _CREDENTIAL_HEADERS)
        return self._request(method, url, headers, body, first=first)

    def _address(self, request: Request, deadline: float) -> Address:
        origin = request.origin
        routed = self.routes.get((origin.host, origin.port))
        if routed is not None:
            return routed
        found = _resolved(origin, deadline, self._lookups)
        named = self.options.allowing(origin)
        refused: list[tuple[IPAddress, str]] = []
        for *_, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            kind = address_kind(address)
            if kind is None or (named is not None and named.address == address):
                return str(address), origin.port
            refused.append((address, kind))
        listing = ", ".join(f"{address} (a {kind} address)" for address, kind in refused)
        exact = Origin(origin.scheme, str(refused[0][0]), origin.port)
        self._refuse(
            Status.ADDRESS_REFUSED,
            f"{request.method} {request.url}",
            f'{origin.host} resolves to {listing}; only an allow entry naming that exact address, like "{exact}", '
            "permits it, for requests made to that address",
        )

    def _exchange(self, request: Request, deadline: float) -> tuple[int, str | None, bytes]:
        """One request; returns (status, redirect location or None, body)."""
        origin = request.origin
        try:
            return self._send(
                scheme=origin.scheme,
                host=origin.host,
                port=origin.port,
                address=self._address(request, deadline),
                method=request.method,
                target=request.target,
                headers=request.headers,
                body=request.body,
                deadline=deadline,
                limit=self.options.max_response_bytes,
            )
        except AbiFault as fault:
            if (why := self._failure(fault.code, deadline)) is not None:
                self.report(f"{self.guest}: http: {request.method} {request.url} {why}")
            raise

    def _failure(self, code: int, deadline: float) -> str | None:
        """What the operator is told of a request that failed on its way (the refusals before it are `_refuse`'s)."""
        options = self.options
        if code == Status.TOO_LARGE:
            size = f"[capabilities.http] max_response_bytes ({options.max_response_bytes})"
            return f"refused: the response is over {size}; raise it to allow it"
        if code == Status.TIMEOUT:
            own = self._cut_by_the_call(deadline)
            ended = "the call's limits.timeout_ms" if own else f"[capabilities.http] timeout_ms ({options.timeout_ms})"
            return f"timed out: no whole response within {ended}"
        if code == Status.UNREACHABLE:
            return "failed: the host could not be resolved or connected to, or gave no whole response"
        return None

    def _refuse(self, status: Status, what: str, why: str) -> NoReturn:
        self.report(f"{self.guest}: http: {what} refused: {why}")
        raise AbiFault(status)


def _to_allow(origin: Origin) -> str:
    """How an allow entry would let a request to `origin` through: a localhost name resolves to a loopback address,
    which only an entry naming the address itself permits (RFC 6761: such a name is always loopback)."""
    if origin.host == "localhost" or origin.host.endswith(".localhost"):
        exact = Origin(origin.scheme, "127.0.0.1", origin.port)
        return f'{origin.host} is a loopback address, which only its own entry allows: add "{exact}" and fetch that'
    return f'add "{origin}" to allow it'


def _resolved(origin: Origin, deadline: float, lookups: threading.BoundedSemaphore) -> list[Any]:
    """The addresses a host name resolves to, looked up by the deadline: on a thread of its own, which
    a resolver that never answers keeps, but not the guest."""
    found: list[Any] = []

    def look_up() -> None:
        with contextlib.suppress(OSError, UnicodeError):  # found stays empty: unreachable
            found.extend(socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM))

    if origin.address is not None:  # a literal address needs no resolver
        look_up()
    else:
        _on_a_thread(look_up, deadline, lookups)
    if not found:
        raise AbiFault(Status.UNREACHABLE)
    return found


def _on_a_thread(look_up: Callable[[], None], deadline: float, lookups: threading.BoundedSemaphore) -> None:
    """Runs `look_up` on a thread holding one of the client's `lookups` until it ends, waiting for it until the
    deadline: a guest whose earlier lookups all still wait gets TIMEOUT then, and no new thread."""
    if not lookups.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise AbiFault(Status.TIMEOUT)

    def look_up_and_release() -> None:
        try:
            look_up()
        finally:
            lookups.release()

    lookup = threading.Thread(target=look_up_and_release, name="ngixi-resolve", daemon=True)
    try:
        lookup.start()
    except BaseException:
        lookups.release()
        raise
    lookup.join(max(0.0, deadline - time.monotonic()))
    if lookup.is_alive():
        raise AbiFault(Status.TIMEOUT)


def _split_url(url: str) -> tuple[Origin, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AbiFault(Status.INVALID) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        raise AbiFault(Status.INVALID)
    origin = Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSAFE_IN_TARGET.search(target) or not (HOST_NAME.match(origin.host) or origin.address is not None):
        raise AbiFault(Status.INVALID)
    return origin, target
