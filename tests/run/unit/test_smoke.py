"""The smoke harness on generated guests: what it reports when a call does not do what the manifest says."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ngixi_build.stages.smoke import GREETING, SmokeFailure, _Handler, smoke_bundle
from tests.conftest import HELLO_MANIFEST, REPO, KeyFiles, make_bundle
from tests.wasmgen import ADD_BODY, Func, Imp, module

WASM = module(imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
LABEL = "manifests/hello.toml"


def smoke(tmp_path: Path, keys: KeyFiles, calls: str) -> int:
    path = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=HELLO_MANIFEST + calls)
    return smoke_bundle(bundle_path=path, trust_file=keys.trust, label=LABEL)


def test_passing_calls_are_counted(tmp_path: Path, keys: KeyFiles) -> None:
    assert smoke(tmp_path, keys, '[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n') == 1


def test_every_failing_call_is_reported(tmp_path: Path, keys: KeyFiles) -> None:
    calls = (
        '[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
        '[[smoke]]\ncall = "add"\nargs = [2, 2]\nexpect = 5\n'
        '[[smoke]]\ncall = "add"\nargs = [1, 1]\nexpect = 3\n'
    )
    with pytest.raises(SmokeFailure) as caught:
        smoke(tmp_path, keys, calls)
    assert str(caught.value).splitlines() == [
        f"{LABEL}: smoke[1]: add(2, 2) returned 4, expected 5",
        f"{LABEL}: smoke[2]: add(1, 1) returned 2, expected 3",
    ]


def test_readme_says_what_the_smoke_server_answers() -> None:
    """A smoke call of an http guest must expect what the harness's server answers: README said only that there is
    one, so an author could not write the call (found writing one for a guest of their own)."""
    section = (REPO / "README.md").read_text().partition("### Smoke calls")[2].partition("\n## ")[0]
    for path in ("/hello", "/bytes?n=N", "/slow?ms=N", "/redirect?to=URL", "/loop", "POST"):
        assert path.split("=")[0] in (_Handler.__doc__ or "") and f"`{path}" in section, path
    assert GREETING.decode().replace("\n", "\\n") in section
    assert base64.b64encode(GREETING).decode() in section
