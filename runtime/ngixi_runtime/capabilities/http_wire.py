"""One HTTP exchange of the `http` capability, with an address that the client (http_client.py) has chosen and checked.

Apart from the client because importing http.client and ssl is a visible part of starting a tenant's
child process (docs/architecture.md has the figure): only a host that grants a guest http imports them,
when it creates the guest's client (not on the first fetch, which the guest's timeout would pay for).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time

from ngixi_runtime.capabilities.context import Address
from ngixi_runtime.spec.abi import AbiFault, Status

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 65536


class _Watchdog:
    """Shuts the connection's socket down at the deadline: whatever read or write waits on it then
    (the TLS handshake, a header dripping in byte by byte, the body) ends at once.

    The socket is handed over by the connection once it exists (`guard`): a deadline that passes while the
    connection is still being made shuts the socket down as soon as it is handed over."""

    def __init__(self, deadline: float) -> None:
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def guard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            fired = self.fired
        if fired:
            _shut_down(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sock = self._sock
        if sock is not None:
            _shut_down(sock)

    def stop(self) -> None:
        self._timer.cancel()


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # socket.socket's own shutdown, on the descriptor: a TLS socket's would tear its state down under the
        # thread reading it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Sends `Host: host` but connects to an address chosen (and checked) beforehand."""

    def __init__(self, host: str, port: int, address: Address, timeout: float, watchdog: _Watchdog) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._watchdog = watchdog

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address, self.timeout)
        self._watchdog.guard(self.sock)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: Address, timeout: float, watchdog: _Watchdog) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address
        self._watchdog = watchdog

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        # The handshake runs after the TLS socket is in place, so that the watchdog can cut it off too.
        self.sock = context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self._watchdog.guard(self.sock)
        self.sock.do_handshake()


def exchange(
    *,
    scheme: str,
    host: str,
    port: int,
    address: Address,
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    deadline: float,
    limit: int,
) -> tuple[int, str | None, bytes]:
    """One request for `target` at scheme://host:port, sent to `address`, over by `deadline` (time.monotonic).

    Returns (status, redirect location or None, body of at most `limit` bytes); raises TIMEOUT at the
    deadline, wherever the exchange is then: connecting, sending, reading the headers or the body.
    """
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    timeout = _remaining(deadline)
    watchdog = _Watchdog(deadline)
    connection = kind(host, port, address, timeout, watchdog)
    try:
        result = _exchange(connection, method=method, target=target, headers=headers, body=body, limit=limit)
    except (OSError, http.client.HTTPException, ValueError):
        result = None
    finally:
        watchdog.stop()
        connection.close()
    # After the watchdog shuts the socket, a body cut short reads as complete: it is not.
    if watchdog.fired or (result is None and time.monotonic() >= deadline):
        raise AbiFault(Status.TIMEOUT)
    if result is None:
        raise AbiFault(Status.UNREACHABLE)
    return result


def _exchange(
    connection: http.client.HTTPConnection,
    *,
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    limit: int,
) -> tuple[int, str | None, bytes]:
    connection.request(method, target, body=body or None, headers=dict(headers))
    with connection.getresponse() as response:  # closed whatever happens: it holds the socket's descriptor
        location = response.getheader("Location")
        if response.status in REDIRECT_STATUSES and location:
            return response.status, location, b""
        return response.status, None, _read_body(response, limit)


def _read_body(response: http.client.HTTPResponse, limit: int) -> bytes:
    """The body, up to the byte cap."""
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AbiFault(Status.TOO_LARGE)
    body = bytearray()
    while True:
        chunk = response.read(min(CHUNK, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise AbiFault(Status.TOO_LARGE)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise AbiFault(Status.TIMEOUT)
    return left
