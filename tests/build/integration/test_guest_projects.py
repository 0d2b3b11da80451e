"""A guest author's own projects, through the tool installed (not editable) into a fresh virtual environment.

`ngixi init`, `ngixi new` for each language, kind and ABI, `doit build` / `doit smoke` with the dodo.py init
writes, an npm dependency from the registry (as-base64) and its release provenance, a build with a broken
guest, `ngixi watch`, two projects with a same-named guest, and the CLI's small promises. The environment is
made once for the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration import WatchProcess, copy_project, ran_tasks, run_in, share_toolchains

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=155)]

TEMPLATES = [("library", "core"), ("command", "core"), ("library", "component"), ("command", "component")]
NATIVE_TEMPLATES = [("c", "library"), ("c", "command"), ("zig", "library"), ("zig", "command")]
B64_SOURCE = """
import { encode } from "as-base64";

export function encodedLength(n: i32): i32 {
  return encode(new Uint8Array(n)).length;
}
"""
OUT_OF_BOUNDS = """import { input, output } from "ngixi-data";

export function add(a: i32, b: i32): i32 {
  const values = new Array<i32>(2);
  return values[a] + b;
}

export function greet(): void {
  output.text(input.text());
}
"""
ZIG_TRAP = """
fn check(a: i32) i32 {
    if (a > 3) @trap();
    return a;
}

export fn add(a: i32, b: i32) i32 {
    return check(a) + b;
}
"""
C_TRAP = """
static int check(int a) {
    if (a > 3) __builtin_trap();
    return a;
}

int add(int a, int b) { return check(a) + b; }
"""
AS_TRAP = """
export function add(a: i32, b: i32): i32 {
  const values = new Array<i32>(2);
  return values[a] + b;
}
"""
ADD_EXPORT = '[exports.add]\nparams = ["i32", "i32"]\nresults = ["i32"]\n\n'
B64_MANIFEST = """[guest]
name = "b64"
version = "0.1.0"

[exports.encodedLength]
params = ["i32"]
results = ["i32"]

