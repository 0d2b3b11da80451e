"""The build's walks of a project's files: regular files only (a FIFO or device is never listed,
opened or waited on)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ngixi_runtime.errors import NgixiError

# Editors' swap, backup, lock and probe files and the like (vim, emacs, JetBrains, kate, gedit, LibreOffice, macOS's
# Finder): written and removed while one edits, never a source a compile is pointed at.
_NOISE_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", ".bak", ".orig", ".kate-swp", "___jb_tmp___", "___jb_old___")
_NOISE_PREFIXES = ("#", ".#", ".~lock.", ".goutputstream-")
_NOISE_NAMES = {"4913", ".DS_Store"}


def is_editor_noise(name: str) -> bool:
    """Whether a file's name is an editor's scratch file's: no input of a build, no change to rebuild for."""
    return name.endswith(_NOISE_SUFFIXES) or name.startswith(_NOISE_PREFIXES) or name in _NOISE_NAMES


def regular_files(directory: Path, *, enter: Callable[[str], bool] = lambda _name: True) -> list[Path]:
    """The regular files under `directory` (a symlink to one counts), sorted; directories whose name `enter`
    refuses are skipped. A FIFO, socket, device, dangling symlink or symlinked directory is never listed or opened.
    """
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if enter(name)]
        found += [path for path in (Path(root) / name for name in files) if path.is_file()]
    return sorted(found)


def link_out_of(directory: Path, *, ignored: Callable[[str], bool] = lambda _name: False) -> tuple[Path, Path] | None:
    """A symbolic link under `directory` whose target is not under it, with that target, or None: a copy that
    follows links (or a bundler) would otherwise take any file of the build machine into a guest. Names
    `ignored` (what the copy leaves out) are passed over, and so is all under such a directory."""
    inside = Path(os.path.realpath(directory))
    for root, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if not ignored(name)]
        for path in (Path(root) / name for name in (*dirs, *files) if not ignored(name)):
            target = Path(os.path.realpath(path))
            if path.is_symlink() and target != inside and inside not in target.parents:
                return path, target
    return None


def refuse_links(folders: Iterable[Path], error: type[NgixiError]) -> None:
    """Refuses (`error`) a symbolic link at any of `folders`, where the build makes, writes by fixed names, empties
    or removes folders of its own: a project's `.ngixi/` may come with it, and the build would act where a link
    there points (remove the user's other folders, write over their files)."""
    link = next((folder for folder in folders if folder.is_symlink()), None)
    if link is not None:
        raise error(
            f"{link}: is a symbolic link, where the build makes a folder of its own (did it come with the "
            "project?): remove it and build again"
        )
