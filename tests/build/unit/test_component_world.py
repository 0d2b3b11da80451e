"""A component's world from wasm-tools' JSON, written as the engine writes it (the real tool: integration tests)."""

from __future__ import annotations

from typing import Any

from ngixi_build.toolchains.component_world import world_info

# What `wasm-tools component wit --json` gives for a component that imports ngixi:host/kv and a bare
# function, defines a record of its own, and exports a function and wasi:cli/run.
RESOLVED: dict[str, Any] = {
    "packages": [
        {"name": "ngixi:host@0.1.0"},
        {"name": "wasi:cli@0.2.12"},
        {"name": "root:component"},
    ],
    "interfaces": [
        {
            "name": "kv",
            "package": 0,
            "functions": {
                "get": {"name": "get", "params": [], "result": None},
                "set": {"name": "set", "params": [{"name": "value", "type": "string"}], "result": 8},
            },
            "types": {"error": 0},
        },
        {"name": "run", "package": 1, "functions": {"run": {"name": "run", "params": [], "result": 7}}},
    ],
    "types": [
        {"name": "error", "kind": {"enum": {"cases": [{"name": "denied"}, {"name": "too-large"}]}}},
        {"name": "point", "kind": {"record": {"fields": [{"name": "x", "type": "s32"}, {"name": "tag", "type": 2}]}}},
        {"name": "tag", "kind": {"variant": {"cases": [{"name": "none"}, {"name": "text", "type": "string"}]}}},
        {"name": "alias", "kind": {"type": 1}},
        {"name": None, "kind": {"list": 3}},
        {"name": "modes", "kind": {"flags": {"flags": [{"name": "read"}, {"name": "write"}]}}},
        {"name": None, "kind": {"tuple": {"types": ["u8", 5, "error-context"]}}},
        {"name": None, "kind": {"result": {"ok": None, "err": None}}},
        {"name": None, "kind": {"result": {"ok": None, "err": 0}}},
        {"name": None, "kind": {"option": 9}},
        {"name": None, "kind": {"handle": {"borrow": 11}}},
        {"name": "file", "kind": "resource"},
        {"name": None, "kind": {"stream": "u8"}},
    ],
    "worlds": [
        {
            "name": "root",
            "package": 2,
            "imports": {
                "interface-0": {"interface": {"id": 0}},
                "point": {"type": 1},
                "tick": {"function": {"name": "tick", "params": [], "result": None}},
            },
            "exports": {
                "shift": {
                    "function": {
                        "name": "shift",
                        "params": [{"name": "points", "type": 4}, {"name": "extra", "type": 6}],
                        "result": 8,
                    }
                },
                "peek": {"function": {"name": "peek", "params": [{"name": "f", "type": 10}], "result": 12}},
                "interface-1": {"interface": {"id": 1}},
            },
        }
    ],
}


def test_imports_are_interfaces_by_full_name_with_their_functions_and_bare_functions() -> None:
    info = world_info(RESOLVED)
    assert info.imports == {"ngixi:host/kv@0.1.0": frozenset({"get", "set"}), "tick": frozenset()}
    assert info.import_types["ngixi:host/kv@0.1.0"] == {
        "get": ((), ()),
        "set": (("string",), ("result<_, enum { denied, too-large }>",)),
    }  # as the host's own, which the check holds them to


def test_exports_write_types_as_the_engine_does() -> None:
    exports = world_info(RESOLVED).exports
    point = "record { x: s32, tag: variant { none, text(string) } }"
    assert exports["shift"] == (
        (f"list<{point}>", "tuple<u8, flags { read, write }, errorcontext>"),
        ("result<_, enum { denied, too-large }>",),
    )
    assert exports["peek"] == (("borrow",), ("stream",))


def test_async_exports_and_those_passing_handles_or_streams_anywhere_in_their_types_are_marked() -> None:
    resolved = {**RESOLVED, "types": [*RESOLVED["types"], {"name": None, "kind": {"option": 10}}]}
    nested = {"name": "deep", "params": [{"name": "x", "type": len(resolved["types"]) - 1}], "result": None}
    resolved["worlds"] = [{**RESOLVED["worlds"][0], "exports": {**RESOLVED["worlds"][0]["exports"]}}]
    resolved["worlds"][0]["exports"]["deep"] = {"function": nested}
    resolved["worlds"][0]["exports"]["later"] = {"function": {**nested, "kind": "async-freestanding", "params": []}}
    assert world_info(resolved).uncallable == {
        "peek": "passes resource handles (borrow)",
        "deep": "passes resource handles (borrow)",
        "later": "is async (the component model's async ABI)",
    }


def test_an_exported_interface_names_its_functions_instance_hash_function() -> None:
    assert world_info(RESOLVED).exports["wasi:cli/run@0.2.12#run"] == ((), ("result",))
