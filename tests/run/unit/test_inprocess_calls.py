"""In-process calls on both engines: a call that prints, logs and calls nothing takes the short way through
measure(), and its result and metrics are those of the long way; nothing of one call leaks into the next."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.manifest import load_manifest, parse_manifest
from ngixi_runtime.loading import tenants
from ngixi_runtime.loading.tenants import CallFailed, CallMetrics, CallResult, InProcessTenant, open_tenant
from ngixi_runtime.loading.watchdog import ProcessWatchdog
from tests.conftest import HELLO_MANIFEST, REPO, KeyFiles, make_bundle
from tests.integration import wait_until
from tests.run.unit.test_loader import ADD, GREET, LOG, TRAP
from tests.wasmgen import DROP, Func, Imp, call_import, module

NOP = Func("nop")
SPIN = Func("spin", body=b"\x03\x40\x0c\x00\x0b")  # loop, br 0, end
WASM = module(imports=[LOG], functions=[ADD, NOP, GREET, TRAP, SPIN])
MANIFEST = HELLO_MANIFEST + "[exports.nop]\n[exports.greet]\n[exports.trap]\n[exports.spin]\n"


@pytest.fixture
def tenant(tmp_path: Path, keys: KeyFiles, engine_name: str) -> InProcessTenant:
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=MANIFEST)
    opened = open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine_name)
    assert isinstance(opened, InProcessTenant)
    return opened


def test_quiet_and_busy_calls_each_report_only_their_own_output(tenant: InProcessTenant) -> None:
    with tenant:
        quiet = tenant.call("nop")
        busy = tenant.call("greet")
        quiet_again = tenant.call("nop")
    assert (quiet.values, quiet.logs, quiet.stdout, quiet.stderr, quiet.output) == ((), (), b"", b"", None)
    assert (quiet.metrics.host_calls, quiet.metrics.output_bytes, quiet.metrics.outcome) == ({}, 0, "ok")
    assert quiet.metrics.memory_pages == 1 and quiet.metrics.duration_ms >= 0
    assert [(line.level, line.message) for line in busy.logs] == [("info", "")]
    assert (busy.metrics.host_calls, busy.metrics.outcome) == ({"log": 1}, "ok")
    assert quiet._replace(metrics=quiet_again.metrics) == quiet_again
    assert quiet_again.metrics.host_calls == {} and quiet_again.metrics.host_calls is not quiet.metrics.host_calls


def test_a_result_is_the_record_its_constructor_makes(tenant: InProcessTenant) -> None:
    with tenant:
        quiet, busy = tenant.call("nop"), tenant.call("greet")
    for result in (quiet, busy):
        metrics = CallMetrics(**result.metrics._asdict())
        built = CallResult(**{**result._asdict(), "metrics": metrics})
        assert (type(result), type(result.metrics)) == (CallResult, CallMetrics)
        assert (result, result.metrics, repr(result)) == (built, metrics, repr(built))
        assert result._asdict() == built._asdict() and result.metrics._asdict() == metrics._asdict()
        assert result._replace(exit_code=0).exit_code == 0 and result.exit_code is None
        for made, name in ((result, "values"), (result.metrics, "outcome")):
            with pytest.raises(AttributeError):
                setattr(made, name, None)


@pytest.mark.parametrize(
    ("export", "args", "given", "message"),
    [
        ("nop", (1,), None, r"^hello: nop takes 0 arguments, got 1$"),
        ("nop", (), "text", r"^hello: nop takes no input \(its manifest declares none\)$"),
        ("missing", (), None, r"^hello: no export 'missing' in the manifest; exports: add, greet, nop, spin, trap$"),
    ],
)
def test_a_call_without_arguments_is_still_checked(
    tenant: InProcessTenant, export: str, args: tuple[int, ...], given: str | None, message: str
) -> None:
    with tenant, pytest.raises(InvalidInput, match=message):
        tenant.call(export, args, input=given)


def test_a_trap_is_a_failed_call_with_its_metrics_and_the_next_call_is_clean(tenant: InProcessTenant) -> None:
    with tenant:
        tenant.call("greet")
        with pytest.raises(CallFailed) as caught:
            tenant.call("trap")
        after = tenant.call("nop")
    assert caught.value.outcome == "trap" and caught.value.result.metrics.outcome == "trap"
    assert after.logs == () and after.metrics.host_calls == {}


def test_wasmtime_times_a_call_out_after_its_epoch_ticker_has_gone_idle(tmp_path: Path, keys: KeyFiles) -> None:
    wasmtime = pytest.importorskip("ngixi_runtime.engines.wasmtime")
    limited = MANIFEST + "[limits]\ntimeout_ms = 100\n"
    bundle = make_bundle(tmp_path, keys.key, wasm=WASM, manifest=limited)
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmtime") as tenant:
        tenant.call("nop")
        wait_until(lambda: wasmtime.TICKER._asleep, what="the idle ticker's sleep", timeout=30)  # after a tick
        with pytest.raises(GuestError, match=r"^hello: spin exceeded its 100 ms timeout \(limits.timeout_ms\)$"):
            tenant.call("spin")


def test_the_epoch_ticker_starts_at_a_later_call_when_its_thread_could_not_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread that could not start (`can't start new thread` at a process limit) left the ticker counted awake
    with a call running and no thread: no later call of the process ever timed out."""
    wasmtime = pytest.importorskip("ngixi_runtime.engines.wasmtime")
    ticker = wasmtime._EpochTicker()

    def refuse(*_: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(wasmtime, "_thread", SimpleNamespace(start_new_thread=refuse))
    with pytest.raises(RuntimeError), ticker.running():
        pass
    monkeypatch.undo()
    ticked = threading.Event()
    ticker.engines.append(SimpleNamespace(increment_epoch=ticked.set))
    with ticker.running():
        assert ticked.wait(2)
    assert ticker._active == 0


def test_a_library_guest_that_declares_start_is_still_not_run_as_a_command(tmp_path: Path, keys: KeyFiles) -> None:
    wasm = module(imports=[LOG], functions=[ADD, NOP, Func("_start")])
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=HELLO_MANIFEST + "[exports.nop]\n[exports._start]\n")
    with open_tenant(bundle, trust_file=keys.trust, isolated=False) as tenant:
        for attempt in (tenant.run, lambda: tenant.call("_start")):
            with pytest.raises(InvalidInput, match=r"^hello is a library guest; name an export to call$"):
                attempt()
        assert tenant.call("nop").metrics.outcome == "ok"


