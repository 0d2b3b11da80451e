"""Pinned toolchain installs that a build makes only when a guest needs them, kept between builds.

Each lives in `<state>/toolchains/<name>/<key>/`, where the key digests the pin files, so changing a
pin installs afresh and an unchanged one is reused. A `.complete` marker is written last; an install
that failed or was killed is removed and redone, and installs made for earlier pins are removed.

The marker holds a stamp only this user's builds can make (a keyed digest of the install's real path, the key of
it kept in the user's state directory): a project's `.ngixi/` can come with the project (a tarball, a clone),
and a toolchain in it with a plain marker ran its author's programs (a `node` of theirs) at the first build.
An install whose marker does not hold the stamp is installed afresh from the pins; so is a copy of an install this
user made (a project copied, or shipped with its `.ngixi/` and unpacked elsewhere), whose stamp names another place.

A toolchain whose path its own caches depend on (Zig's) is installed once per user instead, in a place all their
environments share (`ensure_shared_install`), stamped the same way.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import hmac
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

from ngixi_build.files import refuse_links
from ngixi_build.locking import file_lock
from ngixi_runtime.errors import InvalidInput, NgixiError, ToolchainError
from ngixi_runtime.files import make_directories, private_creation, read_input_bytes
from ngixi_runtime.trust.local_paths import unsafe_because
from ngixi_runtime.trust.project_trust import SecretUnkept, kept_secret

COMPLETE = ".complete"
_STAMP_KEY_NAME = "install-stamp.key"

log = logging.getLogger(__name__)


def pin_files(folder: str, names: tuple[str, ...]) -> dict[str, bytes]:
    """The pin files `names` of `toolchains/pins/<folder>/`."""
    pins = resources.files("ngixi_build.toolchains") / "pins" / folder
    return {name: (pins / name).read_bytes() for name in names}


def install_key(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def install_root(state_dir: Path, name: str, files: Mapping[str, bytes]) -> Path:
    """Where the install of `name` for these pin files lives (installed or not)."""
    return state_dir / "toolchains" / name / install_key(files)


def is_complete(root: Path) -> bool:
    """Whether this user's build finished the install at `root` (its marker holds this user's stamp)."""
    try:
        marker = read_input_bytes(root / COMPLETE, what="the install marker", limit=256)
    except InvalidInput:  # missing, not a regular file, too large
        return False
    return hmac.compare_digest(marker.strip(), stamp(root).encode())


def mark_complete(root: Path) -> None:
    """Writes the install's marker, last."""
    (root / COMPLETE).write_text(stamp(root) + "\n")


def stamp(root: Path) -> str:
    """This user's stamp for the install at `root`: it names the pins (the directory's name) and the place, so
    that a stamped install copied elsewhere (into another project) is not taken for this user's."""
    return user_stamp("install", os.fsencode(os.path.realpath(root)))


def user_stamp(purpose: str, data: bytes) -> str:
    """A keyed digest of `data` that only this user's builds can make: what they made for `purpose` (a
    toolchain install, an AOT artifact) is told from what came with a project."""
    return hmac.new(_stamp_key(), f"ngixi {purpose}\0".encode() + data, hashlib.sha256).hexdigest()


def _stamp_key() -> bytes:
    """The user's stamp key, or, where it cannot be kept (a read-only home, a key others could read or change),
    this process's own: what it makes is then made afresh by the next build, never taken from anyone else."""
    try:
        return _kept_stamp_key()
    except NgixiError as error:
        _warn_once(str(error))
        return _build_stamp_key()


def _build_stamp_key() -> bytes:
    """The build's own stamp key, drawn from multiprocessing's authentication key: random in the process that starts
    the build and handed to each doit worker however it is started (fork, forkserver, spawn), but to no other
    program the build runs (npm, zig, a guest's build-time code), as a variable of the environment would be."""
    authkey = multiprocessing.current_process().authkey
    return hmac.new(authkey, b"ngixi build stamp key", hashlib.sha256).digest()


def _kept_stamp_key() -> bytes:
    """The user's stamp key, made on first use beside the record of their dev keys; refused where others could
    read or change it."""
    try:
        return kept_secret(_STAMP_KEY_NAME)
    except SecretUnkept as unkept:
        raise _unkept(unkept.path, unkept.problem) from None


