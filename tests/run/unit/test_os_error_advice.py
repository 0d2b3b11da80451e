"""An OS error no check foresaw is one line naming its files, the system's words and what to do."""

from __future__ import annotations

import errno

import pytest

from ngixi_runtime.errors import InvalidInput, NgixiError, unexpected


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/x"),
            "/srv/x: Permission denied; check its permissions and owner, or choose a place you may use",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/ro/trust.toml"),
            "/ro/trust.toml: Read-only file system; its filesystem is read-only: choose a writable place",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", b"/a/\xff", None, "/b"),
            "/a/\udcff -> /b: Invalid cross-device link",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "No space left on device; free space on its filesystem and run the command again",
        ),
    ],
)
def test_an_os_error_names_its_files_and_what_to_do(error: OSError, line: str) -> None:
    """It was "PATH: Permission denied" and no more, or, with no file named, "unexpected OSError: [Errno 28] …; run
    with -v for the traceback and report it": a report asked for the user's own full disk."""
    reported = unexpected(error)
    assert isinstance(reported, InvalidInput)
    assert str(reported) == line


def test_an_os_error_with_no_file_and_no_advice_is_reported_as_unforeseen() -> None:
    reported = unexpected(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    assert type(reported) is NgixiError
    assert str(reported) == (
        "unexpected ConnectionResetError: [Errno 104] Connection reset by peer; run with -v for the traceback and "
        "report it"
    )
