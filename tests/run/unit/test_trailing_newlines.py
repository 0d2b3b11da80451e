"""A name checked by a `^...$` pattern with `re.match` also passes with a newline after it: a guest name that
matches a key's pattern, an env variable, an http host. Every run-side pattern ends in `\\Z`."""

from __future__ import annotations

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.guest.manifest import manifest_from_table


def manifest(name: str = "hello", version: str = "0.1.0", **capabilities: object) -> dict[str, object]:
    return {
        "guest": {"name": name, "version": version},
        "exports": {"add": {"params": ["i32", "i32"], "results": ["i32"]}},
        "capabilities": capabilities,
    }


@pytest.mark.parametrize(
    "table",
    [
        manifest(name="hello\n"),
        manifest(version="0.1.0\n"),
        manifest(env={"allow": ["HOME\n"]}),
        manifest(http={"allow": ["https://example.com\n"]}),
    ],
    ids=["guest name", "version", "env name", "http host"],
)
def test_a_trailing_newline_is_refused(table: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        manifest_from_table(table, source="hello.toml", stem=str(table["guest"]["name"]))  # type: ignore[index]


def test_the_same_names_without_it_are_accepted() -> None:
    manifest_from_table(
        manifest(env={"allow": ["HOME"]}, http={"allow": ["https://example.com"]}), source="hello.toml", stem="hello"
    )
