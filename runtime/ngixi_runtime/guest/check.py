"""Checks a guest's code against its manifest: imports covered by grants, declared exports present.

Core modules and components alike. A guest whose imports its granted capabilities (and the
baseline) cover is checked with only those capabilities' modules imported; any other import is
checked again against every capability, to say which one would grant it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from ngixi_runtime.capabilities.base import FD_WRITE, Capability
from ngixi_runtime.capabilities.component import (
    TYPE_INTERFACES,
    ComponentInfo,
    WitTypes,
    interface_of,
    run_export,
    wasi_interface,
    wit_signature,
)
from ngixi_runtime.capabilities.registry import (
    BASELINE,
    Provision,
    capability,
    every_capability,
    provisions,
    wasi_p2_grants,
)
from ngixi_runtime.errors import counted
from ngixi_runtime.guest.data import module_problems
from ngixi_runtime.guest.limits import limit_problems
from ngixi_runtime.guest.manifest import VALUE_TYPES, Manifest
from ngixi_runtime.guest.typed import as_wit, wit_type_matches
from ngixi_runtime.spec.wasm import Import, ModuleInfo, Signature

_NAMED = 3  # the functions named of a module the host does not know
_OLD_WASI_MODULE = "wasi_unstable"  # WASI snapshot 0
_OLD_WASI = (
    "not WASI preview 1 (wasi_snapshot_preview1), the one WASI a core guest may import; rebuild it for wasm32-wasip1"
)
_OTHER_HOST = (
    "it was built for another host; a core guest imports only wasi_snapshot_preview1, ngixi and env.abort "
    "(docs/host-abi.md)"
)
_IMPORTED_BY_STD = {  # what a bare grant of a capability a language's standard library imports anyway passes
    "env": "passes no variables",
    "args": "passes only the arguments a caller gives",
}


def _grant_advice(capability: str, imports: int = 1) -> str:
    """What to do of imports the manifest does not grant: for those a standard library makes in every program,
    that removing them is not the author's to do and that a bare grant gives nothing away."""
    them, imported = ("it", "the import") if imports == 1 else ("them", "the imports")
    passes = _IMPORTED_BY_STD.get(capability)
    if passes is None:
        return f"grant it in the manifest or remove {imported}"
    return (
        f"a language's standard library may import {them} (Rust's std, wasi-libc): grant it in the manifest, where a "
        f"bare [capabilities.{capability}] {passes}, or remove {imported}"
    )


def _granted_then_every(problems: Callable[[bool], list[str]]) -> list[str]:
    """No problems when `problems(False)` finds none among the granted capabilities; else `problems(True)`,
    which imports every capability to say which one would grant what the guest imports."""
    if not problems(False):
        return []
    return problems(True)


# --- core modules ----------------------------------------------------------------------------------


def _import_problem(manifest: Manifest, imp: Import, known: Mapping[tuple[str, str], Provision]) -> str | None:
    if imp.kind != "func":
        return f"capabilities: the guest imports {imp.kind} {imp.qualified}; only host functions can be imported"
    found = known.get((imp.module, imp.name))
    if found is None:  # its module is a host module (`_import_problems` names those no capability has)
        return f"capabilities: the guest imports {imp.qualified}, which no Ngixi capability provides"
    if imp.signature != found.host_import.signature:
        return (
            f"capabilities: the guest imports {imp.qualified} as {imp.signature}, "
            f"but the host provides {found.host_import.signature}"
        )
    return None


def _grants_needed(manifest: Manifest, imp: Import, known: Mapping[tuple[str, str], Provision]) -> tuple[str, ...]:
    """The capabilities that would each grant a host function the module imports as the host provides it, when the
    manifest grants none of them (else nothing)."""
    found = known.get((imp.module, imp.name))
    if imp.kind != "func" or found is None or found.is_baseline or imp.signature != found.host_import.signature:
        return ()
    names = tuple(c.name for c in found.capabilities)
    return () if manifest.grants & set(names) else names


