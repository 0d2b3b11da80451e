"""Watch mode rebuilds a Zig guest and an any-toolchain guest on save, through their own compilers."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.integration import WatchProcess, copy_project, keep_only_guests, set_targets

pytestmark = pytest.mark.integration

ZIG_SOURCE = "export fn twice(n: i32) i32 {\n    return n * 2;\n}\n"
ZIG_MANIFEST = """[guest]
name = "zig-watch"
version = "0.1.0"
language = "zig"

[exports.twice]
params = ["i32"]
results = ["i32"]
"""


@pytest.fixture(scope="module")
def watching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, WatchProcess]]:
    root = copy_project(tmp_path_factory.mktemp("watch-languages") / "project")
    project = Project(keep_only_guests(root, ("handmade", "c-counter")))
    set_targets(project.root, ["x86_64-unknown-linux-gnu"])
    (project.guests_dir / "zig-watch").mkdir()
    (project.guests_dir / "zig-watch" / "main.zig").write_text(ZIG_SOURCE)
    project.manifest_path("zig-watch").write_text(ZIG_MANIFEST)
    watch = WatchProcess(project.root)
    try:
        started = [line.text for line in watch.until("watching")]
        assert any(t.startswith("zig-watch: rebuilt") for t in started), started
        assert any(t.startswith("handmade: rebuilt") for t in started), started
        assert any(t.startswith("c-counter: rebuilt") for t in started), started  # dev-profile C imports no more
        assert not (project.state_dir / "toolchain").exists()  # watching started no install of Node.js
        yield Project(project.root, profile="dev"), watch
    finally:
        watch.stop()


def call(project: Project, guest: str, export: str, *args: int) -> int:
    bundle = read_bundle(project.bundle_path(guest, "0.1.0"), load_trust(project.dev_trust_file))
    (result,) = open_guest(bundle).call(export, args)
    assert isinstance(result, int)
    return result


def rebuilt(watch: WatchProcess, guest: str) -> list[str]:
    return [line.text for line in watch.until(f"{guest}: rebuilt", f"{guest}: failed")]


def test_a_zig_save_rebuilds_and_a_zig_error_is_zigs_own(watching: tuple[Project, WatchProcess]) -> None:
    project, watch = watching
    source = project.guests_dir / "zig-watch" / "main.zig"
    source.write_text(ZIG_SOURCE.replace("n * 2", "n * 3"))
    assert rebuilt(watch, "zig-watch")[-1].startswith("zig-watch: rebuilt")
    assert call(project, "zig-watch", "twice", 5) == 15
    source.write_text(ZIG_SOURCE.replace("n * 2", "n *"))
    failed = rebuilt(watch, "zig-watch")
    assert failed[-1].startswith("zig-watch: failed")
    diagnostic = watch.until("guests/zig-watch/main.zig:")[-1].text
    assert diagnostic.split(":")[1].isdigit() and "error" in diagnostic, diagnostic
    assert call(project, "zig-watch", "twice", 5) == 15  # the last good bundle stays


def test_a_command_guest_rebuilds_on_its_inputs_never_on_its_output(watching: tuple[Project, WatchProcess]) -> None:
    project, watch = watching
    guest = project.guests_dir / "handmade"
    (guest / "answer.txt").write_text("99\n")
    assert rebuilt(watch, "handmade")[-1].startswith("handmade: rebuilt")
    assert call(project, "handmade", "answer") == 99
    (guest / "out" / "handmade.wasm").write_bytes((guest / "out" / "handmade.wasm").read_bytes())
    (guest / "NOTES.md").write_text("not an input\n")
    source = project.guests_dir / "zig-watch" / "main.zig"
    source.write_text(ZIG_SOURCE)
    lines = rebuilt(watch, "zig-watch")
    assert not any(line.startswith("handmade:") for line in lines), lines


def test_a_quick_guests_save_is_not_held_behind_a_slow_guests_rebuild(watching: tuple[Project, WatchProcess]) -> None:
    """The any-toolchain guest's build command takes 6 s once (as a component's compile takes tens of seconds); a Zig
    save just after its save is rebuilt meanwhile, not after it (before, a 0.4 s Zig save waited 34 s)."""
    project, watch = watching
    guest = project.guests_dir / "handmade"
    script = guest / "make_wasm.py"
    (guest / "slow-once").write_text("")  # no input of the guest: changes nothing
    slow_once = (
        "import pathlib as _pathlib, time as _time\n"
        "_once = _pathlib.Path(__file__).parent / 'slow-once'\n"
        "if _once.exists():\n    _once.unlink()\n    _time.sleep(6)\n"
    )
    future = "from __future__ import annotations\n"
    script.write_text(script.read_text().replace(future, future + slow_once, 1))
    time.sleep(0.5)  # its rebuild has started
    (project.guests_dir / "zig-watch" / "main.zig").write_text(ZIG_SOURCE.replace("n * 2", "n * 4"))
    lines = [line.text for line in watch.until("handmade: rebuilt", "handmade: failed")]
    assert any(line.startswith("zig-watch: rebuilt") for line in lines), lines
    assert lines[-1].startswith("handmade: rebuilt"), lines
    assert call(project, "zig-watch", "twice", 5) == 20


def test_sources_are_left_without_compiler_caches(watching: tuple[Project, WatchProcess]) -> None:
    project, _ = watching
    assert sorted(p.name for p in (project.guests_dir / "zig-watch").iterdir()) == ["main.zig"]


def test_pyproject_settings_changed_while_watching_are_used_without_a_restart(
    watching: tuple[Project, WatchProcess],
) -> None:
    project, watch = watching
    (project.root / "inc").mkdir()
    (project.root / "inc" / "bonus.h").write_text("#define BONUS 0\n")
    source = project.guests_dir / "c-counter" / "counter.c"
    source.write_text('#include "../../inc/bonus.h"\n' + source.read_text())
    failed = rebuilt(watch, "c-counter")
    assert failed[-1].startswith("c-counter: failed"), failed
    assert "outside the guest's folder" in watch.until("c-counter: guests/c-counter/counter.c reads")[-1].text
    config = project.root / "pyproject.toml"
    settings = config.read_text()
    config.write_text(settings.replace("[tool.ngixi]\n", '[tool.ngixi]\nshared_sources = ["inc"\n'))
    broken = [line.text for line in watch.until("pyproject.toml: not used", timeout=30)]
    assert broken[-1] == "pyproject.toml: not used; watch goes on with the settings it had", broken
    assert "not valid TOML" in watch.until(str(config))[-1].text
    (project.guests_dir / "zig-two").mkdir()  # a guest added and one removed with the same save
    (project.guests_dir / "zig-two" / "main.zig").write_text(ZIG_SOURCE)
    project.manifest_path("zig-two").write_text(ZIG_MANIFEST.replace('"zig-watch"', '"zig-two"'))
    shutil.rmtree(project.guests_dir / "handmade")
    project.manifest_path("handmade").unlink()
    config.write_text(settings.replace("[tool.ngixi]\n", '[tool.ngixi]\nshared_sources = ["inc"]\n'))
    again = [line.text for line in watch.until("watching", timeout=60)]
    assert "pyproject.toml: changed; building every guest with its new settings" in again, again
    assert {"c-counter", "zig-two", "zig-watch"} <= {t.split(":")[0] for t in again if ": rebuilt" in t}, again
    assert {"zig-two: new guest", "handmade: removed; no longer built"} <= set(again), again
    assert again[-1].startswith("watching guests/, manifests/ and inc/ "), again


def test_a_watched_folder_moved_away_and_back_is_watched_anew(watching: tuple[Project, WatchProcess]) -> None:
    project, watch = watching
    project.manifests_dir.rename(project.root / "manifests.old")
    assert watch.until("manifests/: made, removed or moved", timeout=30)[-1].text.endswith("building every guest")
    watch.until("watching", timeout=60)
    (project.root / "manifests.old").rename(project.manifests_dir)
    assert "zig-watch: rebuilt" in {t.split(" in ")[0] for t in (line.text for line in watch.until("watching"))}
    (project.guests_dir / "zig-watch" / "main.zig").write_text(ZIG_SOURCE.replace("n * 2", "n * 4"))
    assert rebuilt(watch, "zig-watch")[-1].startswith("zig-watch: rebuilt")
    assert call(project, "zig-watch", "twice", 5) == 20
