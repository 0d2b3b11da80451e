"""`ngixi`'s console script (`ngixi_runtime.launch`): a Ctrl-C while it imports the command line is the command's
exit code, without Python's traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The console script's start, with a Ctrl-C while `ngixi_runtime.cli` is imported: when it imports one of its modules.
INTERRUPTED_IMPORT = """\
import sys
class Interrupting:
    def find_spec(self, name, path=None, target=None):
        if name == "ngixi_runtime.printable":
            sys.meta_path.remove(self)
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupting())
from ngixi_runtime.launch import main
sys.exit(main())
"""


@pytest.mark.parametrize("argv", [["verify", "b.ngx"], ["run", "--json", "b.ngx"]])
def test_ctrl_c_while_the_command_line_is_imported_is_its_exit_code_without_a_traceback(argv: list[str]) -> None:
    """The first tens of milliseconds of `ngixi`, before `main` runs: Python's KeyboardInterrupt traceback."""
    probe = [sys.executable, "-c", INTERRUPTED_IMPORT, *argv]
    ended = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    assert (ended.returncode, ended.stderr) == (130, "")
    assert (json.loads(ended.stdout)["error"]["kind"] if ended.stdout else None) == (
        "interrupted" if "--json" in argv else None
    )