def _grant_problem(capabilities: tuple[str, ...], module: str, names: list[str]) -> str:
    """One line for the imports of `module` that these capabilities would grant: a prebuilt program imports dozens
    of WASI functions, and a line for each hid the grants past the first 20 problems."""
    tables = " or ".join(f"[capabilities.{name}]" for name in capabilities)
    advice = _grant_advice(capabilities[0], len(names))
    if len(names) == 1:
        return f"capabilities.{capabilities[0]}: import {module}.{names[0]} needs {tables}; {advice}"
    named = ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
    return f"capabilities.{capabilities[0]}: {len(names)} imports of {module} ({named}) need {tables}; {advice}"


def _unknown_module_problem(module: str, names: list[str]) -> str:
    named = ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
    what = f"{module}.{names[0]}" if len(names) == 1 else f"{len(names)} functions"
    listed = "" if len(names) == 1 else f" ({named})"
    advice = _OLD_WASI if module == _OLD_WASI_MODULE else _OTHER_HOST
    return f'capabilities: the guest imports {what} from unknown module "{module}"{listed}: {advice}'


ImportGroup = tuple[str, tuple[str, ...]]  # a module, and the capabilities that would grant its imports (none: unknown)


def _group_problem(group: ImportGroup, names: list[str]) -> str:
    module, capabilities = group
    return _grant_problem(capabilities, module, names) if capabilities else _unknown_module_problem(module, names)


def _import_problems(manifest: Manifest, info: ModuleInfo) -> list[str]:
    def problems(everything: bool) -> list[str]:
        known = provisions() if everything else provisions(manifest.grants)
        hosted = {module for module, _ in known}  # of the granted only, first: a module not among them is a problem
        grouped: dict[ImportGroup, list[str]] = {}  # one line per group, where its first import is
        found: list[str | ImportGroup] = []
        for imp in info.imports:
            unknown_module = imp.kind == "func" and imp.module not in hosted
            needed = () if unknown_module else _grants_needed(manifest, imp, known)
            if unknown_module or needed:
                if (imp.module, needed) not in grouped:
                    found.append((imp.module, needed))
                grouped.setdefault((imp.module, needed), []).append(imp.name)
            elif problem := _import_problem(manifest, imp, known):
                found.append(problem)
        return [p if isinstance(p, str) else _group_problem(p, grouped[p]) for p in found]

    return _granted_then_every(problems)


def _stdio_problems(manifest: Manifest, info: ModuleInfo) -> list[str]:
    """Descriptors 0 to 2 are stdin's and stdio's, never fs's: a guest that writes through fs's fd_write
    without stdio would lose its stdout and stderr (a Rust panic's message, say) without a word."""
    if "fs" not in manifest.grants or "stdio" in manifest.grants:
        return []
    if not any((imp.module, imp.name) == (FD_WRITE.module, FD_WRITE.name) for imp in info.imports):
        return []
    return [
        f"capabilities.stdio: the guest imports {FD_WRITE.qualified}, and its writes to stdout and stderr "
        "(fds 1 and 2) need [capabilities.stdio], which fs does not grant; grant it (its output is captured "
        "within limits.stdout_bytes)"
    ]


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
            problems.append(_signature_problem(decl.name, declared, found.signature))
    if manifest.guest.type.kind == "command":
        start = info.export("_start")
        if start is None or start.signature != Signature((), ()):
            problems.append(f"guest.kind: a command guest must export _start: () -> (); {_command_hint(info)}")
    return problems


def _signature_problem(name: str, declared: Signature, exported: Signature | None) -> str:
    """A declared signature the module's function does not have, and the manifest lines that would match it."""
    mismatch = f"exports.{name}: declared as {declared}, but the .wasm exports {exported}"
    if exported is None or not set(exported.params + exported.results) <= set(VALUE_TYPES):
        return f"{mismatch}; the host passes only {', '.join(VALUE_TYPES)}: change the guest's function"
    return (
        f"{mismatch}; declare {_declaration(exported)} under [exports.{name}], or change the guest's function to "
        "match the manifest"
    )


