"""The http capability against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import gc
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ngixi_build.stages.smoke import GREETING, http_server
from ngixi_runtime.capabilities.context import HOST_LINES_PER_CALL, Address, GuestOutput, HostContext
from ngixi_runtime.capabilities.http import parse_http
from ngixi_runtime.capabilities.http_client import (
    MAX_HEADERS_BYTES,
    MAX_METHOD_BYTES,
    MAX_URL_BYTES,
    HttpClient,
    HttpOptions,
    Response,
    address_kind,
    parse_headers,
)
from ngixi_runtime.capabilities.registry import capability
from ngixi_runtime.spec.abi import AbiFault, Status
from ngixi_runtime.spec.schema import Problems
from tests.conftest import FakeMemory


@pytest.fixture(scope="module")
def server() -> Iterator[Address]:
    with http_server() as address:
        yield address


def client(*allow: str, refusals: list[str] | None = None, **options: object) -> HttpClient:
    problems = Problems("test")
    parsed = parse_http({"allow": list(allow), **options}, "capabilities.http", problems)
    assert problems.lines == []
    return HttpClient(parsed, guest="g", report=(refusals if refusals is not None else []).append)


def refused(http: HttpClient, url: str, method: str = "GET") -> Status:
    with pytest.raises(AbiFault) as caught:
        http.fetch(method, url)
    return Status(caught.value.code)


def test_an_allowed_origin_is_fetched(server: Address) -> None:
    _, port = server
    http = client(f"http://127.0.0.1:{port}")
    assert http.fetch("GET", f"http://127.0.0.1:{port}/hello") == Response(200, GREETING)
    assert http.fetch("GET", f"http://127.0.0.1:{port}/missing").status == 404


def test_a_host_not_on_the_list_is_refused_and_the_operator_told_which_entry_allows_it(server: Address) -> None:
    _, port = server
    refusals: list[str] = []
    http = client(f"http://127.0.0.1:{port}", refusals=refusals)
    assert refused(http, f"http://localhost:{port}/hello") == Status.DENIED
    assert refused(http, f"http://127.0.0.1:{port + 1}/hello") == Status.DENIED
    assert refusals == [
        f"g: http: GET http://localhost:{port}/hello refused: http://localhost:{port} is not in [capabilities.http] "
        f'allow; localhost is a loopback address, which only its own entry allows: add "http://127.0.0.1:{port}" and '
        "fetch that",  # "add http://localhost:PORT" was advice that could never work (ADDRESS_REFUSED once resolved)
        f"g: http: GET http://127.0.0.1:{port + 1}/hello refused: http://127.0.0.1:{port + 1} is not in "
        f'[capabilities.http] allow; add "http://127.0.0.1:{port + 1}" to allow it',
    ]


def test_every_redirect_hop_is_checked(server: Address) -> None:
    _, port = server
    refusals: list[str] = []
    http = client(f"http://127.0.0.1:{port}", refusals=refusals)
    assert http.fetch("GET", f"http://127.0.0.1:{port}/redirect?to=/hello") == Response(200, GREETING)
    start = f"http://127.0.0.1:{port}/redirect?to=http://localhost:{port}/hello"
    assert refused(http, start) == Status.DENIED
    assert refusals == [
        f"g: http: GET http://localhost:{port}/hello (redirected from {start}) refused: "
        f"http://localhost:{port} is not in [capabilities.http] allow; localhost is a loopback address, which only its"
        f' own entry allows: add "http://127.0.0.1:{port}" and fetch that'
    ]
    assert refused(http, f"http://127.0.0.1:{port}/loop") == Status.TOO_MANY_REDIRECTS


def test_loopback_is_refused_after_resolution_unless_the_address_itself_is_listed(server: Address) -> None:
    _, port = server
    refusals: list[str] = []
    http = client(f"http://localhost:{port}", refusals=refusals)
    assert refused(http, f"http://localhost:{port}/hello") == Status.ADDRESS_REFUSED
    assert refusals[0].startswith(f"g: http: GET http://localhost:{port}/hello refused: localhost resolves to ")
    assert "loopback address" in refusals[0]
    assert "only an allow entry naming that exact address" in refusals[0]


def test_methods_size_and_time_are_capped(server: Address) -> None:
    """Each is a line to the operator naming the option to raise: a response over max_response_bytes and a timeout
    were the guest's status alone (TOO_LARGE, TIMEOUT), though README says every refusal is reported."""
    _, port = server
    origin = f"http://127.0.0.1:{port}"
    reported: list[str] = []
    http = client(origin, refusals=reported, methods=["GET", "POST"], max_response_bytes=100, timeout_ms=300)
    assert refused(http, f"{origin}/hello", method="DELETE") == Status.METHOD_NOT_ALLOWED
    assert http.fetch("GET", f"{origin}/bytes?n=100").body == b"x" * 100
    assert refused(http, f"{origin}/bytes?n=101") == Status.TOO_LARGE
    assert refused(http, f"{origin}/slow?ms=3000") == Status.TIMEOUT
    assert reported[1:] == [
        f"g: http: GET {origin}/bytes?n=101 refused: the response is over [capabilities.http] max_response_bytes "
        "(100); raise it to allow it",
        f"g: http: GET {origin}/slow?ms=3000 timed out: no whole response within [capabilities.http] timeout_ms (300)",
    ]
    assert http.fetch("POST", f"{origin}/echo", (("Content-Type", "text/plain"),), b"ping") == Response(200, b"ping")


