"""`ngixi watch` / `doit watch`: rebuild a guest's dev bundle whenever its sources or manifest change.

Only guests/, manifests/ and the shared source folders are watched recursively (never artifacts/ or .ngixi/, so
our own outputs cannot trigger a rebuild), and the project's root alone, for pyproject.toml and for those folders
made, removed or moved: either has watch start anew. Events are debounced and coalesced; different guests are rebuilt
side by side (`Rebuilds`), and a change during a guest's rebuild leads to one more rebuild of it once it is done.
Compiling starts as soon as a change arrives, in a long-lived compiler
process, and its result is used only if the sources still match after the debounce.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from doit.exceptions import TaskFailed
from watchdog.events import (
    EVENT_TYPE_MODIFIED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from ngixi_build.files import is_editor_noise
from ngixi_build.guests import (
    folder_without_manifest_warning,
    folders_without_manifest,
    manifest_without_guest_problem,
    manifests_without_guest,
    read_guest,
    read_guests,
)
from ngixi_build.languages.native import SHARED_SOURCE_LANGUAGES
from ngixi_build.languages.registry import language_of
from ngixi_build.locking import build_lock, file_lock
from ngixi_build.proc import interrupt_on_stop_signals, stop_running_tools
from ngixi_build.project import Project, never_an_input
from ngixi_build.stages.smoke import smoke_in_child
from ngixi_build.toolchains.asc_server import AscServer
from ngixi_build.toolchains.assemblyscript import toolchain_for
from ngixi_build.workflows.devbuild import DevBuilder, StepTimes
from ngixi_build.workflows.pipeline import make_dev_key, smoke_summary
from ngixi_build.workflows.tasks import clean_failure, show_logs
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.spec.bundle_format import BuildProfile
from ngixi_runtime.spec.project import PROJECT_FILE

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.1
BUSY_SECONDS = 1.0
POLL_SECONDS = 0.5
_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
Echo = Callable[[str], None]
# What the events hand over for pyproject.toml, and for a watched folder made, removed or moved ("guests/"): no
# guest's name has a dot or a slash.
CONFIG_CHANGED = PROJECT_FILE


def is_marker(name: str) -> bool:
    """Whether a name the events hand over is CONFIG_CHANGED or a watched folder's, not a guest's."""
    return name == CONFIG_CHANGED or name.endswith("/")


def changed_guest(project: Project, path: Path) -> str | None:
    """The guest whose inputs include `path` (its folder's files as `Project.guest_sources` has them, and its
    manifest), or None for editor noise and files no guest reads."""
    for root in (project.guests_dir, project.manifests_dir):
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            continue
        if not parts or parts[0].startswith("."):  # no guest's folder or manifest
            return None
        if root == project.guests_dir:
            # version control's folders too: a [build] command may name them (its language's `is_source` decides)
            return parts[0] if project.is_guest_source(parts[0], path, never_read=frozenset()) else None
        named = len(parts) == 1 and parts[0].endswith(".toml") and not is_editor_noise(parts[0])
        return parts[0].removesuffix(".toml") if named else None
    return None


class Debouncer:
    """Collects changed guests and hands them over once no event has come for `quiet` seconds; when events have come
    without such a pause for `busy` seconds (a file some tool keeps writing), each guest quiet for `quiet` seconds is
    handed over without waiting for the others."""

    def __init__(self, quiet: float, busy: float = BUSY_SECONDS) -> None:
        self._quiet = quiet
        self._busy = busy
        self._condition = threading.Condition()
        self._pending: dict[str, float] = {}  # guest → its last event
        self._announced: set[str] = set()
        self._busy_since = 0.0
        self._woken = False

    def wake(self) -> None:
        """Has the waiting `next_batch` return, with what has settled (perhaps nothing): a build has ended."""
        with self._condition:
            self._woken = True
            self._condition.notify_all()

    def add(self, guest: str) -> None:
        with self._condition:
            now = time.monotonic()
            if not self._pending:
                self._busy_since = now
            self._pending[guest] = now
            self._condition.notify_all()

    def next_batch(self, *, block: bool, on_arrival: Callable[[str], None]) -> set[str]:
        """The settled guests; waits for them unless `block` is False and nothing is pending.

        `on_arrival` is called once per guest as soon as its first event of a batch is seen.
        """
        while True:
            with self._condition:
                arrivals = set(self._pending) - self._announced
                self._announced |= arrivals
                if not arrivals:
                    settled, look_again = self._settled(time.monotonic())
                    if settled or self._woken or (look_again is None and not block):
                        self._woken = False
                        return self._take(settled)
                    self._condition.wait(look_again)
                    continue
            for guest in sorted(arrivals):
                on_arrival(guest)

    def _settled(self, now: float) -> tuple[set[str], float | None]:
        """The guests to hand over now, else how long until some may be (None: when an event comes)."""
        if not self._pending:
            return set(), None
        last = max(self._pending.values())
        if now >= last + self._quiet:
            return set(self._pending), None
        if now < self._busy_since + self._busy:
            return set(), min(last + self._quiet, self._busy_since + self._busy) - now
        settled = {guest for guest, event in self._pending.items() if now >= event + self._quiet}
        return settled, None if settled else min(self._pending.values()) + self._quiet - now

    def _take(self, settled: set[str]) -> set[str]:
        for guest in settled:
            del self._pending[guest]
        self._announced -= settled
        return settled


class ChangeEvents(FileSystemEventHandler):
    """Hands over the guest each file event concerns, CONFIG_CHANGED for pyproject.toml and "guests/" (say) for a
    watched folder made, removed or moved, whose watch does not outlive it."""

    def __init__(self, project: Project, changed: Callable[[str], None]) -> None:
        self.project = project
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
            return  # an entry inside changed; that entry has its own event
        for path in (Path(os.fsdecode(raw)) for raw in (event.src_path, event.dest_path) if raw):
            if path == self.project.root / PROJECT_FILE:
                self.changed(CONFIG_CHANGED)
            if event.is_directory and self._holds_a_watched_folder(path):
                self.changed(f"{path.relative_to(self.project.root)}/")
            for guest in changed_inputs(self.project, path):
                self.changed(guest)

    def _holds_a_watched_folder(self, path: Path) -> bool:
        """Whether the folder `path` is a watched one or holds one (`src/` of a shared `src/common/`)."""
        roots = watched_roots(self.project, present=False)
        return path != self.project.root and any(root.is_relative_to(path) for root in roots)


def changed_inputs(project: Project, path: Path) -> list[str]:
    """The guests whose build reads `path`: every C and Zig guest for a file of a shared source folder, else
    `changed_guest`'s, if its language's compile may read the file (a [build] command's own output is none of
    its inputs; nor is a Python guest's __pycache__/)."""
    shared = next((folder for folder in project.declared_shared_sources() if path.is_relative_to(folder)), None)
    if shared is not None:
        return [] if never_an_input(path, shared) else shared_source_readers(project)
    guest = changed_guest(project, path)
    if guest is None or not path.is_relative_to(project.guests_dir):
        return [] if guest is None else [guest]
    build = read_guest(project, guest)
    try:
        reads = language_of(project, build).is_source(project, build, path)
    except InvalidInput:  # a guest of no known language: its build says so
        reads = True
    return [guest] if reads else []


def shared_source_readers(project: Project) -> list[str]:
    """The guests whose compile reads the shared source folders: the C and Zig ones."""
    guests = read_guests(project).values()
    return [guest.name for guest in guests if guest.type.language in SHARED_SOURCE_LANGUAGES]


def watched_roots(project: Project, *, present: bool = True) -> list[Path]:
    """The folders watched recursively: guests/, manifests/ and the shared folders outside guests/; with `present`,
    those that are there (a shared folder missing fails the builds that read it)."""
    outside = (folder for folder in project.declared_shared_sources() if not folder.is_relative_to(project.guests_dir))
    folders = [project.guests_dir, project.manifests_dir, *outside]
    return [folder for folder in folders if folder.is_dir() or not present]


def watched_folders(project: Project) -> str:
    """The folders watch follows, as its first line names them: guests/, manifests/ and the shared ones outside."""
    shared = (f for f in watched_roots(project) if f not in (project.guests_dir, project.manifests_dir))
    names = [f"{name}/" for name in ("guests", "manifests", *(str(f.relative_to(project.root)) for f in shared))]
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def nearest_folder(path: Path) -> Path:
    """`path` if it is a folder, else the nearest folder above it."""
    return next(folder for folder in (path, *path.parents) if folder.is_dir())


class LinkedFolderEvents(FileSystemEventHandler):
    """Hands the events of guest folders that are links, which the observer of guests/ does not enter, to `events`
    as if they came from the link: each is watched at its target, here named in `links` (target → the links to it).
    """

    def __init__(self, events: ChangeEvents) -> None:
        self.events = events
        self.links: dict[Path, list[Path]] = {}

    def on_any_event(self, event: FileSystemEvent) -> None:
        for target, links in self.links.items():
            for link in links:
                src, dest = (self._as_from(link, target, raw) for raw in (event.src_path, event.dest_path))
                if src or dest:
                    self.events.on_any_event(dataclasses.replace(event, src_path=src, dest_path=dest))

    @staticmethod
    def _as_from(link: Path, target: Path, raw: bytes | str) -> str:
        """The path under `link` of a path under `target`, or "" for one elsewhere."""
        path = Path(os.fsdecode(raw)) if raw else None
        return str(link / path.relative_to(target)) if path is not None and path.is_relative_to(target) else ""


def linked_guest_folders(project: Project) -> dict[Path, list[Path]]:
    """The folders of guests/ that are links to folders, by target."""
    found: dict[Path, list[Path]] = {}
    for entry in sorted(project.guests_dir.iterdir()) if project.guests_dir.is_dir() else []:
        if entry.is_symlink() and entry.is_dir() and not entry.name.startswith("."):
            found.setdefault(Path(os.path.realpath(entry)), []).append(entry)
    return found


class Watches:
    """The observer, and the targets of linked guest folders it follows (`follow_links` after each change)."""

    def __init__(self, observer: BaseObserver, events: ChangeEvents) -> None:
        self.observer = observer
        self.linked = LinkedFolderEvents(events)
        self._watched: dict[Path, ObservedWatch] = {}

    def follow_links(self) -> None:
        links = linked_guest_folders(self.linked.events.project)
        for target in set(self._watched) - set(links):
            self.observer.unschedule(self._watched.pop(target))
        self.linked.links = links
        for target in set(links) - set(self._watched):
            self._watched[target] = self.observer.schedule(
                self.linked, str(target), recursive=True, event_filter=_EVENTS
            )


@contextmanager
def _observing(project: Project, debouncer: Debouncer, *, poll: bool) -> Iterator[Watches]:
    """Watches the folders that are there, and the project's root for pyproject.toml and those folders."""
    watches = _start_observer(project, debouncer, poll=poll)
    try:
        yield watches
    finally:
        watches.observer.stop()
        watches.observer.join()


def _start_observer(project: Project, debouncer: Debouncer, *, poll: bool) -> Watches:
    observer: BaseObserver = PollingObserver(timeout=POLL_SECONDS) if poll else Observer()
    handler = ChangeEvents(project, debouncer.add)
    watches = Watches(observer, handler)
    for folder in watched_roots(project):
        observer.schedule(handler, str(folder), recursive=True, event_filter=_EVENTS)
    missing = (folder for folder in watched_roots(project, present=False) if not folder.is_dir())
    for folder in {project.root, *map(nearest_folder, missing)}:  # for a watched folder made there
        observer.schedule(handler, str(folder), recursive=False, event_filter=_EVENTS)
    observer.daemon = True
    try:
        observer.start()
        watches.follow_links()
    except OSError as error:
        raise InvalidInput(f"cannot watch {project.root} for changes ({error}); try --poll") from None
    return watches


# Rebuilds running at once, each of another guest: a quick guest's save is not held behind a slow one's compile.
REBUILD_WORKERS = max(2, os.cpu_count() or 1)
GuestJob = Callable[[str, "float | None"], None]  # a guest's rebuild (with its first event) or background step


class Rebuilds:
    """Runs guests' jobs on a pool of threads, several guests side by side but each guest's jobs one at a time: a
    rebuild asked for while the guest's job runs is run once that one is done. `wake` is called as each guest's
    jobs end (the loop may then start background work); lines are said one at a time, and none once stopping."""

    def __init__(self, wake: Callable[[], None], echo: Echo, workers: int = REBUILD_WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ngixi-rebuild")
        self._wake = wake
        self._echo = echo
        self._condition = threading.Condition()
        self._again: dict[str, tuple[GuestJob, float | None]] = {}  # by guest: the job asked for while one ran
        self._running: set[str] = set()
        self._futures: set[Future[None]] = set()
        self._failure: BaseException | None = None
        self._stopping = False

    def say(self, line: str) -> None:
        with self._condition:
            if not self._stopping:
                self._echo(line)

    @property
    def idle(self) -> bool:
        with self._condition:
            return not self._running

    def start(self, guest: str, job: GuestJob, first_event: float | None = None) -> None:
        with self._condition:
            if guest in self._running:
                _, earlier = self._again.get(guest, (job, first_event))
                self._again[guest] = (job, earlier)  # said from the earliest save it waited for
                return
            self._running.add(guest)
            future = self._pool.submit(self._run, guest, job, first_event)
            self._futures.add(future)
            future.add_done_callback(self._futures.discard)

    def _run(self, guest: str, job: GuestJob, first_event: float | None) -> None:
        try:
            while True:
                job(guest, first_event)
                with self._condition:
                    if self._stopping or guest not in self._again:
                        return
                    job, first_event = self._again.pop(guest)
        except BaseException as failure:  # a bug: the loop raises it, as it would have raised it itself
            self._failure = failure
        finally:
            with self._condition:
                self._running.discard(guest)
                self._condition.notify_all()
            self._wake()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def wait_idle(self) -> None:
        with self._condition:
            self._condition.wait_for(lambda: not self._running)
        self.raise_failure()

    def stop(self) -> None:
        """Stops what runs (the tools its jobs wait for) and waits for the jobs to end; says nothing more."""
        with self._condition:
            self._stopping = True
            self._again.clear()
        while self._futures:
            stop_running_tools()
            wait(list(self._futures), timeout=0.2)
        self._pool.shutdown()


class _Session:
    """The watch loop's state: the builder, the guests we know of, and how results are shown."""

    def __init__(self, project: Project, builder: DevBuilder, rebuilds: Rebuilds, *, smoke: bool) -> None:
        self.project = project
        self.builder = builder
        self.rebuilds = rebuilds
        self.smoke = smoke
        self.echo = rebuilds.say
        self.known = set(project.guest_names())
        self._first_events: dict[str, float] = {}
        self._config_broken = False

    def arrived(self, guest: str) -> None:
        """A guest's first event of a batch: its compile starts now, while the events settle."""
        if is_marker(guest):
            return
        self._first_events.setdefault(guest, time.perf_counter())
        self.builder.prefetch(guest)

    def handle(self, guest: str) -> None:
        first_event = self._first_events.pop(guest, None)
        if guest in self.project.guest_names():
            if guest not in self.known:
                self.known.add(guest)
                self.echo(f"{guest}: new guest")
            self.rebuild(guest, first_event)
            return
        known = guest in self.known
        if known:
            self.builder.drop(guest)
        if self._not_a_guest(guest):
            return
        if known:
            self.known.discard(guest)
            self.echo(f"{guest}: removed; no longer built")

    def _not_a_guest(self, name: str) -> bool:
        """Says what `doit build` says of a manifest without its guest's directory (a failure: the name stays known,
        so that removing the manifest too says the guest is removed) or of a folder under guests/ without a manifest
        (passed over), if `name` is either; whether it was."""
        manifest, folder = self.project.manifest_path(name), self.project.guests_dir / name
        if manifest.is_file() and not folder.is_dir():
            self.known.add(name)
            self.echo(f"{name}: failed\n{manifest_without_guest_problem(self.project, manifest)}")
        elif folder in folders_without_manifest(self.project):
            self.known.discard(name)
            self.echo(folder_without_manifest_warning(self.project, folder))
        else:
            return False
        return True

    def restarted(self, markers: set[str]) -> Project | None:
        """The project to watch anew if pyproject.toml's settings changed or a watched folder was made, removed or
        moved (the markers say which); None to go on."""
        project = self.reloaded() if CONFIG_CHANGED in markers else None
        folders = sorted(markers - {CONFIG_CHANGED})
        if project is None and folders:
            self.echo(f"{', '.join(folders)}: made, removed or moved; watching anew and building every guest")
            return self.project
        return project

    def reloaded(self) -> Project | None:
        """The project with pyproject.toml read again, if its settings changed; a file that is wrong is reported and
        the settings it had are kept."""
        project = dataclasses.replace(self.project)  # with its configuration read again
        try:
            project.check_config()
        except InvalidInput as error:
            self._config_broken = True
            self.echo(f"{PROJECT_FILE}: not used; watch goes on with the settings it had\n{error}")
            return None
        if project.config == self.project.config:
            if self._config_broken:
                self.echo(f"{PROJECT_FILE}: fixed; its settings are those watch has")
            self._config_broken = False
            return None
        self.echo(f"{PROJECT_FILE}: changed; building every guest with its new settings")
        return project

    def build_all(self, *, known_before: set[str] | None = None) -> None:
        """Every guest once, so the bundles match the sources before the first change; warms the compiler at the
        start. A manifest without its guest's directory fails, and a folder without a manifest is passed over, as in
        `doit build`. After new settings, says which guests came or went since (`known_before`: those known then)."""
        guests = sorted(self.known)
        for guest in guests:
            if known_before is not None and guest not in known_before:
                self.echo(f"{guest}: new guest")
            self.rebuild(guest)
        self.rebuilds.wait_idle()
        for manifest in manifests_without_guest(self.project):
            self._not_a_guest(manifest.stem)
        for folder in folders_without_manifest(self.project):
            self._not_a_guest(folder.name)
        if known_before is None:
            self.builder.warm_up(guests)
            return
        for guest in sorted(known_before - self.known):
            self.echo(f"{guest}: removed; no longer built")

    def rebuild(self, guest: str, first_event: float | None = None) -> None:
        """Rebuilds on a thread of its own, beside other guests' rebuilds (after its own running one)."""
        self.rebuilds.start(guest, self._rebuild_now, first_event)

    def _rebuild_now(self, guest: str, first_event: float | None = None) -> None:
        """Rebuilds and says how long it took from the guest's first event (the save), if there was one."""
        started = first_event or time.perf_counter()
        times = StepTimes()
        times.add("settle", time.perf_counter() - started)
        try:
            bundle = self.builder.rebuild(guest, times)
        except (NgixiError, OSError) as error:
            if self._removed(guest):  # meanwhile: its removal is what `handle` says
                log.debug("%s: rebuild given up, the guest was removed: %s", guest, error)
                return
            self.echo(f"{guest}: failed after {time.perf_counter() - started:.2f} s\n{error}")
            return
        finally:
            log.debug("%s: steps: %s", guest, times)
        self.echo(f"{guest}: rebuilt in {time.perf_counter() - started:.2f} s")
        if self.smoke:
            self._run_smoke(guest, Path(bundle.source))

    def _run_smoke(self, guest: str, bundle: Path) -> None:
        label = str(self.project.manifest_path(guest).relative_to(self.project.root))
        try:
            said = smoke_summary(smoke_in_child(bundle, trust_file=self.project.dev_trust_file, label=label))
        except NgixiError as error:
            said = f"smoke failed:\n{error}"
        self.echo(f"{guest}: {said}")

    def background_step(self) -> None:
        """Starts the next step of background work, as its guest's job."""
        self.rebuilds.start(self.builder.next_background_guest(), self._background_step)

    def _background_step(self, guest: str, _first_event: float | None) -> None:
        try:
            self.builder.background_step(guest)
        except (NgixiError, OSError) as error:
            if self._changed_under_its_step(guest):
                log.debug("%s: other targets' artifacts given up, its sources changed: %s", guest, error)
                return
            self.echo(f"other targets' artifacts failed:\n{error}")

    def _changed_under_its_step(self, guest: str) -> bool:
        """Whether `guest` was saved again or removed while its background step ran: the step's failure is then
        stale, and the rebuild or removal that follows says what became of the guest."""
        return guest in self._first_events or self._removed(guest)

    def _removed(self, guest: str) -> bool:
        return guest not in self.project.guest_names()


class SaidOnce(logging.Filter):
    """Lets each note marked `pipeline.SAME_EACH_BUILD` through once: after each save it would say it again."""

    def __init__(self) -> None:
        super().__init__()
        self._said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "same_each_build", False):
            return True
        text = record.getMessage()
        said = text in self._said
        self._said.add(text)
        return not said


@contextmanager
def notes_said_once() -> Iterator[None]:
    """While watching, the handlers of the log say each note the same at every build once."""
    filters = [(handler, SaidOnce()) for handler in logging.getLogger().handlers]  # each its own: each says it
    for handler, said_once in filters:
        handler.addFilter(said_once)
    try:
        yield
    finally:
        for handler, said_once in filters:
            handler.removeFilter(said_once)


def print_now(line: str) -> None:
    print(line, flush=True)


def watch(
    project: Project,
    *,
    poll: bool = False,
    smoke: bool = False,
    profile: BuildProfile = "dev",
    echo: Echo = print_now,
) -> None:
    """Watches until Ctrl-C, SIGTERM or SIGHUP; builds every guest once first."""
    with only_watcher(project, profile), notes_said_once():
        _watch(project, poll=poll, smoke=smoke, profile=profile, echo=echo)


def only_watcher(project: Project, profile: BuildProfile) -> AbstractContextManager[None]:
    """Refuses a second watcher of a project's profile: both would compile into the same scratch files, one reading
    what the other was writing (a module that exports nothing), and each rebuild would run twice."""

    def refuse() -> None:
        raise InvalidInput(
            f"{project.root}: another `ngixi watch` is building its {profile}-profile bundles; stop that one first, "
            "or use it (a watcher of the other profile may run beside it)"
        )

    return file_lock(project.watch_dir / f"{profile}.lock", on_wait=refuse)


def _watch(project: Project, *, poll: bool, smoke: bool, profile: BuildProfile, echo: Echo) -> None:
    for directory in (project.guests_dir, project.manifests_dir):
        if not directory.is_dir():
            raise InvalidInput(f"{directory}: missing; watch needs guests/ and manifests/")
    project.shared_sources()  # refuses a wrong entry before watching: later, a missing folder fails the builds only
    toolchain = toolchain_for(project.state_dir)  # its Node starts, installed, at the first AssemblyScript compile
    with build_lock(project.state_dir):
        make_dev_key(project)
    debouncer = Debouncer(DEBOUNCE_SECONDS)
    known: set[str] | None = None  # the guests known before watching anew
    rebuilds = Rebuilds(debouncer.wake, echo)
    try:
        with interrupt_on_stop_signals(), AscServer(toolchain, project.root) as server, _stopped_at_the_end(rebuilds):
            while True:  # anew each time pyproject.toml's settings or the watched folders change
                with _observing(project, debouncer, poll=poll) as watches:
                    builder = DevBuilder(project, server, profile=profile)
                    session = _Session(project, builder, rebuilds, smoke=smoke)
                    session.build_all(known_before=known)
                    how = "polling" if poll else "file events"
                    bundles = builder.project.outputs_dir.relative_to(project.root) / "bundles"
                    rebuilds.say(
                        f"watching {watched_folders(project)} ({how}); {profile}-profile bundles in {bundles}/; "
                        "Ctrl-C stops"
                    )
                    project, known = _loop(session, debouncer, watches), session.known
    except KeyboardInterrupt:
        echo("stopped")


@contextmanager
def _stopped_at_the_end(rebuilds: Rebuilds) -> Iterator[None]:
    """Stops the rebuilds still running when watching ends (Ctrl-C), before the compiler server they may use."""
    try:
        yield
    finally:
        rebuilds.stop()


@dataclass(frozen=True)
class WatchAction:
    """doit's watch task (`poll`, `smoke` and `release` are task parameters); it locks each rebuild itself."""

    project: Project

    def __call__(self, poll: bool, smoke: bool, release: bool) -> TaskFailed | None:
        show_logs()
        profile: BuildProfile = "release" if release else "dev"
        return clean_failure(lambda: watch(self.project, poll=poll, smoke=smoke, profile=profile))


def _loop(session: _Session, debouncer: Debouncer, watches: Watches) -> Project:
    """Rebuilds what changes until pyproject.toml's settings or the watched folders do; returns the project to watch
    anew."""
    builder, rebuilds = session.builder, session.rebuilds
    while True:
        background = rebuilds.idle and builder.has_background_work  # only while no guest's job runs
        batch = debouncer.next_batch(block=not background, on_arrival=session.arrived)
        rebuilds.raise_failure()
        markers = {name for name in batch if is_marker(name)}
        if markers:
            batch -= markers
            restarted = session.restarted(markers)
            if restarted is not None:
                rebuilds.wait_idle()
                return restarted  # every guest is built again, those of this batch too
        if batch:
            watches.follow_links()  # a guest folder that became a link, or another one
        for guest in sorted(batch):
            session.handle(guest)
        if not batch and rebuilds.idle and builder.has_background_work:
            session.background_step()
