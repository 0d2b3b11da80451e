"""The OCI registry client `ngixi pull` and `ngixi publish` use: oras's, with a deadline for the whole command, a
stall limit for each read, each request tried once, and one line when the registry wants a login oras cannot give."""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import socket
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import oras.client
import requests
from oras.auth.utils import get_basic_auth
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.printable import clipped, printable
from ngixi_runtime.registry.names import is_loopback_host

USERNAME_VARIABLE = "NGIXI_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "NGIXI_REGISTRY_PASSWORD"
INSECURE_VARIABLE = "NGIXI_REGISTRY_INSECURE"
REACH_TIMEOUT_SECONDS = 10  # for each connect and each read: a registry that stops answering fails the command
DEFAULT_TIMEOUT_SECONDS = 600  # a whole pull or publish, however its registry sends
MAX_TIMEOUT_SECONDS = 86400
# How fast a registry is expected to check and store what an upload sent before it answers (hashing, a cloud
# store's copy): a 1 GiB bundle may take 128 s more than the stall limit.
ANSWER_BYTES_PER_SECOND = 8 << 20
_ACTIVE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("registry_deadline", default=None)


class RegistryError(NgixiError):
    """The registry refused or failed a push or pull."""


class OutOfTime(RegistryError):
    """The whole pull or publish did not finish by its deadline."""


class Deadline:
    """The end of one pull or publish. Past it every connection opened meanwhile is shut down, so that a registry
    sending a byte now and then, each within the stall limit, cannot hold the command longer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._shut_all)
        self._timer.daemon = True

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self._ends

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def watch(self, connection: socket.socket) -> None:
        with self._lock:
            self._sockets.add(connection)
        if self.passed:
            _shut(connection)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()

    def _shut_all(self) -> None:
        with self._lock:
            connections = list(self._sockets)
        for connection in connections:
            _shut(connection)


def _shut(connection: socket.socket) -> None:
    """Ends the connection both ways, which wakes a read blocked in another thread (a TLS socket's own shutdown
    would first drop its TLS state under that read)."""
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(connection, socket.SHUT_RDWR)


def checked_timeout(seconds: float | None) -> float:
    """The seconds a pull or publish may take: DEFAULT_TIMEOUT_SECONDS if None."""
    seconds = DEFAULT_TIMEOUT_SECONDS if seconds is None else seconds
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidInput(
            f"--timeout {seconds:g}: give the seconds it may take, above 0, {MAX_TIMEOUT_SECONDS} at most"
        )
    return seconds


@contextmanager
def within(seconds: float | None) -> Iterator[Deadline]:
    """Runs a pull or publish against its deadline (DEFAULT_TIMEOUT_SECONDS if None): anything failing once the
    deadline has passed (a connection shut under a read, a request refused before it was sent) is raised as
    `OutOfTime`."""
    deadline = Deadline(checked_timeout(seconds))
    active = _ACTIVE.set(deadline)
    deadline.start()
    try:
        yield deadline
    except (NgixiError, requests.RequestException, ValueError, OSError):
        if deadline.passed:
            raise OutOfTime(f"did not finish within {deadline.seconds:g} s") from None
        raise
    finally:
        deadline.stop()
        _ACTIVE.reset(active)


# Through public names only, so no version check: requests' HTTPAdapter.init_poolmanager and proxy_manager_for (for
# subclasses), urllib3's PoolManager.pool_classes_by_scheme, HTTPConnectionPool.ConnectionCls (typed attributes of
# its API reference) and http.client's HTTPConnection.connect and .sock.
class _WatchedConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


class _WatchedSecureConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


def _watch(connection: socket.socket | None) -> None:
    deadline = _ACTIVE.get()
    if deadline is not None and connection is not None:
        deadline.watch(connection)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedSecurePool(HTTPSConnectionPool):
    ConnectionCls = _WatchedSecureConnection


class _Limits(HTTPAdapter):
    """Every request of a client's session: at most REACH_TIMEOUT_SECONDS to connect and for each read (oras sets
    no timeout), longer for the answer to an upload, never past the running command's deadline; each
    connection it opens is watched by that deadline."""

    def init_poolmanager(self, *args: Any, **options: Any) -> None:
        super().init_poolmanager(*args, **options)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedSecurePool}

    def proxy_manager_for(self, proxy: str, **options: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **options)
        if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:  # not a SOCKS proxy's own
            manager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedSecurePool}
        return manager

    def send(self, request: requests.PreparedRequest, **options: Any) -> requests.Response:  # type: ignore[override]
        _refuse_plain_http(str(request.url))  # a redirect comes here too
        stall = float(REACH_TIMEOUT_SECONDS)
        answer = stall + int(request.headers.get("Content-Length") or 0) / ANSWER_BYTES_PER_SECOND
        deadline = _ACTIVE.get()
        if deadline is not None:
            left = deadline.remaining()
            if left <= 0:
                raise requests.Timeout("the deadline passed")
            stall, answer = min(stall, left), min(answer, left)
        options["timeout"] = (stall, answer)  # requests passes every option by name
        return super().send(request, **options)


class Client(oras.client.OrasClient):  # type: ignore[misc]
    """oras's client with each request tried once: oras retries any failure five times, sleeping 131 s in all, a
    refused login included. A registry asking for a login it is not given, or refusing the one it is, is one line."""

    def __init__(self, host: str, *, insecure: bool) -> None:
        super().__init__(insecure=insecure)
        self.host = host
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _Limits())
        username, password = os.environ.get(USERNAME_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
        self.login_name = username if username and password else None
        self._basic = get_basic_auth(username, password) if self.login_name else None
        if self._basic:
            self.auth.set_basic_auth(username, password)  # for a token service; never written to a docker config
        self._sent_basic: dict[str, str] = {}  # once the registry asked for Basic authentication

    def do_request(  # noqa: PLR0917 (oras's signature, which its own methods call positionally)
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        if origin(url) != origin(f"{self.prefix}://{self.host}/"):  # an upload's location elsewhere (its storage)
            elsewhere: requests.Response = self.session.request(
                method, url, data=data, json=json, headers=headers, stream=stream
            )
            return elsewhere  # without the login, which is the registry's alone
        headers = {**(headers or {}), **self.auth.get_auth_header(), **self._sent_basic}
        response: requests.Response = self.session.request(
            method, url, data=data, json=json, headers=headers, stream=stream
        )
        for refresh in (False, True):  # a token, then a new token (one with the scope a push needs)
            if response.status_code not in (401, 403):
                return response
            response.close()
            headers = self._authenticated(response, headers, method, refresh=refresh)
            response = self.session.request(method, url, data=data, json=json, headers=headers, stream=stream)
        if response.status_code in (401, 403):
            raise self._refused(response, method)
        return response

    def _authenticated(
        self, response: requests.Response, headers: dict[str, str], method: str, *, refresh: bool
    ) -> dict[str, str]:
        """The headers to try again with, answering the registry's challenge; raises if there is none to give."""
        scheme = response.headers.get("Www-Authenticate", "").partition(" ")[0].lower()
        if scheme == "basic" and self._basic and not self._sent_basic:
            self._sent_basic = {"Authorization": f"Basic {self._basic}"}
            return {**headers, **self._sent_basic}
        if scheme == "bearer":
            answered, changed = self.auth.authenticate_request(response, headers, refresh=refresh)
            if changed:
                return dict(answered)
        raise self._refused(response, method)

    def _refused(self, response: requests.Response, method: str) -> RegistryError:
        access = "pull" if method in ("GET", "HEAD") else "push"
        path = urllib.parse.urlsplit(response.url).path
        if self.login_name is None:
            return RegistryError(
                f"{self.host}: the registry asks for a login (HTTP {response.status_code} for {path}): set "
                f"{USERNAME_VARIABLE} and {PASSWORD_VARIABLE} (a token with {access} access) and run it again"
            )
        return RegistryError(
            f"{self.host}: the registry refused the login of {USERNAME_VARIABLE}={self.login_name} "
            f"(HTTP {response.status_code} for {path}): check {PASSWORD_VARIABLE} and that the account may "
            f"{access} there"
        )


