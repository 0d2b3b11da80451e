"""`capabilities.http.timeout_ms` is one deadline for connecting, the headers and the body, and it ends
inside the guest's own call timeout: servers that drip, stall or never finish a TLS handshake."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.http import parse_http
from ngixi_runtime.capabilities.http_client import MAX_LOOKUPS, HttpClient
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.spec.abi import RETURN_RESERVE_SECONDS, AbiFault, Status
from ngixi_runtime.spec.schema import Problems
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle, make_key

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


@pytest.mark.parametrize(
    ("http_timeout_ms", "reserves"), [(30_000, 1), (500, 0)], ids=["the call's first", "its own first"]
)
def test_a_fetch_ends_at_the_guests_deadline_and_asks_for_its_reserve(
    dripping_server: int, http_timeout_ms: int, reserves: int
) -> None:
    """Cut short by the call's deadline, the fetch asks that the guest be left its reserve; at its own timeout_ms,
    not."""
    origin = f"http://127.0.0.1:{dripping_server}"
    problems = Problems("test")
    options = parse_http({"allow": [origin], "timeout_ms": http_timeout_ms}, "capabilities.http", problems)
    call_ends_at = time.monotonic() + 0.8
    asked: list[float] = []
    http = HttpClient(
        options,
        guest="g",
        call_ends_at=lambda: call_ends_at,
        reserve_return_time=lambda: asked.append(time.monotonic()),
    )
    status, _ = timed_status(lambda: http.fetch("GET", origin + "/"))
    assert status == Status.TIMEOUT
    assert len(asked) == reserves
    assert all(call_ends_at <= at < call_ends_at + MARGIN for at in asked)


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


def resolver_threads() -> int:
    return sum(thread.name == "ngixi-resolve" for thread in threading.enumerate())


def test_lookups_that_never_end_hold_at_most_four_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest whose signer's DNS never answers, fetching a name each millisecond under timeout_ms = 1, left a
    lookup thread per fetch in the host; the fifth fetch now waits for one of the four still running,
    until its deadline, and starts none."""
    answered = threading.Event()

    def hang(*_: object, **__: object) -> list[object]:
        answered.wait(10)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    http = client("https://*.example.com", 1)
    before = resolver_threads()
    try:
        urls = [f"https://a{n}.example.com/" for n in range(200)]
        statuses = {timed_status(functools.partial(http.fetch, "GET", url))[0] for url in urls}
        assert statuses == {Status.TIMEOUT}
        assert resolver_threads() - before == MAX_LOOKUPS
    finally:
        answered.set()
    deadline = time.monotonic() + 5
    while resolver_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    # The lookups ended: their places are free again, and a fetch looks up once more.
    looked_up = threading.Event()

    def answer(*_: object, **__: object) -> list[object]:
        looked_up.set()
        return []

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    timed_status(lambda: http.fetch("GET", "https://b.example.com/"))
    assert looked_up.wait(5)


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
    [(1000, 5000, 1.0), (30_000, 1000, 1.0)],
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
    """(http timeout_ms, limits.timeout_ms, seconds the call should take). Only the second call, on a running child,
    is timed: the first starts an isolated tenant's."""
    http_timeout_ms, guest_timeout_ms, ends_within = timeouts
    path = fetching_bundle(
        tmp_path, module_keys, dripping_server, http_timeout_ms=http_timeout_ms, guest_timeout_ms=guest_timeout_ms
    )
    with open_tenant(path, trust_file=module_keys.trust, isolated=isolated) as tenant:
        tenant.call("fetch", ())
        started = time.monotonic()
        result = tenant.call("fetch", ())
        elapsed = time.monotonic() - started
    assert result.values == (Status.TIMEOUT,)
    assert ends_within - 0.1 <= elapsed < ends_within + MARGIN


def test_an_in_process_guest_waits_no_longer_than_the_timeout(
    tmp_path: Path, module_keys: KeyFiles, dripping_server: int, engine_name: str
) -> None:
    path = fetching_bundle(tmp_path, module_keys, dripping_server, http_timeout_ms=300, guest_timeout_ms=5000)
    guest = open_guest(read_bundle(path, load_trust(module_keys.trust)), engine=engine_name)
    started = time.monotonic()
    assert guest.call("fetch", ()) == (Status.TIMEOUT,)
    assert time.monotonic() - started < 0.3 + MARGIN


# --- the reserve a guest is left after its own deadline's TIMEOUT ----------------------------------------------

RESERVE_GUEST_TIMEOUT_MS = 500


