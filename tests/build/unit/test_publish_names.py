"""Registry and tag names as the OCI distribution spec allows them, refused in one line before any request."""

from __future__ import annotations

import pytest

from ngixi_build.workflows.publish import checked_registry, oci_tag
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
