"""A hostile or broken registry against `ngixi pull`: malformed and endless manifests, replayed or foreign bundles,
stalls, token dances, redirects and logins, each a one-line refusal with nothing written."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.stages.signing import TrustEntry, render_trust_file
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.registry import client as registry_client
from ngixi_runtime.registry import oci, pull
from ngixi_runtime.registry.client import RegistryError
from ngixi_runtime.registry.pull import pull_bundle
from ngixi_runtime.trust.choice import TRUST_VARIABLE
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.fake_registry import Answer, FakeRegistry, ask_for_login, reply
from tests.oci_registry import serving
from tests.wasmgen import ADD_BODY, Func, Imp, module

ADD_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
)


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serving(FakeRegistry()) as server:
        yield server


@pytest.fixture
def release_keys(tmp_path: Path) -> KeyFiles:
    return make_key(tmp_path / "keys", channels=["release"])


def _release_bundle(directory: Path, keys: KeyFiles, *, guest: str = "hello", version: str = "0.1.0") -> bytes:
    manifest = HELLO_MANIFEST.replace('name = "hello"', f'name = "{guest}"').replace("0.1.0", version)
    path = make_bundle(
        directory, keys.key, wasm=ADD_WASM, manifest=manifest, guest=guest, version=version, channel="release"
    )
    return gzip.compress(path.read_bytes(), mtime=0)


def _pull(reference: str, out: Path, keys: KeyFiles) -> Path:
    out.mkdir(exist_ok=True)
    return pull_bundle(reference=reference, out_dir=out, trust=load_trust(keys.trust))


def test_a_fake_registry_serves_a_bundle_that_pulls(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    assert _pull(f"{registry.repository}/hello:0.1.0", tmp_path / "out", release_keys).name == "hello-0.1.0.ngx"


def test_an_older_signed_version_under_a_newer_tag_is_refused(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    """A registry (or whoever moved the tag) replaying 0.1.0, validly signed, when 0.2.0 was asked for."""
    registry.tag("0.2.0", _release_bundle(tmp_path / "b", release_keys, version="0.1.0"))
    reference = f"{registry.repository}/hello:0.2.0"
    with pytest.raises(VerificationError, match=rf"^{reference}: the registry returned hello 0\.1\.0, not 0\.2\.0"):
        _pull(reference, tmp_path / "out", release_keys)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_layer_inflating_from_an_unsigned_start_is_refused_before_the_rest_is_inflated(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry's layer of 1 MB inflating to 1 GiB that no trusted key signed was written whole to the temporary
    folder before the reader refused it; its start (the index and its signature) is checked as it arrives now. The
    limit is lowered so that the bomb is small: refused as one before, for its signer now."""
    monkeypatch.setattr(pull, "MAX_BUNDLE_BYTES", 1 << 20)
    stranger = make_key(tmp_path / "stranger", channels=["release"])
    unsigned = gzip.decompress(_release_bundle(tmp_path / "b", stranger))
    registry.tag("0.1.0", gzip.compress(unsigned + bytes(2 << 20), mtime=0))
    reference = f"{registry.repository}/hello:0.1.0"
    with pytest.raises(
        VerificationError, match=rf"^{reference}: signed by key {stranger.key.key_id}, which .* not trust"
    ):
        _pull(reference, tmp_path / "out", release_keys)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_uncompressed_layer_is_refused_for_its_unsigned_start_before_the_rest_arrives(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    """The registry sends the start of a bundle no trusted key signed, then hangs up: refused for its signer (before,
    the pull read on to the end the layer's size declares, and said the download missed its digest)."""
    stranger = make_key(tmp_path / "stranger", channels=["release"])
    unsigned = gzip.decompress(_release_bundle(tmp_path / "b", stranger))
    registry.tag("0.1.0", unsigned + bytes(1 << 20), media_type=oci.BUNDLE_MEDIA_TYPE)
    digest = next(name for name in registry.blobs)
    whole = len(unsigned) + (1 << 20)

    def start_then_hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(whole))
        handler.end_headers()
        handler.wfile.write(unsigned + bytes(256 << 10))  # more than a read's chunk, less than the whole
        handler.close_connection = True

    registry.blobs[digest] = start_then_hang_up
    reference = f"{registry.repository}/hello:0.1.0"
    with pytest.raises(
        VerificationError, match=rf"^{reference}: signed by key {stranger.key.key_id}, which .* not trust"
    ):
        _pull(reference, tmp_path / "out", release_keys)


