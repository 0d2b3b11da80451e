"""The whole pipeline from a copy of the repository: real nodeenv, npm, asc and wasmer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ngixi_build.guests import read_guests
from ngixi_build.project import Project
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.trust.signatures import load_trust
from tests.integration import copy_project, keep_only_guests, ran_tasks, run

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=80)]

TRIPLES = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "x86_64-apple-darwin", "aarch64-apple-darwin"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("pipeline") / "project")
    result = run(project, "doit", "-n", "2", "build")  # in parallel: the later serial runs check the state it left
    assert "created a development signing key" in result.stderr
    return project


def test_build_makes_signed_bundles_with_every_target(built: Path) -> None:
    trust = load_trust(built / ".ngixi" / "trust.toml")
    for guest in ("hello", "wasi-hello"):
        bundle = read_bundle(built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx", trust)
        assert sorted(m.artifact.triple for m in bundle.index.artifacts if m.artifact) == sorted(TRIPLES)
        assert bundle.index.channel == "dev"


def test_cli_runs_the_library_guest(built: Path) -> None:
    result = run(built, "ngixi", "run", "artifacts/bundles/hello-0.1.0.ngx", "add", "2", "3")
    assert result.stdout == "5\n"
    greet = run(built, "ngixi", "run", "artifacts/bundles/hello-0.1.0.ngx", "greet")
    assert greet.stdout == "" and greet.stderr == "info: hello from the hello guest\n"


def test_cli_runs_the_command_guest(built: Path) -> None:
    result = run(built, "ngixi", "run", "artifacts/bundles/wasi-hello-0.1.0.ngx")
    assert result.stdout == "Hello from a WASI guest\n"


def test_smoke_runs_every_bundle_through_the_loader(built: Path) -> None:
    result = run(built, "doit", "smoke")
    guests: tuple[str, ...] = ("hello", "wasi-hello", "notes", "fetch", "counter", "hello-component")
    guests += ("notes-component", "words", "totals", "echo", "greet", "words-component", "orders-component")
    guests += ("handmade", "c-counter", "zig-notes")
    for guest in guests:
        assert f"smoke:{guest} ok" in result.stdout
    assert f"{len(guests)} tasks ran" in result.stdout


def test_cli_passes_text_json_and_arguments_to_the_data_and_command_samples(built: Path) -> None:
    words, totals = "artifacts/bundles/words-0.1.0.ngx", "artifacts/bundles/totals-0.1.0.ngx"
    stats = run(built, "ngixi", "run", words, "stats", "--input", "to be or not to be")
    assert stats.stdout == "words: 6\nlines: 1\ncharacters: 18\nlongest: not\n"
    order = '{"items": [{"name": "tea", "price": 2, "quantity": 3}]}'
    total = run(built, "ngixi", "run", totals, "total", "--input", order, "--json")
    assert json.loads(total.stdout)["output"] == {"items": 3, "total": 6, "priciest": "tea", "currency": "EUR"}
    missing = run(built, "ngixi", "run", words, "stats", "hello", check=False)
    assert missing.returncode == 2
    assert "ngixi: error: words: stats takes text input, not arguments: use --input 'hello'" in missing.stderr
    greet = run(built, "ngixi", "run", "artifacts/bundles/greet-0.1.0.ngx", "Ada", check=False)
    assert greet.stdout == "Hello, Ada!\n"


def test_cli_passes_json_arguments_to_the_typed_component_samples(built: Path) -> None:
    words, orders = "artifacts/bundles/words-component-0.1.0.ngx", "artifacts/bundles/orders-component-0.1.0.ngx"
    stats = run(built, "ngixi", "run", words, "analyze", "to be or not to be")
    assert json.loads(stats.stdout) == {"words": 6, "lines": 1, "characters": 18, "longest": "not"}
    parsed = run(built, "ngixi", "run", "--in-process", orders, "parse", "tea,3,piece,200,,green")
    item = {"name": "tea", "quantity": 3, "unit": "piece", "price-cents": 200, "handling": [], "note": "green"}
    assert json.loads(parsed.stdout) == {"ok": item}
    summary = run(built, "ngixi", "run", orders, "summarize", json.dumps([item]), "null")
    assert json.loads(summary.stdout) == {"lines": 1, "total-cents": 600, "heaviest": None, "needs": []}
    refused = run(built, "ngixi", "run", orders, "summarize", "[]", "300", check=False)
    assert refused.returncode == 2
    assert refused.stderr == (
        "ngixi: error: orders-component: summarize's discount-percent expects a u8, got 300 "
        "(out of range: u8 is 0 to 255)\n"
    )


def test_cli_runs_capability_guests_with_a_sandbox_directory(built: Path) -> None:
    notes = "artifacts/bundles/notes-0.1.0.ngx"
    counter = "artifacts/bundles/counter-0.1.0.ngx"
    assert run(built, "ngixi", "run", notes, "write_note").stdout == "0\n"
    assert run(built, "ngixi", "run", notes, "read_note").stdout == "remember the milk\n18\n"
    assert (built / ".ngixi" / "sandbox" / "dev" / "default" / "notes" / "files" / "data" / "note.txt").exists()
    assert run(built, "ngixi", "run", notes, "write_config").stdout == "63\n"
    assert [run(built, "ngixi", "run", counter, "increment").stdout for _ in range(2)] == ["1\n", "2\n"]
    other = run(built, "ngixi", "run", counter, "increment", "--sandbox", "elsewhere", "--in-process").stdout
    assert other == "1\n" and (built / "elsewhere" / "default" / "counter" / "kv.sqlite3").exists()
    denied = run(built, "ngixi", "run", "artifacts/bundles/fetch-0.1.0.ngx", "fetch_elsewhere")
    assert denied.stdout == "-1\n"
    assert 'add "https://example.com" to allow it' in denied.stderr


def test_loader_uses_the_host_artifact(built: Path) -> None:
    bundle = read_bundle(
        built / "artifacts" / "bundles" / "hello-0.1.0.ngx", load_trust(built / ".ngixi" / "trust.toml")
    )
    guest = open_guest(bundle)
    assert guest.origin.startswith("artifact aot/")
    assert guest.call("add", (40, 2)) == (42,)


def test_bad_arguments_get_one_line_errors(built: Path) -> None:
    for args, message in (
        (["add", "2"], "hello: add takes 2 arguments (i32, i32), got 1"),
        (["nope"], "no export 'nope'; the manifest declares: add, greet"),
        ([], "name the export to call; the manifest declares: add, greet"),
        (["add", "2", "x"], "hello: add argument 2: 'x' is not an i32"),
    ):
        result = run(built, "ngixi", "run", "artifacts/bundles/hello-0.1.0.ngx", *args, check=False)
        assert result.returncode == 2
        assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_second_build_does_nothing(built: Path) -> None:
    result = run(built, "doit", "build")
    assert ran_tasks(result.stdout) == set()
    assert "0 tasks ran" in result.stdout


def test_editing_one_guest_rebuilds_only_its_chain(built: Path) -> None:
    source = built / "guests" / "hello" / "assembly" / "index.ts"
    source.write_text(source.read_text().replace("hello from the hello guest", "hello again"))
    result = run(built, "doit", "build")
    expected = {"compile:hello", "validate:hello", "bundle:hello"} | {f"precompile:hello@{t}" for t in TRIPLES}
    assert ran_tasks(result.stdout) == expected
    greet = run(built, "ngixi", "run", "artifacts/bundles/hello-0.1.0.ngx", "greet")
    assert greet.stderr == "info: hello again\n"


def test_changing_a_baseline_rebuilds_only_that_target(built: Path) -> None:
    pyproject = built / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            '"x86_64-apple-darwin",', '{ triple = "x86_64-apple-darwin", cpu_features = ["sse2", "sse4.2"] },'
        )
    )
    result = run(built, "doit", "-n", "2", "build")
    guests = [name for name, guest in read_guests(Project(built)).items() if not guest.type.is_component]
    precompiled = {f"precompile:{g}@x86_64-apple-darwin" for g in guests}
    assert ran_tasks(result.stdout) == precompiled | {f"bundle:{g}" for g in guests}
    bundle = read_bundle(
        built / "artifacts" / "bundles" / "hello-0.1.0.ngx", load_trust(built / ".ngixi" / "trust.toml")
    )
    features = {m.artifact.triple: m.artifact.cpu_features for m in bundle.index.artifacts if m.artifact}
    assert features["x86_64-apple-darwin"] == ("sse2", "sse4.2") and features["x86_64-unknown-linux-gnu"] == ("sse2",)


def test_list_describes_every_task(built: Path) -> None:
    listed = run(built, "doit", "list").stdout
    for task in ("build", "bindings", "bundle", "compile", "precompile", "toolchain", "validate", "devkey", "smoke"):
        line = next(line for line in listed.splitlines() if line.split()[0] == task)
        assert len(line.split()) > 1, f"{task} has no description"


def test_compile_error_shows_asc_diagnostics_without_traceback(tmp_path: Path, built: Path) -> None:
    project = copy_project(tmp_path / "p", toolchain_from=built)
    (project / "guests" / "hello" / "assembly" / "index.ts").write_text("export function f(): i32 { return x; }\n")
    result = run(project, "doit", "compile:hello", check=False)
    assert result.returncode != 0
    assert "Cannot find name 'x'" in result.stdout and "guests/hello/assembly/index.ts(1,35)" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_manifest_fails_validation_cleanly(tmp_path: Path, built: Path) -> None:
    project = keep_only_guests(copy_project(tmp_path / "p", toolchain_from=built), ["hello"])
    manifest = project / "manifests" / "hello.toml"
    manifest.write_text(manifest.read_text().replace("[capabilities.log]\n", ""))
    result = run(project, "doit", "build", check=False)
    assert result.returncode != 0
    assert "capabilities.log: import ngixi.log needs [capabilities.log]" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project / "artifacts" / "bundles" / "hello-0.1.0.ngx").exists()


def test_clean_removes_build_outputs_but_keeps_the_dev_key(tmp_path: Path, built: Path) -> None:
    project = copy_project(tmp_path / "p", toolchain_from=built)
    for outputs in ("artifacts", ".ngixi/keys"):  # the module's build, every guest and target, and its dev key
        shutil.copytree(built / outputs, project / outputs)
    killed = [  # what killed writers leave behind, and watch mode's dev outputs
        project / "artifacts" / "wasm" / ".hello.k2j4_x9q.wasm",
        project / "artifacts" / "bundles" / ".hello-0.1.0.ngx.a1b2c3d4.tmp",
        project / ".ngixi" / ".trust.toml.zz00yy11.tmp",
        project / "artifacts" / "dev" / "bundles" / "hello-0.1.0.ngx",
    ]
    users = project / "guests" / "hello" / "assembly" / ".index.ts.abcdefgh.tmp"
    for path in [*killed, users]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    run(project, "doit", "clean")
    assert not list((project / "artifacts").rglob("*.ngx")) and not list((project / "artifacts").rglob("*.wasm"))
    assert [p for p in killed if p.exists()] == [] and users.exists()
    assert (project / ".ngixi" / "keys" / "dev.key").exists()
