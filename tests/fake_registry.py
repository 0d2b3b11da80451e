"""A registry of tables on loopback: each manifest, blob or path answered as a test says, for the answers a real
registry never gives (malformed manifests, stalls, endless bodies, token dances, redirects)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from ngixi_runtime.registry import oci
from tests.oci_registry import StoppingServer

Answer = Callable[[BaseHTTPRequestHandler], None]


class FakeRegistry(StoppingServer):
    """Answers /v2/, manifests by tag or digest and blobs by digest from its tables."""

    def __init__(self) -> None:
        super().__init__(_Handler)
        self.manifests: dict[str, Answer] = {}
        self.blobs: dict[str, Answer] = {}
        self.paths: dict[str, Answer] = {}  # any other path, without its query

    @property
    def repository(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}/ngixi"

    def tag(self, tag: str, layer: bytes, *, media_type: str = oci.GZIP_BUNDLE_MEDIA_TYPE) -> None:
        """Serves `layer` as the bundle layer of the manifest named by `tag` and by its digest."""
        digest = f"sha256:{hashlib.sha256(layer).hexdigest()}"
        self.blobs[digest] = lambda handler: reply(handler, layer)
        document = {
            "schemaVersion": 2,
            "mediaType": oci.MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": oci.CONFIG_MEDIA_TYPE, "digest": digest, "size": len(layer)},
            "layers": [{"mediaType": media_type, "digest": digest, "size": len(layer)}],
        }
        self.serve_manifest(tag, json.dumps(document).encode())

    def serve_manifest(self, reference: str, document: bytes) -> str:
        self.manifests[reference] = lambda handler: reply(handler, document)
        digest = f"sha256:{hashlib.sha256(document).hexdigest()}"
        self.manifests[digest] = self.manifests[reference]
        return digest


def reply(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def ask_for_login(handler: BaseHTTPRequestHandler) -> None:
    """Answers 401 with a Basic challenge: the request needs the registry's username and password."""
    handler.send_response(401)
    handler.send_header("WWW-Authenticate", 'Basic realm="fake"')
    handler.send_header("Content-Length", "0")
    handler.end_headers()


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def do_GET(self) -> None:
        if self.path == "/v2/":
            return reply(self, b"{}")
        if self.path.split("?")[0] in self.server.paths:
            return self.server.paths[self.path.split("?")[0]](self)
        kind, _, reference = self.path.rpartition("/")
        if kind.endswith("/manifests") and reference in self.server.manifests:
            return self.server.manifests[reference](self)
        if kind.endswith("/blobs") and reference in self.server.blobs:
            return self.server.blobs[reference](self)
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
