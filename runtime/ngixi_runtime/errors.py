"""One error root for the project; each subclass carries the exit code the CLI uses."""

import errno
import os


class NgixiError(Exception):
    """A failure with a message meant for the user; never shown with a traceback. `kind` names its class in
    `ngixi run --json`'s failure document, as `exit_code` does for a shell."""

    exit_code = 1
    kind = "error"


class InvalidInput(NgixiError):
    """A file or argument the user gave is wrong; the message names it and what to do."""

    exit_code = 2
    kind = "input"


class VerificationError(NgixiError):
    """A bundle was refused: bad signature, untrusted key, damaged or unexpected member."""

    exit_code = 3
    kind = "verification"


class ToolchainError(NgixiError):
    """An external tool (node, npm, asc) is missing or failed."""

    exit_code = 4
    kind = "toolchain"


class GuestError(NgixiError):
    """The guest trapped, exited with an error or broke a limit while running.

    `outcome` says how the call ended (one of `OUTCOMES`): trap, quota, timeout, fuel, cpu, memory or crash; with
    the call data ABI (capabilities/data.py) also range (a range outside guest memory) or output (not the declared
    kind); a call refused before the guest ran is refused, and one that succeeded ok. A
    trap's `frames` are the engine's (function index, module offset) pairs, innermost first, where it knows them;
    `named_frames` (function name, offset) as the engine names them (a component's backtrace: offsets in the
    component; a core module's trap, for a load that no longer has the module's bytes).
    """

    exit_code = 5
    kind = "guest"

    def __init__(
        self,
        message: str,
        *,
        outcome: str = "trap",
        frames: tuple[tuple[int, int], ...] = (),
        named_frames: tuple[tuple[str, int], ...] = (),
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.frames = frames
        self.named_frames = named_frames


class PolicyError(NgixiError):
    """A bundle asks for more than its limits or the operator's policy allow."""

    exit_code = 6
    kind = "policy"


# What a user can do about an OS error no check foresaw, by its errno.
_OS_ERROR_ADVICE = {
    errno.EACCES: "check its permissions and owner, or choose a place you may use",
    errno.EPERM: "check its permissions and owner, or choose a place you may use",
    errno.ENOSPC: "free space on its filesystem and run the command again",
    errno.EDQUOT: "free space within your disk quota and run the command again",
    errno.EFBIG: "it would pass a file size limit (ulimit -f, or its filesystem's): raise it or write elsewhere",
    errno.EROFS: "its filesystem is read-only: choose a writable place",
    errno.ENAMETOOLONG: "use a shorter name or path",
    errno.ELOOP: "a symbolic link on its path leads back to itself: fix or remove it",
    errno.ENOENT: "check that it and the folders above it exist",
    errno.ENOTDIR: "a part of its path is a file, not a folder",
    errno.EISDIR: "it is a folder: name a file",
    errno.EMFILE: "too many files are open in this process: raise the limit (ulimit -n)",
    errno.ENFILE: "too many files are open on this machine: close some and run the command again",
    errno.EIO: "its device reported an input/output error: check the disk",
    errno.EBUSY: "another process is using it: try again when it is done",
    errno.ETXTBSY: "another process is using it: try again when it is done",
}


def unexpected(error: Exception) -> NgixiError:
    """An exception no check turned into an NgixiError, as one: an OS error names its file and what to do."""
    if isinstance(error, OSError) and (error.filename is not None or error.errno in _OS_ERROR_ADVICE):
        return InvalidInput(_os_error_line(error))
    return NgixiError(f"unexpected {type(error).__name__}: {error}; run with -v for the traceback and report it")


def _os_error_line(error: OSError) -> str:
    """`error` in one line: the files it names, the system's words and the advice for its errno."""
    names = [os.fsdecode(name) for name in (error.filename, error.filename2) if name is not None]
    words = error.strerror or str(error)
    line = f"{' -> '.join(names)}: {words}" if names else words
    advice = _OS_ERROR_ADVICE.get(error.errno or 0)
    return f"{line}; {advice}" if advice else line


OUTCOMES = frozenset(("ok", "refused", "trap", "quota", "timeout", "fuel", "cpu", "memory", "crash", "range", "output"))
_REPORTED: tuple[type[NgixiError], ...] = (
    NgixiError,
    InvalidInput,
    VerificationError,
    ToolchainError,
    GuestError,
    PolicyError,
)
# The exit codes an error reported across a process boundary may carry.
ERROR_EXIT_CODES = frozenset(cls.exit_code for cls in _REPORTED)


def error_with_exit_code(message: str, exit_code: int) -> NgixiError:
    """Rebuilds an error reported across a process boundary as the class its exit code stands for."""
    cls = next((c for c in _REPORTED if c.exit_code == exit_code), NgixiError)
    return cls(message)


class ArtifactRefused(NgixiError):
    """The engine refused a verified artifact as incompatible (its version, settings or this CPU).

    Raised before any of the artifact's code runs, so the loader may compile the .wasm instead.
    """


def counted(count: int, noun: str) -> str:
    """`count` and `noun`, plural unless one: "1 argument", "2 arguments", "0 arguments"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
