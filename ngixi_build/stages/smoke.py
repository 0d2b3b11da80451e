"""The smoke-test harness: loads a built bundle through the loader and runs its `[[smoke]]` calls.

Each bundle runs in a fresh sandbox directory. A guest granted `http` gets a real HTTP server on
127.0.0.1, and every loopback origin its allowlist names is routed there (the operator's
`http_routes`), so a manifest can name a fixed port while the server takes any free one.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Address, GuestExit, Sandbox
from ngixi_runtime.capabilities.http_client import HttpOptions
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.manifest import Manifest, SmokeCall
from ngixi_runtime.loading.loader import Guest, open_guest, verified_manifest
from ngixi_runtime.spec.wit_json import shown as shown_value
from ngixi_runtime.spec.wit_json import to_json
from ngixi_runtime.trust.signatures import load_trust

GREETING = b"hello from the smoke server\n"


class SmokeFailure(NgixiError):
    """A smoke call returned or printed something other than its manifest expects."""


class _Handler(BaseHTTPRequestHandler):
    """/hello, /redirect?to=URL, /loop (redirects to itself), /bytes?n=N, /slow?ms=N; POST echoes its body."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/hello":
            self._send(200, GREETING)
        elif url.path == "/redirect":
            self._send(302, b"", location=query.get("to", "/hello"))
        elif url.path == "/loop":
            self._send(302, b"", location="/loop")
        elif url.path == "/bytes":
            self._send(200, b"x" * int(query.get("n", "0")))
        elif url.path == "/slow":
            time.sleep(int(query.get("ms", "0")) / 1000)
            self._send(200, b"late\n")
        else:
            self._send(404, b"not found\n")

    def do_POST(self) -> None:
        self._send(200, self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _send(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the harness reports results, not requests."""


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up early is expected (a guest over its response size or time limit)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def http_server() -> Iterator[Address]:
    """A real HTTP server on 127.0.0.1 and a free port, for smoke calls and tests."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False  # a /slow request still sleeping must not hold up the shutdown
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="ngixi-smoke-http", daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _loopback_routes(manifest: Manifest, server: Address) -> dict[Address, Address]:
    options = manifest.options(HttpOptions)
    allow = options.allow if options else ()
    return {(o.host, o.port): server for o in allow if o.address is not None and o.address.is_loopback}


def smoke_bundle(*, bundle_path: Path, trust_file: Path, label: str) -> int:
    """Runs every smoke call of a bundle; returns how many ran, or raises with every failure."""
    bundle = read_bundle(bundle_path, load_trust(trust_file))
    manifest = verified_manifest(bundle)
    with ExitStack() as stack:
        sandbox = Sandbox.under(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ngixi-smoke-"))))
        if manifest.options(HttpOptions) is not None:
            routes = _loopback_routes(manifest, stack.enter_context(http_server()))
            sandbox = dataclasses.replace(sandbox, http_routes=routes)
        guest = stack.enter_context(open_guest(bundle, sandbox=sandbox))
        failures = [f"{label}: smoke[{i}]: {p}" for i, call in enumerate(manifest.smoke) if (p := _check(guest, call))]
    if failures:
        raise SmokeFailure("\n".join(failures))
    return len(manifest.smoke)


def _check(guest: Guest, call: SmokeCall) -> str | None:
    """What went wrong with one smoke call, or None."""
    shown = f"{call.call}({', '.join(shown_value(a) for a in call.args)})"
    try:
        results = _run(guest, call)
    except NgixiError as error:
        return f"{shown} failed: {error}"
    except GuestExit as exit_:
        return f"{shown} exited with code {exit_.code}"
    finally:
        output = guest.output.take()
    stdout = output.stdout.decode("utf-8", errors="replace")
    if call.expect is not None and to_json(list(results)) != to_json(list(call.expect)):
        return f"{shown} returned {_values(results)}, expected {_values(call.expect)}"
    if call.stdout is not None and stdout != call.stdout:
        return f"{shown} printed {stdout!r}, expected {call.stdout!r}"
    return None


def _run(guest: Guest, call: SmokeCall) -> tuple[Any, ...]:
    if call.call == "_start" and guest.manifest.guest.type.kind == "command":
        code = guest.run_command()
        if code and call.expect is None:
            raise SmokeFailure(f"exited with code {code}")
        return (code,)
    return guest.call(call.call, call.args)


def _values(values: tuple[Any, ...]) -> str:
    return ", ".join(shown_value(v) for v in values) or "nothing"
