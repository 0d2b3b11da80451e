"""A signed guest makes its own symlinks and hard links and tries to leave its preopen through them, on each engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.capabilities.wasi_paths import ESCAPE
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.spec.abi import LOOKUP_SYMLINK_FOLLOW, OFLAG_CREAT, RIGHT_FD_READ, RIGHT_FD_WRITE, Errno
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import I64, Func, Imp, call_import, module

pytestmark = pytest.mark.usefixtures("engine_name")

I32 = "i32"
DATA, CONFIG = 3, 4
OUT = 4096
PATH_OPEN = Imp("wasi_snapshot_preview1", "path_open", [I32] * 5 + ["i64", "i64", I32, I32], [I32])
PATH_SYMLINK = Imp("wasi_snapshot_preview1", "path_symlink", [I32] * 5, [I32])
PATH_LINK = Imp("wasi_snapshot_preview1", "path_link", [I32] * 7, [I32])
STRINGS = {
    name: (100 + 40 * index, name.encode())
    for index, name in enumerate(["up", "../..", "up/secret.txt", "sideways", "../config", "sideways/settings.txt"])
}
STRINGS["hard"] = (400, b"hard")
STRINGS["settings.txt"] = (420, b"settings.txt")


def _string(name: str) -> tuple[int, int]:
    pointer, raw = STRINGS[name]
    return pointer, len(raw)


def _symlink(target: str, name: str) -> bytes:
    return call_import(1, *_string(target), DATA, *_string(name))


def _open(fd: int, path: str, rights: int, oflags: int = 0) -> bytes:
    return call_import(0, fd, LOOKUP_SYMLINK_FOLLOW, *_string(path), oflags, I64(rights), I64(0), 0, OUT)


WASM = module(
    imports=[PATH_OPEN, PATH_SYMLINK, PATH_LINK],
    functions=[
        Func("link_up", (), [I32], _symlink("../..", "up")),
        Func("read_up", (), [I32], _open(DATA, "up/secret.txt", RIGHT_FD_READ)),
        Func("link_sideways", (), [I32], _symlink("../config", "sideways")),
        Func("write_sideways", (), [I32], _open(DATA, "sideways/settings.txt", RIGHT_FD_WRITE, OFLAG_CREAT)),
        Func("hard_link_ro", (), [I32], call_import(2, CONFIG, 0, *_string("settings.txt"), DATA, *_string("hard"))),
    ],
    data=list(STRINGS.values()),
)
EXPORTS = ("link_up", "read_up", "link_sideways", "write_sideways", "hard_link_ro")
MANIFEST = (
    '[guest]\nname = "links"\nversion = "0.1.0"\n'
    + "".join(f'[exports.{name}]\nresults = ["i32"]\n' for name in EXPORTS)
    + "[capabilities.fs]\n"
    + 'preopens = [{ guest = "/data", host = "data", mode = "rw" }, { guest = "/config", host = "config" }]\n'
)


def test_links_a_guest_makes_never_lead_out_of_its_preopen(tmp_path: Path, keys: KeyFiles) -> None:
    files = tmp_path / "sandbox" / "files"
    (files / "config").mkdir(parents=True)
    (files / "config" / "settings.txt").write_text("original\n")
    (tmp_path / "sandbox" / "secret.txt").write_text("secret\n")
    bundle = make_bundle(tmp_path / "bundle", keys.key, wasm=WASM, manifest=MANIFEST, guest="links")
    guest = open_guest(read_bundle(bundle, load_trust(keys.trust)), sandbox=Sandbox.under(tmp_path / "sandbox"))
    try:
        results = {name: guest.call(name, ())[0] for name in EXPORTS}
    finally:
        guest.close()
    assert results == {
        "link_up": Errno.SUCCESS,
        "read_up": ESCAPE,
        "link_sideways": Errno.SUCCESS,
        "write_sideways": ESCAPE,  # each preopen is its own root
        "hard_link_ro": Errno.PERM,  # a hard link would make the read-only file writable
    }
    assert (files / "config" / "settings.txt").read_text() == "original\n"
    assert sorted(p.name for p in (files / "data").iterdir()) == ["sideways", "up"]
