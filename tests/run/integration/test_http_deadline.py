"""`capabilities.http.timeout_ms` is one deadline for connecting, the headers and the body, and it ends
inside the guest's own call timeout: servers that drip, stall or never finish a TLS handshake."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.http import parse_http
from ngixi_runtime.capabilities.http_client import HttpClient
from ngixi_runtime.loading.calls import CallResult
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.loading.tenants import Tenant, open_tenant
from ngixi_runtime.spec.abi import AbiFault, Status
from ngixi_runtime.spec.schema import Problems
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.integration import retried_on_timeout

wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler

MARGIN = 0.5  # seconds a timeout may end late on a busy machine
DRIP_SECONDS = 0.1

Behaviour = Callable[[socket.socket], None]


def drip_headers(connection: socket.socket) -> None:
    connection.recv(65536)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
        connection.sendall(bytes([byte]))
        time.sleep(DRIP_SECONDS)


def drip_body(connection: socket.socket) -> None:
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(100_000):
        connection.sendall(b"x")
        time.sleep(DRIP_SECONDS)


def stay_silent(connection: socket.socket) -> None:
    """Takes the connection and says nothing: a TLS client waits for the server's hello forever."""
    connection.recv(65536)
    time.sleep(60)


def serve(behaviour: Behaviour) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def handle(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):  # the client hung up: what these tests want
            behaviour(connection)

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    stopping.set()
    listener.close()


@pytest.fixture(scope="module")
def dripping_server() -> Iterator[int]:
    yield from serve(drip_headers)


@pytest.fixture(scope="module")
def body_dripping_server() -> Iterator[int]:
    yield from serve(drip_body)


@pytest.fixture(scope="module")
def silent_server() -> Iterator[int]:
    yield from serve(stay_silent)


def client(origin: str, timeout_ms: int) -> HttpClient:
    problems = Problems("test")
    options = parse_http({"allow": [origin], "timeout_ms": timeout_ms}, "capabilities.http", problems)
    assert problems.lines == []
    return HttpClient(options, guest="g")


def timed_status(fetch: Callable[[], object]) -> tuple[Status, float]:
    started = time.monotonic()
    with pytest.raises(AbiFault) as caught:
        fetch()
    return Status(caught.value.code), time.monotonic() - started


@pytest.mark.parametrize(
    ("server", "scheme"),
    [("dripping_server", "http"), ("body_dripping_server", "http"), ("silent_server", "https")],
    ids=["headers dripping", "body dripping", "TLS handshake never answered"],
)
def test_the_timeout_is_one_deadline_for_the_whole_exchange(
    server: str, scheme: str, request: pytest.FixtureRequest
) -> None:
    port = request.getfixturevalue(server)
    http = client(f"{scheme}://127.0.0.1:{port}", 1000)
    status, elapsed = timed_status(lambda: http.fetch("GET", f"{scheme}://127.0.0.1:{port}/"))
    assert status == Status.TIMEOUT
    assert 1.0 <= elapsed < 1.0 + MARGIN


def test_the_deadline_ends_before_the_guests_call_does(dripping_server: int) -> None:
    origin = f"http://127.0.0.1:{dripping_server}"
    problems = Problems("test")
    options = parse_http({"allow": [origin], "timeout_ms": 30_000}, "capabilities.http", problems)
    call_ends_at = time.monotonic() + 0.8
    http = HttpClient(options, guest="g", call_ends_at=lambda: call_ends_at)
    status, _ = timed_status(lambda: http.fetch("GET", origin + "/"))
    assert status == Status.TIMEOUT
    assert time.monotonic() < call_ends_at


def test_a_call_whose_time_is_up_fetches_nothing(dripping_server: int) -> None:
    origin = f"http://127.0.0.1:{dripping_server}"
    problems = Problems("test")
    options = parse_http({"allow": [origin]}, "capabilities.http", problems)
    http = HttpClient(options, guest="g", call_ends_at=lambda: time.monotonic() - 1)
    status, elapsed = timed_status(lambda: http.fetch("GET", origin + "/"))
    assert status == Status.TIMEOUT and elapsed < 0.1


