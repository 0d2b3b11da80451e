"""`ngixi pull` and `ngixi publish` against a real OCI registry on loopback that is slow, large or locked: a deadline
for the whole command, a registry given time to answer an upload, tags read a page at a time up to a cap, and a
login asked for or refused in one line at once. A proxy in front of the registry slows the answers each test picks."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ngixi_build.workflows import publish
from ngixi_build.workflows.publish import publish_release
from ngixi_runtime.registry import client as registry_client
from ngixi_runtime.registry import oci
from ngixi_runtime.registry.client import OutOfTime, RegistryError
from ngixi_runtime.registry.pull import pull_bundle
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.oci_registry import LOGIN, RegistryProxy, serve_registry, serving
from tests.wasmgen import ADD_BODY, Func, Imp, module

pytestmark = pytest.mark.integration

ADD_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
)
AT_ONCE = 5  # seconds: far below oras's retries (131 s), far above a loopback request


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_registry(tmp_path_factory.mktemp("locked"), login=True) as host:
        yield host


@pytest.fixture
def proxy(registry: str) -> Iterator[RegistryProxy]:
    with serving(RegistryProxy(registry)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key(tmp_path_factory.mktemp("keys"), channels=["release"])


def release_of(
    directory: Path, keys: KeyFiles, *, guests: tuple[str, ...] = ("hello",), version: str = "0.1.0", sequence: int = 1
) -> Path:
    for guest in guests:
        manifest = HELLO_MANIFEST.replace('name = "hello"', f'name = "{guest}"').replace("0.1.0", version)
        make_bundle(
            directory,
            keys.key,
            wasm=ADD_WASM,
            manifest=manifest,
            guest=guest,
            version=version,
            channel="release",
            sequence=sequence,
        )
    return directory


@pytest.mark.parametrize("trickled", ["manifest-headers", "blob-body"])
def test_a_registry_trickling_a_pull_is_stopped_at_its_deadline(
    registry: str, proxy: RegistryProxy, release_keys: KeyFiles, tmp_path: Path, trickled: str
) -> None:
    """A byte every 50 ms never trips the 10 s stall limit of a read; the whole pull's deadline stops it, whether
    the registry trickles an answer's status line and headers or its body."""
    namespace = f"trickle-{trickled}"
    publish_release(
        release_dir=release_of(tmp_path / "r", release_keys), registry=f"{registry}/{namespace}", key=release_keys.key
    )
    part = "/manifests/" if trickled.startswith("manifest") else "/blobs/"
    proxy.trickled = lambda method, path: part in path
    proxy.trickle_body_only = trickled.endswith("body")
    reference = f"{proxy.host}/{namespace}/hello:0.1.0"
    (tmp_path / "out").mkdir()
    started = time.monotonic()
    with pytest.raises(OutOfTime, match=rf"^{reference}: the pull did not finish within 1 s; nothing was written"):
        pull_bundle(reference=reference, out_dir=tmp_path / "out", trust=load_trust(release_keys.trust), timeout=1)
    assert time.monotonic() - started < 1 + AT_ONCE
    assert list((tmp_path / "out").iterdir()) == []


def test_a_publish_stopped_at_its_deadline_says_what_it_tagged(
    registry: str, proxy: RegistryProxy, release_keys: KeyFiles, tmp_path: Path
) -> None:
    proxy.trickled = lambda method, path: method == "POST" and "/second/" in path  # the second bundle's upload
    namespace = f"{proxy.host}/deadline"
    started = time.monotonic()
    with pytest.raises(OutOfTime) as late:
        publish_release(
            release_dir=release_of(tmp_path / "r", release_keys, guests=("first", "second")),
            registry=namespace,
            key=release_keys.key,
            timeout=1.5,
        )
    assert time.monotonic() - started < 1.5 + AT_ONCE
    assert str(late.value).startswith(
        f"{namespace}: the publish did not finish within 1.5 s; tagged before it stopped: {namespace}/first:0.1.0; "
        "publish again to finish"
    )
    assert _tag_of(registry, "deadline/second", "0.1.0") is None


