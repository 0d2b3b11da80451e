"""`ngixi pull` from a registry that lies: an old signed bundle under a newer tag, another guest's bundle under
this guest's name, manifests that are not what the OCI spec says, a manifest of gigabytes, a registry that
stops answering. Each is refused in one line and nothing is written. A small fake registry on 127.0.0.1
serves what each attack needs; the round trip through a real registry is in the integration tier."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.stages.signing import TrustEntry, render_trust_file
from ngixi_build.workflows import publish
from ngixi_runtime.errors import NgixiError, VerificationError
from ngixi_runtime.registry import client as registry_client
from ngixi_runtime.registry import oci
from ngixi_runtime.registry.client import RegistryError
from ngixi_runtime.registry.pull import pull_bundle
from ngixi_runtime.trust.choice import TRUST_VARIABLE
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.oci_registry import StoppingServer, serving
from tests.wasmgen import ADD_BODY, Func, Imp, module

ADD_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
)
Answer = Callable[[BaseHTTPRequestHandler], None]


class FakeRegistry(StoppingServer):
    """Answers /v2/, manifests by tag or digest and blobs by digest from its tables."""

    def __init__(self) -> None:
        super().__init__(_Handler)
        self.manifests: dict[str, Answer] = {}
        self.blobs: dict[str, Answer] = {}
        self.paths: dict[str, Answer] = {}  # any other path, without its query

    @property
    def repository(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}/ngixi"

    def tag(self, tag: str, layer: bytes, *, media_type: str = oci.GZIP_BUNDLE_MEDIA_TYPE) -> None:
        """Serves `layer` as the bundle layer of the manifest named by `tag` and by its digest."""
        digest = f"sha256:{hashlib.sha256(layer).hexdigest()}"
        self.blobs[digest] = lambda handler: _reply(handler, layer)
        document = {
            "schemaVersion": 2,
            "mediaType": oci.MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": publish.ARTIFACT_TYPE, "digest": digest, "size": len(layer)},
            "layers": [{"mediaType": media_type, "digest": digest, "size": len(layer)}],
        }
        self.serve_manifest(tag, json.dumps(document).encode())

    def serve_manifest(self, reference: str, document: bytes) -> str:
        self.manifests[reference] = lambda handler: _reply(handler, document)
        digest = f"sha256:{hashlib.sha256(document).hexdigest()}"
        self.manifests[digest] = self.manifests[reference]
        return digest


def _reply(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def do_GET(self) -> None:
        if self.path == "/v2/":
            return _reply(self, b"{}")
        if self.path.split("?")[0] in self.server.paths:
            return self.server.paths[self.path.split("?")[0]](self)
        kind, _, reference = self.path.rpartition("/")
        if kind.endswith("/manifests") and reference in self.server.manifests:
            return self.server.manifests[reference](self)
        if kind.endswith("/blobs") and reference in self.server.blobs:
            return self.server.blobs[reference](self)
        self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


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
    return publish.compressed(path.read_bytes())


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
    registry.paths["/token"] = lambda handler: _reply(handler, token) if token else handler.send_error(401)
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


def test_tags_are_read_a_page_at_a_time_up_to_a_cap(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """Pages as the distribution spec gives them: `n` tags, and a Link header to the next page."""
    pages = [["a", "b"], ["c", "d"], ["e"]]
    asked: list[str] = []

    def page(handler: BaseHTTPRequestHandler) -> None:
        asked.append(handler.path)
        number = len(asked) - 1
        body = json.dumps({"name": "ngixi/hello", "tags": pages[number]}).encode()
        handler.send_response(200)
        if number + 1 < len(pages):
            handler.send_header("Link", f'</v2/ngixi/hello/tags/list?n=2&last={pages[number][-1]}>; rel="next"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    registry.paths["/v2/ngixi/hello/tags/list"] = page
    monkeypatch.setattr(publish, "TAGS_PER_PAGE", 2)
    client = registry_client.connect(registry.repository.split("/")[0])
    assert publish._tags(client, f"{registry.repository}/hello") == ["a", "b", "c", "d", "e"]
    assert asked == [
        "/v2/ngixi/hello/tags/list?n=2",
        "/v2/ngixi/hello/tags/list?n=2&last=b",
        "/v2/ngixi/hello/tags/list?n=2&last=d",
    ]
    asked.clear()
    monkeypatch.setattr(publish, "MAX_TAGS_READ", 3)
    assert publish._tags(client, f"{registry.repository}/hello") == ["a", "b", "c"]
    assert len(asked) == 2 and "more than 3 tags; the sequence check read the first 3" in caplog.text


def test_a_tag_list_linking_to_another_host_is_refused_before_the_login_goes_there(
    registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry's Link header names the next page's URL, and every request carries the login: a next page on
    another host (here another port) would hand that host the password, over plain HTTP as the registry's was."""
    reached: list[str | None] = []

    class _Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reached.append(self.headers.get("Authorization"))
            _reply(self, b'{"tags": []}')

    def page(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") is None:
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="fake"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = b'{"tags": ["a"]}'
        handler.send_response(200)
        handler.send_header("Link", f'<http://127.0.0.1:{elsewhere.server_address[1]}/v2/x/tags/list>; rel="next"')
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    monkeypatch.setenv(registry_client.USERNAME_VARIABLE, "ngixi")
    monkeypatch.setenv(registry_client.PASSWORD_VARIABLE, "s3cret")
    registry.paths["/v2/ngixi/hello/tags/list"] = page
    with serving(StoppingServer(_Elsewhere)) as elsewhere:
        client = registry_client.connect(registry.repository.split("/")[0])
        with pytest.raises(VerificationError, match=r"tag list links to http://127\.0\.0\.1:\d+/v2/x/tags/list, not"):
            publish._tags(client, f"{registry.repository}/hello")
    assert reached == []


def test_a_published_config_is_read_up_to_what_a_bundles_holds(registry: FakeRegistry) -> None:
    """Publish reads each tag's config for its sequence: 1,000 tags of 4 MiB configs, each kept parsed, took
    gigabytes (about 16 MB a config of zeros); a config is a few hundred bytes, and only its version is kept."""
    config = json.dumps({"channel": "release", "version": "0.0.1", "sequence": 1, "pad": "x" * (64 << 10)})
    digest = f"sha256:{hashlib.sha256(config.encode()).hexdigest()}"
    registry.blobs[digest] = lambda handler: _reply(handler, config.encode())
    described = {"mediaType": publish.ARTIFACT_TYPE, "digest": digest, "size": len(config)}
    registry.serve_manifest("0.0.1", json.dumps({"schemaVersion": 2, "config": described, "layers": []}).encode())
    registry.paths["/v2/ngixi/hello/tags/list"] = lambda handler: _reply(handler, b'{"tags": ["0.0.1"]}')
    client = registry_client.connect(registry.repository.split("/")[0])
    with pytest.raises(VerificationError, match=r"hello:0\.0\.1: the config is larger than 65536 bytes; refused"):
        publish._published_versions(client, f"{registry.repository}/hello")


@pytest.mark.parametrize(
    ("link", "followed"),
    [
        ("https://r.example/v2/g/tags/list?last=a", True),
        ("https://R.EXAMPLE:443/v2/g/tags/list?last=a", True),  # the same origin, written otherwise
        ("http://r.example/v2/g/tags/list?last=a", False),
        ("https://r.example:8443/v2/g/tags/list?last=a", False),
        ("https://r.example.evil/v2/g/tags/list?last=a", False),
    ],
)
def test_a_next_page_is_followed_on_the_registrys_own_origin_only(link: str, followed: bool) -> None:
    if followed:
        assert publish._same_origin(link, "https://r.example/v2/g/tags/list?n=100", "r.example/g") == link
    else:
        with pytest.raises(VerificationError, match=r"not to the registry itself; refused$"):
            publish._same_origin(link, "https://r.example/v2/g/tags/list?n=100", "r.example/g")


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
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", 'Basic realm="fake"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        _reply(handler, b"{}")

    monkeypatch.setenv(registry_client.USERNAME_VARIABLE, "ngixi")
    monkeypatch.setenv(registry_client.PASSWORD_VARIABLE, "s3cret")
    with serving(FakeRegistry()) as storage:
        registry.paths["/ngixi/locked"] = storage.paths["/ngixi/locked"] = locked
        client = registry_client.connect(registry.repository.split("/")[0])
        assert client.do_request(f"http://{registry.repository}/locked").status_code == 200
        assert client.do_request(f"http://{storage.repository}/locked").status_code == 401
    assert asked == [None, "Basic bmdpeGk6czNjcmV0", None]
