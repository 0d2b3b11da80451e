"""doit tasks of this project; every declaration comes from the installed ngixi-build (`ngixi init` writes the same)."""

from pathlib import Path

from ngixi_build.workflows.dodo_tasks import project_tasks

globals().update(project_tasks(Path(__file__).parent))