def _declaration(types: tuple[Sequence[str], Sequence[str]]) -> str:
    """The manifest's lines declaring these parameter and result types."""
    params, results = (", ".join(map(json.dumps, listed)) for listed in types)
    return f"params = [{params}], results = [{results}]"


def check_module(manifest: Manifest, info: ModuleInfo) -> list[str]:
    """Every mismatch between the manifest and the module, as `FILE: field: message` lines."""
    problems = _import_problems(manifest, info)
    problems += _stdio_problems(manifest, info)
    problems += _export_problems(manifest, info)
    problems += module_problems(lambda side: any(getattr(e, side) for e in manifest.exports), info)
    if not any(e.kind == "memory" and e.name == "memory" for e in info.exports):
        problems.append('exports: the .wasm must export its memory as "memory"')
    return [f"{manifest.source}: {p}" for p in problems]


def _command_hint(info: ModuleInfo) -> str:
    if info.export("_initialize") is not None:
        return 'this .wasm is a WASI reactor (it exports _initialize): declare kind = "library" and its exports'
    return "build it as a WASI program with main (AssemblyScript: with the WASI shim)"


def check_core_guest(manifest: Manifest, info: ModuleInfo) -> list[str]:
    """Everything a load on any engine refuses of a core module (`info` read from the .wasm itself): the
    lines of `check_module`, then its memories and tables against the manifest's limits (guest/limits.py); a
    shared memory's line first, as the one that says what to do with a threads build."""
    limits = [
        f"{manifest.source}: limits.memory_pages: {p}" for p in limit_problems(manifest, info, engine_caps_growth=False)
    ]
    if any(memory.shared for memory in info.memories):  # a threads build: that, not its imports, says what to do
        return limits + check_module(manifest, info)
    return check_module(manifest, info) + limits


# --- components ------------------------------------------------------------------------------------


def _unprovided_interface(name: str) -> str:
    packages = sorted({interface.split("/")[0].removeprefix("wasi:") for interface in wasi_p2_grants()})
    return (
        f"capabilities: the component imports {name}, which no Ngixi capability provides; this host provides "
        f"WASI 0.2's {', '.join(packages)} and ngixi:host@0.1.0 (`ngixi wit`): build the component without the import"
    )


def _wasi_problems(
    manifest: Manifest, name: str, functions: frozenset[str], grants: Mapping[str, Mapping[str, tuple[str, ...]]]
) -> list[str]:
    """What the manifest does not grant of the WASI functions a component imports from `name`."""
    known = grants.get(wasi_interface(name) or "")
    if known is None:
        return [_unprovided_interface(name)]
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
            f"which needs {tables}; {_grant_advice(capabilities[0])}"
        )
    return problems


def _interface_problems(
    manifest: Manifest,
    name: str,
    functions: frozenset[str],
    types: Mapping[str, WitTypes],
    capabilities: Sequence[Capability],
) -> list[str]:
    """What the manifest does not grant of an Ngixi interface a component imports as `name`, and each function it
    imports with other types than the host's (`types`: the component's): an import is linked by name, and the
    host's function was handed what the component's types lift to (a `string` where it counts the bytes of a
    `list<u8>` value against kv's max_value_bytes, a level it has no name for)."""
    interface = interface_of(name)
    if interface in TYPE_INTERFACES:
        return []
    providing = next((c for c in capabilities if interface is not None and c.interface == interface), None)
    if providing is None:
        return [_unprovided_interface(name)]
    if providing.name not in manifest.grants:
        return [
            f"capabilities.{providing.name}: the component imports {name}, which needs "
            f"[capabilities.{providing.name}]; grant it in the manifest or remove the import"
        ]
    unknown = sorted(functions - set(providing.component_host))
    problems = [f"capabilities.{providing.name}: {name} has no function {f!r} on this host" for f in unknown]
    for function, found in sorted(types.items()):
        expected = providing.component_types.get(function)
        if expected is not None and found != expected:
            problems.append(
                f"capabilities.{providing.name}: the component imports {name} {function} as {wit_signature(found)}, "
                f"and this host's is {wit_signature(expected)}: build it against the host's WIT (`ngixi wit`)"
            )
    return problems