def test_unreachable_and_malformed_urls(server: Address) -> None:
    reported: list[str] = []
    http = client("http://127.0.0.1:9", refusals=reported)
    assert refused(http, "http://127.0.0.1:9/") == Status.UNREACHABLE  # the discard port: nothing listens
    assert reported == [
        "g: http: GET http://127.0.0.1:9/ failed: the host could not be resolved or connected to, or gave no whole "
        "response"
    ]
    for url in ("not a url", "ftp://127.0.0.1:9/", "http://user@127.0.0.1:9/", "http://127.0.0.1:99999/"):
        assert refused(http, url) == Status.INVALID


@pytest.mark.parametrize(
    "url",
    [
        "http://evil\\.example.org/",
        "http://evil.net%2f.example.org/",
        "http://evil_.example.org/",
        "http://ev il.example.org/",
    ],
)
def test_a_host_the_resolver_would_read_otherwise_is_refused_before_any_lookup(url: str) -> None:
    """A wildcard allows names ending in .example.org; the resolver reads "evil\\.example" as one label in .org,
    outside example.org. Only a host name of letters, digits and hyphens (or an IP address) is looked up."""
    assert refused(client("http://*.example.org"), url) == Status.INVALID


def test_operator_routes_connect_elsewhere_but_the_allowlist_still_applies(server: Address) -> None:
    options = HttpOptions(client("http://127.0.0.1:18080").options.allow, ("GET",), 1000, 5000)
    http = HttpClient(options, guest="g", routes={("127.0.0.1", 18080): server})
    assert http.fetch("GET", "http://127.0.0.1:18080/hello") == Response(200, GREETING)
    assert refused(http, f"http://127.0.0.1:{server[1]}/hello") == Status.DENIED


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "non-public"),
        ("0.0.0.0", "private"),
        ("224.0.0.1", "multicast"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
        # IPv6 addresses that carry an IPv4 one, which Python counts as global whatever they carry
        ("64:ff9b::a9fe:a9fe", "cloud metadata (169.254.169.254 through NAT64)"),
        ("64:ff9b::7f00:1", "loopback (127.0.0.1 through NAT64)"),
        ("64:ff9b::5db8:d70e", None),
        ("64:ff9b:1::a00:5", "NAT64 local-use"),
        ("2002:a00:5::", "private (10.0.0.5 through 6to4)"),
        ("2002:5db8:d70e::", None),
        ("::7f00:1", "loopback (127.0.0.1 as IPv4)"),
        ("::ffff:0:a00:5", "private (10.0.0.5 as IPv4)"),
        ("fec0::1", "site-local"),
        ("::", "private"),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_a_name_whose_dns_answers_a_nat64_address_of_the_metadata_service_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A guest's signer who controls the DNS of the host it is granted answers 64:ff9b::a9fe:a9fe, which a DNS64/NAT64
    network's gateway translates to 169.254.169.254: Python counts the address as global, and the fetch went out."""
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a9fe:a9fe", 80, 0, 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: answers)
    refusals: list[str] = []
    http = client("http://api.example.com", refusals=refusals)
    assert refused(http, "http://api.example.com/latest/meta-data/") == Status.ADDRESS_REFUSED
    assert "64:ff9b::a9fe:a9fe (a cloud metadata (169.254.169.254 through NAT64) address)" in refusals[0]


def test_request_headers_are_checked() -> None:
    assert parse_headers("Accept: text/plain\r\nX-Id: 7\n") == (("Accept", "text/plain"), ("X-Id", "7"))
    bad_values = ("X: a\x00b", "X: a\rb", "X: \x1b[2J", "X: \u0100")  # a NUL went out; a character past latin-1
    assert parse_headers("X: \tcaf\xe9 ") == (("X", "caf\xe9"),)
    for bad in (
        "Host: evil.example",
        "no colon",
        "Bad Name: x",
        "Content-Length: 5",
        "Transfer-Encoding: chunked",
        *bad_values,
    ):
        with pytest.raises(AbiFault) as caught:
            parse_headers(bad)
        assert caught.value.code == Status.INVALID


def test_the_test_server_takes_a_client_hanging_up_early_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """A guest over its response size or time limit hangs up mid-response; the smoke output stays clean."""
    with http_server() as (host, port):
        with socket.create_connection((host, port)) as connection:
            connection.sendall(b"GET /bytes?n=50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            connection.recv(1024)
        with socket.create_connection((host, port)) as connection:  # served after the hang-up was handled
            connection.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert connection.recv(1024).startswith(b"HTTP/1.0 200")
    assert "Traceback" not in capfd.readouterr().err


def server_threads() -> int:
    return sum("process_request_thread" in thread.name for thread in threading.enumerate())


def test_the_test_server_costs_no_more_than_the_guest_takes(capfd: pytest.CaptureFixture[str]) -> None:
    """A smoke call's guest is the project's, and chooses its URL: `/bytes?n=N` made N bytes in the build's process
    before sending any (a MemoryError's traceback for a petabyte, 18 GB made at once for 18e9), and `/slow?ms=N`
    slept N ms after its client had gone, a thread each time (`ngixi watch --smoke` runs for hours)."""
    with http_server() as (host, port):
        with socket.create_connection((host, port)) as connection:
            connection.sendall(b"GET /bytes?n=1000000000000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            head = connection.recv(65536)
            assert head.startswith(b"HTTP/1.0 200") and b"Content-Length: 1000000000000000" in head
        before = server_threads()
        for _ in range(5):
            with socket.create_connection((host, port)) as connection:
                connection.sendall(b"GET /slow?ms=600000 HTTP/1.1\r\nHost: x\r\n\r\n")
        ended_by = time.monotonic() + 5
        while server_threads() > before and time.monotonic() < ended_by:
            time.sleep(0.01)
        assert server_threads() <= before
        for number in ("1e3", "-1", "1.5", "9" * 5000):
            with socket.create_connection((host, port)) as connection:
                connection.sendall(f"GET /slow?ms={number} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                assert connection.recv(1024).startswith(b"HTTP/1.0 400")
    assert "Traceback" not in capfd.readouterr().err


def test_a_deadline_passing_while_connecting_still_cuts_the_exchange() -> None:
    """The watchdog's timer fires before the connection has a socket (a busy machine can take that long to
    connect): the socket is shut down when the connection hands it over, or a server dripping bytes within
    the socket's timeout would hold the host call for as long as it drips."""
    from ngixi_runtime.capabilities.http_wire import _Watchdog

    watchdog = _Watchdog(deadline=0.0)  # long past: the timer fires at once, with no socket yet
    watchdog._timer.join(5)
    assert watchdog.fired
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.settimeout(5)
        watchdog.guard(ours)
        assert ours.recv(1) == b""  # shut down: the read ends at once, not at the peer's next byte


def test_a_body_refused_as_too_large_leaves_no_descriptor_open(server: Address) -> None:
    """The response holds the connection's socket once the headers are read: a refusal while reading its body
    closed the connection, not the response, and the descriptor stayed open until the collector found it."""
    _, port = server
    origin = f"http://127.0.0.1:{port}"
    http = client(origin, max_response_bytes=100)
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/fd"))
        assert refused(http, f"{origin}/bytes?n=101") == Status.TOO_LARGE
        assert _descriptors_settle_to(before) <= before
    finally:
        gc.enable()


def _descriptors_settle_to(count: int) -> int:
    """This process's open descriptors once they are down to `count`, or after 5 s: the test server's thread, in this
    process too, closes its side of a connection a moment after the client has let go of it."""
    deadline = time.monotonic() + 5
    while (now := len(os.listdir("/proc/self/fd"))) > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return now


def test_a_guest_asking_again_and_again_for_a_refused_url_gets_the_operator_a_hundred_lines_a_call() -> None:
    """The host's lines count against no quota of the guest's, and each quotes the guest's URL (up to 8 KB): a loop
    of refused fetches printed 180 MB in 5 s in-process, and an isolated child was stopped as "a malformed reply"."""
    output = GuestOutput()
    options = parse_http({"allow": ["https://a.example"]}, "http", Problems("test"))
    http = HttpClient(options, guest="g", report=output.host_says)
    url = "https://denied.example/" + "x" * 8000
    for _ in range(1_000):
        assert refused(http, url) == Status.DENIED
    lines = [line.message for line in output.take().logs]
    assert len(lines) == HOST_LINES_PER_CALL + 1 and max(map(len, lines)) < 2_100
    assert lines[0].startswith("g: http: GET https://denied.example/xxx") and "characters left out" in lines[0]
    assert lines[-1] == "this call's further lines from the host are left out (at most 100 a call)"
    assert refused(http, url) == Status.DENIED  # the next call has its own hundred
    assert len(output.take().logs) == 1


def test_a_target_that_is_not_visible_ascii_is_invalid_before_any_connection(server: Address) -> None:
    """http.client refused it only once connected, which the guest saw as UNREACHABLE."""
    _, port = server
    http = client(f"http://127.0.0.1:{port}")
    for target in ("/caf\u00e9", "/?q=\u0100", "/a\x7fb"):
        assert refused(http, f"http://127.0.0.1:{port}{target}") == Status.INVALID


# A request with one part over its limit, as (method, url, headers), and that limit (UTF-8 bytes, as core guests pass).
OVERSIZED = {
    "method": (("G" * (MAX_METHOD_BYTES + 1), "http://127.0.0.1:9/", ""), MAX_METHOD_BYTES),
    "URL": (("GET", "http://127.0.0.1:9/" + "é" * (MAX_URL_BYTES // 2), ""), MAX_URL_BYTES),  # fewer characters
    "headers": (("GET", "http://127.0.0.1:9/", "X-Filler: " + "a" * MAX_HEADERS_BYTES), MAX_HEADERS_BYTES),
}


@pytest.mark.parametrize("part", OVERSIZED)
def test_a_component_request_is_held_to_the_core_size_limits(part: str) -> None:
    """The component `fetch` had no method, URL or header limit: a component sent a 64 KiB-plus header block to an
    allowed host, and its over-long method or URL was refused for another reason, where a core guest's is TOO_LARGE
    before it is read. Both call one check now, which tells the operator, as other refusals are."""
    told: list[str] = []
    http = client("http://127.0.0.1:9", refusals=told)
    context = HostContext(guest="g", log_quota=100, stdio_quota=100, memory=FakeMemory(1 << 17), grants=frozenset())
    context.states["http"] = http
    request, limit = OVERSIZED[part]
    method, url, headers = (text.encode() for text in request)
    for pointer, data in ((0, method), (64, url), (32768, headers)):
        context.mem.write(pointer, data)
    with pytest.raises(AbiFault) as core:
        http.http_fetch(context.mem, 0, len(method), 64, len(url), 32768, len(headers), 0, 0, 0, 0, 0)
    assert core.value.code == Status.TOO_LARGE
    assert capability("http").component_host["fetch"](context)(*request, b"") == "too-large"
    length = len({"method": method, "URL": url, "headers": headers}[part])
    assert told == 2 * [f"g: http: a request refused: its {part} is {length} bytes, at most {limit}"]
