"""Registry and tag names as the OCI distribution spec allows them, refused in one line before any request; a
registry's refusal quoted on one line."""

from __future__ import annotations

import pytest
import requests

from ngixi_build.workflows import publish
from ngixi_build.workflows.publish import RegistryError, checked_registry, oci_tag
from ngixi_runtime.errors import InvalidInput


@pytest.mark.parametrize(
    "registry", ["127.0.0.1:5000/ngixi", "registry.example.com", "[::1]:5000/a/b-c", "ghcr.io/o_o"]
)
def test_a_registry_with_a_lowercase_namespace_is_accepted(registry: str) -> None:
    assert checked_registry(registry, source="NGIXI_REGISTRY") == registry


@pytest.mark.parametrize(
    "registry", ["127.0.0.1:5000/NGIXI", "host/a b", "https://host/x", "host//x", "host/-x", "ho st"]
)
def test_a_registry_the_spec_refuses_is_named_with_the_form_to_give(registry: str) -> None:
    with pytest.raises(InvalidInput, match=r"^NGIXI_REGISTRY: .* is not a registry: give host\[:port\]\[/namespace\]"):
        checked_registry(registry, source="NGIXI_REGISTRY")


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
        publish._checked(response, "r/hello:0.1.0", "manifest push")
    message = str(refused.value)
    assert message.startswith("r/hello:0.1.0: manifest push refused by the registry: HTTP 500 \\x1b]0;pwned\\x07")
    assert "\n" not in message and len(message) < 400
