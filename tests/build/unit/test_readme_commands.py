"""README's `ngixi run` commands call exports that exist where they are run, with input exactly when one takes it.

Its quickstart runs the repository's samples (`.venv/bin/ngixi` in the checkout) and then the guest `ngixi new`
writes in a project of one's own: the sample `hello`'s `greet` takes no input, the template's takes text, so a
command right in one place was refused in the other."""

import re
import shlex
from pathlib import Path

from ngixi_build.project import find_project
from ngixi_build.workflows.scaffold import init_project, new_guest
from ngixi_runtime.guest.manifest import Manifest, load_manifest

ROOT = Path(__file__).resolve().parents[3]
_RUN = re.compile(r"^(?P<where>\.venv/bin/)?ngixi run artifacts/bundles/(?P<guest>[a-z-]+)-(?P<version>[0-9.]+)\.ngx")


def _run_commands(readme: str) -> list[tuple[bool, list[str]]]:
    """Each `ngixi run artifacts/bundles/...` line of README's code blocks: whether it runs in the checkout, and its
    words before any comment."""
    commands = []
    for line in readme.splitlines():
        command = line.split(" | ")[-1]
        if _RUN.match(command):
            commands.append((command.startswith(".venv/bin/"), shlex.split(command, comments=True)))
    return commands


def _problem(manifest: Manifest, words: list[str]) -> str | None:
    """Why `ngixi run` would refuse `words` (after the bundle) for this guest, by its exports' input, or None."""
    if manifest.guest.type.kind == "command" or not words or words[0].startswith("-"):
        return None
    export = manifest.export(words[0])
    if export is None:
        return f"{manifest.guest.name} has no export {words[0]}"
    if (export.input is not None) != ("--input" in words):
        return f"{manifest.guest.name}: {words[0]} takes {export.input or 'no'} input"
    return None


def test_readmes_run_commands_fit_the_guests_where_they_are_run(tmp_path: Path) -> None:
    init_project(tmp_path / "my-guests")
    project = find_project(tmp_path / "my-guests")
    new_guest(project, "hello", language="assemblyscript", kind="library", abi="core")  # README's `ngixi new hello`
    commands = _run_commands((ROOT / "README.md").read_text())
    assert len(commands) > 10
    problems = []
    for in_checkout, words in commands:
        guest, version = _RUN.match(shlex.join(words)).group("guest", "version")  # type: ignore[union-attr]
        manifests = ROOT / "manifests" if in_checkout else project.root / "manifests"
        if not (manifests / f"{guest}.toml").exists():  # an example's own guest (words.ngx of a project of yours)
            continue
        manifest = load_manifest(manifests / f"{guest}.toml")
        problem = _problem(manifest, words[3:]) if manifest.guest.version == version else f"{guest} is not {version}"
        if problem is not None:
            problems.append(f"{shlex.join(words)}: {problem}")
    assert problems == []