def reserve_guest(url: str) -> bytes:
    """`late` answers its fetch's status after `ms` more of its own time (read from its clock); `fetch_on` fetches
    again and again, for 5 s of its clock at most, then answers -1; `ready` answers 0."""
    encoded = url.encode()
    return bytes(
        wasmtime.wat2wasm(f"""(module
      (import "ngixi" "http_fetch"
        (func $http_fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
      (memory (export "memory") 1 1)
      (data (i32.const 0) "GET")
      (data (i32.const 16) "{url}")
      (func $fetch (result i32)
        (call $http_fetch (i32.const 0) (i32.const 3) (i32.const 16) (i32.const {len(encoded)})
          (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1024) (i32.const 1024) (i32.const 512)))
      (func $now (result i64)
        (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 2048)))
        (i64.load (i32.const 2048)))
      (func (export "ready") (result i32) (i32.const 0))
      (func (export "late") (param $ms i32) (result i32)
        (local $status i32) (local $until i64)
        (local.set $status (call $fetch))
        (local.set $until (i64.add (call $now) (i64.mul (i64.extend_i32_u (local.get $ms)) (i64.const 1000000))))
        (block $done (loop $spin (br_if $done (i64.ge_u (call $now) (local.get $until))) (br $spin)))
        (local.get $status))
      (func (export "fetch_on") (result i32)
        (local $until i64)
        (local.set $until (i64.add (call $now) (i64.const 5000000000)))
        (block $done (loop $again
          (drop (call $fetch))
          (br_if $done (i64.ge_u (call $now) (local.get $until)))
          (br $again)))
        (i32.const -1)))""")
    )


@pytest.fixture(scope="module")
def reserve_bundle(tmp_path_factory: pytest.TempPathFactory, module_keys: KeyFiles, dripping_server: int) -> Path:
    manifest = f"""\
[guest]
name = "reserved"
version = "0.1.0"

[exports.ready]
results = ["i32"]

[exports.late]
params = ["i32"]
results = ["i32"]

[exports.fetch_on]
results = ["i32"]

[capabilities.clock]

[capabilities.http]
allow = ["http://127.0.0.1:{dripping_server}"]
timeout_ms = 30000

[limits]
timeout_ms = {RESERVE_GUEST_TIMEOUT_MS}
"""
    wasm = reserve_guest(f"http://127.0.0.1:{dripping_server}/drip")
    folder = tmp_path_factory.mktemp("reserve") / "bundle"
    return make_bundle(folder, module_keys.key, wasm=wasm, manifest=manifest, guest="reserved")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.usefixtures("engine_name")
def test_a_guest_has_its_reserve_to_return_after_its_deadlines_timeout(
    reserve_bundle: Path, module_keys: KeyFiles, isolated: bool
) -> None:
    """The fetch ends with TIMEOUT at the call's deadline; the guest then takes 100 ms of its own before it returns,
    as a guest on a host loaded past its cores may, and still answers (it was stopped 50 ms after its deadline)."""
    with open_tenant(reserve_bundle, trust_file=module_keys.trust, isolated=isolated) as tenant:
        tenant.call("ready", ())
        started = time.monotonic()
        result = tenant.call("late", (100,))
        elapsed = time.monotonic() - started
    assert result.values == (Status.TIMEOUT,)
    assert RESERVE_GUEST_TIMEOUT_MS / 1000 + 0.1 <= elapsed < RESERVE_GUEST_TIMEOUT_MS / 1000 + MARGIN


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_guest_fetching_on_past_its_deadline_is_stopped_after_one_reserve(
    reserve_bundle: Path, module_keys: KeyFiles, isolated: bool, engine_name: str
) -> None:
    """Every fetch after the deadline answers TIMEOUT at once, but only the first leaves the guest its reserve: it is
    stopped then, not at the 5 s it would fetch for (in-process Wasmer stops no call, so it is not tried)."""
    if engine_name == "wasmer" and not isolated:
        pytest.skip("Wasmer cannot interrupt a call in this process")
    with open_tenant(reserve_bundle, trust_file=module_keys.trust, isolated=isolated) as tenant:
        tenant.call("ready", ())
        started = time.monotonic()
        with pytest.raises(GuestError) as stopped:
            tenant.call("fetch_on", ())
        elapsed = time.monotonic() - started
    assert stopped.value.outcome == "timeout"
    assert elapsed < RESERVE_GUEST_TIMEOUT_MS / 1000 + RETURN_RESERVE_SECONDS + MARGIN
