"""A component's world read from its binary by wasm-tools: what it imports, and its exports' WIT types.

wasm-tools validates the component and decodes its type section (`component wit --json`) without
compiling it; Wasmtime would compile every function of an embedded JavaScript or Python engine to
tell the same. The types are written as the engine's `wit_values.render` writes them, so the
manifest check reads the same `ComponentInfo` either way. Precompiling still has Wasmtime compile it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ngixi_build.proc import run, tool_limits
from ngixi_build.toolchains.wit import qualified_name, wasm_tools
from ngixi_runtime.capabilities.component import ComponentInfo, WitTypes
from ngixi_runtime.errors import VerificationError

# A type reference in wasm-tools' JSON: a primitive's name ("u8", "string") or an index into its types.
_Ref = str | int


def read_component_world(wasm_path: Path) -> ComponentInfo:
    """The world of a component binary; an invalid one is a VerificationError naming the file."""
    _wasm_tools(["validate", wasm_path], wasm_path)
    done = _wasm_tools(["component", "wit", "--json", wasm_path], wasm_path)
    return world_info(json.loads(done.stdout))


def _wasm_tools(arguments: list[str | Path], wasm_path: Path) -> subprocess.CompletedProcess[str]:
    try:
        what = f"{wasm_path}: wasm-tools {arguments[0]}"
        return run([wasm_tools(), *arguments], what=what, error=VerificationError, limits=tool_limits())
    except VerificationError as error:
        if "\n" not in str(error):
            raise  # a limit reached, said in one line
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:] if line.strip())
        raise VerificationError(f"{wasm_path}: not a valid component: {detail}") from None


def world_info(resolved: Mapping[str, Any]) -> ComponentInfo:
    """The `ComponentInfo` of wasm-tools' decoding of a component (its one world, `root`)."""
    world = next(w for w in reversed(resolved["worlds"]) if w["name"] == "root")
    types = _Types(resolved["types"])
    import_types = {
        _item_name(resolved, key, item): {
            name: types.signature(function) for name, function in _functions(resolved, item).items()
        }
        for key, item in world["imports"].items()
        if "type" not in item  # the world's own named types, which a component defines rather than imports
    }
    imports = {name: frozenset(functions) for name, functions in import_types.items()}
    functions: dict[str, Mapping[str, Any]] = {}
    for key, item in world["exports"].items():
        if "function" in item:
            functions[key] = item["function"]
        elif "interface" in item:
            name = _item_name(resolved, key, item)
            functions.update({f"{name}#{f}": function for f, function in _functions(resolved, item).items()})
    exports = {name: types.signature(function) for name, function in functions.items()}
    uncallable = {name: why for name, function in functions.items() if (why := types.uncallable(function))}
    return ComponentInfo(imports, exports, import_types, uncallable)


def _functions(resolved: Mapping[str, Any], item: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(_interface(resolved, item).get("functions", {}))


def _interface(resolved: Mapping[str, Any], item: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = item.get("interface")
    return {} if reference is None else dict(resolved["interfaces"][reference["id"]])


def _item_name(resolved: Mapping[str, Any], key: str, item: Mapping[str, Any]) -> str:
    """An imported or exported interface by its full name (`wasi:cli/run@0.2.12`); anything else by its key."""
    interface = _interface(resolved, item)
    if interface.get("name") is None or interface.get("package") is None:
        return key
    return qualified_name(resolved["packages"][interface["package"]]["name"], interface["name"])


class _Types:
    """Writes the types of one decoding as WIT does: named types with their structure, aliases followed."""

    def __init__(self, types: list[Mapping[str, Any]]) -> None:
        self._types = types

    def signature(self, function: Mapping[str, Any]) -> WitTypes:
        result = function.get("result")
        params = tuple(self.render(p["type"]) for p in function["params"])
        return params, () if result is None else (self.render(result),)

    def uncallable(self, function: Mapping[str, Any]) -> str | None:
        """Why the host cannot call the function, if it cannot: async, or a value it never passes."""
        kind = function.get("kind", "freestanding")
        if str(kind if isinstance(kind, str) else next(iter(kind))).startswith("async"):
            return "is async (the component model's async ABI)"
        refs = [p["type"] for p in function["params"]] + [function.get("result")]
        return next((f"passes {found}" for ref in refs if (found := self.unpassable(ref))), None)

    def unpassable(self, ref: _Ref | None) -> str | None:
        """The first value the type holds that the host never passes: a resource handle, stream or future."""
        if ref is None or isinstance(ref, str):
            return None
        ((kind, body),) = self._types[ref]["kind"].items()
        if kind == "handle":
            return f"resource handles ({next(iter(body))})"
        if kind in ("stream", "future"):
            return f"{kind}s"
        return next((found for inner in _inner_refs(kind, body) if (found := self.unpassable(inner))), None)

    def render(self, ref: _Ref | None) -> str:
        if ref is None:
            return "_"
        if isinstance(ref, str):
            return _PRIMITIVES.get(ref, ref)
        ((kind, body),) = self._types[ref]["kind"].items()
        rendering = _RENDERING.get(kind)
        return kind if rendering is None else rendering(self, body)

    def joined(self, refs: list[_Ref]) -> str:
        return ", ".join(self.render(ref) for ref in refs)

    def fields(self, fields: list[Mapping[str, Any]]) -> str:
        return ", ".join(f"{field['name']}: {self.render(field['type'])}" for field in fields)

    def cases(self, cases: list[Mapping[str, Any]]) -> str:
        payloads = (self.render(case.get("type")) for case in cases)
        return ", ".join(c["name"] if p == "_" else f"{c['name']}({p})" for c, p in zip(cases, payloads, strict=True))

    def result(self, body: Mapping[str, Any]) -> str:
        ok, err = body.get("ok"), body.get("err")
        if ok is None and err is None:
            return "result"
        return f"result<{self.render(ok)}>" if err is None else f"result<{self.render(ok)}, {self.render(err)}>"


def _inner_refs(kind: str, body: Any) -> list[_Ref | None]:
    """The types a type of this kind holds."""
    if kind in ("type", "list", "option"):
        return [body]
    if kind == "result":
        return [body.get("ok"), body.get("err")]
    if kind == "tuple":
        return list(body["types"])
    if kind in ("record", "variant"):
        return [part.get("type") for part in body.get("fields", body.get("cases", []))]
    return []


# Where the engine's name of a primitive differs from WIT's.
_PRIMITIVES = {"error-context": "errorcontext"}
# Each kind of type in the JSON, written as the engine writes it; other kinds (future, stream) by their kind.
_RENDERING: dict[str, Callable[[_Types, Any], str]] = {
    "type": _Types.render,  # an alias
    "list": lambda types, element: f"list<{types.render(element)}>",
    "option": lambda types, payload: f"option<{types.render(payload)}>",
    "result": _Types.result,
    "tuple": lambda types, body: f"tuple<{types.joined(body['types'])}>",
    "record": lambda types, body: f"record {{ {types.fields(body['fields'])} }}",
    "variant": lambda types, body: f"variant {{ {types.cases(body['cases'])} }}",
    "enum": lambda _, body: f"enum {{ {', '.join(case['name'] for case in body['cases'])} }}",
    "flags": lambda _, body: f"flags {{ {', '.join(flag['name'] for flag in body['flags'])} }}",
    "handle": lambda _, body: next(iter(body)),  # own or borrow
}
