"""The project's release record: parsing with named fields, merging copies, sequences that only rise."""

from __future__ import annotations

import pytest

from ngixi_build.workflows.release_history import (
    History,
    HistoryConflict,
    ReleasedGuest,
    ReleaseRecord,
    merged,
    parse_history,
)
from ngixi_runtime.errors import InvalidInput

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def record(version: str, *guests: tuple[str, str, int, str]) -> ReleaseRecord:
    return ReleaseRecord(version, "c" * 40, False, tuple(ReleasedGuest(n, v, "release", s, d) for n, v, s, d in guests))


def test_sequences_rise_per_guest_and_channel_and_a_released_version_is_found() -> None:
    history = History((record("1.0.0", ("hello", "0.1.0", 1, DIGEST)), record("1.1.0", ("hello", "0.2.0", 2, OTHER))))
    assert history.next_sequence("hello", "release") == 3
    assert history.next_sequence("hello", "dev") == 1 and history.next_sequence("notes", "release") == 1
    found = history.released("hello", "0.1.0", "release")
    assert found is not None and (found.release, found.guest.sequence) == ("1.0.0", 1)
    assert history.released("hello", "0.3.0", "release") is None


def test_copies_merge_and_disagreements_are_named() -> None:
    main = History((record("1.0.0", ("hello", "0.1.0", 1, DIGEST)),))
    branch = History((record("1.0.0", ("hello", "0.1.0", 1, DIGEST)), record("1.1.0", ("hello", "0.2.0", 2, OTHER))))
    assert [r.version for r in merged([("a", main), ("b", branch)]).releases] == ["1.0.0", "1.1.0"]
    rival = History((record("1.1.0", ("hello", "0.3.0", 2, OTHER)),))
    with pytest.raises(HistoryConflict, match=r"^c: release 1\.1\.0 differs from the one in b; reconcile"):
        merged([("b", branch), ("c", rival)])
    twice = History((record("1.2.0", ("hello", "0.1.0", 1, OTHER)),))
    with pytest.raises(
        HistoryConflict, match=r"hello 0\.1\.0 is recorded as sha256:a+ \(sequence 1\) in release 1\.0\.0"
    ):
        merged([("main", main), ("d", twice)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format = 2", "format: must be 1"),
        ("format = 1\nreleases = 3", "releases: must be an array of tables"),
        (
            "format = 1\n[[releases]]\nversion = '1'\ncommit = ''\ndirty = false\nguests = []",
            r"releases\[0\]\.guests: must",
        ),
        (
            "format = 1\n[[releases]]\nversion = '1'\ncommit = ''\ndirty = false\n[[releases.guests]]\nname = 'h'\n"
            "version = '0.1.0'\nchannel = 'release'\nsequence = 0\ndigest = ''",
            r"releases\[0\]\.guests\[0\]\.sequence: must be a whole number from 1",
        ),
        ("format = 1\n[[releases]]\nversion = '1'\nwhen = 3", r"releases\[0\]\.when: unknown key"),
        ("format = ", "not valid TOML"),
    ],
    ids=["format", "releases", "no-guests", "sequence", "unknown-key", "toml"],
)
def test_a_damaged_record_is_named_by_field_with_what_to_do(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=rf"^release-history\.toml: {message}.*restore it from git"):
        parse_history(text, source="release-history.toml")


def test_a_sequence_given_twice_is_named_and_the_next_one_is_above_every_one_ever_recorded() -> None:
    apart = History(
        (record("1.1.0", ("hello", "0.2.0", 2, DIGEST)), record("1.2.0", ("hello", "0.3.0", 2, OTHER))),
        ever_released=(ReleasedGuest("hello", "0.9.0", "release", 7, DIGEST),),  # a version since edited away
    )
    assert apart.shared_sequences() == [
        "hello 0.2.0 (release 1.1.0) and hello 0.3.0 (release 1.2.0) both have sequence 2 on channel release"
    ]
    assert apart.next_sequence("hello", "release") == 8
