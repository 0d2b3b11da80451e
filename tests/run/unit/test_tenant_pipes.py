"""A tenant's pipes are closed exactly once whatever fails on the way to its ForkedProcess."""

from __future__ import annotations

import errno
import os
from typing import IO

import pytest

from ngixi_runtime.loading import zygote


def test_a_failed_hand_over_closes_each_descriptor_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`forked` closed the child's ends, then its second open() failed and `tenant_pipes` closed them again: by
    then another thread's open may have the number, and its file was closed under it."""
    others: list[int] = []

    def failing_open(descriptor: int, mode: str) -> IO[bytes]:
        file = open(descriptor, mode)  # noqa: SIM115 - the ForkedProcess's, or closed as open() does on a failure
        if mode == "rb":
            file.close()
            others.append(os.open(os.devnull, os.O_RDONLY))  # another thread's open takes a number just freed
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return file

    monkeypatch.setattr(zygote, "open", failing_open, raising=False)
    with pytest.raises(OSError), zygote.tenant_pipes(2) as made:
        requests, replies = made.pipes
        zygote.forked(os.getpid(), made, requests, replies, status=None, pidfd=None)
    os.fstat(others[0])  # still open
    os.close(others[0])
    for descriptor in {*requests, *replies} - {others[0]}:
        with pytest.raises(OSError):
            os.fstat(descriptor)


def test_a_failed_block_closes_the_ends_not_yet_handed_over() -> None:
    with pytest.raises(RuntimeError), zygote.tenant_pipes(3) as made:
        (read, write), *rest = made.pipes
        made.close(write)
        kept = made.release(read)
        raise RuntimeError
    os.fstat(kept)
    os.close(kept)
    for descriptor in (end for pipe in rest for end in pipe):
        with pytest.raises(OSError):
            os.fstat(descriptor)
