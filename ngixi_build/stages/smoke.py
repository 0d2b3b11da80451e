"""The smoke-test harness: loads a built bundle through the loader and runs its `[[smoke]]` calls.

Each bundle runs in a fresh sandbox directory. A guest granted `http` gets a real HTTP server on 127.0.0.1, and every
origin its allowlist names by a loopback, private, link-local or other non-public address is routed there (the
operator's `http_routes`), so a manifest can name a fixed port while the server takes any free one, and no smoke call
reaches the build host's own network.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import Address, GuestExit, Sandbox
from ngixi_runtime.capabilities.http_client import HttpOptions, address_kind
from ngixi_runtime.engines.base import AUTO, ENGINE_VARIABLE, installed_engines, interrupts
from ngixi_runtime.errors import NgixiError, error_with_exit_code, unexpected
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.guest.smoke import SmokeCall
from ngixi_runtime.loading.loader import Guest, open_guest, verified_manifest
from ngixi_runtime.loading.tenants import CallFailed, CallResult, measure
from ngixi_runtime.printable import printable
from ngixi_runtime.spec.wit_json import shown as shown_value
from ngixi_runtime.spec.wit_json import to_json
from ngixi_runtime.trust.project_trust import chosen_trust

GREETING = b"hello from the smoke server\n"
SMOKE_TIMEOUT_SECONDS = 60.0  # for a bundle's smoke calls, all of them, in their own process (smoke_in_child)


class SmokeFailure(NgixiError):
    """A smoke call returned or printed something other than its manifest expects."""


class _Handler(BaseHTTPRequestHandler):
    """/hello, /redirect?to=URL, /loop (redirects to itself), /bytes?n=N, /slow?ms=N; POST echoes its body.

    What a guest asks for costs the server no more than the guest takes: /bytes is sent in chunks as it is read, and
    /slow waits only while its client does. The guest is the project's (maybe someone else's), its URL its own:
    `/bytes?n=18000000000` made 18 GB in the build's process at once, whatever the guest's max_response_bytes, and
    each `/slow?ms=…` a guest left at its timeout_ms = 1 kept a thread asleep in `ngixi watch --smoke`."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/hello":
            self._send(200, GREETING)
        elif url.path == "/redirect":
            self._send(302, b"", location=query.get("to", "/hello"))
        elif url.path == "/loop":
            self._send(302, b"", location="/loop")
        elif url.path in ("/bytes", "/slow"):
            self._counted(url.path, query.get("n" if url.path == "/bytes" else "ms", "0"))
        else:
            self._send(404, b"not found\n")

    def _counted(self, path: str, number: str) -> None:
        if not (number.isascii() and number.isdecimal() and len(number) <= _LONGEST_NUMBER):
            self._send(400, b"give a whole number\n")
        elif path == "/bytes":
            self._send_bytes(int(number))
        else:
            self._wait_for_client(int(number) / 1000)
            self._send(200, b"late\n")

    def do_POST(self) -> None:
        self._send(200, self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _send(self, status: int, body: bytes, location: str | None = None) -> None:
        self._send_head(status, len(body), location)
        self.wfile.write(body)

    def _send_head(self, status: int, length: int, location: str | None = None) -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_bytes(self, count: int) -> None:
        self._send_head(200, count)
        chunk = b"x" * min(count, _CHUNK)
        while count > 0:
            self.wfile.write(chunk[:count])
            count -= len(chunk)

    def _wait_for_client(self, seconds: float) -> None:
        """Waits `seconds`, or until the client hangs up (or sends more): no longer than anyone waits for the answer."""
        select.select([self.connection], [], [], min(seconds, _LONGEST_WAIT_SECONDS))

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the harness reports results, not requests."""


_CHUNK = 65536
_LONGEST_NUMBER = 18  # digits: an int64, which select's timeout and int() from text take
_LONGEST_WAIT_SECONDS = 86400.0  # longer than any fetch waits, within what select takes


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up early is expected (a guest over its response size or time limit)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def http_server() -> Iterator[Address]:
    """A real HTTP server on 127.0.0.1 and a free port, for smoke calls and tests."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False  # a /slow request still sleeping must not hold up the shutdown
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="ngixi-smoke-http", daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _local_routes(manifest: Manifest, server: Address) -> dict[Address, Address]:
    """Where the origins the allowlist names by a non-public address go: to the smoke server. Only such an entry lets a
    guest reach such an address, and the guest may be someone else's: `http://169.254.169.254` reached the build host's
    cloud metadata (its credentials), `http://10.0.0.1` its network, where `ngixi build` ran."""
    options = manifest.options(HttpOptions)
    allow = options.allow if options else ()
    return {(o.host, o.port): server for o in allow if o.address is not None and address_kind(o.address) is not None}


def smoke_bundle(*, bundle_path: Path, trust_file: Path, label: str, scratch: Path | None = None) -> int:
    """Runs every smoke call of a bundle; returns how many ran, or raises with every failure.

    Library calls share one instance; a command's `_start`, and a call with its own env or stdin, get one each.
    `trust_file` is read as a project's dev trust file that `ngixi run` finds (`project_trust.chosen_trust`): it may
    have come with the project, so its keys' native_code counts only for the dev keys this user's builds made.
    The calls' sandbox is a temporary folder in `scratch`, else in the system's temporary folder.
    """
    bundle = read_bundle(bundle_path, chosen_trust(trust_file, found=True))
    manifest = verified_manifest(bundle)
    engine = _smoke_engine()
    failures = []
    with ExitStack() as stack:
        sandbox_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ngixi-smoke-", dir=scratch))
        sandbox = Sandbox.under(Path(sandbox_dir))
        if manifest.options(HttpOptions) is not None:
            routes = _local_routes(manifest, stack.enter_context(http_server()))
            sandbox = sandbox._replace(http_routes=routes)
        shared: Guest | None = None
        for index, call in enumerate(manifest.smoke):
            if call.own_instance:
                opened = open_guest(
                    bundle, sandbox=sandbox, args=call.argv, env=call.env, stdin=call.stdin, engine=engine
                )
                with opened as guest:
                    problem = _check(guest, call)
            else:
                shared = shared or stack.enter_context(open_guest(bundle, sandbox=sandbox, engine=engine))
                problem = _check(shared, call)
            if problem is not None:
                failures.append(printable(f"{label}: smoke[{index}]: {problem}"))
    if failures:
        raise SmokeFailure("\n".join(failures))
    return len(manifest.smoke)


def smoke_in_child(bundle_path: Path, *, trust_file: Path, label: str) -> int:
    """`smoke_bundle` in a fresh process, stopped if it has no result within SMOKE_TIMEOUT_SECONDS: the build or the
    watcher goes on whatever the guest (maybe someone else's) does, a smoke call spinning on an engine that cannot
    stop it in a process (Wasmer, when `$NGIXI_ENGINE` names it), a compile that never ends, a crash. Its failure is
    raised as the error it was. The calls' sandbox is made in a folder this process removes: the child, killed at
    the time limit, cannot."""
    with tempfile.TemporaryDirectory(prefix="ngixi-smoke-") as scratch:
        count, failure, exit_code = _in_a_child(bundle_path, trust_file, label, Path(scratch))
    if failure is not None:
        raise error_with_exit_code(failure, exit_code)
    return count


_Outcome = tuple[int, str | None, int]  # how many calls ran; else the failure and its exit code


def _in_a_child(bundle_path: Path, trust_file: Path, label: str, scratch: Path) -> _Outcome:
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    receiver, sender = context.Pipe(duplex=False)
    arguments = (bundle_path, trust_file, label, scratch, sender)
    child = context.Process(target=_smoke_and_report, args=arguments, daemon=True)
    child.start()
    sender.close()
    try:
        if not multiprocessing.connection.wait([receiver], timeout=SMOKE_TIMEOUT_SECONDS):
            return 0, f"{label}: its smoke calls gave no result within {SMOKE_TIMEOUT_SECONDS:.0f} s", 1
        outcome: _Outcome = receiver.recv()
        return outcome
    except EOFError:
        child.join()
        return 0, f"{label}: the process of its smoke calls died (exit status {child.exitcode})", 1
    finally:
        child.kill()
        child.join()


def _smoke_and_report(
    bundle_path: Path, trust_file: Path, label: str, scratch: Path, report: multiprocessing.connection.Connection
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C: the parent stops this process
    try:
        count = smoke_bundle(bundle_path=bundle_path, trust_file=trust_file, label=label, scratch=scratch)
        report.send((count, None, 0))
    except (NgixiError, OSError) as error:
        failure = error if isinstance(error, NgixiError) else unexpected(error)
        report.send((0, str(failure), failure.exit_code))


def _smoke_engine() -> str | None:
    """The engine `$NGIXI_ENGINE` names, else (auto) the first installed that stops a guest at its limits.timeout_ms
    in this process. The guest may be someone else's: on Wasmer, the first installed, a smoke call that spins held
    the build for ever."""
    if os.environ.get(ENGINE_VARIABLE, AUTO) != AUTO:
        return None
    return next((name for name in installed_engines() if interrupts(name)), None)


def _check(guest: Guest, call: SmokeCall) -> str | None:
    """What went wrong with one smoke call, or None."""
    shown = _shown(call)
    result: CallResult | None = None
    error: str | None = None
    try:
        result = measure(guest, call.call, call.args, call.input)
    except CallFailed as failure:
        result, error = failure.result, str(failure)
    except NgixiError as refusal:  # the input was refused: nothing ran
        error = str(refusal)
    except GuestExit as exit_:
        error = f"exited with code {exit_.code}"
    if call.expect_error is not None:
        return _expected_error(shown, call.expect_error, error) or _stdout_problem(shown, call, result)
    if error is not None or result is None:
        return f"{shown} failed: {error}"
    return _result_problem(shown, call, result) or _stdout_problem(shown, call, result)


def _expected_error(shown: str, expected: str, error: str | None) -> str | None:
    if error is None:
        return f"{shown} succeeded, expected an error containing {expected!r}"
    if expected not in error:
        return f"{shown} failed with {error!r}, expected an error containing {expected!r}"
    return None


def _result_problem(shown: str, call: SmokeCall, result: CallResult) -> str | None:
    if call.is_command:
        code, expected = result.exit_code or 0, call.expect_exit or 0
        return None if code == expected else f"{shown} exited with code {code}, expected {expected}"
    if call.expect is not None and to_json(list(result.values)) != to_json(list(call.expect)):
        return f"{shown} returned {_values(result.values)}, expected {_values(call.expect)}"
    if call.expect_output is not None and result.output != call.expect_output:
        return f"{shown} gave {_data(result.output)}, expected {_data(call.expect_output)}"
    if call.expects_json and result.data != call.expect_json:
        given, wanted = (json.dumps(value, ensure_ascii=False) for value in (result.data, call.expect_json))
        return f"{shown} gave {given}, expected {wanted}"
    return None


def _stdout_problem(shown: str, call: SmokeCall, result: CallResult | None) -> str | None:
    stdout = result.stdout.decode("utf-8", errors="replace") if result is not None else ""
    if call.stdout is not None and stdout != call.stdout:
        return f"{shown} printed {stdout!r}, expected {call.stdout!r}"
    return None


def _shown(call: SmokeCall) -> str:
    if call.is_command:
        return f"_start({' '.join(call.argv)})" if call.argv else "_start"
    arguments = [shown_value(a) for a in call.args]
    if call.input is not None:
        arguments.append(f"input of {len(call.input)} bytes")
    return f"{call.call}({', '.join(arguments)})"


def _data(data: bytes | None) -> str:
    if data is None:
        return "no output"
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"base64 {base64.b64encode(data).decode()}"


def _values(values: tuple[Any, ...]) -> str:
    return ", ".join(shown_value(v) for v in values) or "nothing"
