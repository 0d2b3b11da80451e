"""What publish and pull both speak to an OCI registry: the bundle's media types, a streamed GET tried once,
bodies read up to a bound, refusals as one line, and the bundle layer of a manifest, its digest and size checked."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

from ngixi_runtime.errors import VerificationError
from ngixi_runtime.printable import printable
from ngixi_runtime.registry.client import Client, RegistryError, connect
from ngixi_runtime.registry.names import SHA256_DIGEST
from ngixi_runtime.spec.bundle_format import MAX_BUNDLE_BYTES

BUNDLE_MEDIA_TYPE = "application/vnd.ngixi.bundle.v1.tar"  # what `pull` also accepts: published before gzip
GZIP_BUNDLE_MEDIA_TYPE = "application/vnd.ngixi.bundle.v1.tar+gzip"
BUNDLE_MEDIA_TYPES = (GZIP_BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE)
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.ngixi.bundle.config.v1+json"  # what marks a manifest as a bundle publish pushed
# The OCI distribution spec's floor for the manifests a registry accepts (containerd's ceiling on what it reads).
MAX_MANIFEST_BYTES = 4 << 20
_BODY_SHOWN = 300  # characters of a refusal's body quoted in the error


def client_for(registry: str) -> Client:
    return connect(registry.split("/", maxsplit=1)[0])


def streamed_get(client: Client, url: str, *, accept: str | None = None) -> requests.Response:
    """A streamed GET, tried once."""
    headers = {"Accept": accept} if accept else {}
    response: requests.Response = client.do_request(url, "GET", headers=headers, stream=True)
    return response


def bounded_body(response: requests.Response, limit: int, reference: str, what: str) -> bytes:
    """A response's body, refused once it passes `limit` bytes, before the rest is read."""
    received = bytearray()
    for chunk in response.iter_content(chunk_size=1 << 16):
        received += chunk
        if len(received) > limit:
            response.close()
            raise VerificationError(f"{reference}: the {what} is larger than {limit} bytes; refused unread")
    return bytes(received)


def json_object(content: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for anything else."""
    try:
        document = json.loads(content)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def is_digest(descriptor: dict[str, Any]) -> bool:
    return isinstance(descriptor.get("digest"), str) and bool(SHA256_DIGEST.fullmatch(descriptor["digest"]))


def check_accepted(response: requests.Response, reference: str, what: str) -> None:
    if response.status_code not in (200, 201, 202):
        start = next(response.iter_content(chunk_size=4 * _BODY_SHOWN), b"")  # never the whole of a huge body
        body = printable(refusal_reason(start)[:_BODY_SHOWN])  # the registry's text, one line
        raise RegistryError(f"{reference}: {what} refused by the registry: HTTP {response.status_code} {body}")


def refusal_reason(body: bytes) -> str:
    """A refusal's body as its reader wants it: the distribution spec's `{"errors": [{"code", "message"}]}` as
    `CODE: message`, joined by `; `, else the text itself, stripped."""
    text = body.decode("utf-8", "replace").strip()
    document = json_object(body)
    errors = document.get("errors") if document else None
    if not isinstance(errors, list) or not errors or not all(isinstance(error, dict) for error in errors):
        return text
    said = [": ".join(str(error[key]) for key in ("code", "message") if key in error) for error in errors]
    return "; ".join(said) if all(said) else text


def sha256_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def bundle_layer(content: bytes, reference: str) -> dict[str, Any]:
    """The one bundle layer of a manifest's bytes, its digest and size checked: the registry's answer is
    foreign input."""
    manifest = json_object(content)
    layers = manifest.get("layers") if manifest else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise VerificationError(f"{reference}: the registry's manifest is not an OCI image manifest")
    found = [layer for layer in layers if layer.get("mediaType") in BUNDLE_MEDIA_TYPES]
    if len(found) != 1:
        kinds = " or ".join(BUNDLE_MEDIA_TYPES)
        raise VerificationError(f"{reference}: expected one {kinds} layer, found {len(found)}")
    layer: dict[str, Any] = found[0]
    size = layer.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BUNDLE_BYTES:
        raise VerificationError(f"{reference}: bundle layer size {printable(repr(size))} is out of bounds")
    if not is_digest(layer):
        digest = printable(repr(layer.get("digest")))
        raise VerificationError(f"{reference}: bundle layer digest {digest} is not a sha256 digest")
    return layer