def _unkept(path: Path, problem: str) -> ToolchainError:
    return ToolchainError(
        f"{path}: the key that marks what your builds made {problem}; toolchains are installed and artifacts "
        "compiled afresh at every build until it can be kept (set XDG_STATE_HOME to a directory of yours that "
        "outlives builds)"
    )


@functools.cache
def _warn_once(message: str) -> None:
    log.warning("%s", message)


def ensure_install(root: Path, install: Callable[[Path], None]) -> Path:
    """Runs `install(root)` once for this root; concurrent callers wait for the first. An install this user's
    build finished is used wherever a link leads to it (its stamp names its real place). Installing is refused
    where the folders it makes, removes and empties (`<state>/toolchains/<name>/<key>`) are symbolic links: a
    project's `.ngixi/` may come with it, and a link there made the build remove the directories where it points."""
    if is_complete(root):
        return root
    refuse_links((root, root.parent, root.parent.parent), ToolchainError)
    with file_lock(root.parent / ".lock"):
        if is_complete(root):
            return root
        with private_creation():  # npm's and pip's files: under a umask of 000, anyone's to change
            start_afresh(root)
            try:
                install(root)
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            mark_complete(root)
        for other in root.parent.iterdir():
            if other.is_dir() and other != root:
                shutil.rmtree(other, ignore_errors=True)
    return root


def ensure_shared_install(root: Path, install: Callable[[Path], object]) -> Path:
    """Runs `install` once for `root`, a place all this user's environments and projects share: into a temporary
    directory beside it, renamed into place whole, so that no build sees half an install; concurrent callers wait
    for the first. Refused where another user could change it. Installs beside it (other versions, which other
    environments may use) are left alone."""
    _refuse_unsafe(root)
    try:  # not file_lock's: under a umask of 000 its directories were anyone's, where another could swap the install
        make_directories(root.parent, 0o755)
    except OSError as error:
        raise ToolchainError(
            f"{root.parent}: cannot be made: {error.strerror}; set XDG_CACHE_HOME to a directory of yours"
        ) from None
    _refuse_unsafe(root)
    if is_complete(root):
        return root
    with file_lock(root.parent / f".{root.name}.lock"):
        if is_complete(root):
            return root
        _remove_abandoned(root)
        temporary = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            install(temporary)
            remove_unfinished(root)  # first: the stamp names the real path, which a link there would change
            (temporary / COMPLETE).write_text(stamp(root) + "\n")
            os.rename(temporary, root)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return root


def _refuse_unsafe(root: Path) -> None:
    problem = unsafe_because(root)
    if problem is not None:
        raise ToolchainError(f"{root}: not used: {problem}; set XDG_CACHE_HOME to a directory of yours")


def _remove_abandoned(root: Path) -> None:
    """Removes the temporary directories of installs of `root` that were killed half way (a build holding the
    install's lock has none of its own yet): each is as large as the install, and no build would reuse it."""
    for other in root.parent.glob(f".{glob.escape(root.name)}.*"):
        if other.is_dir() and not other.is_symlink():
            shutil.rmtree(other, ignore_errors=True)


def start_afresh(root: Path) -> None:
    """Empties `root` for an install."""
    remove_unfinished(root)
    root.mkdir(parents=True)


def remove_unfinished(root: Path) -> None:
    """Removes what is at `root`, saying so when it held a finished install this user's builds did not make."""
    if os.path.lexists(root / COMPLETE):
        log.warning(
            "%s: installing afresh: its marker is not one your builds made here (made before ngixi stamped its "
            "installs, copied or moved from elsewhere, or it came with the project)",
            root,
        )
    if os.path.islink(root) or (os.path.lexists(root) and not root.is_dir()):
        root.unlink()  # a link or file of this user's (a place others could change is refused before)
    else:
        shutil.rmtree(root, ignore_errors=True)


def describe(version: str, root: Path) -> str:
    """What `ngixi doctor` says of a toolchain the build installs when a guest needs it."""
    if is_complete(root):
        return f"{version} installed in {root}"
    return f"{version} {not_installed(root)}"


def not_installed(root: Path) -> str:
    """Why the install at `root` is not used, and what installs it: a finished install this user's builds did not
    make there (a project moved, copied, or one that came with its `.ngixi/`) is installed again, not missing."""
    if os.path.lexists(root / COMPLETE):
        return (
            f"in {root} is not one your builds installed there (moved, copied or it came with the project); "
            "`doit toolchain` (or the next build) installs it again"
        )
    return f"not installed in {root}; `doit toolchain` installs it"
