"""`ngixi doctor`: what this machine lacks to build and run guests, and what to do about each."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.guests import GuestBuild, read_guests
from ngixi_build.languages.base import Language
from ngixi_build.languages.registry import needs_node, toolchain_languages
from ngixi_build.project import Project, find_project
from ngixi_build.toolchains.assemblyscript import node_pins, system_node
from ngixi_build.toolchains.wit import WASM_TOOLS, wasm_tools
from ngixi_runtime.errors import InvalidInput


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
            f"Python {version}: {error}; install ngixi-build into a CPython 3.10 environment "
            '(README, "Your own guest project")',
        )
    return Finding("python + wasmer", True, f"Python {version} with wasmer and the Cranelift compiler")


def _wasm_tools() -> Finding:
    ok, detail = WASM_TOOLS.status()
    if not ok:
        return Finding("wasm-tools", False, f"{detail}; every build resolves the WIT catalog with it")
    return Finding("wasm-tools", True, f"{wasm_tools()} (component guests, the WIT catalog)")


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
        return [_node(), Finding("project", False, f"{error}; run ngixi doctor inside the project")]
    dev_key = project.keys_dir / "dev.key"
    guests = list(read_guests(project).values())
    languages = toolchain_languages(project, guests)
    return [
        *([_node()] if needs_node(languages) else []),
        *_toolchain_findings(project, guests, languages),
        Finding(
            "dev signing key",
            dev_key.exists(),
            f"{dev_key}" if dev_key.exists() else "not created yet; `doit build` creates it on first use",
        ),
    ]


def toolchain_findings(project: Project) -> list[Finding]:
    """Each toolchain the project's guests need (`registry.toolchain_languages`); one they do not need is left out,
    never reported missing (a project of C, Zig and `wasm` guests needs no Node.js)."""
    guests = list(read_guests(project).values())
    return _toolchain_findings(project, guests, toolchain_languages(project, guests))


def _toolchain_findings(project: Project, guests: list[GuestBuild], languages: list[Language]) -> list[Finding]:
    statuses = [
        language.toolchain_status(project, [g for g in guests if g.type.language == language.name])
        for language in languages
    ]
    unique = {status.what: status for status in statuses}  # languages sharing a toolchain report it once
    return [Finding(status.what, status.ok, status.detail) for status in unique.values()]


def diagnose(start: Path) -> list[Finding]:
    """What the machine has, then the project's toolchains (Node.js outside a project, or where a guest needs it)."""
    return [_python(), _wasm_tools(), *_project_findings(start)]
