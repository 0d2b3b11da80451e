"""A doit reporter that shows progress: which task runs, how many of how many, how long each took."""

from __future__ import annotations

import time
from typing import Any, TextIO

from doit.reporter import ConsoleReporter


class ProgressReporter(ConsoleReporter):  # type: ignore[misc]
    desc = "progress: [n/total] task, time taken, failures without tracebacks"

    def __init__(self, outstream: TextIO, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self.total = 0
        self.started = 0
        self.ran = 0
        self.up_to_date = 0
        self.starts: dict[str, float] = {}
        self.run_start = time.perf_counter()

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str]) -> None:
        self.total = len(_closure(tasks, selected_tasks))

    def execute_task(self, task: Any) -> None:
        if task.actions and not task.name.startswith("_"):
            self.started += 1
            self.starts[task.name] = time.perf_counter()
            self.write(f"[{self.started}/{self.total}] {task.name} ...\n")

    def add_success(self, task: Any) -> None:
        if task.name in self.starts:
            self.ran += 1
            self.write(f"      {task.name} ok ({time.perf_counter() - self.starts[task.name]:.2f} s)\n")

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.up_to_date += 1
            self.total -= 1

    def skip_ignore(self, task: Any) -> None:
        self.total -= 1

    def add_failure(self, task: Any, fail: Any) -> None:
        if fail.report:
            self.failures.append({"task": task, "exception": fail})
            self.write(f"FAILED {task.name}:\n{fail.message.rstrip()}\n")

    def complete_run(self) -> None:
        if self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")
        elapsed = time.perf_counter() - self.run_start
        failed = f", {len(self.failures)} failed" if self.failures else ""
        self.write(f"{self.ran} tasks ran, {self.up_to_date} up to date{failed} in {elapsed:.2f} s\n")


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
