"""A doit reporter that shows progress: which task runs, how many of how many, how long each took.

With doit's `continue` a failed guest does not stop the others; the summary then names each failed
guest with the first error of its first failure.
"""

from __future__ import annotations

import re
import time
from typing import Any, TextIO

from doit.exceptions import UnmetDependency
from doit.reporter import ConsoleReporter

from ngixi_runtime.errors import counted


class ProgressReporter(ConsoleReporter):  # type: ignore[misc]
    desc = "progress: [n/total] task, time taken, failures without tracebacks"

    def __init__(self, outstream: TextIO, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self.total = 0
        self.seen = 0  # tasks started, found up to date, ignored or not run: [seen/total] never shrinks
        self.ran = 0
        self.up_to_date = 0
        self.not_run = 0
        self.starts: dict[str, float] = {}
        self.run_start = time.perf_counter()

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str]) -> None:
        self.total = len(_closure(tasks, selected_tasks))

    def execute_task(self, task: Any) -> None:
        if task.actions and not task.name.startswith("_"):
            self.seen += 1
            self.starts[task.name] = time.perf_counter()
            self.write(f"[{self.seen}/{self.total}] {task.name} ...\n")

    def add_success(self, task: Any) -> None:
        if task.name in self.starts:
            self.ran += 1
            self.write(f"      {task.name} ok ({time.perf_counter() - self.starts[task.name]:.2f} s)\n")

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.up_to_date += 1
            self.seen += 1

    def skip_ignore(self, task: Any) -> None:
        if task.actions:
            self.seen += 1

    def add_failure(self, task: Any, fail: Any) -> None:
        if isinstance(fail, UnmetDependency):  # not run because an input failed: that failure is the news
            self.seen += 1 if task.actions else 0
            self.not_run += 1 if task.actions else 0
            return
        if task.actions and task.name not in self.starts:
            self.seen += 1
        if fail.report:
            self.failures.append({"task": task, "exception": fail})
            self.write(f"FAILED {task.name}:\n{fail.message.rstrip()}\n")

    def complete_run(self) -> None:
        if self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")
        for guest, (task, error) in failed_guests(self.failures).items():
            self.write(f"failed: {guest} ({task}): {error}\n")
        elapsed = time.perf_counter() - self.run_start
        self.write(f"{self._counts()} in {elapsed:.2f} s\n")

    def _counts(self) -> str:
        """What became of the tasks: "3 tasks ran (1 failed), 2 up to date, 1 not run (an input failed)". A task
        that failed ran, unless it failed before it could start (a missing input file)."""
        ran_and_failed = sum(1 for failure in self.failures if failure["task"].name in self.starts)
        ran = f"{counted(self.ran + ran_and_failed, 'task')} ran"
        failed_first = len(self.failures) - ran_and_failed
        parts = [f"{ran} ({ran_and_failed} failed)" if ran_and_failed else ran, f"{self.up_to_date} up to date"]
        parts += [f"{failed_first} failed before running"] if failed_first else []
        parts += [f"{self.not_run} not run (an input failed)"] if self.not_run else []
        return ", ".join(parts)


# A compiler's `file:line:column: error:`, or the linker's (`wasm-ld: error: ...: undefined symbol: system`), which
# may follow the compiler's warnings.
_COMPILER_ERROR = re.compile(r":\d+:\d+: (?:fatal )?error: |^wasm-ld: error: ")


def failed_guests(failures: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each failed guest (or task without one) → its first failed task and that failure's first error line."""
    found: dict[str, tuple[str, str]] = {}
    for failure in failures:
        base, _, sub = failure["task"].name.partition(":")
        guest = sub.split("@")[0] if sub else base
        found.setdefault(guest, (base, first_error(failure["exception"].message)))
    return found


def first_error(message: str) -> str:
    """The line of a failure's message that says what went wrong: the first naming an error (asc's, clang's and
    Zig's `file:line:column: error:`, or the linker's, never a warning before them); else, under a tool's header
    (`zig build-exe failed (exit 1):`), the header and the tool's first line; else the first."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "failed"
    diagnostic = next((line for line in lines[1:] if _COMPILER_ERROR.search(line)), None)
    if diagnostic is not None:
        return diagnostic
    marked = next((i for i, line in enumerate(lines) if i and line.upper().startswith(("ERROR", "FAILURE"))), None)
    if marked is None:
        return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    where = next((line for line in lines[marked + 1 :] if line.startswith("└─ in ")), None)  # asc's source line
    return f"{lines[marked]} ({where.removeprefix('└─ in ')})" if where else lines[marked]


def _closure(tasks: dict[str, Any], selected: list[str]) -> set[str]:
    """Selected tasks and everything they depend on, counting only tasks with actions."""
    seen: set[str] = set()
    pending = list(selected)
    while pending:
        name = pending.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        pending.extend(tasks[name].task_dep)
        pending.extend(tasks[name].setup_tasks)
    return {name for name in seen if tasks[name].actions}
