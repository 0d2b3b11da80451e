"""The one place that says what type of guest a manifest's [guest] table describes."""

from __future__ import annotations

import pytest

from ngixi_runtime.guest.kind import GuestType, lenient_guest_type


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, GuestType("core", "library", None)),
        ({"abi": "component"}, GuestType(abi="component")),
        ({"kind": "command"}, GuestType(kind="command")),
        ({"abi": "component", "kind": "command"}, GuestType("component", "command")),
        ({"language": "assemblyscript"}, GuestType(language="assemblyscript")),
        ({"language": "c"}, GuestType(language="c")),
        ({"abi": "wasi", "kind": 3, "language": "cobol"}, GuestType()),
        ({"abi": ["component"], "kind": None}, GuestType()),
        ("not a table", GuestType()),
    ],
)
def test_each_missing_or_wrong_value_reads_as_its_default(table: object, expected: GuestType) -> None:
    assert lenient_guest_type(table) == expected


def test_only_the_component_abi_is_a_component() -> None:
    assert GuestType(abi="component").is_component
    assert not GuestType(abi="core").is_component
