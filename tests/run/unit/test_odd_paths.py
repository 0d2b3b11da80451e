"""Paths and files a user may name that no check foresaw: each is the command's one line, never 'unexpected'."""

from __future__ import annotations

import os
import resource
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import write_atomic
from ngixi_runtime.guest.manifest import ManifestError, load_manifest, parse_manifest
from tests.conftest import KeyFiles, exit_code, make_bundle
from tests.run.unit.test_loader import MANIFEST, WASM

BOM = b"\xef\xbb\xbf"


def _loop(directory: Path) -> Path:
    """A symbolic link whose target is a link back to it."""
    (directory / "loop-b").symlink_to(directory / "loop-a")
    (directory / "loop-a").symlink_to(directory / "loop-b")
    return directory / "loop-a"


def _last_error(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_trust_file_whose_name_is_not_utf8_verifies(tmp_path: Path, keys: KeyFiles) -> None:
    """The rollback state's file name hashed the trust file's path as UTF-8: a name with a byte that is not
    (a surrogate escape in Python) ended verify and run in 'unexpected UnicodeEncodeError'."""
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST)
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/trust-\xff.toml")
    shutil.copyfile(keys.trust, odd)
    assert exit_code(["verify", "--trust", odd, "--state-dir", str(tmp_path / "state"), str(bundle)]) == 0


@pytest.mark.parametrize("command", [["verify"], ["run"], ["trust", "list"]])
def test_a_project_that_loops_is_one_line(
    tmp_path: Path, keys: KeyFiles, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Path.resolve raises RuntimeError for a loop of symbolic links before Python 3.13: `--project LOOP` ended
    in 'unexpected RuntimeError: Symlink loop from ...'."""
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST)
    loop = _loop(tmp_path)
    operands = [] if command == ["trust", "list"] else [str(bundle)]
    assert exit_code([*command, "--project", str(loop), *operands]) == 2
    assert _last_error(capsys) == f"ngixi: error: {loop}: its symbolic links loop; name the file itself"


@pytest.mark.parametrize("option", ["--trust", "--policy"])
def test_a_toml_file_with_a_byte_order_mark_says_so(
    tmp_path: Path, keys: KeyFiles, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """TOML allows no byte order mark, and an editor's 'UTF-8 with BOM' was refused as 'Invalid statement (at
    line 1, column 1)', which a user cannot see in their editor."""
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST)
    named = tmp_path / "with-bom.toml"
    named.write_bytes(BOM + (keys.trust.read_bytes() if option == "--trust" else b"[limits]\n"))
    argv = ["verify", "--trust", str(keys.trust), str(bundle), option, str(named)]
    assert exit_code(argv) == 2
    assert _last_error(capsys) == (
        f"ngixi: error: {named}: not valid TOML: it starts with a byte order mark (U+FEFF); save it as UTF-8 "
        "without one"
    )


def test_a_manifest_that_is_a_symbolic_link_loop_is_not_called_missing(tmp_path: Path) -> None:
    """`ngixi validate LOOP` said the manifest was missing and to create it, over a link the user would find there."""
    loop = _loop(tmp_path)
    with pytest.raises(InvalidInput) as refused:
        load_manifest(loop)
    assert str(refused.value).endswith("its symbolic links loop; name the file itself")


def test_a_manifest_with_a_byte_order_mark_says_so() -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest("\ufeff" + MANIFEST, source="m/hello.toml", stem="hello")
    assert str(refused.value) == (
        "m/hello.toml: not valid TOML: it starts with a byte order mark (U+FEFF); save it as UTF-8 without one"
    )


def test_a_file_whose_name_nearly_fills_the_limit_is_written(tmp_path: Path) -> None:
    """The temporary file beside it took the whole name and 14 bytes more: a 250-byte name (a key `ngixi keygen`
    writes, a trust file) failed with 'File name too long', naming a temporary file the user never named."""
    near = tmp_path / ("k" * 250)
    write_atomic(near, b"key\n")
    assert near.read_bytes() == b"key\n"
    over = tmp_path / ("o" * 300)
    with pytest.raises(OSError, match="File name too long") as refused:
        write_atomic(over, b"key\n", new=True)
    assert refused.value.filename == str(over)
    assert sorted(p.name for p in tmp_path.iterdir()) == [near.name]


@contextmanager
def files_over(limit: int) -> Iterator[None]:
    """A write past `limit` bytes of a file fails (EFBIG, as a full disk's ENOSPC does: an OSError naming no file);
    Python ignores SIGXFSZ, so the process lives on."""
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)


def test_a_write_that_fails_names_the_file_and_leaves_nothing(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk ended `ngixi keygen`, `ngixi trust add` and `ngixi init` in 'unexpected OSError: [Errno 28] No
    space left on device' (the failed write named no file)."""
    trust = tmp_path / "edited" / "trust.toml"
    add = ["trust", "add", "--guest", "g", "--channel", "dev", "--trust", str(trust), str(keys.public)]
    with files_over(64):
        assert exit_code(add) == 2
    assert _last_error(capsys) == (
        f"ngixi: error: {trust}: File too large; it would pass a file size limit (ulimit -f, or its filesystem's): "
        "raise it or write elsewhere"
    )
    assert list(trust.parent.iterdir()) == []


def test_a_trust_file_under_a_file_says_which_is_not_a_directory(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ngixi trust add --trust FILE/trust.toml` said 'cannot edit trust files there: File exists' (mkdir's error)."""
    (tmp_path / "file").write_text("")
    trust = tmp_path / "file" / "trust.toml"
    add = ["trust", "add", "--guest", "g", "--channel", "dev", "--trust", str(trust), str(keys.public)]
    assert exit_code(add) == 2
    assert _last_error(capsys) == f"ngixi: error: {trust.parent}: cannot edit trust files there: it is not a directory"