@pytest.mark.parametrize("asked", ["other:0.1.0", "other@{digest}"])
def test_another_guests_bundle_under_this_guests_name_is_refused(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, asked: str
) -> None:
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    digest = next(name for name in registry.manifests if name.startswith("sha256:"))
    reference = f"{registry.repository}/{asked.format(digest=digest)}"
    with pytest.raises(VerificationError, match=rf"^{reference}: the registry returned guest hello, not other"):
        _pull(reference, tmp_path / "out", release_keys)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "document",
    [
        b"[]",
        b'"text"',
        b"{not json",
        b'{"layers": {}}',
        b'{"layers": [7]}',
        b'{"layers": [{"mediaType": "application/vnd.ngixi.bundle.v1.tar+gzip", "size": 10}]}',
        b'{"layers": [{"mediaType": "application/vnd.ngixi.bundle.v1.tar+gzip", "size": 10, "digest": 7}]}',
        b'{"layers": [{"mediaType": "application/vnd.ngixi.bundle.v1.tar+gzip", "size": true, "digest": "sha256:'
        + b"0" * 64
        + b'"}]}',
        b'{"layers": [{"mediaType": "application/vnd.ngixi.bundle.v1.tar+gzip", "size": 10, "digest": "../../x"}]}',
    ],
    ids=[
        "list",
        "string",
        "not-json",
        "layers-object",
        "layer-number",
        "no-digest",
        "digest-number",
        "size-bool",
        "digest-path",
    ],
)
def test_a_manifest_outside_the_spec_is_one_line(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, document: bytes
) -> None:
    registry.serve_manifest("0.1.0", document)
    reference = f"{registry.repository}/hello:0.1.0"
    with pytest.raises(NgixiError, match=rf"^{reference}: ") as refused:
        _pull(reference, tmp_path / "out", release_keys)
    assert "\n" not in str(refused.value)


