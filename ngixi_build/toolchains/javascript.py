"""The pinned JavaScript toolchain: npm `@bytecodealliance/componentize-js` (SpiderMonkey inside),
which makes a JavaScript module a component of a WIT world.

Installed by `npm ci` from `pins/javascript/package-lock.json` (every package's integrity pinned)
into `<state>/toolchains/javascript/<key>/`, with the Node.js of the AssemblyScript toolchain; only
when a guest is in JavaScript. `js/componentize_guest.mjs` drives it: it parses the source first, so
that a syntax error is reported as `file:line:column` (componentize-js says only how many there were), and
bundles a guest that has npm dependencies with the pinned rolldown (componentize-js resolves no package names).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.proc import run, tool_limits
from ngixi_build.toolchains import installs
from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.toolchains.assemblyscript import toolchain_for as node_toolchain_for
from ngixi_runtime.errors import NgixiError

NAME = "javascript"
PIN_FILES = ("package.json", "package-lock.json")
DRIVER = Path(__file__).parent / "js" / "componentize_guest.mjs"
# The WASI features componentize-js can leave out. All are, so the component imports the host's interfaces
# only, but stdio for a guest granted it: console.log and console.error then write to stdout and stderr.
WASI_FEATURES = ("stdio", "random", "clocks", "http", "fetch-event")
# The grants that keep each feature: granted `random`, crypto.getRandomValues and Math.random draw from the host's
# randomness at each call; without it they would give what was drawn while the component was built, at every run,
# so the exports wrapper has them throw once the guest's module has run. (A draw while the module runs, at build, fails
# the build either way: Wizer cannot call wasi:random while it snapshots.) Granted `clock` and `stdio` (the clocks
# feature imports wasi:io's input-stream reads too), setTimeout and setInterval wait on the host's monotonic clock;
# without them the engine trapped without a word when a timer was due, so the wrapper has them throw.
FEATURE_GRANTS = {"stdio": {"stdio"}, "random": {"random"}, "clocks": {"clock", "stdio"}}


class JavaScriptBuildError(NgixiError):
    """componentize-js refused the guest; the message carries its diagnostics."""


@dataclass(frozen=True)
class JavaScriptToolchain:
    root: Path
    node: Path


def pins() -> dict[str, bytes]:
    return installs.pin_files(NAME, PIN_FILES)


def pinned_version() -> str:
    """`@bytecodealliance/componentize-js 0.23.0`, from the pinned package.json."""
    dependencies = json.loads(pins()["package.json"])["dependencies"]
    return ", ".join(f"{name} {version}" for name, version in sorted(dependencies.items()))


def toolchain_for(state_dir: Path) -> JavaScriptToolchain:
    """Where the toolchain for the current pins lives (installed or not)."""
    return JavaScriptToolchain(installs.install_root(state_dir, NAME, pins()), node_toolchain_for(state_dir).node)


def ensure_javascript_toolchain(*, state_dir: Path) -> JavaScriptToolchain:
    """Installs the pinned componentize-js once (and the Node.js it runs on)."""
    node_toolchain = ensure_toolchain(state_dir=state_dir)
    toolchain = toolchain_for(state_dir)

    def install(root: Path) -> None:
        for name, data in pins().items():
            (root / name).write_bytes(data)
        command, env = node_toolchain.npm(root, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
        run(
            command,
            what="npm ci (componentize-js)",
            cwd=root,
            env=env,
            timeout=1800,
        )

    installs.ensure_install(toolchain.root, install)
    return toolchain


def disabled_features(grants: Collection[str]) -> list[str]:
    """The WASI features a guest with these grants is built without."""
    return [feature for feature in WASI_FEATURES if not FEATURE_GRANTS.get(feature, {""}) <= set(grants)]


def build_component(
    toolchain: JavaScriptToolchain,
    *,
    entry: Path,
    world_dir: Path,
    world: str,
    out_path: Path,
    cwd: Path,
    grants: Collection[str],
    exports_wrapper: Path | None = None,
    result_exports: Collection[str] = (),
    bundle: Path | None = None,
    guest_dir: Path | None = None,
) -> None:
    """Makes `out_path` the component of `entry` for `world`; a failure raises its diagnostics.

    `exports_wrapper` (under `cwd`): where the driver writes, for the build only, the module that hands each export
    its arguments as values of the guest's realm; granted log, logs what an export throws before the call traps, but
    the err of one of `result_exports` (those returning a WIT result); not granted random, has Math.random,
    crypto.getRandomValues and crypto.randomUUID throw once the guest's module has run, and not granted clock and
    stdio, setTimeout and setInterval. `bundle` (under `cwd`, for a
    guest with npm dependencies): where it bundles the guest with them, for the build only, from files under
    `guest_dir` alone."""
    disabled = ",".join(disabled_features(grants))
    made = {"wrapper": exports_wrapper, "bundle": bundle}
    options = [f"--{option}={path}" for option, path in {**made, "guest": guest_dir}.items() if path is not None]
    if exports_wrapper is not None and "log" in grants:
        options.append("--report")
        if result_exports:
            options.append(f"--results={','.join(result_exports)}")
    try:
        _remove_build_files(cwd, made.values())  # the driver creates them anew, never through a link left there
        run(
            [toolchain.node, DRIVER, toolchain.root, entry, world_dir, world, out_path, disabled, *options],
            what=f"componentize-js {entry}",
            cwd=cwd,
            error=JavaScriptBuildError,
            limits=tool_limits(),
        )
    finally:  # the driver removes them too, but not when it is killed (Ctrl-C, the timeout)
        _remove_build_files(cwd, made.values())


def _remove_build_files(cwd: Path, paths: Iterable[Path | None]) -> None:
    for path in paths:
        if path is not None:
            (cwd / path).unlink(missing_ok=True)
