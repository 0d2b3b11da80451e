"""A tenant child's answer to its start-up request is held to the protocol: anything else stops it as crashed, with
one error line, rather than ending the host's call with a KeyError or ValueError and leaving the child running."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ngixi_runtime.errors import NgixiError
from ngixi_runtime.guest.manifest import parse_manifest
from ngixi_runtime.loading import isolated
from ngixi_runtime.loading.calls import CallFailed
from ngixi_runtime.loading.isolated import CheckedBundle, IsolatedTenant
from ngixi_runtime.loading.tenant_wire import control_frame
from tests.conftest import HELLO_MANIFEST


class _StandInProcess:
    """A child whose answers are already in its reply pipe."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        requests, replies = os.pipe(), os.pipe()
        os.write(replies[1], b"".join(control_frame(answer) for answer in answers))
        os.close(replies[1])
        self.pid, self.status_known, self.stopped = 1, True, False
        self.stdin = open(requests[1], "wb")  # noqa: SIM115 - closed in close()
        self.stdout = open(replies[0], "rb")  # noqa: SIM115
        self._request_reader = requests[0]

    def wait(self) -> int:
        return 0

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.stdin.close()
        self.stdout.close()
        os.close(self._request_reader)


@pytest.fixture
def spawned() -> Iterator[list[_StandInProcess]]:
    processes: list[_StandInProcess] = []
    yield processes
    for process in processes:
        assert process.stopped


def tenant(
    monkeypatch: pytest.MonkeyPatch, processes: list[_StandInProcess], answers: list[dict[str, Any]]
) -> IsolatedTenant:
    def spawn(*_: object) -> _StandInProcess:
        processes.append(_StandInProcess(answers))
        return processes[-1]

    monkeypatch.setattr(isolated, "spawn_tenant", spawn)
    manifest = parse_manifest(HELLO_MANIFEST, source="hello.toml", stem="hello")
    return IsolatedTenant(CheckedBundle(-1, "hello.ngx", b"{}", {}), manifest, {}, {})


@pytest.mark.parametrize(
    "answers",
    [
        [{"ok": True}],
        [{"ok": True, "origin": 1, "compiled": False}],
        [{"ok": True, "origin": "x", "compiled": "no"}],
        [{"ok": False, "error": "refused", "exit_code": "3"}],
        [{"ok": False, "error": "refused", "exit_code": -1}],  # an error's exit code is one of NgixiError's
        [{"ok": False, "error": "refused", "exit_code": 0}],
        [{"ok": False, "error": "refused", "exit_code": 1 << 70}],
        [{"ok": False, "error": ["refused"]}],
        [{"ok": [1]}],
        [{"instantiating": True}, {"instantiating": True}],
        [{"ok": True, "origin": "x", "compiled": False, "text_params": {}, "more": 1}],
        [{"ok": True, "origin": "x", "compiled": False}],
        [{"ok": True, "origin": "x", "compiled": False, "text_params": []}],
        [{"ok": True, "origin": "x", "compiled": False, "text_params": {"f": [0]}}],
        [{"ok": True, "origin": "x", "compiled": False, "text_params": {"f": [True]}}],
        [{"ok": True, "origin": "x", "compiled": False, "text_params": {"f": 1}}],
    ],
)
def test_a_malformed_start_up_answer_stops_the_child_as_crashed(
    monkeypatch: pytest.MonkeyPatch, spawned: list[_StandInProcess], answers: list[dict[str, Any]]
) -> None:
    with pytest.raises(CallFailed, match="start: the tenant process sent a malformed reply") as failed:
        tenant(monkeypatch, spawned, answers).start()
    assert failed.value.outcome == "crash" and "\n" not in str(failed.value)
    assert len(spawned) == 1 and spawned[0].stopped


def test_a_well_formed_answer_starts_or_refuses(
    monkeypatch: pytest.MonkeyPatch, spawned: list[_StandInProcess]
) -> None:
    answer = {"ok": True, "origin": "o", "compiled": True, "text_params": {"greet": [1, 3]}}
    started = tenant(monkeypatch, spawned, [{"instantiating": True}, answer])
    started.start()
    assert (started.origin, started.compiled) == ("o", True)
    assert (started.text_parameters("greet"), started.text_parameters("add")) == (frozenset({1, 3}), frozenset())
    started._stop(started._child)  # type: ignore[arg-type]
    refused = tenant(monkeypatch, spawned, [{"ok": False, "error": "no trust", "exit_code": 3}])
    with pytest.raises(NgixiError, match="no trust") as failed:
        refused.start()
    assert failed.value.exit_code == 3