def _component_import_problems(manifest: Manifest, info: ComponentInfo) -> list[str]:
    def problems(everything: bool) -> list[str]:
        grants = wasi_p2_grants() if everything else wasi_p2_grants(manifest.grants)
        capabilities = every_capability() if everything else tuple(capability(n) for n in sorted(manifest.grants))
        found = []
        for name, functions in sorted(info.imports.items()):
            if name.startswith("wasi:"):
                found += _wasi_problems(manifest, name, functions, grants)
            else:
                found += _interface_problems(manifest, name, functions, info.import_types.get(name, {}), capabilities)
        return found

    return _granted_then_every(problems)


def _component_export_problems(manifest: Manifest, info: ComponentInfo) -> list[str]:
    problems = []
    if manifest.guest.type.kind == "command" and run_export(info) is None:
        problems.append(
            "guest.kind: a command component must export wasi:cli/run: build it with the WASI shim, "
            "whose _start the command adapter turns into run"
        )
    for decl in manifest.exports:
        found = info.exports.get(decl.name)
        if found is None:
            names = ", ".join(sorted(info.exports)) or "nothing"
            problems.append(f"exports.{decl.name}: the component has no function {decl.name!r}; it exports: {names}")
        elif decl.name in info.uncallable:
            problems.append(
                f"exports.{decl.name}: the component's {decl.name} {info.uncallable[decl.name]}, which Ngixi does "
                "not support; export a synchronous function of plain WIT types (docs/components.md)"
            )
        elif not decl.from_wit and not _types_match((decl.params, decl.results), found):
            problems.append(
                f"exports.{decl.name}: declared as {wit_signature((as_wit(decl.params), as_wit(decl.results)))}, "
                f"the component exports {wit_signature(found)}; declare {_declaration(found)}, or leave out params "
                "and results to take the types from the component's WIT"
            )
    return problems + _smoke_call_problems(manifest, info)


def _smoke_call_problems(manifest: Manifest, info: ComponentInfo) -> list[str]:
    """A smoke call gives as many arguments as the component's function takes, each a value its parameter takes,
    and expects a value its result type could be: a manifest that leaves the types to the WIT leaves these to it
    too, so reading the manifest alone could not tell (and one naming a type by its kind, `record`, told its shape
    only)."""
    if not manifest.smoke:
        return []
    from ngixi_runtime.guest.smoke import typed_call_problems  # here: only for a manifest with smoke entries

    problems = []
    for index, call in enumerate(manifest.smoke):
        found = info.exports.get(call.call)
        if found is None or call.expect_error is not None or manifest.export(call.call) is None:
            continue
        params, results = found
        if len(call.args) != len(params):
            problems.append(
                f"smoke[{index}].args: {call.call} takes {counted(len(params), 'argument')} ({', '.join(params)}), "
                f"the smoke call gives {len(call.args)}"
            )
        problems += [f"smoke[{index}].{key}: {message}" for key, message in typed_call_problems(call, params, results)]
    return problems


def _types_match(declared: WitTypes, found: WitTypes) -> bool:
    return all(
        len(d) == len(f) and all(wit_type_matches(a, b) for a, b in zip(d, f, strict=True))
        for d, f in zip(declared, found, strict=True)
    )


def check_component(manifest: Manifest, info: ComponentInfo) -> list[str]:
    """Every mismatch between the manifest and the component, as `FILE: field: message` lines."""
    problems = _component_import_problems(manifest, info)
    problems += _component_export_problems(manifest, info)
    return [f"{manifest.source}: {p}" for p in problems]
