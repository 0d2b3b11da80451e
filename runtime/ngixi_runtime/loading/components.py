"""Loads a verified component guest: its world checked against the manifest, granted interfaces linked.

Component guests run on Wasmtime (the component model); the capability implementations, grants,
sandbox, quotas and limits are the ones core guests get (`hostfuncs.open_context`). WASI is
Wasmtime's, set up from the same context (`component_wasi`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from ngixi_runtime.bundles.reader import VerifiedBundle
from ngixi_runtime.capabilities.component_host import (
    COMPONENT_FUNCTIONS,
    ComponentFunction,
    ComponentInfo,
    check_component,
    interface_import,
)
from ngixi_runtime.capabilities.component_wasi import imports_wasi, wasi_setup
from ngixi_runtime.capabilities.core_host import HostContext, LogLine, Sandbox, open_context
from ngixi_runtime.capabilities.registry import CAPABILITIES
from ngixi_runtime.engines.base import RunLimits, chosen_engine, engine_named
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.loading.loader import COMPILED, Guest, counting_calls, prepare_best_fitting, verified_manifest

if TYPE_CHECKING:
    from ngixi_runtime.engines.wasmtime_component import ComponentInstance


def _linked(imports: Mapping[str, frozenset[str]], context: HostContext) -> dict[str, dict[str, ComponentFunction]]:
    """The host functions of each granted interface the component imports (check_component refused the rest)."""
    linked = {}
    for capability in CAPABILITIES.values():
        name = interface_import(capability.interface or "")
        if capability.interface is None or name not in imports:
            continue
        binders = COMPONENT_FUNCTIONS[capability.interface]
        linked[name] = {f: counting_calls(binders[f](context), capability.name, context.output) for f in imports[name]}
    return linked


def _weak_closer(instance: ComponentInstance) -> Callable[[], None]:
    """Closes the instance while it lives; the context must not keep it alive, as its store keeps the context."""
    method = weakref.WeakMethod(instance.close)

    def close() -> None:
        bound = method()
        if bound is not None:
            bound()

    return close


def open_component_guest(
    bundle: VerifiedBundle,
    manifest: Manifest,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    on_log: Callable[[LogLine], None] | None = None,
    allow_compile: bool = True,
    sandbox: Sandbox | None = None,
    engine: str | None = None,
) -> Guest:
    """Instantiates a verified component guest with exactly the interfaces its manifest grants."""
    runner = engine_named(chosen_engine(engine, component=True))
    from ngixi_runtime.engines import (
        wasmtime_component as engine_component,  # Wasmtime's component model, only for component guests
    )

    guest = manifest.guest.name
    prepare = partial(engine_component.prepare, guest=guest)  # a verified artifact, or the signed component
    prepared, origin = prepare_best_fitting(
        bundle, runner, prepare, allow_compile, lambda code: check_component(manifest, code.info)
    )
    context = open_context(manifest, sandbox=sandbox, args=args, env=env, on_log=on_log)
    limits = RunLimits(timeout_ms=manifest.limits.timeout_ms, memory_pages=manifest.limits.memory_pages)
    try:
        functions = _linked(prepared.info.imports, context)
        wasi = wasi_setup(context) if imports_wasi(prepared.info.imports) else None
        instance = engine_component.instantiate(prepared, guest=guest, functions=functions, limits=limits, wasi=wasi)
        context.closers.append(_weak_closer(instance))
    except BaseException:
        context.close()
        raise
    return Guest(manifest, instance, context, origin, compiled=origin.startswith(COMPILED))


def bundle_world(bundle: VerifiedBundle) -> ComponentInfo | None:
    """The world of a verified component guest's component; None for a core guest."""
    if verified_manifest(bundle).guest.abi != "component":
        return None
    from ngixi_runtime.engines import wasmtime_component as engine_component

    return engine_component.read_component(
        bundle.data(bundle.index.member("wasm")), source=f"{bundle.source}!guest.wasm"
    )