def test_a_registry_slow_to_answer_a_large_upload_is_given_the_time(
    registry: str, proxy: RegistryProxy, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry hashes and stores what an upload sent before it answers (a cloud store copies it): the stall
    limit of a read does not apply to that answer, whose wait grows with the upload's size."""
    release = release_of(tmp_path / "r", release_keys)
    layer = publish.compressed((release / "hello-0.1.0.ngx").read_bytes())
    monkeypatch.setattr(registry_client, "REACH_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(registry_client, "ANSWER_BYTES_PER_SECOND", len(layer) / 3)  # 3 s more for this layer
    proxy.delayed = lambda method, path: method == "PUT" and hashlib.sha256(layer).hexdigest() in path
    proxy.delay = 1.5
    (published,) = publish_release(release_dir=release, registry=f"{proxy.host}/slow", key=release_keys.key)
    assert published.state == "published"
    assert any(method == "PUT" and "digest=" in path for method, path in proxy.requests)


def test_publish_reads_a_capped_number_of_tags(
    proxy: RegistryProxy, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    registry = proxy.upstream
    (first,) = publish_release(
        release_dir=release_of(tmp_path / "a", release_keys), registry=f"{registry}/paged", key=release_keys.key
    )
    request = urllib.request.Request(
        f"http://{registry}/v2/paged/hello/manifests/{first.digest}", headers={"Accept": oci.MANIFEST_MEDIA_TYPE}
    )
    manifest = urllib.request.urlopen(request).read()
    for tag in ("t1", "t2", "t3", "t4", "t5"):  # seven tags in all
        _put_manifest(registry, "paged/hello", tag, manifest)
    monkeypatch.setattr(publish, "MAX_TAGS_READ", 3)
    monkeypatch.setattr(publish, "TAGS_PER_PAGE", 2)
    caplog.set_level(logging.WARNING)
    (second,) = publish_release(
        release_dir=release_of(tmp_path / "b", release_keys, version="0.2.0", sequence=2),
        registry=f"{proxy.host}/paged",
        key=release_keys.key,
    )
    assert second.state == "published"
    listings = [path for method, path in proxy.requests if "/tags/list" in path]
    assert listings == ["/v2/paged/hello/tags/list?n=2"]  # this registry answers with all 7: `n` came in 3.0
    others = [path for method, path in proxy.requests if method == "GET" and "/manifests/" in path]
    assert len([path for path in others if not path.endswith("/0.2.0")]) == 3  # the cap's, of the six others
    assert "paged/hello: more than 3 tags; the sequence check read the first 3 the registry listed" in caplog.text


def test_a_registry_asking_for_a_login_is_one_line_at_once(
    locked: str,
    release_keys: KeyFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    monkeypatch.delenv(registry_client.USERNAME_VARIABLE, raising=False)
    monkeypatch.delenv(registry_client.PASSWORD_VARIABLE, raising=False)
    started = time.monotonic()
    pulled = exit_code(
        ["pull", f"{locked}/ngixi/hello:0.1.0", "--trust", str(release_keys.trust), "--out", str(tmp_path)]
    )
    assert time.monotonic() - started < AT_ONCE
    err = capsys.readouterr().err
    assert pulled == 1 and err.count("\n") == 1
    assert err.startswith(
        f"ngixi: error: {locked}: the registry asks for a login (HTTP 401 for /v2/ngixi/hello/manifests/0.1.0): "
        "set NGIXI_REGISTRY_USERNAME and NGIXI_REGISTRY_PASSWORD (a token with pull access)"
    )


def test_a_refused_login_is_one_line_at_once(
    locked: str, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry_client.USERNAME_VARIABLE, LOGIN[0])
    monkeypatch.setenv(registry_client.PASSWORD_VARIABLE, "wrong")
    started = time.monotonic()
    with pytest.raises(
        RegistryError,
        match=rf"^{locked}: the registry refused the login of NGIXI_REGISTRY_USERNAME=ngixi "
        r"\(HTTP 401 for /v2/ngixi/hello/manifests/0\.1\.0\): check NGIXI_REGISTRY_PASSWORD",
    ):
        publish_release(
            release_dir=release_of(tmp_path, release_keys), registry=f"{locked}/ngixi", key=release_keys.key
        )
    assert time.monotonic() - started < AT_ONCE


def test_a_login_publishes_and_pulls_and_is_written_nowhere(
    locked: str, release_keys: KeyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oras's `login` wrote the password into ~/.docker/config.json when docker-py is not installed."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(registry_client.USERNAME_VARIABLE, LOGIN[0])
    monkeypatch.setenv(registry_client.PASSWORD_VARIABLE, LOGIN[1])
    release = release_of(tmp_path / "r", release_keys)
    (published,) = publish_release(release_dir=release, registry=f"{locked}/ngixi", key=release_keys.key)
    pulled = pull_bundle(reference=published.pinned, out_dir=tmp_path, trust=load_trust(release_keys.trust))
    assert pulled.read_bytes() == (release / "hello-0.1.0.ngx").read_bytes()
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("seconds", ["0", "-1", "nan", "inf", "1e9"])
def test_a_timeout_out_of_range_is_refused(seconds: str, capsys: Any) -> None:
    assert exit_code(["pull", "127.0.0.1:5/ngixi/hello:0.1.0", "--timeout", seconds]) == 2
    assert capsys.readouterr().err.startswith(
        f"ngixi: error: --timeout {float(seconds):g}: give the seconds it may take"
    )


def _tag_of(registry: str, repository: str, tag: str) -> str | None:
    client = registry_client.connect(registry)
    found = publish._tagged(client, client.get_container(f"{registry}/{repository}:{tag}"))
    return found[0] if found else None


def _put_manifest(registry: str, repository: str, tag: str, document: bytes) -> None:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        data=document,
        method="PUT",
        headers={"Content-Type": json.loads(document)["mediaType"]},
    )
    urllib.request.urlopen(request).close()
