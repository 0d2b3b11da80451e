"""Registry and tag names as the OCI distribution spec allows them, refused in one line before any request; a
registry's refusal quoted on one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.registry import oci, pull
from ngixi_runtime.registry.client import RegistryError
from ngixi_runtime.registry.names import checked_reference, checked_registry, oci_tag
from ngixi_runtime.trust.signatures import TrustStore


@pytest.mark.parametrize(
    "registry", ["127.0.0.1:5000/ngixi", "registry.example.com", "[::1]:5000/a/b-c", "ghcr.io/o_o"]
)
def test_a_registry_with_a_lowercase_namespace_is_accepted(registry: str) -> None:
    assert checked_registry(registry, source="NGIXI_REGISTRY") == registry


@pytest.mark.parametrize(
    "registry",
    ["127.0.0.1:5000/NGIXI", "host/a b", "https://host/x", "host//x", "host/-x", "ho st", "host:65536", "host:0/x"],
)
def test_a_registry_the_spec_refuses_is_named_with_the_form_to_give(registry: str) -> None:
    with pytest.raises(InvalidInput, match=r"^NGIXI_REGISTRY: .* is not a registry: give host\[:port\]\[/namespace\]"):
        checked_registry(registry, source="NGIXI_REGISTRY")


@pytest.mark.parametrize(
    "reference",
    [
        "127.0.0.1:5000/ngixi/hello:0.1.0",
        "localhost:5000/hello:1.2.3-rc.1_build.5",
        "registry.example.com/a/b/hello@sha256:" + "0" * 64,
    ],
)
def test_a_bundle_reference_as_publish_prints_it_is_accepted(reference: str) -> None:
    assert checked_reference(reference) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "localhost:80@evil.example/ngixi/hello:0.1.0",  # oras read the host as docker.io, here loopback: plain HTTP
        "127.0.0.1:1@evil.example:443/ngixi/hello:0.1.0",
        "127.0.0.1:5000/ngixi/hello",  # no tag: oras would ask for "latest"
        "127.0.0.1:5000/ngixi/hello@sha256:abc",
        "127.0.0.1:5000/ngixi/hello@0.1.0",
        "127.0.0.1:5000/ngixi/Hello:0.1.0",
        "127.0.0.1:5000:0.1.0",
        "127.0.0.1:99999/ngixi/hello:0.1.0",  # no such port: requests would fail later, less clearly
        "hello:0.1.0",
        "127.0.0.1:5000/ngixi/../hello:0.1.0",
        "127.0.0.1:5000/ngixi/hello:0.1.0+build.5",  # the version as written, not as its tag
        "127.0.0.1:5000/ngixi/hello:0.1.0@sha256:" + "0" * 64,
    ],
)
def test_a_bundle_reference_read_two_ways_is_refused_before_any_request(
    reference: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull, "client_for", lambda registry: pytest.fail(f"a client for {registry}"))
    with pytest.raises(
        InvalidInput, match=r": not a bundle reference: .*:version, the version's '\+' as '_', or .*, not both"
    ):
        pull.pull_bundle(reference=reference, out_dir=tmp_path, trust=TrustStore("none", ()))


def test_a_pull_into_a_file_is_refused_before_any_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was found only when the bundle, fetched and verified, was written: a FileExistsError from mkdir."""
    monkeypatch.setattr(pull, "client_for", lambda registry: pytest.fail(f"a client for {registry}"))
    (tmp_path / "bundles").touch()
    with pytest.raises(InvalidInput, match=r"^--out .*bundles: not a directory; name the directory"):
        pull.pull_bundle(
            reference="127.0.0.1:5000/ngixi/hello:0.1.0", out_dir=tmp_path / "bundles", trust=TrustStore("none", ())
        )


def test_a_versions_build_metadata_becomes_an_underscore_in_its_tag() -> None:
    assert oci_tag("1.2.3") == "1.2.3"
    assert oci_tag("1.2.3-rc.1+build.5") == "1.2.3-rc.1_build.5"
    with pytest.raises(InvalidInput, match="cannot be an OCI tag"):
        oci_tag("1" * 129)


def test_a_registry_refusal_quotes_its_body_on_one_escaped_line() -> None:
    """The registry's error body is foreign text: no escape sequence or forged line reaches the terminal."""
    response = requests.Response()
    response.status_code, response._content = 500, b"\x1b]0;pwned\x07oops\nngixi: ok " + b"x" * 1000
    response._content_consumed = True  # as requests leaves a response whose body was read
    with pytest.raises(RegistryError) as refused:
        oci.check_accepted(response, "r/hello:0.1.0", "manifest push")
    message = str(refused.value)
    assert message.startswith("r/hello:0.1.0: manifest push refused by the registry: HTTP 500 \\x1b]0;pwned\\x07")
    assert "\n" not in message and len(message) < 400
