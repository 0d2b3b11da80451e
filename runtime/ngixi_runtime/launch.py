"""The `ngixi` console script. Importing the command line takes a while before `cli.main` runs, and a Ctrl-C then
would end in Python's traceback: `main` ends the command as a Ctrl-C while `cli.main` starts does (exit 130, and
`ngixi run --json`'s document). It imports nothing but the command line."""

from __future__ import annotations


def main() -> int:
    try:
        from ngixi_runtime import cli
    except KeyboardInterrupt:
        return _interrupted_while_importing()
    return cli.main()


def _interrupted_while_importing() -> int:
    """Imports the command line again, deaf to a second Ctrl-C, for what it says of an interrupted start."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ngixi_runtime import cli

    return cli.interrupted_while_starting(sys.argv[1:])
