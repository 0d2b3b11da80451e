"""Watch mode's pure parts: which paths belong to which guest, debouncing, the build lock."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from ngixi_build import locking
from ngixi_build.guests import read_guest
from ngixi_build.locking import build_lock, file_lock
from ngixi_build.proc import STOP_SIGNALS, StopSignal, interrupt_on_stop_signals, run
from ngixi_build.project import Project
from ngixi_build.stages.validate import check_validated, validate_guest
from ngixi_build.workflows.pipeline import fit_core_module
from ngixi_build.workflows.watch import (
    CONFIG_CHANGED,
    ChangeEvents,
    Debouncer,
    LinkedFolderEvents,
    Rebuilds,
    _observing,
    changed_guest,
    notes_said_once,
    only_watcher,
    watch,
)
from ngixi_runtime.errors import InvalidInput, NgixiError
from tests.conftest import HELLO_MANIFEST
from tests.wasmgen import ADD_BODY, Func, module

PROJECT = Project(Path("/p"))


@pytest.mark.parametrize(
    ("path", "guest"),
    [
        ("guests/hello/assembly/index.ts", "hello"),
        ("guests/hello/assembly/lib/util.ts", "hello"),
        ("guests/hello", "hello"),
        ("manifests/hello.toml", "hello"),
        ("guests", None),
        ("manifests/notes.txt", None),
        ("manifests/old/hello.toml", None),
        ("artifacts/wasm/hello.wasm", None),
        (".ngixi/watch/hello.wasm", None),
        ("guests/hello/assembly/.index.ts.swp", None),
        ("guests/hello/assembly/.index.ts.swx", None),
        ("guests/hello/assembly/index.ts~", None),
        ("guests/hello/assembly/4913", None),
        ("guests/hello/assembly/.#index.ts", None),
        ("guests/hello/assembly/#index.ts#", None),
        ("guests/hello/assembly/index.ts.tmp", None),
        ("guests/hello/assembly/index.ts___jb_tmp___", None),
        ("guests/hello/.cache/x.ts", "hello"),  # hidden, but an import may name it
        ("guests/.hidden/x.ts", None),
        ("manifests/hello.toml.swp", None),
        ("manifests/.hello.toml.swp", None),
    ],
)
def test_changed_guest(path: str, guest: str | None) -> None:
    assert changed_guest(PROJECT, PROJECT.root / path) == guest


def test_debouncer_coalesces_and_announces_each_guest_once() -> None:
    debouncer = Debouncer(0.01)
    arrivals: list[str] = []
    for guest in ("b", "a", "b", "a"):
        debouncer.add(guest)
    assert debouncer.next_batch(block=True, on_arrival=arrivals.append) == {"a", "b"}
    assert arrivals == ["a", "b"]


def test_debouncer_without_pending_events_returns_at_once_unless_blocking() -> None:
    debouncer = Debouncer(0.01)
    assert debouncer.next_batch(block=False, on_arrival=lambda _: None) == set()
    threading.Timer(0.05, debouncer.add, args=("late",)).start()
    assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"late"}


def test_debouncer_waits_for_quiet_before_handing_over() -> None:
    debouncer = Debouncer(0.2)
    debouncer.add("hello")
    started = time.monotonic()
    assert debouncer.next_batch(block=False, on_arrival=lambda _: None) == {"hello"}
    assert time.monotonic() - started >= 0.2


def test_a_guest_whose_file_is_written_all_the_time_holds_back_no_other_guest() -> None:
    """A tool writing a file of one guest every 50 ms kept every other guest's save from being built until it
    stopped: the events never paused for the debounce."""
    debouncer = Debouncer(0.2, busy=0.5)
    stop = threading.Event()

    def chatter() -> None:
        writes_end = time.monotonic() + 5
        while not stop.wait(0.01) and time.monotonic() < writes_end:
            debouncer.add("chatty")

    writer = threading.Thread(target=chatter)
    writer.start()
    try:
        threading.Timer(0.05, debouncer.add, args=("saved",)).start()
        started = time.monotonic()
        assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"saved"}
        assert time.monotonic() - started < 3.0  # the busy time, not the end of the writes
    finally:
        stop.set()
        writer.join()
    assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"chatty"}


def test_a_burst_shorter_than_the_busy_time_is_handed_over_whole() -> None:
    debouncer = Debouncer(0.05, busy=10)
    for guest in ("a", "b", "c"):
        debouncer.add(guest)
        time.sleep(0.03)
    assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"a", "b", "c"}


def test_rebuilds_of_other_guests_run_beside_a_slow_one_and_a_save_during_one_rebuilds_it_once_more() -> None:
    """A slow guest's rebuild held every other guest's back (a 0.4 s Zig save waited 34 s behind a Python compile);
    a guest saved twice while its rebuild runs is rebuilt once more after it, never twice at once."""
    lines: list[str] = []
    release_slow = threading.Event()
    running: set[str] = set()
    overlapped: list[str] = []

    def job(guest: str, first_event: float | None) -> None:
        if guest in running:
            overlapped.append(guest)
        running.add(guest)
        if guest == "slow" and first_event is None:
            release_slow.wait(timeout=30)
        running.discard(guest)
        lines.append(f"{guest} {first_event}")

    woken = threading.Event()
    rebuilds = Rebuilds(woken.set, lines.append, workers=2)
    try:
        rebuilds.start("slow", job)
        rebuilds.start("slow", job, 1.0)  # saved while its rebuild runs
        rebuilds.start("slow", job, 2.0)  # and again: one more rebuild, from the first of those saves
        rebuilds.start("quick", job)
        assert woken.wait(timeout=10)  # the quick guest's jobs ended, the slow one's still runs
        assert lines == ["quick None"] and not rebuilds.idle
        release_slow.set()
        rebuilds.wait_idle()
    finally:
        release_slow.set()
        rebuilds.stop()
    assert lines == ["quick None", "slow None", "slow 1.0"] and not overlapped


def test_a_stopped_rebuild_says_nothing_more_and_its_tools_are_stopped() -> None:
    """Ctrl-C reaches the watcher's main thread only: the tools its rebuild threads wait for are stopped by it, and
    their failures are not said after it."""
    lines: list[str] = []
    started = threading.Event()
    rebuilds = Rebuilds(lambda: None, lines.append)

    def job(guest: str, _first_event: float | None) -> None:
        started.set()
        try:
            run(["sleep", "60"], what="a slow tool")
        except NgixiError as error:
            rebuilds.say(f"{guest}: failed\n{error}")

    rebuilds.start("slow", job)
    assert started.wait(timeout=10)
    time.sleep(0.3)  # into the tool's run (were it not, `stop` would stop it when it starts)
    began = time.monotonic()
    rebuilds.stop()
    assert time.monotonic() - began < 10 and rebuilds.idle  # not the tool's 60 s
    assert lines == []


Event = multiprocessing.synchronize.Event


def _hold_shared_lock(state_dir: Path, held: Event, release: Event, releasing: Event) -> None:
    with build_lock(state_dir, shared=True):
        held.set()
        release.wait(timeout=60)
        releasing.set()


def test_doit_tasks_share_the_build_lock_and_a_watch_step_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, release, releasing = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_shared_lock, args=(tmp_path, held, release, releasing))
    holder.start()
    assert held.wait(timeout=30)
    waits: list[str] = []

    def let_the_holder_go(message: str, *_: object) -> None:
        waits.append(message)
        release.set()

    monkeypatch.setattr(locking.log, "warning", let_the_holder_go)
    with build_lock(tmp_path, shared=True):
        assert not waits  # doit -n N: tasks run side by side
    with build_lock(tmp_path):
        assert releasing.is_set()  # a watch step waits until no doit task holds the lock
    holder.join()
    assert waits == ["waiting for another build to release %s"]


def test_bundle_step_refuses_a_wasm_that_was_not_validated(tmp_path: Path) -> None:
    manifest, wasm, record = tmp_path / "hello.toml", tmp_path / "hello.wasm", tmp_path / "hello.json"
    manifest.write_text(HELLO_MANIFEST)
    add = Func("add", ("i32", "i32"), ("i32",), ADD_BODY)
    wasm.write_bytes(module(functions=[add]))
    validate_guest(manifest_path=manifest, wasm_path=wasm, record_path=record)
    check_validated(record_path=record, manifest_path=manifest, wasm_path=wasm)
    wasm.write_bytes(module(functions=[add, Func("extra")]))
    with pytest.raises(InvalidInput, match="not validated against"):
        check_validated(record_path=record, manifest_path=manifest, wasm_path=wasm)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_sigterm_and_sighup_stop_the_watcher_as_ctrl_c_does(signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(StopSignal) as stopped, interrupt_on_stop_signals():
        os.kill(os.getpid(), signum)
        time.sleep(10)  # interrupted as soon as the handler runs
    assert isinstance(stopped.value, KeyboardInterrupt) and stopped.value.exit_status == 128 + signum
    assert signal.getsignal(signum) == before


def test_a_second_watcher_of_a_projects_profile_is_refused_in_one_line(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with only_watcher(project, "dev"), pytest.raises(InvalidInput) as refused:
        watch(project, echo=print)
    assert str(refused.value) == (
        f"{tmp_path}: another `ngixi watch` is building its dev-profile bundles; stop that one first, or use it "
        "(a watcher of the other profile may run beside it)"
    )
    with only_watcher(project, "dev"), only_watcher(project, "release"):
        pass  # a dev and a release watcher write apart
    with file_lock(project.watch_dir / "dev.lock"):
        pass  # released when the watcher ends


def test_pyproject_toml_saved_in_place_or_moved_there_is_a_change_of_settings(tmp_path: Path) -> None:
    project = Project(tmp_path)
    changed: list[str] = []
    events = ChangeEvents(project, changed.append)
    config, backup = str(tmp_path / "pyproject.toml"), str(tmp_path / "pyproject.toml~")
    events.on_any_event(FileModifiedEvent(config))
    events.on_any_event(FileMovedEvent(config, backup))  # vim: the old one moved aside, the new one written
    events.on_any_event(FileCreatedEvent(config))
    events.on_any_event(FileMovedEvent(f"{config}___jb_tmp___", config))  # JetBrains' safe write
    assert changed == [CONFIG_CHANGED] * 4
    changed.clear()
    for noise in (backup, str(tmp_path / ".pyproject.toml.swp"), str(tmp_path / "sub" / "pyproject.toml")):
        events.on_any_event(FileModifiedEvent(noise))
    assert changed == []


def _with_guest_folders(root: Path) -> Project:
    """The project at `root`, its guests/ and manifests/ folders made."""
    project = Project(root)
    for folder in (project.guests_dir, project.manifests_dir):
        folder.mkdir(parents=True)
    return project


@contextmanager
def _bounded_wait(debouncer: Debouncer) -> Iterator[Debouncer]:
    """`debouncer`, given a batch `no event` after 20 s within: a blocking wait for a batch never waits for ever."""
    no_event = threading.Timer(20, debouncer.add, args=("no event",))
    no_event.daemon = True
    no_event.start()
    try:
        yield debouncer
    finally:
        no_event.cancel()


def _linked_guest(project: Project, name: str, elsewhere: Path) -> Path:
    """A guest whose folder is a link to `elsewhere/name`; its index.ts."""
    (elsewhere / name / "assembly").mkdir(parents=True)
    (elsewhere / name / "assembly" / "index.ts").write_text("export function add(a: i32, b: i32): i32 { return a; }\n")
    project.manifest_path(name).write_text(HELLO_MANIFEST.replace('"hello"', f'"{name}"'))
    (project.guests_dir / name).symlink_to(elsewhere / name)
    return elsewhere / name / "assembly" / "index.ts"


def test_an_event_under_a_linked_guest_folders_target_is_the_guests(tmp_path: Path) -> None:
    project = _with_guest_folders(tmp_path / "project")
    source = _linked_guest(project, "linked", tmp_path / "elsewhere")
    changed: list[str] = []
    linked = LinkedFolderEvents(ChangeEvents(project, changed.append))
    linked.links = {source.parent.parent: [project.guests_dir / "linked"]}
    linked.on_any_event(FileModifiedEvent(str(source)))
    linked.on_any_event(FileMovedEvent(f"{source}___jb_tmp___", str(source)))
    assert changed == ["linked", "linked"]
    linked.on_any_event(DirModifiedEvent(str(source.parent)))
    linked.on_any_event(FileCreatedEvent(f"{source.parent}/.index.ts.swp"))
    linked.on_any_event(FileModifiedEvent(str(tmp_path / "elsewhere" / "other.ts")))
    assert changed == ["linked", "linked"]


def test_a_save_in_a_linked_guest_folder_is_seen_also_of_one_linked_while_watching(tmp_path: Path) -> None:
    project = _with_guest_folders(tmp_path / "project")
    source = _linked_guest(project, "linked", tmp_path / "elsewhere")
    with _bounded_wait(Debouncer(0.01)) as debouncer, _observing(project, debouncer, poll=False) as watches:
        source.write_text(source.read_text() + "\n")
        assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"linked"}
        late = _linked_guest(project, "late", tmp_path / "elsewhere")
        made = debouncer.next_batch(block=True, on_arrival=lambda _: None)  # the link's own event
        assert "late" in made and made <= {"late", "linked"}  # the save's last event may come 10 ms late on a busy host
        time.sleep(0.2)
        debouncer.next_batch(block=False, on_arrival=lambda _: None)  # any later event of making it
        watches.follow_links()
        late.write_text(late.read_text() + "\n")
        assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"late"}


def test_a_note_each_build_of_a_guest_gives_is_said_once_while_watching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A library's every save said `its start function is exported as _initialize` above its `rebuilt` line."""
    project = Project(tmp_path)
    project.manifests_dir.mkdir()
    project.manifest_path("hello").write_text(HELLO_MANIFEST.replace("[guest]", '[guest]\nlanguage = "wasm"'))
    wasm = tmp_path / "hello.wasm"
    caplog.set_level(logging.INFO)
    with notes_said_once():
        for _ in range(3):
            wasm.write_bytes(module(functions=[Func("init")], start="init"))
            fit_core_module(project, wasm, read_guest(project, "hello"))
            logging.getLogger("ngixi_build.locking").warning("waiting for another build")  # not a note: each time
    said = [record.getMessage() for record in caplog.records]
    note = "hello: its start function is exported as _initialize, run once its memory is linked"
    assert said == [note, *["waiting for another build"] * 3], said


