"""The build's summary: each failed guest with its first error; progress totals that never shrink."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from doit.exceptions import DependencyError, TaskFailed, UnmetDependency

from ngixi_build.reporter import ProgressReporter, failed_guests, first_error

ASC_FAILURE = """asc guests/cmd1/assembly/index.ts failed (exit 1):
ERROR TS2304: Cannot find name 'nope'.
   :
 3 │ let x: i32 = nope;
   └─ in guests/cmd1/assembly/index.ts(3,14)

FAILURE 1 compile error(s)
"""

ZIG_FAILURE = """zjson: zig build-exe failed (exit 1):
guests/zjson/main.zig:18:28: error: enum 'ngixi.log.LogLevel' has no member named 'err'
        ngixi.log.writeAt(.err, "x");
artifacts/bindings/zig/ngixi.zig:67:26: note: enum declared here
"""
CLANG_FAILURE = """stats: zig cc failed (exit 1):
In file included from guests/stats/src/main.c:2:
guests/stats/include/stats.h:3:10: fatal error: 'missing.h' file not found
1 error generated.
"""
LINK_FAILURE = """sqlite: zig cc failed (exit 1):
guests/sqlite/shell.c:36278:13: warning: 'getpid' is deprecated: WASI lacks process identifiers [-Wdeprecated]
 36278 |             GETPID());
1 warning generated.
wasm-ld: error: .ngixi/zig-cache/o/5d81/shell.o: undefined symbol: system
"""


@dataclass
class FakeTask:
    name: str
    actions: list[str] = field(default_factory=lambda: ["act"])
    task_dep: list[str] = field(default_factory=list)
    setup_tasks: list[str] = field(default_factory=list)


def test_the_first_error_names_the_source_line() -> None:
    assert first_error(ASC_FAILURE) == "ERROR TS2304: Cannot find name 'nope'. (guests/cmd1/assembly/index.ts(3,14))"
    assert first_error("manifests/a.toml: missing; create it\nmore") == "manifests/a.toml: missing; create it"
    assert first_error("") == "failed"


def test_a_compilers_first_error_is_the_line_it_names_and_a_tools_header_keeps_its_first_line() -> None:
    """Zig's and clang's diagnostics name file, line and column; what a tool said under its header is shown with it,
    never the header alone, which ends in a colon and says nothing of the error."""
    assert (
        first_error(ZIG_FAILURE)
        == "guests/zjson/main.zig:18:28: error: enum 'ngixi.log.LogLevel' has no member named 'err'"
    )
    assert first_error(CLANG_FAILURE) == "guests/stats/include/stats.h:3:10: fatal error: 'missing.h' file not found"
    assert first_error(LINK_FAILURE) == "wasm-ld: error: .ngixi/zig-cache/o/5d81/shell.o: undefined symbol: system"
    assert (
        first_error("componentize-js guests/x/index.js failed (exit 1):\nguests/x/index.js: Could not resolve 'y'\n")
        == "componentize-js guests/x/index.js failed (exit 1): guests/x/index.js: Could not resolve 'y'"
    )


def test_each_failed_guest_is_listed_once_with_its_first_failure() -> None:
    failures = [
        {"task": FakeTask("compile:cmd1"), "exception": TaskFailed(ASC_FAILURE)},
        {"task": FakeTask("precompile:lib2@x86_64-unknown-linux-gnu"), "exception": TaskFailed("boom")},
        {"task": FakeTask("bundle:lib2"), "exception": TaskFailed("later")},
    ]
    assert failed_guests(failures) == {
        "cmd1": ("compile", "ERROR TS2304: Cannot find name 'nope'. (guests/cmd1/assembly/index.ts(3,14))"),
        "lib2": ("precompile", "boom"),
    }


def test_progress_counts_up_to_a_total_that_stays_true() -> None:
    out = io.StringIO()
    reporter = ProgressReporter(out, {})
    tasks = {name: FakeTask(name) for name in ("compile:a", "compile:b", "bundle:a", "bundle:b")}
    tasks["build"] = FakeTask("build", actions=[], task_dep=list(tasks))
    reporter.initialize(tasks, ["build"])
    reporter.skip_uptodate(tasks["compile:a"])
    reporter.execute_task(tasks["compile:b"])
    reporter.add_failure(tasks["compile:b"], TaskFailed("ERROR broken"))
    reporter.skip_uptodate(tasks["bundle:a"])
    reporter.add_failure(tasks["bundle:b"], UnmetDependency("compile:b"))
    reporter.add_failure(tasks["build"], UnmetDependency("bundle:b"))
    reporter.complete_run()
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2/4] compile:b ..."
    assert lines[-2] == "failed: b (compile): ERROR broken"
    assert lines[-1].startswith("1 task ran (1 failed), 2 up to date, 1 not run (an input failed) in ")


@pytest.mark.parametrize(
    ("ran", "failed", "failed_first", "expected"),
    [
        (0, 0, 0, "0 tasks ran, 0 up to date"),
        (1, 0, 0, "1 task ran, 0 up to date"),
        (0, 2, 0, "2 tasks ran (2 failed), 0 up to date"),
        (2, 1, 0, "3 tasks ran (1 failed), 0 up to date"),
        (0, 0, 1, "0 tasks ran, 0 up to date, 1 failed before running"),
        (1, 1, 2, "2 tasks ran (1 failed), 0 up to date, 2 failed before running"),
    ],
)
def test_the_summary_counts_a_failed_task_among_those_that_ran(
    ran: int, failed: int, failed_first: int, expected: str
) -> None:
    """It read "0 tasks ran, 0 up to date, 2 failed" after two tasks had run and failed: a task that failed ran,
    unless it failed before it started (doit's DependencyError for an input file that is missing)."""
    out = io.StringIO()
    reporter = ProgressReporter(out, {})
    tasks = [FakeTask(f"compile:g{i}") for i in range(ran + failed + failed_first)]
    for task in tasks[:ran]:
        reporter.execute_task(task)
        reporter.add_success(task)
    for task in tasks[ran : ran + failed]:
        reporter.execute_task(task)
        reporter.add_failure(task, TaskFailed("ERROR broken"))
    for task in tasks[ran + failed :]:
        reporter.add_failure(task, DependencyError("file_dep missing"))
    reporter.complete_run()
    assert out.getvalue().splitlines()[-1].startswith(f"{expected} in ")