def test_a_tag_the_registry_lacks_is_one_line_saying_so(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    """A mistyped tag was `manifest lookup refused by the registry: HTTP 404 {"errors":[...]}\\n`: the registry's
    JSON as it sent it, a literal `\\n` at its end, and nothing saying what to check."""
    registry.manifests["0.2.0"] = _unknown_manifest
    reference = f"{registry.repository}/hello:0.2.0"
    with pytest.raises(RegistryError) as refused:
        _pull(reference, tmp_path / "out", release_keys)
    assert str(refused.value) == (
        f"{reference}: manifest lookup refused by the registry: HTTP 404 MANIFEST_UNKNOWN: manifest unknown; the "
        "registry has no such repository or tag: check the reference (`doit publish` prints each one it pushed)"
    )
    assert list((tmp_path / "out").iterdir()) == []


def _unknown_manifest(handler: BaseHTTPRequestHandler) -> None:
    """What the distribution registry answers for a tag it does not have."""
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"0.2.0"}}]}\n'
    handler.send_response(404)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_a_manifest_larger_than_the_spec_allows_is_refused_unread(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    sent: list[int] = []

    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        chunk = b" " * (1 << 16)
        try:
            while not registry.stop.is_set() and sum(sent) < 1 << 30:
                handler.wfile.write(chunk)
                sent.append(len(chunk))
        except OSError:
            pass

    registry.manifests["0.1.0"] = endless
    reference = f"{registry.repository}/hello:0.1.0"
    with pytest.raises(VerificationError, match=rf"^{reference}: the manifest is larger than 4194304 bytes"):
        _pull(reference, tmp_path / "out", release_keys)
    assert sum(sent) < 64 << 20


@pytest.mark.parametrize("stalls", ["manifest", "blob"])
def test_a_registry_that_stops_answering_times_out_in_one_line(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stalls: str
) -> None:
    monkeypatch.setattr(registry_client, "REACH_TIMEOUT_SECONDS", 0.2)
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    table: dict[str, Any] = registry.manifests if stalls == "manifest" else registry.blobs
    for name in table:
        table[name] = lambda handler: _stall(handler, registry.stop)
    reference = f"{registry.repository}/hello:0.1.0"
    with pytest.raises(RegistryError, match=rf"^{reference}: pull failed: the registry did not answer within 0.2 s$"):
        _pull(reference, tmp_path / "out", release_keys)
    assert list((tmp_path / "out").iterdir()) == []


def _stall(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
    """Headers and half the body, then silence."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b"{" * 500)
    handler.wfile.flush()
    stop.wait(30)


def test_a_huge_file_where_the_bundle_goes_is_refused_unread(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    """Someone who can write the --out directory leaves a link to a file of 64 GiB under the bundle's name."""
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    huge = tmp_path / "huge"
    with huge.open("wb") as stream:
        stream.truncate(64 << 30)  # sparse
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hello-0.1.0.ngx").symlink_to(huge)
    with pytest.raises(NgixiError, match=r"hello-0\.1\.0\.ngx: already exists, with other content than this pull's"):
        _pull(f"{registry.repository}/hello:0.1.0", tmp_path / "out", release_keys)


def test_a_trust_file_found_from_the_working_directory_verifies_no_release_bundle(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """An unpacked project whose .ngixi/trust.toml trusts its author's key for every channel: `ngixi pull` without
    --trust finds it and, as `ngixi run` does, takes its keys for the dev channel only."""
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    project = tmp_path / "unpacked"
    (project / ".ngixi").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.ngixi]\n")
    everything = TrustEntry(release_keys.key, ("*",), ("dev", "release"), "the author's", native_code=True)
    (project / ".ngixi" / "trust.toml").write_bytes(render_trust_file([everything]))
    monkeypatch.delenv(TRUST_VARIABLE, raising=False)
    monkeypatch.chdir(project)
    pulled = exit_code(["pull", f"{registry.repository}/hello:0.1.0", "--out", str(tmp_path / "out")])
    assert pulled == 3 and "for the dev channel only" in capsys.readouterr().err
    assert not (tmp_path / "out" / "hello-0.1.0.ngx").exists()


def _locked(answer: Answer, registry: FakeRegistry) -> Answer:
    """`answer` for a request with the token the fake's /token grants; a Bearer challenge for any other."""

    def guarded(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") == "Bearer granted":
            return answer(handler)
        handler.send_response(401)
        realm = f"http://{registry.repository.split('/')[0]}/token"
        handler.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="fake",scope="repository:x:pull"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return None

    return guarded


@pytest.mark.parametrize("granted", [True, False])
def test_a_registry_asking_for_a_token_gets_one_or_is_one_line_at_once(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path, capsys: Any, granted: bool
) -> None:
    """A registry answering 401 with a Bearer challenge, whose token service grants an anonymous token or refuses
    one: oras's token dance is used, tried once (oras retried the refusal five times over 131 s)."""
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    for table in (registry.manifests, registry.blobs):
        for name, answer in table.items():
            table[name] = _locked(answer, registry)
    token = b'{"token": "granted"}' if granted else None
    registry.paths["/token"] = lambda handler: reply(handler, token) if token else handler.send_error(401)
    reference = f"{registry.repository}/hello:0.1.0"
    argv = ["pull", reference, "--trust", str(release_keys.trust), "--out", str(tmp_path)]
    started = time.monotonic()
    pulled = exit_code(argv)
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    if granted:
        assert pulled == 0 and (tmp_path / "hello-0.1.0.ngx").exists()
    else:
        assert pulled == 1 and err.count("\n") == 1
        assert err.startswith(
            f"ngixi: error: {registry.repository.split('/')[0]}: the registry asks for a login (HTTP 401"
        )


def test_a_redirect_over_plain_http_goes_to_this_machine_only(
    registry: FakeRegistry, release_keys: KeyFiles, tmp_path: Path
) -> None:
    """Plain HTTP goes to a loopback registry only (or with NGIXI_REGISTRY_INSECURE=1), but requests followed a
    registry's redirect anywhere: a blob's sent the pull to a host of the network over plain HTTP (a GET the registry
    chose, to a machine it cannot reach itself). Storage on this machine still serves a blob."""
    registry.tag("0.1.0", _release_bundle(tmp_path / "b", release_keys))
    (digest,) = registry.blobs
    with serving(FakeRegistry()) as storage:
        storage.blobs[digest] = registry.blobs[digest]
        registry.blobs[digest] = lambda handler: _redirect(handler, f"http://{storage.repository}/blobs/{digest}")
        assert _pull(f"{registry.repository}/hello:0.1.0", tmp_path / "out", release_keys).name == "hello-0.1.0.ngx"
    registry.blobs[digest] = lambda handler: _redirect(handler, "http://storage.example/internal/admin")
    with pytest.raises(RegistryError, match=r"^http://storage\.example/internal/admin: the registry redirected a"):
        _pull(f"{registry.repository}/hello:0.1.0", tmp_path / "again", release_keys)
    assert list((tmp_path / "again").iterdir()) == []


def _redirect(handler: BaseHTTPRequestHandler, location: str) -> None:
    handler.send_response(307)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def test_the_login_goes_to_the_registry_alone(registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry names where an upload goes (its `Location`), which may be its storage elsewhere: the client sent
    NGIXI_REGISTRY_USERNAME/PASSWORD, or the token the registry gave, along to whatever host it named."""
    asked: list[str | None] = []

    def locked(handler: BaseHTTPRequestHandler) -> None:
        asked.append(handler.headers.get("Authorization"))
        if asked[-1] is None:
            ask_for_login(handler)
            return
        reply(handler, b"{}")

    monkeypatch.setenv(registry_client.USERNAME_VARIABLE, "ngixi")
    monkeypatch.setenv(registry_client.PASSWORD_VARIABLE, "s3cret")
    with serving(FakeRegistry()) as storage:
        registry.paths["/ngixi/locked"] = storage.paths["/ngixi/locked"] = locked
        client = registry_client.connect(registry.repository.split("/")[0])
        assert client.do_request(f"http://{registry.repository}/locked").status_code == 200
        assert client.do_request(f"http://{storage.repository}/locked").status_code == 401
    assert asked == [None, "Basic bmdpeGk6czNjcmV0", None]
