"""The smoke harness on generated guests: what it reports when a call does not do what the manifest says."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import wasmtime

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


def fetching(*urls: str) -> bytes:
    """Exports fetch0, fetch1, …: each fetches its URL and answers the HTTP status, or -1 if the fetch failed."""
    data = "".join(f'(data (i32.const {1024 * (n + 1)}) "{url}")' for n, url in enumerate(urls))
    exports = "".join(
        f"""(func (export "fetch{n}") (result i32)
          (if (result i32) (i32.eqz (call $fetch (i32.const 0) (i32.const 3) (i32.const {1024 * (n + 1)})
                (i32.const {len(url)}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                (i32.const 256) (i32.const 256) (i32.const 128)))
            (then (i32.load (i32.const 128))) (else (i32.const -1))))"""
        for n, url in enumerate(urls)
    )
    return bytes(
        wasmtime.wat2wasm(f"""(module
      (import "ngixi" "http_fetch"
        (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1 1)
      (data (i32.const 0) "GET") {data} {exports})""")
    )


def test_smoke_calls_reach_no_address_of_the_build_hosts_network(tmp_path: Path, keys: KeyFiles) -> None:
    """A guest reaches a private or metadata address only through an allow entry naming it, which the project's
    author writes: smoke routed only loopback entries to its server, so `ngixi build` of a project someone else made
    fetched the build host's cloud metadata (169.254.169.254: its credentials) and its network. Every entry naming
    a non-public address now reaches the smoke server (its /hello), as loopback ones do."""
    origins = ("http://169.254.169.254", "http://10.255.255.1:8080", "http://[fd00:ec2::254]", "http://[::ffff:a00:1]")
    manifest = '[guest]\nname = "net"\nversion = "0.1.0"\n\n'
    manifest += "".join(f'[exports.fetch{n}]\nresults = ["i32"]\n\n' for n in range(len(origins)))
    manifest += f"[capabilities.http]\nallow = {json.dumps(origins)}\ntimeout_ms = 1000\n\n"
    manifest += "".join(f'[[smoke]]\ncall = "fetch{n}"\nexpect = 200\n\n' for n in range(len(origins)))
    wasm = fetching(*(f"{origin}/hello" for origin in origins))
    path = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=manifest, guest="net")
    assert smoke_bundle(bundle_path=path, trust_file=keys.trust, label="net.toml") == len(origins)
