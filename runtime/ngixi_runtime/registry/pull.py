"""`ngixi pull`: a bundle fetched from an OCI registry by tag or digest, every digest checked, verified with
the trust file, and written into the output directory only then, never over a file with other bytes."""

from __future__ import annotations

import gzip
import hashlib
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

import requests
from oras.container import Container

from ngixi_runtime.bundles.reader import read_bundle, signed_start
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import sha256_of, write_atomic
from ngixi_runtime.printable import printable
from ngixi_runtime.registry.client import Client, OutOfTime, RegistryError, reason, within
from ngixi_runtime.registry.names import checked_reference, oci_tag
from ngixi_runtime.registry.oci import (
    GZIP_BUNDLE_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    bounded_body,
    bundle_layer,
    check_accepted,
    client_for,
    sha256_digest,
    streamed_get,
)
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX, MAX_BUNDLE_BYTES, BundleIndex
from ngixi_runtime.trust.signatures import TrustStore


def pull_bundle(*, reference: str, out_dir: Path, trust: TrustStore, timeout: float | None = None) -> Path:
    """Fetches a bundle by reference (registry/guest:tag or registry/guest@sha256:...), checks every digest,
    verifies it, then moves it into out_dir as <guest>-<version>.ngx; all within `timeout` seconds."""
    checked_reference(reference)
    if out_dir.exists() and not out_dir.is_dir():  # known before a byte is fetched; made later if missing
        raise InvalidInput(f"--out {out_dir}: not a directory; name the directory to write the bundle in")
    try:
        with within(timeout):
            return _pull(reference, out_dir, trust)
    except OutOfTime as late:
        raise OutOfTime(
            f"{reference}: the pull {late}; nothing was written (with more time: --timeout SECONDS)"
        ) from None


def _pull(reference: str, out_dir: Path, trust: TrustStore) -> Path:
    client = client_for(reference)
    try:
        container = client.get_container(reference)
        layer = bundle_layer(_pulled_manifest(client, container, reference), reference)
        response = streamed_get(client, f"{client.prefix}://{container.get_blob_url(layer['digest'])}")
        response.raise_for_status()
        with tempfile.TemporaryDirectory() as scratch:
            blob, staged = Path(scratch) / "blob", Path(scratch) / f"{container.repository.rsplit('/', 1)[-1]}.ngx"
            compressed = layer["mediaType"] == GZIP_BUNDLE_MEDIA_TYPE
            start = _SignedStart(trust, reference)
            digest = _download(response, blob, layer["size"], reference, None if compressed else start)
            if f"sha256:{digest}" != layer["digest"]:
                raise VerificationError(f"{reference}: downloaded blob does not match its digest")
            if compressed:
                _decompress(blob, staged, start)
            else:
                blob.rename(staged)
            with staged.open("rb") as bundle:  # named by the reference in what the reader refuses
                index = read_bundle(Path(reference), trust, descriptor=bundle.fileno()).index
            _check_named(index, container, reference)
            final = out_dir / f"{index.guest}-{index.version}{BUNDLE_SUFFIX}"  # both checked by the reader
            _write_new(final, staged.read_bytes())
    except requests.RequestException as error:
        raise RegistryError(f"{reference}: pull failed: {reason(error)}") from None
    except ValueError as error:
        raise RegistryError(f"{reference}: pull failed: {printable(str(error))}") from None
    return final


def _check_named(index: BundleIndex, container: Container, reference: str) -> None:
    """The bundle is the guest the reference names, and, pulled by tag, the version the tag names: a signature
    says who made a bundle, not that it is the one asked for, so a registry (or whoever moved a tag) could
    otherwise hand out an older signed version with its known holes, or another guest the key signed."""
    if index.guest != container.repository.rsplit("/", 1)[-1]:
        raise VerificationError(
            f"{reference}: the registry returned guest {index.guest}, not {container.repository}; refused"
        )
    if not container.digest and oci_tag(index.version) != container.tag:
        raise VerificationError(
            f"{reference}: the registry returned {index.guest} {index.version}, not {container.tag}; refused "
            f"(a tag names one published version: pull {index.guest}:{oci_tag(index.version)} or pin a digest "
            "if this version is the one wanted)"
        )


def _write_new(path: Path, data: bytes) -> None:
    """Writes the pulled bundle, never over a file with other bytes (the same bytes are left as they are)."""
    if _size_of(path) == len(data) and sha256_of(path) == hashlib.sha256(data).hexdigest():  # never read whole
        return
    try:
        write_atomic(path, data, new=True)  # nor over one another pull or process makes meanwhile
    except FileExistsError:
        raise InvalidInput(
            f"{path}: already exists, with other content than this pull's ({sha256_digest(data)}); "
            "move it away or pull into another --out directory"
        ) from None


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _pulled_manifest(client: Client, container: Container, reference: str) -> bytes:
    """The manifest a reference names; pulled by digest, its bytes must have that digest."""
    response = streamed_get(client, f"{client.prefix}://{container.manifest_url()}", accept=MANIFEST_MEDIA_TYPE)
    try:
        check_accepted(response, reference, "manifest lookup")
    except RegistryError as refused:
        if response.status_code != 404:
            raise
        named = "digest" if container.digest else "tag"
        raise RegistryError(
            f"{refused}; the registry has no such repository or {named}: check the reference "
            "(`doit publish` prints each one it pushed)"
        ) from None
    content = bounded_body(response, MAX_MANIFEST_BYTES, reference, "manifest")
    if container.digest and sha256_digest(content) != container.digest:
        raise VerificationError(f"{reference}: the registry returned a manifest with another digest")
    return content


class _SignedStart:
    """A bundle written as it arrives, refused as soon as its start shows its index unsigned by the trust file's keys
    (`reader.signed_start`): a registry's layer of 1 GiB, or one inflating to it, was written whole first."""

    def __init__(self, trust: TrustStore, reference: str) -> None:
        self.trust, self.reference, self.verified = trust, reference, False

    def arrived(self, stream: BinaryIO, received: int) -> None:
        if not self.verified:
            stream.flush()
            self.verified = signed_start(stream.fileno(), received, self.trust, source=self.reference)


def _download(response: requests.Response, path: Path, size: int, reference: str, start: _SignedStart | None) -> str:
    """The blob written to `path`, its SHA-256; with `start`, the blob is the bundle, checked as it arrives."""
    digest = hashlib.sha256()
    received = 0
    with path.open("w+b") as stream:  # read back by signed_start
        for chunk in response.iter_content(chunk_size=1 << 16):
            received += len(chunk)
            if received > size:
                raise VerificationError(f"{reference}: blob is larger than its declared {size} bytes")
            digest.update(chunk)
            stream.write(chunk)
            if start is not None:
                start.arrived(stream, received)
    return digest.hexdigest()


def _decompress(blob: Path, path: Path, start: _SignedStart) -> None:
    """Inflates a gzip'd layer, refusing one that inflates past the largest bundle the reader accepts, or whose start
    is no bundle the trust file's keys signed."""
    reference, written = start.reference, 0
    try:
        with gzip.open(blob) as inflated, path.open("w+b") as stream:
            while chunk := inflated.read(1 << 16):
                written += len(chunk)
                if written > MAX_BUNDLE_BYTES:
                    raise VerificationError(
                        f"{reference}: the bundle layer inflates to more than {MAX_BUNDLE_BYTES} bytes, the largest "
                        "bundle accepted; refused as a decompression bomb"
                    )
                stream.write(chunk)
                start.arrived(stream, written)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise VerificationError(f"{reference}: the bundle layer is not valid gzip: {error}") from None