def test_a_call_refused_for_its_output_keeps_what_it_logged(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    write = Imp("ngixi", "output_write", ["i32"] * 2, ["i32"])
    bad = Func("bad", body=call_import(0, 2, 0, 0) + call_import(1, 16, 4) + DROP)  # logs, then writes "nope"
    wasm = module(imports=[LOG, write], functions=[bad], data=[(16, b"nope")])
    manifest = '[guest]\nname = "hello"\nversion = "0.1.0"\n\n[exports.bad]\noutput = "json"\n\n[capabilities.log]\n'
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=manifest)
    refused = r"^hello: bad declares output = \"json\", but wrote not valid JSON"
    opened = open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine_name)
    with opened as tenant, pytest.raises(CallFailed, match=refused) as caught:
        tenant.call("bad")
    result = caught.value.result
    assert (caught.value.outcome, result.metrics.outcome) == ("output", "output")
    assert [line.level for line in result.logs] == ["info"]
    assert result.metrics.host_calls == {"log": 1, "data": 1}


@pytest.mark.parametrize(
    ("guest", "engine", "watched"),
    [
        ("notes-component", "wasmtime", True),
        ("hello-component", "wasmtime", False),
        ("notes", "wasmtime", False),
        ("notes", "wasmer", True),
    ],
)
def test_a_component_granted_preopens_is_watched_in_process(guest: str, engine: str, watched: bool) -> None:
    """A component's files are Wasmtime's WASI, which opens a FIFO a guest names in a preopen and waits for its
    writer in the host, where Wasmtime's epoch deadline never reaches: `ngixi run --in-process` of the notes
    component with its note swapped for a FIFO waited past 20 s (timeout_ms 1000). Such a guest gets the watchdog
    that ends the process at limits.timeout_ms, as a guest on Wasmer does; other Wasmtime guests need none."""
    manifest = load_manifest(REPO / "manifests" / f"{guest}.toml")
    assert tenants._stoppable(engine, manifest) != watched


def test_a_component_granted_clock_is_watched_in_process() -> None:
    """A component's sleep is Wasmtime's WASI too (`monotonic-clock.subscribe-duration`, then `pollable.block`), whose
    wait in the host no epoch deadline ends: one asking for 3 s under timeout_ms 300 slept its whole 3 s in-process,
    where a core guest's `poll_oneoff` ends at the call's deadline. It gets the watchdog a component's files get."""
    path = REPO / "manifests" / "hello-component.toml"
    clocked = parse_manifest(path.read_text() + "\n[capabilities.clock]\n", source=str(path), stem=path.stem)
    assert not tenants._stoppable("wasmtime", clocked)


def test_a_components_watchdog_leaves_wasmtimes_own_deadline_to_end_a_guest_in_its_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Set at limits.timeout_ms as for Wasmer, the watchdog and Wasmtime's epoch deadline would race for a
    component spinning in its own code: the process killed (exit 137) where the call ended as a timeout. A
    component's watchdog ends the process only a grace after the deadline; a Wasmer guest's a quarter of a second
    after it, so that a host function's own wait (a sleep in poll_oneoff) ends the call at the deadline first."""
    limits: list[float] = []
    monkeypatch.setattr(ProcessWatchdog, "limit", lambda self, seconds, message: limits.append(seconds))
    for guest in ("notes-component", "notes"):  # timeout_ms 1000 and 5000 (the default)
        tenants._watched(ProcessWatchdog(), load_manifest(REPO / "manifests" / f"{guest}.toml"), "show")
    assert limits == [1 + tenants._HOST_WAIT_GRACE, 5 + tenants._HOST_RETURN_GRACE]
