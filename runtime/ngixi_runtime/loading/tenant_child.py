"""The tenant child process: `python -I -m ngixi_runtime.loading.tenant_child`, driven by its parent over pipes.

One JSON object per line. The first request opens the bundle its parent verified, from the open
file it inherits, never by path: the signature is checked again with the trust file's tables the
parent read, and the signed index must have the bytes the parent checked (its SHA-256), so the
parent's rollback and policy decisions hold for it. The child says `{"instantiating": true}`
before the guest's own code may first run, then `ok`. Each later request is a call. Guest output
never reaches this process's stdout: it is captured and sent back. How the parent starts it (a
clean room) is in `loading/tenants.py`.
"""

from __future__ import annotations

import base64
import json
import math
import resource
import sys
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Sandbox
from ngixi_runtime.errors import GuestError, NgixiError
from ngixi_runtime.loading.loader import Guest, likely_artifacts, open_guest
from ngixi_runtime.loading.tenants import CallFailed, CallResult, empty_result, measure
from ngixi_runtime.spec.wit_json import from_wire
from ngixi_runtime.trust.signatures import trust_from_table

# Room for the Python heap beside the guest's own memory under RLIMIT_AS.
_HEAP_HEADROOM_BYTES = 256 * 1024 * 1024
_PAGE_BYTES = 65536


def _virtual_memory_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _limit_memory(guest: Guest) -> None:
    """Caps address space at what is mapped now plus the guest's allowance and some heap.

    Wasmer reserves its linear-memory address range (several GiB) at instantiation, so the cap
    is set after it: from here on only the guest's permitted growth and Python's heap fit.
    """
    if not Path("/proc/self/statm").exists():
        return
    allowance = guest.manifest.limits.memory_pages * _PAGE_BYTES + _HEAP_HEADROOM_BYTES
    limit = _virtual_memory_bytes() + allowance
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _limit_cpu(timeout_ms: int) -> None:
    """Lets this call use at most its timeout in CPU time on top of what was used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + timeout_ms / 1000) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _send(stream: IO[bytes], message: dict[str, Any], payload: bytes = b"") -> None:
    stream.write(json.dumps(message).encode() + b"\n")
    stream.write(payload)
    stream.flush()


def _send_result(stream: IO[bytes], result: CallResult, **message: Any) -> None:
    """A call's reply: its result, the output (raw, after the line, its size in the line) apart."""
    output_size = None if result.output is None else len(result.output)
    document = replace(result, output=None).to_json()
    _send(stream, {**message, "result": document, "output_size": output_size}, result.output or b"")


def _open(request: dict[str, Any], replies: IO[bytes]) -> Guest:
    checked = request["bundle"]
    bundle = read_bundle(
        Path(checked["source"]),
        trust_from_table(request["trust"]["table"], source=request["trust"]["source"]),
        defer_members=True,
        prefetch=likely_artifacts(request.get("engine")),
        descriptor=checked["descriptor"],
        index_sha256=checked["index_sha256"],
    )
    sandbox = Sandbox.from_json(request["sandbox"]) if request.get("sandbox") else None
    return open_guest(
        bundle,
        args=request.get("args", ()),
        env=request.get("env", {}),
        stdin=base64.b64decode(request.get("stdin", "")),
        sandbox=sandbox,
        engine=request.get("engine"),
        cpu_capped=True,  # serve() caps every call's CPU time
        on_instantiate=lambda: _send(replies, {"instantiating": True}),
    )


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    try:
        guest = _open(json.loads(requests.readline()), replies)
    except NgixiError as error:
        _send(replies, {"ok": False, "error": str(error), "exit_code": error.exit_code})
        return
    _send(replies, {"ok": True, "origin": guest.origin, "compiled": guest.compiled})
    _limit_memory(guest)
    for line in requests:
        request = json.loads(line)
        _limit_cpu(guest.manifest.limits.timeout_ms)
        try:
            size = request.get("input_size")
            data = None if size is None else requests.read(size)
            result = measure(guest, request["export"], from_wire(request["args"]), data)
        except CallFailed as failure:
            _send_result(replies, failure.result, ok=False, error=str(failure))
        except NgixiError as error:
            outcome = error.outcome if isinstance(error, GuestError) else "refused"
            empty = empty_result(outcome).to_json()
            _send(replies, {"ok": False, "error": str(error), "exit_code": error.exit_code, "result": empty})
        else:
            _send_result(replies, result, ok=True)


def main() -> int:
    """Serves the parent on descriptors 0 and 1 (where a fork moved its pipes); the exit status.

    New streams rather than sys.stdin's and sys.stdout's, which may hold what the process it was forked from
    read ahead or left unwritten.
    """
    with open(0, "rb", closefd=False) as requests, open(1, "wb", closefd=False) as replies:
        serve(requests, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
