"""One HTTP exchange of the `http` capability, with an address that the client (http_client.py) has chosen and checked.

Apart from the client because importing http.client and ssl is a visible part of starting a tenant's
child process (docs/architecture.md has the figure): only a host that grants a guest http imports them,
when it creates the guest's client (not on the first fetch, which the guest's timeout would pay for).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time

from ngixi_runtime.capabilities.context import Address
from ngixi_runtime.spec.abi import AbiFault, Status

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 65536


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Sends `Host: host` but connects to an address chosen (and checked) beforehand."""

    def __init__(self, host: str, port: int, address: Address, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(self._address, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: Address, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


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
    """One request for `target` at scheme://host:port, sent to `address`.

    Returns (status, redirect location or None, body of at most `limit` bytes).
    """
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = kind(host, port, address, _remaining(deadline))
    try:
        connection.request(method, target, body=body or None, headers=dict(headers))
        response = connection.getresponse()
        location = response.getheader("Location")
        if response.status in REDIRECT_STATUSES and location:
            return response.status, location, b""
        return response.status, None, _read_body(response, deadline, limit)
    except TimeoutError:
        raise AbiFault(Status.TIMEOUT) from None
    except (OSError, http.client.HTTPException, ValueError):
        raise AbiFault(Status.UNREACHABLE) from None
    finally:
        connection.close()


def _read_body(response: http.client.HTTPResponse, deadline: float, limit: int) -> bytes:
    """The body, up to the byte cap; each read waits at most the request's timeout, and the
    deadline is checked between reads, so a slow sender is cut off within twice the timeout."""
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AbiFault(Status.TOO_LARGE)
    body = bytearray()
    while True:
        _remaining(deadline)
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