def test_a_resolver_that_never_answers_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*_: object, **__: object) -> list[object]:
        time.sleep(5)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    http = client("https://slow.example.com", 500)
    status, elapsed = timed_status(lambda: http.fetch("GET", "https://slow.example.com/"))
    assert status == Status.TIMEOUT
    assert 0.5 <= elapsed < 0.5 + MARGIN


# --- through a real guest, on both engines, in-process and isolated -------------------------------------


def fetching_guest(url: str) -> bytes:
    encoded = url.encode()
    return bytes(
        wasmtime.wat2wasm(f"""(module
      (import "ngixi" "http_fetch"
        (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1 1)
      (data (i32.const 0) "GET")
      (data (i32.const 16) "{url}")
      (func (export "fetch") (result i32)
        (call $fetch (i32.const 0) (i32.const 3) (i32.const 16) (i32.const {len(encoded)})
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
          (i32.const 1024) (i32.const 1024) (i32.const 512))))""")
    )


def fetching_manifest(port: int, *, http_timeout_ms: int, guest_timeout_ms: int) -> str:
    return f"""\
[guest]
name = "dripped"
version = "0.1.0"

[exports.fetch]
results = ["i32"]

[capabilities.http]
allow = ["http://127.0.0.1:{port}"]
timeout_ms = {http_timeout_ms}

[limits]
timeout_ms = {guest_timeout_ms}
"""


@pytest.fixture(scope="module")
def module_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key(tmp_path_factory.mktemp("keys"))


def fetching_bundle(tmp_path: Path, keys: KeyFiles, port: int, *, http_timeout_ms: int, guest_timeout_ms: int) -> Path:
    manifest = fetching_manifest(port, http_timeout_ms=http_timeout_ms, guest_timeout_ms=guest_timeout_ms)
    wasm = fetching_guest(f"http://127.0.0.1:{port}/drip")
    return make_bundle(tmp_path / "bundle", keys.key, wasm=wasm, manifest=manifest, guest="dripped")


@pytest.mark.parametrize(
    "timeouts",
    [(1000, 5000, 1.0), (30_000, 1000, 0.95)],
    ids=["the http timeout first", "the guest's timeout first"],
)
@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.usefixtures("engine_name")  # the default engine, in the tenant's child too
def test_a_guest_sees_timeout_from_a_dripping_server(
    tmp_path: Path,
    module_keys: KeyFiles,
    dripping_server: int,
    isolated: bool,
    timeouts: tuple[int, int, float],
) -> None:
    """(http timeout_ms, limits.timeout_ms, seconds the call should take). The guest has RETURN_SECONDS to return
    after its own deadline's TIMEOUT, which a machine loaded past its cores may not give it: a pair of calls where
    one ends in the call's own timeout is tried again, twice at most."""
    http_timeout_ms, guest_timeout_ms, ends_within = timeouts
    path = fetching_bundle(
        tmp_path, module_keys, dripping_server, http_timeout_ms=http_timeout_ms, guest_timeout_ms=guest_timeout_ms
    )
    with open_tenant(path, trust_file=module_keys.trust, isolated=isolated) as tenant:
        result, elapsed = retried_on_timeout(lambda: _warmed_fetch(tenant))
    assert result.values == (Status.TIMEOUT,)
    assert ends_within - 0.15 <= elapsed < ends_within + MARGIN


def _warmed_fetch(tenant: Tenant) -> tuple[CallResult, float]:
    """The second of two calls and its seconds: the first starts an isolated tenant's child (again after a timeout
    stopped it), so only a call on a running child is timed."""
    tenant.call("fetch", ())
    started = time.monotonic()
    return tenant.call("fetch", ()), time.monotonic() - started


def test_an_in_process_guest_waits_no_longer_than_the_timeout(
    tmp_path: Path, module_keys: KeyFiles, dripping_server: int, engine_name: str
) -> None:
    path = fetching_bundle(tmp_path, module_keys, dripping_server, http_timeout_ms=300, guest_timeout_ms=5000)
    guest = open_guest(read_bundle(path, load_trust(module_keys.trust)), engine=engine_name)
    started = time.monotonic()
    assert guest.call("fetch", ()) == (Status.TIMEOUT,)
    assert time.monotonic() - started < 0.3 + MARGIN
