"""The names a registry is given by: a registry's host[:port][/namespace], a bundle's reference, the tag a
version is published under, and whether a host is this machine (where plain HTTP may go). Imports no registry
client: the build side checks names with it before oras is needed."""

from __future__ import annotations

import ipaddress
import re

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.printable import printable

SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?")
_REPOSITORY_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


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
    pinned = SHA256_DIGEST.fullmatch(digest) if at else _TAG.fullmatch(tag) if colon else None
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


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name, or an address without brackets) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
