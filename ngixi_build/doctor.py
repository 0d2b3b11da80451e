"""`ngixi doctor`: what this machine lacks to build and run guests, and what to do about each."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.project import find_project
from ngixi_build.toolchains import javascript, python
from ngixi_build.toolchains.assemblyscript import node_pins, system_node, toolchain_for
from ngixi_build.toolchains.wit import wasm_tools
from ngixi_runtime.errors import InvalidInput, NgixiError


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    try:
        import wasmer  # noqa: F401
        import wasmer_compiler_cranelift  # noqa: F401
    except ImportError as error:
        return Finding(
            "python + wasmer",
            False,
            f"Python {version}: {error}; use CPython 3.10 (`make build` sets it up)",
        )
    return Finding("python + wasmer", True, f"Python {version} with wasmer and the Cranelift compiler")


def _wasm_tools() -> Finding:
    try:
        executable = wasm_tools()
    except NgixiError as error:
        return Finding("wasm-tools", False, f"{error}; only component guests need it")
    return Finding("wasm-tools", True, f"{executable} (component guests, the WIT catalog)")


def _node() -> Finding:
    pins = node_pins()
    found = system_node(pins.minimum_major)
    if found:
        return Finding("node", True, f"{found[1]} at {found[0]} (used through nodeenv --node=system)")
    return Finding(
        "node",
        True,
        f"no Node.js >= {pins.minimum_major} on PATH; the build downloads {pins.version} via nodeenv",
    )


def _project_findings(start: Path) -> list[Finding]:
    try:
        project = find_project(start)
    except InvalidInput as error:
        return [Finding("project", False, f"{error}; run ngixi doctor inside the project")]
    toolchain = toolchain_for(project.state_dir)
    dev_key = project.keys_dir / "dev.key"
    return [
        Finding(
            "assemblyscript toolchain",
            toolchain.complete,
            f"installed in {toolchain.root}"
            if toolchain.complete
            else "not installed; run `doit toolchain` (or `make build`)",
        ),
        *_component_toolchains(project.state_dir),
        Finding(
            "dev signing key",
            dev_key.exists(),
            f"{dev_key}" if dev_key.exists() else "not created yet; `doit build` creates it on first use",
        ),
    ]


def _component_toolchains(state_dir: Path) -> list[Finding]:
    """componentize-js and componentize-py: installed by the build only when a guest is in their language."""
    js, py = javascript.toolchain_for(state_dir), python.toolchain_for(state_dir)
    return [
        _toolchain_finding("javascript", javascript.pinned_version(), js.root, js.complete),
        _toolchain_finding("python", python.pinned_version(), py.root, py.complete),
    ]


def _toolchain_finding(language: str, version: str, root: Path, complete: bool) -> Finding:
    where = f"installed in {root}" if complete else f"not installed; a build installs it for a guest in {language}"
    return Finding(f"{language} toolchain", True, f"{version} {where}")


def diagnose(start: Path) -> list[Finding]:
    return [_python(), _wasm_tools(), _node(), *_project_findings(start)]
