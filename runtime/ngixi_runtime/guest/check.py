"""Checks a module against its manifest: imports covered by grants, declared exports present."""

from __future__ import annotations

from ngixi_runtime.capabilities.registry import HOST_MODULES, provision_of
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.wasm import Import, ModuleInfo, Signature


def _import_problem(manifest: Manifest, imp: Import) -> str | None:
    if imp.kind != "func":
        return f"capabilities: the guest imports {imp.kind} {imp.qualified}; only host functions can be imported"
    found = provision_of(imp.module, imp.name)
    if found is None:
        if imp.module in HOST_MODULES:
            return f"capabilities: the guest imports {imp.qualified}, which no Ngixi capability provides"
        return f'capabilities: the guest imports {imp.qualified} from unknown module "{imp.module}"'
    if imp.signature != found.host_import.signature:
        return (
            f"capabilities: the guest imports {imp.qualified} as {imp.signature}, "
            f"but the host provides {found.host_import.signature}"
        )
    names = [c.name for c in found.capabilities]
    if not found.is_baseline and not manifest.grants & set(names):
        tables = " or ".join(f"[capabilities.{name}]" for name in names)
        return (
            f"capabilities.{names[0]}: import {imp.qualified} needs {tables}; "
            "grant it in the manifest or remove the import"
        )
    return None


def _export_problems(manifest: Manifest, info: ModuleInfo) -> list[str]:
    problems = []
    exported = sorted(e.name for e in info.exports if e.kind == "func")
    for decl in manifest.exports:
        found = info.export(decl.name)
        declared = Signature(decl.params, decl.results)
        if found is None or found.kind != "func":
            problems.append(
                f"exports.{decl.name}: the .wasm has no function export {decl.name!r}; "
                f"it exports: {', '.join(exported) or 'nothing'}"
            )
        elif found.signature != declared:
            problems.append(f"exports.{decl.name}: declared as {declared}, but the .wasm exports {found.signature}")
    if manifest.guest.kind == "command":
        start = info.export("_start")
        if start is None or start.signature != Signature((), ()):
            problems.append("guest.kind: a command guest must export _start: () -> (); build it with the WASI shim")
    return problems


def check_module(manifest: Manifest, info: ModuleInfo) -> list[str]:
    """Every mismatch between the manifest and the module, as `FILE: field: message` lines."""
    problems = [p for imp in info.imports if (p := _import_problem(manifest, imp))]
    problems += _export_problems(manifest, info)
    if not any(e.kind == "memory" and e.name == "memory" for e in info.exports):
        problems.append('exports: the .wasm must export its memory as "memory"')
    return [f"{manifest.source}: {p}" for p in problems]
