"""A hostile or broken registry against publish's reading of what a repository already holds: tag lists a page
at a time, pages on other hosts, oversized configs. (`ngixi pull`'s side: tests/run/unit/test_hostile_pull.py.)"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from ngixi_build.workflows import publish
from ngixi_runtime.errors import VerificationError
from ngixi_runtime.registry import client as registry_client
from ngixi_runtime.registry import oci
from tests.fake_registry import FakeRegistry, ask_for_login, reply
from tests.oci_registry import StoppingServer, serving


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serving(FakeRegistry()) as server:
        yield server


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
            reply(self, b'{"tags": []}')

    def page(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") is None:
            ask_for_login(handler)
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
    registry.blobs[digest] = lambda handler: reply(handler, config.encode())
    described = {"mediaType": oci.CONFIG_MEDIA_TYPE, "digest": digest, "size": len(config)}
    registry.serve_manifest("0.0.1", json.dumps({"schemaVersion": 2, "config": described, "layers": []}).encode())
    registry.paths["/v2/ngixi/hello/tags/list"] = lambda handler: reply(handler, b'{"tags": ["0.0.1"]}')
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
