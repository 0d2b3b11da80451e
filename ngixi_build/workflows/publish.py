"""Publishing release bundles to an OCI registry (oras), through the run side's registry client; pulling them
is the run side's (ngixi_runtime.registry.pull)."""

from __future__ import annotations

import gzip
import json
import logging
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from oras.container import Container

from ngixi_build.project import Project
from ngixi_build.stages.signing import SigningKey, release_signing_key
from ngixi_build.workflows.release import release_version
from ngixi_build.workflows.release_history import HISTORY_FILE
from ngixi_runtime.bundles.reader import VerifiedBundle, open_bundle_file, read_bundle
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.loading.loader import verified_manifest
from ngixi_runtime.printable import clipped, printable
from ngixi_runtime.registry.client import Client, OutOfTime, RegistryError, origin, within
from ngixi_runtime.registry.names import checked_registry, oci_tag
from ngixi_runtime.registry.oci import (
    CONFIG_MEDIA_TYPE,
    GZIP_BUNDLE_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    bounded_body,
    bundle_layer,
    check_accepted,
    client_for,
    is_digest,
    json_object,
    sha256_digest,
    streamed_get,
)
from ngixi_runtime.spec.bundle_format import MAX_BUNDLE_BYTES, BundleIndex
from ngixi_runtime.trust.signatures import TrustedKey, TrustStore

log = logging.getLogger(__name__)

# zlib's default: level 9 saves 1-2% more of a bundle for five times the time.
COMPRESSION_LEVEL = 6
REGISTRY_VARIABLE = "NGIXI_REGISTRY"
# Publish's sequence check reads at most this many of a repository's tags (each costs two requests), asking for
# them a page at a time; a page's answer is read up to MAX_TAG_PAGE_BYTES (128 tags of 128 characters is 17 KiB).
MAX_TAGS_READ = 1000
TAGS_PER_PAGE = 100
MAX_TAG_PAGE_BYTES = 1 << 20
# A published bundle's config document (this tool writes a few hundred bytes: guest, version, channel, sequence,
# capabilities, targets); publish's sequence check reads one per tag.
MAX_CONFIG_BYTES = 64 << 10


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
    config_descriptor = _descriptor(CONFIG_MEDIA_TYPE, config_bytes)
    manifest = _manifest_bytes(config_descriptor, layer, annotations)
    try:
        existing = _tagged(client, container)
        tagged = None
        if existing is not None:
            tagged = existing[0], existing[1].get("digest") in (layer["digest"], sha256_digest(data))
        out_of_order = None if tagged else _out_of_order(client, registry, reference, bundle.index)
    except (requests.RequestException, ValueError) as error:
        raise RegistryError(f"{reference}: manifest lookup failed: {printable(str(error))}") from None
    blobs = ((layer, layer_bytes), (config_descriptor, config_bytes))
    return _Upload(reference, container, blobs, manifest, sha256_digest(manifest), tagged, out_of_order)


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
        response = streamed_get(client, f"{client.prefix}://{container.manifest_url(tag)}", accept=MANIFEST_MEDIA_TYPE)
        document = json_object(bounded_body(response, MAX_MANIFEST_BYTES, container.uri, "manifest"))
        config = document.get("config") if response.status_code == 200 and document else None
        if not isinstance(config, dict) or config.get("mediaType") != CONFIG_MEDIA_TYPE or not is_digest(config):
            continue  # not a bundle this tool published
        blob = streamed_get(client, f"{client.prefix}://{container.get_blob_url(config['digest'])}")
        content = bounded_body(blob, MAX_CONFIG_BYTES, container.uri, "config")
        if (
            blob.status_code == 200
            and sha256_digest(content) == config["digest"]
            and (described := json_object(content))
        ):
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
        response = streamed_get(client, url)
        if response.status_code == 404:
            return []  # a repository not made yet
        check_accepted(response, repository, "tag listing")
        page = (json_object(bounded_body(response, MAX_TAG_PAGE_BYTES, repository, "tag list")) or {}).get("tags")
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
                check_accepted(response, upload.reference, "blob upload")
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


def _descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
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
    response = streamed_get(client, url, accept=MANIFEST_MEDIA_TYPE)
    if response.status_code == 404:
        return None
    check_accepted(response, container.uri, "manifest lookup")
    content = bounded_body(response, MAX_MANIFEST_BYTES, container.uri, "manifest")
    digest = response.headers.get("Docker-Content-Digest") or sha256_digest(content)
    return digest, bundle_layer(content, container.uri)


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
    check_accepted(response, reference, f"manifest push to {target}")


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
            client = client_for(registry)
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
