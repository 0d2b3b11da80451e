"""The guests of a project as its build reads them: once, and never failing on a broken manifest."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ngixi_build.guests import UNKNOWN_VERSION, GuestBuild, read_guest, read_guests
from ngixi_build.project import GUEST_ENTRY, Project
from ngixi_runtime.guest.kind import GuestType
from ngixi_runtime.guest.manifest import DEFAULT_LIMITS
from tests.conftest import HELLO_MANIFEST

PAGES = DEFAULT_LIMITS["memory_pages"]
AS = GuestType(language="assemblyscript")


def project_with(tmp_path: Path, manifests: dict[str, str | bytes]) -> Project:
    project = Project(tmp_path)
    project.manifests_dir.mkdir()
    for name, text in manifests.items():
        entry = project.guests_dir / name / GUEST_ENTRY
        entry.parent.mkdir(parents=True)
        entry.write_text("export function f(): void {}\n")
        project.manifest_path(name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return project


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HELLO_MANIFEST, GuestBuild("g", AS, "0.1.0", PAGES, metered=False)),
        (
            '[guest]\nversion = "2.0.0"\nabi = "component"\nkind = "command"\n[limits]\nmemory_pages = 3\nfuel = 10\n',
            GuestBuild("g", GuestType("component", "command", "assemblyscript"), "2.0.0", 3, metered=True),
        ),
        ("[guest\nname = ", GuestBuild("g", AS, UNKNOWN_VERSION, PAGES, metered=False)),
        (b"\xff\xfe", GuestBuild("g", AS, UNKNOWN_VERSION, PAGES, metered=False)),
        (
            'guest = 1\nlimits = "none"\n',
            GuestBuild("g", AS, UNKNOWN_VERSION, PAGES, metered=False),
        ),
        (
            '[guest]\nversion = ""\nabi = "wasi"\n[limits]\nmemory_pages = true\n',
            GuestBuild("g", AS, UNKNOWN_VERSION, PAGES, metered=False),
        ),
    ],
    ids=["plain", "everything set", "broken toml", "not utf-8", "wrong tables", "wrong values"],
)
def test_a_manifest_reads_leniently(tmp_path: Path, text: str | bytes, expected: GuestBuild) -> None:
    assert read_guest(project_with(tmp_path, {"g": text}), "g") == expected


def test_a_missing_manifest_reads_as_defaults(tmp_path: Path) -> None:
    assert read_guest(Project(tmp_path), "gone") == GuestBuild("gone", GuestType(), UNKNOWN_VERSION, PAGES, False)


def test_every_guest_is_read_in_name_order(tmp_path: Path) -> None:
    project = project_with(tmp_path, {"b": HELLO_MANIFEST, "a": '[guest]\nabi = "component"\n'})
    guests = read_guests(project)
    assert list(guests) == ["a", "b"]
    assert guests["a"].type.is_component and not guests["b"].type.is_component


def test_a_guest_survives_pickling_for_spawned_workers(tmp_path: Path) -> None:
    guest = read_guest(project_with(tmp_path, {"g": '[guest]\nabi = "component"\n'}), "g")
    assert pickle.loads(pickle.dumps(guest)) == guest
