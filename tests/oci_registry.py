"""A real OCI registry on loopback (the CNCF distribution registry, Debian's docker-registry), with or without a
login, and a proxy in front of it that slows the answers a test picks."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.system import require_program

LOGIN = ("ngixi", "s3cret")
_LOGIN_HASH = "$2b$04$abcdefghijklmnopqrstuuLZYjhNQAOdpbzt4WxWlUHjv1wsyH5DG"  # bcrypt of "s3cret", cost 4: quick checks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_registry(root: Path, *, login: bool = False) -> Iterator[str]:
    """Runs a registry storing under `root`; yields its host:port. With `login`, every request needs LOGIN
    (HTTP Basic, as the registry's htpasswd backend asks for it)."""
    program = require_program("docker-registry", "docker-registry")
    port = free_port()
    config = root / "config.yml"
    auth = ""
    if login:
        (root / "htpasswd").write_text(f"{LOGIN[0]}:{_LOGIN_HASH}\n")
        auth = f"auth:\n  htpasswd:\n    realm: ngixi-tests\n    path: {root / 'htpasswd'}\n"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    server = subprocess.Popen([program, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, server)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers: 401 for a registry with a login
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("the registry did not start")
            time.sleep(0.1)


Picks = Callable[[str, str], bool]  # (method, path with query) -> whether this answer is slowed


class StoppingServer(ThreadingHTTPServer):
    """An HTTP server on loopback whose handlers end when `stop` is set."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.stop = threading.Event()


Served = TypeVar("Served", bound=StoppingServer)


class RegistryProxy(StoppingServer):
    """Forwards each request to the registry and sends back its answer: after `delay` seconds for those `delayed`
    picks, a byte every `trickle_gap` seconds for those `trickled` picks (from the status line on, or from the body
    on with `trickle_body_only`). `requests` lists (method, path) of everything forwarded."""

    def __init__(self, upstream: str) -> None:
        super().__init__(_Forward)
        self.upstream = upstream
        self.delayed: Picks = lambda method, path: False
        self.delay = 0.0
        self.trickled: Picks = lambda method, path: False
        self.trickle_body_only = False
        self.trickle_gap = 0.05
        self.requests: list[tuple[str, str]] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: RegistryProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        proxy = self.server
        proxy.requests.append((self.command, self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))  # the Host is the proxy's
        answer = upstream.getresponse()
        content = answer.read()
        upstream.close()
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n".encode()
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                head += f"{name}: {value}\r\n".encode()
        head += f"Content-Length: {len(content)}\r\n\r\n".encode()
        if proxy.delayed(self.command, self.path):
            proxy.stop.wait(proxy.delay)
        whole = head + (b"" if self.command == "HEAD" else content)
        if proxy.trickled(self.command, self.path):
            self._trickle(whole, len(head) if proxy.trickle_body_only else 0)
        else:
            self.wfile.write(whole)

    def _trickle(self, whole: bytes, start: int) -> None:
        self.wfile.write(whole[:start])
        try:
            for offset in range(start, len(whole)):
                self.wfile.write(whole[offset : offset + 1])
                self.wfile.flush()
                if self.server.stop.wait(self.server.trickle_gap):
                    return
        except OSError:
            self.close_connection = True  # the client gave up: what the test wants

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_PATCH(self) -> None:
        self._forward()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def serving(server: Served) -> Iterator[Served]:
    """Serves on a thread until the block ends; then `stop` tells handlers still trickling or waiting to end."""
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
