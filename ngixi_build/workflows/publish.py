"""Publishing release bundles to an OCI registry, and pulling them back verified (oras)."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from oras.container import Container

from ngixi_build.files import sha256_of
from ngixi_build.project import Project
from ngixi_build.stages.signing import SigningKey, release_signing_key
from ngixi_build.workflows.registry_client import (
    Client,
    OutOfTime,
    RegistryError,
    connect,
    origin,
    reason,
    within,
)
from ngixi_build.workflows.release import release_version
from ngixi_build.workflows.release_history import HISTORY_FILE
from ngixi_runtime.bundles.reader import VerifiedBundle, open_bundle_file, read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.loading.loader import verified_manifest
from ngixi_runtime.printable import clipped, printable
from ngixi_runtime.spec.bundle_format import BUNDLE_SUFFIX, MAX_BUNDLE_BYTES, BundleIndex
from ngixi_runtime.trust.signatures import TrustedKey, TrustStore

log = logging.getLogger(__name__)

BUNDLE_MEDIA_TYPE = "application/vnd.ngixi.bundle.v1.tar"  # what `pull` also accepts: published before gzip
GZIP_BUNDLE_MEDIA_TYPE = "application/vnd.ngixi.bundle.v1.tar+gzip"
BUNDLE_MEDIA_TYPES = (GZIP_BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE)
# zlib's default: level 9 saves 1-2% more of a bundle for five times the time.
COMPRESSION_LEVEL = 6
ARTIFACT_TYPE = "application/vnd.ngixi.bundle.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
REGISTRY_VARIABLE = "NGIXI_REGISTRY"
# The OCI distribution spec's floor for the manifests a registry accepts (containerd's ceiling on what it reads).
MAX_MANIFEST_BYTES = 4 << 20
# Publish's sequence check reads at most this many of a repository's tags (each costs two requests), asking for
# them a page at a time; a page's answer is read up to MAX_TAG_PAGE_BYTES (128 tags of 128 characters is 17 KiB).
MAX_TAGS_READ = 1000
TAGS_PER_PAGE = 100
MAX_TAG_PAGE_BYTES = 1 << 20
# A published bundle's config document (this tool writes a few hundred bytes: guest, version, channel, sequence,
# capabilities, targets); publish's sequence check reads one per tag.
MAX_CONFIG_BYTES = 64 << 10
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_BODY_SHOWN = 300  # characters of a refusal's body quoted in the error
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?")
_REPOSITORY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


PublishState = Literal["published", "unchanged", "overwritten"]


@dataclass(frozen=True)
class Published:
    reference: str  # registry/guest:version
    digest: str  # the manifest's: pull `pinned` for exactly these bytes
    state: PublishState

    @property
    def pinned(self) -> str:
        return f"{self.reference.rpartition(':')[0]}@{self.digest}"


def registry_from_environment() -> str:
    registry = os.environ.get(REGISTRY_VARIABLE, "").strip().rstrip("/")
    if not registry:
        raise InvalidInput(f"{REGISTRY_VARIABLE} is not set: give the registry as host[:port][/namespace]")
    return checked_registry(registry, source=REGISTRY_VARIABLE)


def _is_host(text: str) -> bool:
    """host[:port], the port one a TCP connection can be made to."""
    found = _HOST.fullmatch(text)
    return found is not None and (found["port"] is None or 0 < int(found["port"]) <= 65535)


def checked_registry(registry: str, *, source: str) -> str:
    """host[:port][/namespace], the namespace as the OCI distribution spec allows repository names."""
    host, _, namespace = registry.partition("/")
    components = namespace.split("/") if namespace else []
    if not _is_host(host) or not all(_REPOSITORY_COMPONENT.fullmatch(c) for c in components):
        raise InvalidInput(
            f"{source}: {registry!r} is not a registry: give host[:port][/namespace], the namespace in lowercase "
            "letters and digits separated by '/', '.', '_' or '-'"
        )
    return registry


def checked_reference(reference: str) -> str:
    """host[:port]/repository[/...] with :tag or @sha256:digest, each part as `checked_registry` and `oci_tag`
    allow them: anything else (a userinfo `@`, a missing tag) could be read one way here, where loopback earns
    plain HTTP, and another by oras, which picks the host the requests go to."""
    name, at, digest = reference.partition("@")
    path, colon, tag = name.rpartition(":") if not at and ":" in name.partition("/")[2] else (name, "", "")
    host, _, repository = path.partition("/")
    pinned = _DIGEST.fullmatch(digest) if at else _TAG.fullmatch(tag) if colon else None
    components = repository.split("/")
    if not (pinned and _is_host(host) and all(_REPOSITORY_COMPONENT.fullmatch(c) for c in components)):
        raise InvalidInput(
            f"{printable(reference)}: not a bundle reference: give host[:port]/repository:version, the version's "
            "'+' as '_', or host[:port]/repository@sha256:<64 hex digits>, not both (as `doit publish` prints "
            "them), the repository in lowercase letters and digits separated by '/', '.', '_' or '-'"
        )
    return reference


def oci_tag(version: str) -> str:
    """The tag a guest version is published under: a semantic version's build metadata "+" (not allowed in
    tags) becomes "_", as Helm does."""
    tag = version.replace("+", "_")
    if not _TAG.fullmatch(tag):
        raise InvalidInput(f"version {version!r} cannot be an OCI tag (letters, digits, '.', '_', '-'; 128 at most)")
    return tag


def _client(registry: str) -> Client:
    return connect(registry.split("/", maxsplit=1)[0])


def _trust_of(key: SigningKey) -> TrustStore:
    return TrustStore("the release key", (TrustedKey(key.key_id, key.public, ("*",), ("release",)),))


def describe(bundle: VerifiedBundle) -> tuple[dict[str, Any], dict[str, str]]:
    """The OCI config document and manifest annotations for a verified bundle."""
    index = bundle.index
    manifest = verified_manifest(bundle)
    targets = sorted(m.artifact.triple for m in index.artifacts if m.artifact)
    capabilities = sorted(manifest.grants)
    config = {
        "guest": index.guest,
        "version": index.version,
        "channel": index.channel,
        "sequence": index.sequence,
        "capabilities": capabilities,
        "targets": targets,
    }
    annotations = {
        "org.opencontainers.image.title": Path(bundle.source).name,
        "org.opencontainers.image.version": index.version,
        "dev.ngixi.guest": index.guest,
        "dev.ngixi.channel": index.channel,
        "dev.ngixi.capabilities": ",".join(capabilities),
        "dev.ngixi.targets": ",".join(targets),
    }
    return config, annotations


@dataclass(frozen=True)
class _Upload:
    """One bundle ready to push: its blobs and manifest, and what its tag names now."""

    reference: str
    container: Container
    blobs: tuple[tuple[dict[str, Any], bytes], ...]  # (descriptor, bytes): the layer, then the config
    manifest: bytes
    digest: str
    tagged: tuple[str, bool] | None  # (digest, whether it names this bundle) of the tag's manifest now
    out_of_order: str | None  # why its sequence does not rise above the guest's other published versions

    def refusal(self) -> str | None:
        """Why pushing would rewrite a published tag or publish a sequence hosts refuse, if it would."""
        if self.tagged is None or self.tagged[1]:
            return None if self.tagged else self.out_of_order
        return (
            f"{self.reference}: already published as {self.tagged[0]}, other content than this bundle's "
            f"{self.digest}; published tags never change: bump [guest].version in the manifest "
            "(or --force to overwrite)"
        )


def _prepare(client: Client, registry: str, path: Path, key: SigningKey) -> _Upload:
    """Verifies the bundle and builds its manifest; asks the registry what its tag names now."""
    data, bundle, (config, annotations) = _verified(path, _trust_of(key))
    reference = f"{registry}/{bundle.index.guest}:{oci_tag(bundle.index.version)}"
    container = client.get_container(reference)
    layer_bytes, config_bytes = compressed(data), json.dumps(config, sort_keys=True).encode()
    layer = _descriptor(GZIP_BUNDLE_MEDIA_TYPE, layer_bytes, {"org.opencontainers.image.title": f"{path.name}.gz"})
    config_descriptor = _descriptor(ARTIFACT_TYPE, config_bytes)
    manifest = _manifest_bytes(config_descriptor, layer, annotations)
    try:
        existing = _tagged(client, container)
        tagged = None
        if existing is not None:
            tagged = existing[0], existing[1].get("digest") in (layer["digest"], _sha256(data))
        out_of_order = None if tagged else _out_of_order(client, registry, reference, bundle.index)
    except (requests.RequestException, ValueError) as error:
        raise RegistryError(f"{reference}: manifest lookup failed: {printable(str(error))}") from None
    blobs = ((layer, layer_bytes), (config_descriptor, config_bytes))
    return _Upload(reference, container, blobs, manifest, _sha256(manifest), tagged, out_of_order)


def _verified(path: Path, trust: TrustStore) -> tuple[bytes, VerifiedBundle, tuple[dict[str, Any], dict[str, str]]]:
    """The bundle's bytes, read once, verified as they are and described: what is pushed is what was checked,
    whatever happens at `path` meanwhile."""
    with os.fdopen(open_bundle_file(path), "rb") as stream:
        data = stream.read(MAX_BUNDLE_BYTES + 1)
    with tempfile.TemporaryFile() as copy:
        copy.write(data)
        copy.flush()
        bundle = read_bundle(path, trust, descriptor=copy.fileno())
        return data, bundle, describe(bundle)


def _out_of_order(client: Client, registry: str, reference: str, index: BundleIndex) -> str | None:
    """Another published version of the guest on its channel with the same or a higher sequence: hosts
    could not order the two, or would refuse this one as a rollback."""
    for other in _published_versions(client, f"{registry}/{index.guest}"):
        if other.channel != index.channel or other.version == index.version:
            continue
        if isinstance(other.sequence, int) and other.sequence >= index.sequence:
            outcome = "not know which is newer" if other.sequence == index.sequence else "refuse this one as a rollback"
            return (
                f"{reference}: sequence {index.sequence}, but {registry}/{index.guest}:{other.tag} ({other.version}) "
                f"was published with sequence {other.sequence}: hosts that pulled it would {outcome}; "
                f"if {HISTORY_FILE} lost releases (another clone, a deleted record), restore or merge it and release "
                "again with a bumped version (or --force to publish anyway)"
            )
    return None


@dataclass(frozen=True)
class _PublishedVersion:
    """What the sequence check reads of a tag's config document (and keeps: not the document, whatever its size)."""

    tag: str
    channel: object
    version: object
    sequence: object


