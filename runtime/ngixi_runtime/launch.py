"""The `ngixi` console script. Importing the command line takes a while before `cli.main` runs, and a Ctrl-C then
would end in Python's traceback: `main` ends the command as a Ctrl-C while `cli.main` starts does (exit 130, and
`ngixi run --json`'s document). It imports nothing but the command line."""

from __future__ import annotations

import os
import sys

_STREAMS = (("stdin", os.O_RDONLY, "r"), ("stdout", os.O_WRONLY, "w"), ("stderr", os.O_WRONLY, "w"))


def main() -> int:
    _closed_streams_opened()
    try:
        from ngixi_runtime import cli
    except KeyboardInterrupt:
        return _interrupted_while_importing()
    return cli.main()


def _closed_streams_opened() -> None:
    """A standard stream the caller closed (`ngixi run B <&-`, `>&-`, a service started without them) is /dev/null:
    its input empty, what is written to it gone. Python has no `sys.stdin` (or stdout, stderr) then, which failed
    the first read or write, and the next file ngixi opened (a bundle, a state file) took the descriptor."""
    for descriptor, (name, flags, mode) in enumerate(_STREAMS):
        if getattr(sys, name) is not None or _is_open(descriptor):
            continue
        null = os.open(os.devnull, flags)
        if null != descriptor:
            os.dup2(null, descriptor)
            os.close(null)
        os.set_inheritable(descriptor, True)  # as the stream it stands for: a child started takes it
        stream = os.fdopen(descriptor, mode, closefd=False, errors="backslashreplace" if name == "stderr" else None)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _is_open(descriptor: int) -> bool:
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


def _interrupted_while_importing() -> int:
    """Imports the command line again, deaf to a second Ctrl-C, for what it says of an interrupted start."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ngixi_runtime import cli

    return cli.interrupted_while_starting(sys.argv[1:])