def test_a_watched_folder_made_removed_or_moved_is_handed_over_as_such(tmp_path: Path) -> None:
    """Its watch ends with it: `rm -rf guests manifests` then `git checkout -- guests manifests` left watch blind."""
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["lib", "guests/common"]\n')
    project = Project(tmp_path)
    changed: list[str] = []
    events = ChangeEvents(project, changed.append)
    events.on_any_event(DirDeletedEvent(str(tmp_path / "guests")))
    events.on_any_event(DirCreatedEvent(str(tmp_path / "lib")))
    events.on_any_event(DirMovedEvent(str(tmp_path / "manifests"), str(tmp_path / "manifests.old")))
    assert changed == ["guests/", "lib/", "manifests/"]
    changed.clear()
    for other in (DirCreatedEvent(str(tmp_path / "docs")), FileDeletedEvent(str(tmp_path / "guests.txt"))):
        events.on_any_event(other)
    events.on_any_event(DirDeletedEvent(str(tmp_path / "guests" / "common")))  # in guests/: watched with it
    assert all(not name.endswith("/") for name in changed), changed
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["src/c/common"]\n')
    changed.clear()
    ChangeEvents(Project(tmp_path), changed.append).on_any_event(DirCreatedEvent(str(tmp_path / "src")))
    assert changed == ["src/"]  # a folder that holds one


def test_a_watched_folder_removed_and_made_again_is_watched_anew(tmp_path: Path) -> None:
    project = _with_guest_folders(tmp_path)
    with _bounded_wait(Debouncer(0.05)) as debouncer:
        with _observing(project, debouncer, poll=False):
            project.manifests_dir.rmdir()
            assert "manifests/" in debouncer.next_batch(block=True, on_arrival=lambda _: None)
            project.manifests_dir.mkdir()
            assert "manifests/" in debouncer.next_batch(block=True, on_arrival=lambda _: None)
        with _observing(project, debouncer, poll=False):  # as watch does then
            project.manifest_path("hello").write_text(HELLO_MANIFEST)
            assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"hello"}
        (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nshared_sources = ["src/c/common"]\n')
        (tmp_path / "src").mkdir()
        with _observing(Project(tmp_path), debouncer, poll=False):  # a shared folder below the root, not there yet
            (tmp_path / "src" / "c").mkdir()
            assert debouncer.next_batch(block=True, on_arrival=lambda _: None) == {"src/c/"}