def _published_versions(client: Client, repository: str) -> list[_PublishedVersion]:
    """The published version each tag read from the repository names, if it names a bundle this tool published."""
    found = []
    for tag in _tags(client, repository):
        container = client.get_container(f"{repository}:{tag}")
        response = _get(client, f"{client.prefix}://{container.manifest_url(tag)}", accept=MANIFEST_MEDIA_TYPE)
        document = _document(_body(response, MAX_MANIFEST_BYTES, container.uri, "manifest"))
        config = document.get("config") if response.status_code == 200 and document else None
        if not isinstance(config, dict) or config.get("mediaType") != ARTIFACT_TYPE or not _is_digest(config):
            continue  # not a bundle this tool published
        blob = _get(client, f"{client.prefix}://{container.get_blob_url(config['digest'])}")
        content = _body(blob, MAX_CONFIG_BYTES, container.uri, "config")
        if blob.status_code == 200 and _sha256(content) == config["digest"] and (described := _document(content)):
            found.append(
                _PublishedVersion(tag, described.get("channel"), described.get("version"), described.get("sequence"))
            )
    return found


def _tags(client: Client, repository: str) -> list[str]:
    """The repository's tags, TAGS_PER_PAGE at a time (the distribution spec's `n`, then each answer's `Link`),
    MAX_TAGS_READ at most: a repository of a million tags is not read whole, nor is a registry's page that is."""
    first = f"{client.prefix}://{client.get_container(repository).tags_url(N=TAGS_PER_PAGE)}"
    url: str | None = first
    tags: list[str] = []
    while url and len(tags) <= MAX_TAGS_READ:
        response = _get(client, url)
        if response.status_code == 404:
            return []  # a repository not made yet
        _checked(response, repository, "tag listing")
        page = (_document(_body(response, MAX_TAG_PAGE_BYTES, repository, "tag list")) or {}).get("tags")
        if not isinstance(page, list) or not all(isinstance(tag, str) for tag in page):
            raise VerificationError(f"{repository}: the registry's tag list is not a list of tags")
        tags += page
        link = response.links.get("next", {}).get("url")
        url = _same_origin(urllib.parse.urljoin(response.url, link), first, repository) if link and page else None
    if len(tags) > MAX_TAGS_READ:
        log.warning(
            "%s: more than %d tags; the sequence check read the first %d the registry listed",
            repository,
            MAX_TAGS_READ,
            MAX_TAGS_READ,
        )
    return tags[:MAX_TAGS_READ]


