"""What every doit command of a project imports before it runs a task (its dodo.py's declarations)."""

from __future__ import annotations

import subprocess
import sys


def test_a_doit_command_imports_the_registry_client_only_to_publish() -> None:
    """oras, requests and jsonschema were a fifth of every doit command's CPU (a build, a smoke run, a list)."""
    probe = "import sys, ngixi_build.workflows.dodo_tasks; print(' '.join(sorted(sys.modules)))"
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert set(ran.stdout.split()).isdisjoint({"oras", "requests", "jsonschema", "ngixi_build.workflows.publish"})
