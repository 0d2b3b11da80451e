"""Guest paths resolved beneath a directory descriptor, one component at a time, never leaving it.

Every step opens the next directory with `O_NOFOLLOW` relative to the one before (openat), and a
symlink is read and followed here, by the same rules, only while its target stays beneath the
root: an absolute target or a `..` above the root is `ESCAPE`, more than `MAX_SYMLINKS` links
is LOOP, a path (links expanded) deeper than `MAX_PATH_DEPTH` directories, or of more than `MAX_COMPONENTS`
names, is NAMETOOLONG, so no path can make the host hold more than that many descriptors, nor walk for long.
The last component is handed to the caller as (directory descriptor, name), for a system call that does not
follow symlinks itself (`O_NOFOLLOW`, `follow_symlinks=False`, unlinkat, renameat), so a symlink swapped in while
a path is resolved makes the call fail instead of leaving the root.
A trailing slash is never passed to the kernel (which would follow a final symlink): it is kept as
`Target.trailing_slash`, and a final symlink before it is resolved here, but for a call that makes, removes or
moves that name (`name_itself`): Linux's mkdir, rmdir, unlink, symlink, link and rename look at the link itself,
whatever it points to (`Target.slashed_link`).
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from ngixi_runtime.capabilities.context import MAX_PATH_DEPTH
from ngixi_runtime.records import NamedTuple
from ngixi_runtime.spec.abi import AbiFault, Errno

MAX_SYMLINKS = 32
# Names one path's resolution walks, its links expanded: four whole paths' worth. Each costs the host a readlink and
# an open or close, and 32 links of 4 KiB, each `x/../` again and again, made about 55,000 of them in one host call.
MAX_COMPONENTS = 8192
# What a path leaving its root answers: PERM, as Wasmtime's WASI (cap-std) answers, so that core guests and
# component guests (whose WASI is Wasmtime's) agree; the witx leaves the errno open.
ESCAPE = Errno.PERM
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Target(NamedTuple):
    """A path's last component: the descriptor of the directory holding it, and its name ("." for that one)."""

    directory: int
    name: str
    trailing_slash: bool = False
    slashed_link: bool = False  # the name is a symlink with a slash after it, left unfollowed (`name_itself`)


@contextmanager
def beneath(root_fd: int, path: str, *, follow: bool, name_itself: bool = False) -> Iterator[Target]:
    """Resolves `path` beneath `root_fd`; `follow` also follows a symlink in the last component, as a slash after
    it does unless the call acts on the `name_itself`."""
    stack = [root_fd]  # the root stays the caller's; only the directories opened on the way are closed
    try:
        yield _walk(stack, path, follow, name_itself)
    finally:
        for fd in stack[1:]:
            os.close(fd)


def _walk(stack: list[int], path: str, follow: bool, name_itself: bool) -> Target:
    pending = deque(path.split("/"))
    links = walked = 0
    while pending:
        name = pending.popleft()
        walked += 1
        if walked > MAX_COMPONENTS:
            raise AbiFault(Errno.NAMETOOLONG)
        last = not any(pending)
        trailing = last and bool(pending)
        if name == "..":
            if len(stack) == 1:
                raise AbiFault(ESCAPE)
            os.close(stack.pop())
        if name in ("", ".", ".."):
            if last:
                return Target(stack[-1], ".", trailing)
            continue
        target = link_target(stack[-1], name) if follow or trailing or not last else None
        if target is not None and trailing and name_itself:
            return Target(stack[-1], name, trailing, slashed_link=True)
        if target is not None:
            links += 1
            if links > MAX_SYMLINKS:
                raise AbiFault(Errno.LOOP)
            if target.startswith("/"):
                raise AbiFault(ESCAPE)
            pending.extendleft(reversed(target.split("/") + ([""] if trailing else [])))
            continue
        if last:
            return Target(stack[-1], name, trailing)
        if len(stack) > MAX_PATH_DEPTH:
            raise AbiFault(Errno.NAMETOOLONG)
        stack.append(os.open(name, DIRECTORY_FLAGS, dir_fd=stack[-1]))
    return Target(stack[-1], ".")


def link_target(directory: int, name: str) -> str | None:
    """What the symlink `name` in `directory` points to; None when it is no symlink (or does not exist)."""
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


def open_directory_beneath(root_fd: int, path: str) -> int:
    """A descriptor of the directory `path` beneath `root_fd`, made (with its parents) when missing."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    for count in range(1, len(parts) + 1):
        with beneath(root_fd, "/".join(parts[:count]), follow=True) as target, suppress(FileExistsError):
            os.mkdir(target.name, 0o700, dir_fd=target.directory)
    with beneath(root_fd, "/".join(parts) or ".", follow=True) as target:
        return os.open(target.name, DIRECTORY_FLAGS, dir_fd=target.directory)
