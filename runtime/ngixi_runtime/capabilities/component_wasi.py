"""WASI for component guests: which WASI preview 2 imports each capability grants, and what WASI sees.

A component guest's WASI preview 1 imports are adapted to WASI preview 2 at build time (the pinned
adapter). Wasmtime's WASI implementation serves them (docs/components.md says why), set up here
from the manifest alone: the caller's args and env, the fs preopens resolved and checked under the
tenant's sandbox exactly as for core guests, stdout and stderr captured within the same quota, an
empty stdin and no network.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ngixi_runtime.capabilities.core_host import HostContext, capture_stdio
from ngixi_runtime.capabilities.fs import Mount
from ngixi_runtime.errors import GuestError
from ngixi_runtime.guest.manifest import Manifest

BASELINE = "baseline"
_STDIO_OR_FS = ("stdio", "fs")
_WASI_NAME = re.compile(r"^(wasi:[a-z][a-z-]*/[a-z][a-z-]*)@0\.2\.\d+$")


def _descriptor(*methods: str) -> list[str]:
    return [f"[method]descriptor.{m}" for m in methods]


# The WASI preview 2 functions the adapter imports for the registry's WASI preview 1 functions, and
# the capabilities that grant each (any one suffices), found by adapting a module per capability;
# tests/test_component_wasi.py proves every registry function is covered. As `fd_write` for core
# guests, the functions behind stdout are also the adapter's way to files: they reach a file only
# through a preopen, and only [capabilities.fs] makes preopens. The adapter reports its own faults
# on stderr, so every adapted component imports that.
WASI_FUNCTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "wasi:cli/exit": {"exit": (BASELINE,)},
    "wasi:cli/stderr": {"get-stderr": (BASELINE,)},
    "wasi:io/error": {},
    "wasi:io/streams": {
        "[method]output-stream.blocking-write-and-flush": (BASELINE,),
        **dict.fromkeys(
            [
                "[method]output-stream.blocking-flush",
                "[method]output-stream.check-write",
                "[method]output-stream.write",
            ],
            _STDIO_OR_FS,
        ),
        **dict.fromkeys(["[method]input-stream.read", "[method]input-stream.blocking-read"], ("fs",)),
    },
    "wasi:cli/stdin": {"get-stdin": _STDIO_OR_FS},
    "wasi:cli/stdout": {"get-stdout": _STDIO_OR_FS},
    "wasi:cli/terminal-input": {},
    "wasi:cli/terminal-output": {},
    **{f"wasi:cli/terminal-{s}": {f"get-terminal-{s}": _STDIO_OR_FS} for s in ("stdin", "stdout", "stderr")},
    "wasi:cli/environment": {"get-arguments": ("args",), "get-environment": ("env",)},
    **{f"wasi:clocks/{c}": {"now": ("clock",), "resolution": ("clock",)} for c in ("wall-clock", "monotonic-clock")},
    "wasi:random/random": {"get-random-bytes": ("random",)},
    "wasi:filesystem/preopens": {"get-directories": _STDIO_OR_FS},
    "wasi:filesystem/types": {
        "filesystem-error-code": _STDIO_OR_FS,
        **dict.fromkeys(
            _descriptor("append-via-stream", "get-flags", "get-type", "stat", "write-via-stream"), _STDIO_OR_FS
        ),
        **dict.fromkeys(
            [
                *_descriptor(
                    "create-directory-at",
                    "metadata-hash",
                    "metadata-hash-at",
                    "open-at",
                    "read",
                    "read-directory",
                    "read-via-stream",
                    "remove-directory-at",
                    "rename-at",
                    "set-size",
                    "stat-at",
                    "sync",
                    "sync-data",
                    "unlink-file-at",
                    "write",
                ),
                "[method]directory-entry-stream.read-directory-entry",
            ],
            ("fs",),
        ),
    },
}


def wasi_interface(name: str) -> str | None:
    """`wasi:cli/stdout@0.2.12` → "wasi:cli/stdout"; None for anything that is not WASI preview 2."""
    match = _WASI_NAME.match(name)
    return match.group(1) if match else None


def wasi_import_problems(manifest: Manifest, name: str, functions: frozenset[str]) -> list[str]:
    """What the manifest does not grant of the WASI functions a component imports from `name`."""
    interface = wasi_interface(name)
    known = WASI_FUNCTIONS.get(interface or "")
    if known is None:
        return [f"capabilities: the component imports {name}, which no Ngixi capability provides"]
    problems = [
        f"capabilities: the component imports {f} from {name}, which no Ngixi capability provides"
        for f in sorted(functions - known.keys())
    ]
    needs: dict[tuple[str, ...], list[str]] = {}
    for function in sorted(functions & known.keys()):
        capabilities = known[function]
        if BASELINE not in capabilities and not manifest.grants & set(capabilities):
            needs.setdefault(capabilities, []).append(function)
    for capabilities, names in needs.items():
        tables = " or ".join(f"[capabilities.{c}]" for c in capabilities)
        problems.append(
            f"capabilities.{capabilities[0]}: the component imports {', '.join(names)} from {name}, "
            f"which needs {tables}; grant it in the manifest or remove the import"
        )
    return problems


class StdioSink:
    """Where a component's WASI stdout and stderr go: the context's captured output, within its quota.

    Wasmtime calls a writer from inside the guest and cannot take an exception, so a refused write
    is an error to the guest (WASI then closes that stream for good) and the refusal is raised by
    `raise_refusal` once the call is back in the host.
    """

    def __init__(self, context: HostContext) -> None:
        self._context = context
        self._refusal: GuestError | None = None

    def writer(self, fd: int) -> Callable[[bytes], int]:
        """The writer of stdout (1) or stderr (2): bytes taken, or minus an errno."""

        def write(data: bytes) -> int:
            if not self._context.stdio:
                return -errno.EBADF  # as for a core guest without [capabilities.stdio]
            self._context.output.host_calls["stdio"] += 1
            try:
                capture_stdio(self._context, fd, data)
            except GuestError as refusal:
                self._refusal = self._refusal or refusal
                return -errno.EDQUOT
            return len(data)

        return write

    def raise_refusal(self) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            raise refusal


@dataclass(frozen=True)
class WasiSetup:
    """All a component guest's WASI sees; nothing else of the host (its env, stdin, network) reaches it."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    stdio: StdioSink = field(compare=False)


def imports_wasi(imports: Iterable[str]) -> bool:
    return any(wasi_interface(name) for name in imports)


def wasi_setup(context: HostContext) -> WasiSetup:
    """WASI as a core guest's host functions would give it: argv is the guest's name, then the caller's args."""
    mounts = tuple(context.files.mounts) if context.files is not None else ()
    return WasiSetup(
        args=(context.guest, *context.args),
        env=tuple(sorted(context.env.items())),
        mounts=mounts,
        stdio=StdioSink(context),
    )
