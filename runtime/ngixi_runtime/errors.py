"""One error root for the project; each subclass carries the exit code the CLI uses."""


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


def unexpected(error: Exception) -> NgixiError:
    """An exception no check turned into an NgixiError, as one: an OS error names its file."""
    if isinstance(error, OSError) and error.filename is not None:
        return InvalidInput(f"{error.filename}: {error.strerror or error}")
    return NgixiError(f"unexpected {type(error).__name__}: {error}; run with -v for the traceback and report it")


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