def connect(host: str) -> Client:
    """A client for the registry at host[:port]: plain HTTP only on loopback or when asked, the login from the
    environment; one quick look at the registry's API root first, so that an unreachable one is one line now."""
    client = Client(host, insecure=plain_http_allowed(host))
    try:
        client.session.get(f"{client.prefix}://{host}/v2/").close()
    except requests.RequestException as error:
        if (deadline := _ACTIVE.get()) is not None and deadline.passed:
            raise
        raise RegistryError(
            f"{host}: cannot reach the registry ({reason(error)}); "
            f"check the registry's address (plain HTTP only on loopback or with {INSECURE_VARIABLE}=1)"
        ) from None
    return client


def origin(url: str) -> tuple[str, str | None, int | None]:
    """A URL's scheme, host and port (the scheme's own when it gives none): where a login may be sent."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # not a port: no origin this one could be
        port = -1
    return parts.scheme, parts.hostname, port


def plain_http_allowed(host: str) -> bool:
    """Whether plain HTTP may carry requests to host[:port]: on this machine, or when the user asks for it."""
    return is_loopback(host) or os.environ.get(INSECURE_VARIABLE) == "1"


def _refuse_plain_http(url: str) -> None:
    """Refuses a plain-HTTP request the rule does not allow: a registry's redirect (a blob's, to its storage) could
    otherwise send the client to any host over plain HTTP, the registry's own being HTTPS."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and not plain_http_allowed(parts.netloc):
        raise RegistryError(
            f"{clipped(printable(url), 200)}: the registry redirected a request there, over plain HTTP, which goes "
            f"only to this machine or with {INSECURE_VARIABLE}=1; refused"
        )


def is_loopback(host: str) -> bool:
    """Whether a registry's host[:port] is this machine."""
    return is_loopback_host(host.rsplit(":", 1)[0].strip("[]") if not host.endswith("]") else host.strip("[]"))


def reason(error: requests.RequestException) -> str:
    """What went wrong with a request, in a few words rather than urllib3's nested reprs."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+|timed out|certificate verify failed[^'\")]*", str(error))
    if found and found.group(0) == "timed out":
        return f"the registry did not answer within {REACH_TIMEOUT_SECONDS} s"
    return found.group(0) if found else type(error).__name__