[[smoke]]
call = "encodedLength"
args = [4]
expect = 8
"""


class Installed:
    """The fresh environment's commands, run in a directory with a clean environment."""

    def __init__(self, bin_dir: Path, rollback_state: Path) -> None:
        self.bin_dir = bin_dir
        self.rollback_state = rollback_state  # not the user's: these bundles' sequences are nobody's business

    def run(
        self, cwd: Path, *command: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        name, *arguments = command
        argv = [str(self.bin_dir / name), *arguments]
        return run_in(cwd, argv, env={**self.environment(), **(env or {})}, check=check, timeout=900)

    def environment(self) -> dict[str, str]:
        variables = {k: v for k, v in os.environ.items() if not k.startswith("NGIXI_")}
        path = f"{self.bin_dir}{os.pathsep}{variables.get('PATH', '')}"
        return {**variables, "PATH": path, "NGIXI_STATE_DIR": str(self.rollback_state)}


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """ngixi-runtime and ngixi-build pip-installed from a copy of the repository into a new environment, as the
    README says (the build installs wasm-tools itself)."""
    work = tmp_path_factory.mktemp("installed")
    source = copy_project(work / "source")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["-c", str(REPO / "constraints.txt")]
    subprocess.run([*pip, *constraints, f"{source / 'runtime'}[wasmer]", str(source)], check=True, timeout=900)
    shutil.rmtree(source)  # the installed tool needs none of the repository's files
    return Installed(venv / "bin", work / "rollback-state")


def with_trapping_add(project: Path, guest: str, source: str, code: str) -> int:
    """Appends `code` (an `add` that traps when its first argument is over 3) to the guest's `source` and
    declares the export; returns the line of the trap."""
    path = project / "guests" / guest / source
    before = path.read_text()
    path.write_text(before + code)
    manifest = project / "manifests" / f"{guest}.toml"
    text = manifest.read_text()
    at = text.index("[[smoke]]")
    manifest.write_text(text[:at] + ADD_EXPORT + text[at:])
    return len(before.splitlines()) + 3


def host_only(project: Path) -> None:
    """One target, so the builds stay quick."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    start, end = text.index("targets = ["), text.index("]", text.index("targets = [")) + 1
    pyproject.write_text(text[:start] + 'targets = ["x86_64-unknown-linux-gnu"]' + text[end:])


def new_project(tool: Installed, directory: Path) -> Path:
    tool.run(directory.parent, "ngixi", "init", directory.name)
    host_only(directory)
    return directory


def add_counter(project: Path) -> None:
    """The repository's kv counter sample, as a guest of `project`."""
    shutil.copytree(REPO / "guests" / "counter", project / "guests" / "counter")
    shutil.copy(REPO / "manifests" / "counter.toml", project / "manifests" / "counter.toml")


def add_b64(tool: Installed, project: Path, version: str) -> None:
    """A guest importing as-base64 from npm by its package name."""
    guest = project / "guests" / "b64"
    (guest / "assembly").mkdir(parents=True, exist_ok=True)
    (guest / "assembly" / "index.ts").write_text(B64_SOURCE)
    (project / "manifests" / "b64.toml").write_text(B64_MANIFEST)
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no npm on PATH to write the guest's lock file")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", f"as-base64@{version}"],
        cwd=guest,
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def project(tool: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a guest from each template, the counter and an npm-dependent guest, built."""
    root = new_project(tool, tmp_path_factory.mktemp("author") / "guests-project")
    for kind, abi in TEMPLATES:
        tool.run(root, "ngixi", "new", f"{kind}-{abi}", "--kind", kind, "--abi", abi)
    for language, kind in NATIVE_TEMPLATES:
        tool.run(root, "ngixi", "new", f"{language}-{kind}", "--lang", language, "--kind", kind)
    add_counter(root)
    add_b64(tool, root, "0.2.0")
    shutil.rmtree(root / "guests" / "b64" / "node_modules")  # the build installs it, with npm ci
    tool.run(root, "doit", "build")
    return root


def test_init_writes_a_project_with_the_few_line_dodo_and_refuses_to_redo_it(tool: Installed, tmp_path: Path) -> None:
    root = new_project(tool, tmp_path / "fresh")
    assert sorted(p.name for p in root.iterdir()) == [
        ".gitignore",
        "README.md",
        "dodo.py",
        "guests",
        "manifests",
        "pyproject.toml",
    ]
    assert (root / "dodo.py").read_text() == (REPO / "dodo.py").read_text()
    assert {"node_modules/", "/.ngixi/", "/artifacts/"} <= set((root / ".gitignore").read_text().split())
    assert "# release = [" in (root / "pyproject.toml").read_text()
    again = tool.run(tmp_path, "ngixi", "init", "fresh", check=False)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already an ngixi project" in again.stderr
    here = tmp_path / "here"
    here.mkdir()
    made = tool.run(here, "ngixi", "init")  # no DIR: the working directory, like git init
    assert made.stdout == "ok: an ngixi project in .; add a guest with `ngixi new NAME`, then `doit build`\n"
    assert (here / "dodo.py").is_file()


def test_every_template_builds_runs_and_passes_its_smoke_calls(tool: Installed, project: Path) -> None:
    ran = tool.run(project, "doit", "smoke")
    smoke = ran.stdout + ran.stderr
    for kind, abi in TEMPLATES:
        assert (project / "artifacts" / "bundles" / f"{kind}-{abi}-0.1.0.ngx").is_file()
        assert (project / "guests" / f"{kind}-{abi}" / "tsconfig.json").is_file()
    assert "library-core: 2 smoke calls passed" in smoke
    assert "command-core: 2 smoke calls passed" in smoke
    assert "command-component: 2 smoke calls passed" in smoke
    assert "library-component: 1 smoke call passed" in smoke
    assert "b64: 1 smoke call passed" in smoke
    for language in ("c", "zig"):
        assert f"{language}-library: 1 smoke call passed" in smoke
        assert f"{language}-command: 2 smoke calls passed" in smoke
    added = tool.run(project / "guests", "ngixi", "run", "../artifacts/bundles/library-core-0.1.0.ngx", "add", "2", "3")
    assert added.stdout == "5\n"
    (project / "large.txt").write_text("x" * (1 << 20))  # the default limits.input_bytes, past 16 pages of memory
    for guest, no_memory in (
        ("library-core", "greet ran out of memory (an allocation needed more than limits.memory_pages = 16 allows"),
        ("c-library", "greet ran out of memory (an allocation needed more than limits.memory_pages = 16 allows"),
        ("zig-library", "greet ran out of memory (an allocation needed more than limits.memory_pages = 16 allows"),
    ):
        bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
        greeted = tool.run(project, "ngixi", "run", bundle, "greet", "--input", "Grüße")
        assert (greeted.stdout, greeted.stderr) == ("Hello, Grüße!", f"info: {guest} greets Grüße\n")
        large = tool.run(project, "ngixi", "run", bundle, "greet", "--input", "@large.txt", check=False)
        assert (large.returncode, large.stdout) == (5, "") and no_memory in large.stderr  # once an empty success
    for guest in ("command-core", "command-component"):
        greeted = tool.run(project, "ngixi", "run", f"artifacts/bundles/{guest}-0.1.0.ngx", "Ada", "Grace")
        assert greeted.stdout == "Hello, Ada!\nHello, Grace!\n"


def test_ngixi_new_refuses_a_taken_name_a_bad_name_and_no_project(tool: Installed, project: Path) -> None:
    taken = tool.run(project, "ngixi", "new", "counter", check=False)
    assert taken.returncode == 2 and "guest 'counter' is taken" in taken.stderr
    bad = tool.run(project, "ngixi", "new", "Bad_Name", check=False)
    assert bad.returncode == 2 and "lowercase letter, then up to 62 lowercase letters, digits and" in bad.stderr
    nowhere = tool.run(project.parent, "ngixi", "new", "x", check=False)
    assert nowhere.returncode == 2 and "ngixi init DIR" in nowhere.stderr
    assert not (project.parent / "guests").exists()


def test_a_changed_lock_file_rebuilds_that_guest_only(tool: Installed, project: Path) -> None:
    record = project / "guests" / "b64" / "node_modules" / ".ngixi-dependencies.json"
    assert [p["version"] for p in json.loads(record.read_text())["packages"]] == ["0.2.0"]
    assert "node_modules" not in tool.run(project, "doit", "list", "--all", "-s").stdout
    add_b64(tool, project, "0.1.1")
    rebuilt = ran_tasks(tool.run(project, "doit", "build").stdout)
    assert {"dependencies:b64", "compile:b64"} <= rebuilt
    assert not any(task.endswith(("library-core", "counter")) for task in rebuilt)
    assert [p["version"] for p in json.loads(record.read_text())["packages"]] == ["0.1.1"]
    installed = project / "guests" / "b64" / "node_modules" / "as-base64" / "assembly" / "index.ts"
    installed.write_text(installed.read_text() + "\n// edited\n")
    assert "compile:b64" in ran_tasks(tool.run(project, "doit", "build").stdout)
    assert tool.run(project, "doit", "build").stdout.startswith("0 tasks ran")


def test_a_broken_guest_does_not_stop_the_others(tool: Installed, project: Path) -> None:
    broken = project / "guests" / "library-core" / "assembly" / "index.ts"
    before = broken.read_text()
    tool.run(project, "ngixi", "new", "late")
    (project / "manifests" / "command-core.toml").rename(project / "command-core.toml.away")
    broken.write_text(before + "\nexport function oops(): i32 { return nope; }\n")
    try:
        result = tool.run(project, "doit", "build", check=False)
    finally:
        broken.write_text(before)
        (project / "command-core.toml.away").rename(project / "manifests" / "command-core.toml")
    assert result.returncode != 0
    assert (project / "artifacts" / "bundles" / "late-0.1.0.ngx").is_file()
    summary = sorted(line for line in result.stdout.splitlines() if line.startswith("failed: "))
    line = len(before.splitlines()) + 2
    assert summary == [
        "failed: command-core (compile): "
        f"{project / 'manifests' / 'command-core.toml'}: missing; create it: each guest needs manifests/<name>.toml",
        "failed: library-core (compile): ERROR TS2304: Cannot find name 'nope'. "
        f"(guests/library-core/assembly/index.ts({line},38))",
    ]
    totals = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("[")]
    assert len({t.split("/")[1] for t in totals}) == 1  # one total from start to end


def test_two_projects_with_a_same_named_guest_keep_their_own_state(
    tool: Installed, project: Path, tmp_path: Path
) -> None:
    other = new_project(tool, tmp_path / "other")
    add_counter(other)
    share_toolchains(project / ".ngixi", other / ".ngixi")
    tool.run(other, "ngixi", "build")
    counter = "artifacts/bundles/counter-0.1.0.ngx"
    assert tool.run(project, "ngixi", "run", counter, "increment").stdout == "1\n"
    assert tool.run(project / "guests", "ngixi", "run", f"../{counter}", "increment").stdout == "2\n"
    assert tool.run(other, "ngixi", "run", counter, "increment").stdout == "1\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = tool.run(elsewhere, "ngixi", "run", "--project", str(project), str(project / counter), "increment")
    assert ran.stdout == "3\n"
    refused = tool.run(elsewhere, "ngixi", "run", str(project / counter), "increment", check=False)
    assert refused.returncode == 2 and "no trust file" in refused.stderr  # never the trust near the bundle
    assert list(elsewhere.iterdir()) == []
    assert (project / ".ngixi" / "sandbox" / "dev" / "default" / "counter" / "kv.sqlite3").is_file()
    assert (other / ".ngixi" / "keys" / "dev.pub").read_text() != (project / ".ngixi" / "keys" / "dev.pub").read_text()


def test_a_state_dir_moves_every_piece_of_state(tool: Installed, project: Path, tmp_path: Path) -> None:
    root = new_project(tool, tmp_path / "moved")
    tool.run(root, "ngixi", "new", "solo")
    state = tmp_path / "state"
    share_toolchains(project / ".ngixi", state)  # a build looking under the project would install it in root/.ngixi
    tool.run(root, "ngixi", "build", "--state-dir", str(state))
    assert not (root / ".ngixi").exists()
    assert (state / "keys" / "dev.pub").is_file() and (state / "trust.toml").is_file()
    with_state = {"NGIXI_PROJECT_STATE": str(state)}
    assert tool.run(root, "doit", "build", env=with_state).stdout.startswith("0 tasks ran")
    assert tool.run(root, "ngixi", "run", "artifacts/bundles/solo-0.1.0.ngx", "add", "1", "2", env=with_state).stdout


def test_watch_rebuilds_a_guest_of_an_installed_project(tool: Installed, project: Path, tmp_path: Path) -> None:
    root = new_project(tool, tmp_path / "watched")
    tool.run(root, "ngixi", "new", "live", "--abi", "component")
    live_line = with_trapping_add(root, "live", "assembly/index.ts", AS_TRAP) + 1
    tool.run(root, "ngixi", "new", "oops")
    (root / "guests" / "oops" / "assembly" / "index.ts").write_text(OUT_OF_BOUNDS)
    tool.run(root, "ngixi", "new", "zig-oops", "--lang", "zig")
    zig_line = with_trapping_add(root, "zig-oops", "main.zig", ZIG_TRAP)
    share_toolchains(project / ".ngixi", root / ".ngixi")  # installed once per module
    watcher = WatchProcess(root, command=(str(tool.bin_dir / "ngixi"), "watch", "--smoke"))
    try:
        watcher.until("watching ", timeout=400)
        source = root / "guests" / "live" / "assembly" / "index.ts"
        source.write_text(source.read_text().replace(" greets ", " greets: "))
        lines = watcher.until("live: 1 smoke call passed", "live: smoke failed")
        assert lines[-1].text == "live: 1 smoke call passed"
        assert watcher.stop(signal.SIGTERM) == 0  # SIGTERM: where tests run in the background, SIGINT is ignored
        trapped = tool.run(root, "ngixi", "run", "artifacts/dev/bundles/oops-0.1.0.ngx", "add", "5", "1", check=False)
        assert trapped.returncode == 5
        assert trapped.stderr.endswith(
            "oops: add aborted: Index out of range (at ~lib/array.ts:114:42)"
            " at guests/oops/assembly/index.ts:5:10 (in guests/oops/assembly/index/add)\n"
        )
        live = tool.run(root, "ngixi", "run", "artifacts/dev/bundles/live-0.1.0.ngx", "add", "5", "1", check=False)
        assert live.returncode == 5 and live.stderr.endswith(
            f" at guests/live/assembly/index.ts:{live_line}:10 (in guests/live/assembly/index/add)\n"
        )
        zig = tool.run(root, "ngixi", "run", "artifacts/dev/bundles/zig-oops-0.1.0.ngx", "add", "5", "1", check=False)
        assert zig.stderr == (
            "ngixi: error: zig-oops: add trapped: unreachable"
            f" at guests/zig-oops/main.zig:{zig_line}:16 (in main.add)\n"
        )
    finally:
        watcher.process.kill()
        watcher.process.wait()


def test_the_cli_keeps_its_small_promises(tool: Installed, project: Path) -> None:
    assert tool.run(project, "ngixi", "--version").stdout == "ngixi-runtime 0.1.0, ngixi-build 0.1.0\n"
    bundle = "artifacts/bundles/library-core-0.1.0.ngx"
    wide = tool.run(project, "ngixi", "run", bundle, "add", "2147483648", "1", check=False)
    assert wide.returncode == 2
    assert wide.stderr == (
        "ngixi: error: library-core: add argument 1: 2147483648 does not fit in i32: "
        "give a whole number from -2147483648 to 2147483647\n"
    )
    piped = subprocess.run(
        f"{tool.bin_dir / 'ngixi'} inspect --json {bundle} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert piped.stderr == "" and piped.stdout.strip() in ("0", "141")


def test_an_undeclared_export_warns_at_build(tool: Installed, project: Path) -> None:
    source = project / "guests" / "library-core" / "assembly" / "index.ts"
    before = source.read_text()
    source.write_text(before + "\nexport function extra(): i32 { return 1; }\n")
    try:
        result = tool.run(project, "doit", "build")
    finally:
        source.write_text(before)
    assert (
        "warning: library-core: exported by the .wasm but not declared in manifests/library-core.toml: extra"
        in result.stderr + result.stdout
    )


def test_a_trap_in_a_release_profile_bundle_names_the_guests_function(tool: Installed, project: Path) -> None:
    tool.run(project, "ngixi", "new", "oops")
    (project / "guests" / "oops" / "assembly" / "index.ts").write_text(OUT_OF_BOUNDS)
    with_trapping_add(project, "c-library", "main.c", C_TRAP)
    tool.run(project, "doit", "build")
    trapped = tool.run(project, "ngixi", "run", "artifacts/bundles/oops-0.1.0.ngx", "add", "5", "1", check=False)
    assert trapped.returncode == 5
    assert trapped.stderr.endswith(
        "oops: add aborted: Index out of range (at ~lib/array.ts:114:42) in guests/oops/assembly/index/add\n"
    )
    c = tool.run(project, "ngixi", "run", "artifacts/bundles/c-library-0.1.0.ngx", "add", "5", "1", check=False)
    assert (c.returncode, c.stderr) == (5, "ngixi: error: c-library: add trapped: unreachable in add\n")


def test_a_release_of_a_chosen_guest_lists_its_npm_packages_in_the_provenance(
    tool: Installed, project: Path, tmp_path: Path
) -> None:
    key = tmp_path / "release.key"
    tool.run(tmp_path, "ngixi", "keygen", "--secret", str(key), "--public", str(tmp_path / "release.pub"))
    release = {"NGIXI_SIGNING_KEY": str(key), "NGIXI_RELEASE_VERSION": "1.0.0", "SOURCE_DATE_EPOCH": "1767225600"}
    tool.run(project, "doit", "release", "--guest", "b64", "--allow-dirty", env=release)
    directory = project / "artifacts" / "release" / "1.0.0"
    assert [p.name for p in directory.glob("*.ngx")] == ["b64-0.1.0.ngx"]
    statement = json.loads((directory / "provenance.json").read_text())
    resolved = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    (package,) = [d for d in resolved if d.get("uri", "").startswith("pkg:npm/")]
    installed = json.loads((project / "guests" / "b64" / "node_modules" / ".ngixi-dependencies.json").read_text())
    (recorded,) = installed["packages"]
    assert package["uri"] == f"pkg:npm/as-base64@{recorded['version']}"
    assert package["annotations"] == {
        "guest": "b64",
        "path": "node_modules/as-base64",
        "integrity": recorded["integrity"],
        "installed_sha256": recorded["sha256"],
    }
    assert recorded["integrity"].startswith("sha512-") and len(package["digest"]["sha512"]) == 128