def _same_origin(url: str, registry_url: str, repository: str) -> str:
    """`url`, a link the registry's answer gave, if it leads to the registry itself: the next request carries the
    login, which goes to the registry alone (and over plain HTTP only to a loopback one)."""
    if origin(url) != origin(registry_url):
        raise VerificationError(
            f"{repository}: the registry's tag list links to {clipped(printable(url), 200)}, not to the registry "
            "itself; refused"
        )
    return url


def _get(client: Client, url: str, *, accept: str | None = None) -> requests.Response:
    """A streamed GET, tried once."""
    headers = {"Accept": accept} if accept else {}
    response: requests.Response = client.do_request(url, "GET", headers=headers, stream=True)
    return response


def _body(response: requests.Response, limit: int, reference: str, what: str) -> bytes:
    """A response's body, refused once it passes `limit` bytes, before the rest is read."""
    received = bytearray()
    for chunk in response.iter_content(chunk_size=1 << 16):
        received += chunk
        if len(received) > limit:
            response.close()
            raise VerificationError(f"{reference}: the {what} is larger than {limit} bytes; refused unread")
    return bytes(received)


def _document(content: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for anything else."""
    try:
        document = json.loads(content)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _is_digest(descriptor: dict[str, Any]) -> bool:
    return isinstance(descriptor.get("digest"), str) and bool(_DIGEST.fullmatch(descriptor["digest"]))


def _push(client: Client, upload: _Upload) -> Published:
    """Pushes content-addressed: the blobs, the manifest by digest, and only then the tag, asking the
    registry to tag only if the tag still names what it named when checked (a conditional PUT, which
    registries without RFC 7232 support ignore); then reads the tag back to see which push won."""
    if upload.tagged is not None and upload.tagged[1]:
        return Published(upload.reference, upload.tagged[0], "unchanged")
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for descriptor, data in upload.blobs:
                blob = Path(scratch) / descriptor["digest"].replace(":", "-")
                blob.write_bytes(data)
                response = client.upload_blob(str(blob), upload.container, descriptor)
                _checked(response, upload.reference, "blob upload")
        _put_manifest(client, upload.container, upload.digest, upload.manifest, upload.reference)
        now = _tagged(client, upload.container)
        if now is not None and now[0] == upload.digest:
            return Published(upload.reference, upload.digest, "unchanged")  # another publisher, the same bytes
        _refuse_if_tagged_since(upload, now)
        precondition = {"If-Match": f'"{now[0]}"'} if now else {"If-None-Match": "*"}
        _put_manifest(
            client, upload.container, upload.container.tag, upload.manifest, upload.reference, precondition=precondition
        )
        _check_won(client, upload)
    except (requests.RequestException, ValueError) as error:
        raise RegistryError(f"{upload.reference}: push failed: {printable(str(error))}") from None
    return Published(upload.reference, upload.digest, "published" if now is None else "overwritten")


def _refuse_if_tagged_since(upload: _Upload, now: tuple[str, Any] | None) -> None:
    """Another publisher may have tagged it since it was checked: refused, --force or not. --force replaces what
    the check found (or publishes out of sequence), never a tag someone made meanwhile, which its output would have
    called "published"."""
    if now is None or (upload.tagged is not None and now[0] == upload.tagged[0]):
        return
    raise RegistryError(
        f"{upload.reference}: another publisher tagged it as {now[0]} while this publish ran; not tagged "
        f"(this bundle's manifest is at {upload.reference.rpartition(':')[0]}@{upload.digest})"
    )


def _check_won(client: Client, upload: _Upload) -> None:
    """The tag read back after tagging: another digest there means a concurrent publisher tagged after us."""
    now = _tagged(client, upload.container)
    if now is not None and now[0] != upload.digest:
        raise RegistryError(
            f"{upload.reference}: another publisher tagged it as {now[0]} right after this publish tagged it as "
            f"{upload.digest}; hosts may have pulled either: decide which is right and publish that one with --force"
        )


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"mediaType": media_type, "digest": _sha256(data), "size": len(data)}
    return {**found, "annotations": annotations} if annotations else found


def _manifest_bytes(config: dict[str, Any], layer: dict[str, Any], annotations: dict[str, str]) -> bytes:
    """The OCI image manifest, serialized once here so its digest is known before it is pushed."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config,
        "layers": [layer],
        "annotations": annotations,
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def _tagged(client: Client, container: Container) -> tuple[str, dict[str, Any]] | None:
    """The digest and bundle layer of the manifest the tag names now; None when the tag is new."""
    url = f"{client.prefix}://{container.manifest_url(container.tag)}"
    response = _get(client, url, accept=MANIFEST_MEDIA_TYPE)
    if response.status_code == 404:
        return None
    _checked(response, container.uri, "manifest lookup")
    content = _body(response, MAX_MANIFEST_BYTES, container.uri, "manifest")
    digest = response.headers.get("Docker-Content-Digest") or _sha256(content)
    return digest, _bundle_layer(content, container.uri)


def _put_manifest(
    client: Client,
    container: Container,
    target: str,
    document: bytes,
    reference: str,
    *,
    precondition: dict[str, str] | None = None,
) -> None:
    response = client.do_request(
        f"{client.prefix}://{container.manifest_url(target)}",
        "PUT",
        data=document,
        headers={"Content-Type": MANIFEST_MEDIA_TYPE, **(precondition or {})},
    )
    if response.status_code == 412:
        raise RegistryError(f"{reference}: another publisher tagged it while this publish ran; not tagged")
    _checked(response, reference, f"manifest push to {target}")


def _checked(response: requests.Response, reference: str, what: str) -> None:
    if response.status_code not in (200, 201, 202):
        start = next(response.iter_content(chunk_size=4 * _BODY_SHOWN), b"")  # never the whole of a huge body
        body = printable(start.decode("utf-8", "replace")[:_BODY_SHOWN])  # the registry's text, one line
        raise RegistryError(f"{reference}: {what} refused by the registry: HTTP {response.status_code} {body}")


def compressed(bundle: bytes) -> bytes:
    """The bundle's layer: gzip with no name, mtime 0 and a fixed level, so the same bundle gives the same digest."""
    return gzip.compress(bundle, compresslevel=COMPRESSION_LEVEL, mtime=0)


def publish_release(
    *,
    release_dir: Path,
    registry: str,
    key: SigningKey,
    force: bool = False,
    timeout: float | None = None,
) -> list[Published]:
    """Pushes every bundle of a release directory, each verified with the release key first, all within `timeout`
    seconds.

    A tag already naming another bundle is refused unless `force` (hosts that pulled it rely on it);
    then nothing is pushed.
    """
    bundles = sorted(release_dir.glob("*.ngx"))
    if not bundles:
        raise InvalidInput(f"{release_dir}: no bundles to publish; run `doit release` first")
    checked_registry(registry, source="registry")
    published: list[Published] = []
    try:
        with within(timeout):
            client = _client(registry)
            uploads = [_prepare(client, registry, path, key) for path in bundles]
            refusals = [r for u in uploads if (r := u.refusal())]
            if refusals and not force:
                raise RegistryError("\n".join(refusals))  # before anything is pushed: published whole or not
            published.extend(_push(client, upload) for upload in uploads)
    except OutOfTime as late:
        done = ", ".join(item.reference for item in published) or "nothing"
        raise OutOfTime(
            f"{registry}: the publish {late}; tagged before it stopped: {done}; publish again to finish (what is "
            "already there with this content is left as it is), with more time: --timeout SECONDS"
        ) from None
    return published


def _bundle_layer(content: bytes, reference: str) -> dict[str, Any]:
    """The one bundle layer of a manifest's bytes, its digest and size checked: the registry's answer is
    foreign input."""
    manifest = _document(content)
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
    if not _is_digest(layer):
        digest = printable(repr(layer.get("digest")))
        raise VerificationError(f"{reference}: bundle layer digest {digest} is not a sha256 digest")
    return layer


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
    client = _client(reference)
    try:
        container = client.get_container(reference)
        layer = _bundle_layer(_pulled_manifest(client, container, reference), reference)
        response = _get(client, f"{client.prefix}://{container.get_blob_url(layer['digest'])}")
        response.raise_for_status()
        with tempfile.TemporaryDirectory() as scratch:
            blob, staged = Path(scratch) / "blob", Path(scratch) / f"{container.repository.rsplit('/', 1)[-1]}.ngx"
            digest = _download(response, blob, layer["size"], reference)
            if f"sha256:{digest}" != layer["digest"]:
                raise VerificationError(f"{reference}: downloaded blob does not match its digest")
            if layer["mediaType"] == GZIP_BUNDLE_MEDIA_TYPE:
                _decompress(blob, staged, reference)
            else:
                blob.rename(staged)
            index = read_bundle(staged, trust).index
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
            f"{path}: already exists, with other content than this pull's ({_sha256(data)}); "
            "move it away or pull into another --out directory"
        ) from None


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _pulled_manifest(client: Client, container: Container, reference: str) -> bytes:
    """The manifest a reference names; pulled by digest, its bytes must have that digest."""
    response = _get(client, f"{client.prefix}://{container.manifest_url()}", accept=MANIFEST_MEDIA_TYPE)
    _checked(response, reference, "manifest lookup")
    content = _body(response, MAX_MANIFEST_BYTES, reference, "manifest")
    if container.digest and _sha256(content) != container.digest:
        raise VerificationError(f"{reference}: the registry returned a manifest with another digest")
    return content


def _download(response: requests.Response, path: Path, size: int, reference: str) -> str:
    digest = hashlib.sha256()
    received = 0
    with path.open("wb") as stream:
        for chunk in response.iter_content(chunk_size=1 << 16):
            received += len(chunk)
            if received > size:
                raise VerificationError(f"{reference}: blob is larger than its declared {size} bytes")
            digest.update(chunk)
            stream.write(chunk)
    return digest.hexdigest()


def _decompress(blob: Path, path: Path, reference: str) -> None:
    """Inflates a gzip'd layer, refusing one that inflates past the largest bundle the reader accepts."""
    written = 0
    try:
        with gzip.open(blob) as inflated, path.open("wb") as stream:
            while chunk := inflated.read(1 << 16):
                written += len(chunk)
                if written > MAX_BUNDLE_BYTES:
                    raise VerificationError(
                        f"{reference}: the bundle layer inflates to more than {MAX_BUNDLE_BYTES} bytes, the largest "
                        "bundle accepted; refused as a decompression bomb"
                    )
                stream.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise VerificationError(f"{reference}: the bundle layer is not valid gzip: {error}") from None


def publish_project_release(project: Project, *, force: bool = False, timeout: float | None = None) -> list[Published]:
    """`doit publish`: pushes artifacts/release/<version>/ to $NGIXI_REGISTRY."""
    version = release_version(project)
    published = publish_release(
        release_dir=project.artifacts_dir / "release" / version,
        registry=registry_from_environment(),
        key=release_signing_key(),
        force=force,
        timeout=timeout,
    )
    for item in published:
        log.info("%s", describe_published(item))
    return published


def describe_published(item: Published) -> str:
    """One line per tag: what happened to it, and the reference to pin."""
    happened = {
        "published": "published",
        "unchanged": "already published with this content; nothing pushed",
        "overwritten": "OVERWRITTEN (--force)",
    }[item.state]
    return f"{item.reference}: {happened}; pin {item.pinned}"
