"""Ahead-of-time artifacts: one Wasmer/Cranelift artifact per guest and target triple, and optional Wasmtime ones."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ngixi_build.proc import run
from ngixi_build.toolchains import installs
from ngixi_runtime.engines.base import PORTABLE_TRIPLE, EngineId
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.files import write_atomic
from ngixi_runtime.spec.bundle_format import ArtifactMeta
from ngixi_runtime.spec.targets import Target

WASMTIME_ON_THIS_MACHINE = (  # for a module that Wasmtime's portable pulley64 does not run (atomics)
    'build it for Wasmtime alone: in pyproject.toml, [tool.ngixi] targets = [] and wasmtime_targets = ["host"]'
)
WASMTIME_ALONE = (
    "build it for Wasmtime alone: in pyproject.toml, [tool.ngixi] targets = []"
    ' and wasmtime_targets = ["host", "pulley64"]'
)


def _baseline_hint(target: Target, missing: tuple[str, ...]) -> str:
    wanted = sorted({*target.cpu_features, *missing})
    return (
        "the module uses instructions (SIMD ones, typically) that Wasmer's Cranelift compiles only with"
        f" {', '.join(missing)}, beyond the baseline {list(target.cpu_features)}: raise it in pyproject.toml,"
        " [tool.ngixi] targets ="
        f' [{{ triple = "{target.triple}", cpu_features = {json.dumps(wanted)} }}] (its artifacts then load only on'
        f" such CPUs; Wasmer may still lack an operator it uses), or {WASMTIME_ALONE}"
    )


def metadata_path(artifact_path: Path) -> Path:
    """`<triple>.wasmer.json` / `<triple>.cwasm.json`: each engine's artifact of a triple has its own."""
    return artifact_path.with_name(f"{artifact_path.name}.json")


def precompile_guest(*, wasm_path: Path, target: Target, out_path: Path) -> ArtifactMeta:
    """Cross-compiles the .wasm for `target`; writes the artifact and its metadata beside it."""
    from ngixi_runtime.engines import (
        wasmer as engine,  # imported here so that Wasmtime-only hosts can import this module
    )

    wasm = wasm_path.read_bytes()
    try:
        artifact = engine.precompile(
            wasm,
            triple=target.triple,
            cpu_features=target.cpu_features,
            what=f"precompile {wasm_path} for {target.triple}",
        )
    except NgixiError as error:
        if missing := engine.missing_cpu_features(error):
            raise InvalidInput(f"{error}; {_baseline_hint(target, missing)}") from None
        raise _wasmer_refusal(error, wasm) from None
    meta = artifact_metadata(target, hashlib.sha256(wasm).hexdigest())
    _write(out_path, artifact, meta)
    return meta


def _wasmer_refusal(error: NgixiError, wasm: bytes) -> NgixiError:
    """Wasmer's refusal of a module, with the feature it lacks and how to build the guest for Wasmtime alone when
    Wasmtime runs the module, or Wasmtime's own reason when Wasmtime refuses it too."""
    from ngixi_runtime.engines import wasmer, wasmtime

    if lacking := wasmer.what_wasmer_lacks(error, wasm):
        if wasmtime.is_valid(wasm, target=PORTABLE_TRIPLE):
            return InvalidInput(f"{error}; {lacking}: {WASMTIME_ALONE}")
        return InvalidInput(f"{error}; {lacking}: {WASMTIME_ON_THIS_MACHINE}")
    if "Validation error" in str(error) and (reason := wasmtime.invalid_because(wasm)):
        return InvalidInput(f"{error}; Wasmtime refuses it too: {reason}")
    return error


def artifact_metadata(target: Target, wasm_sha256: str) -> ArtifactMeta:
    """The metadata of a Wasmer artifact that this engine builds for `target` from that .wasm."""
    from ngixi_runtime.engines import wasmer as engine

    return _metadata(engine.current_engine(), target, wasm_sha256)


def precompile_wasmtime(*, wasm_path: Path, target: Target, metered: bool, out_path: Path) -> ArtifactMeta:
    """Compiles the .wasm (module or component) with Wasmtime for this machine's triple or `pulley64`.

    A host artifact gets `target`'s CPU baseline. `metered` (the manifest sets limits.fuel) compiles fuel
    metering in; the loader decides the same from the manifest, since Wasmtime loads an artifact only into
    an engine configured alike.
    """
    wasm = wasm_path.read_bytes()
    artifact = _wasmtime_compiled(wasm, target=target, metered=metered, what=_wasmtime_what(wasm_path, target))
    return _write_wasmtime_artifact(out_path, artifact, target=target, wasm=wasm, metered=metered)


def precompile_wasmtime_in_child(*, wasm_path: Path, target: Target, metered: bool, out_path: Path) -> ArtifactMeta:
    """`precompile_wasmtime`, its compile in a process of its own, which `proc.stop_running_tools` ends: nothing
    interrupts Wasmtime's compile in this process (a JavaScript or Python component's takes tens of seconds on a busy
    machine), so a watcher's Ctrl-C waited for it. The artifact is stamped and recorded here, as this user's, for
    the very bytes the child compiled (a copy: the .wasm may be rewritten meanwhile)."""
    wasm, what = wasm_path.read_bytes(), _wasmtime_what(wasm_path, target)
    with tempfile.TemporaryDirectory(prefix="ngixi-cwasm-") as scratch:
        source, compiled = Path(scratch) / "guest.wasm", Path(scratch) / "artifact.cwasm"
        source.write_bytes(wasm)
        features, fuel = ",".join(target.cpu_features), "metered" if metered else "unmetered"
        run([sys.executable, "-m", __name__, what, source, target.triple, features, fuel, compiled], what=what)
        artifact = compiled.read_bytes()
    return _write_wasmtime_artifact(out_path, artifact, target=target, wasm=wasm, metered=metered)


def _wasmtime_what(wasm_path: Path, target: Target) -> str:
    return f"precompile {wasm_path} with Wasmtime for {target.triple}"


def _wasmtime_compiled(wasm: bytes, *, target: Target, metered: bool, what: str) -> bytes:
    from ngixi_runtime.engines import wasmtime as engine_wasmtime
    from ngixi_runtime.engines import (  # only builds that ask for Wasmtime artifacts load it
        wasmtime_component as engine_component,
    )

    compiler = engine_component if engine_component.is_component(wasm) else engine_wasmtime
    artifact: bytes = compiler.precompile(
        wasm, triple=target.triple, cpu_features=target.cpu_features, metered=metered, what=what
    )
    return artifact


def _write_wasmtime_artifact(
    out_path: Path, artifact: bytes, *, target: Target, wasm: bytes, metered: bool
) -> ArtifactMeta:
    from ngixi_runtime.engines import wasmtime as engine_wasmtime

    meta = wasmtime_artifact_metadata(target, hashlib.sha256(wasm).hexdigest())
    _write(out_path, artifact, meta, metered=metered, settings=engine_wasmtime.SETTINGS)
    return meta


def _compile_in_child(arguments: list[str]) -> int:
    """The child of `precompile_wasmtime_in_child`: WHAT WASM TRIPLE FEATURES metered|unmetered OUT; 1 and the
    error's line on stderr if Wasmtime refuses the module."""
    what, wasm_path, triple, features, fuel, out = arguments
    target = Target(triple, tuple(filter(None, features.split(","))))
    try:
        artifact = _wasmtime_compiled(Path(wasm_path).read_bytes(), target=target, metered=fuel == "metered", what=what)
    except NgixiError as error:
        print(error, file=sys.stderr)
        return 1
    Path(out).write_bytes(artifact)
    return 0


def wasmtime_artifact_metadata(target: Target, wasm_sha256: str) -> ArtifactMeta:
    """The metadata of a Wasmtime artifact that this Wasmtime builds for `target` from that .wasm."""
    from ngixi_runtime.engines import wasmtime as engine_wasmtime

    return _metadata(engine_wasmtime.compiled_by(target.triple), target, wasm_sha256)


def _metadata(ours: EngineId, target: Target, wasm_sha256: str) -> ArtifactMeta:
    return ArtifactMeta(
        engine=ours.engine,
        engine_version=ours.engine_version,
        binding_version=ours.binding_version,
        compiler=ours.compiler,
        triple=target.triple,
        cpu_features=target.cpu_features,
        wasm_sha256=wasm_sha256,
    )


def _write(
    out_path: Path,
    artifact: bytes,
    meta: ArtifactMeta,
    *,
    metered: bool = False,
    settings: Mapping[str, object] | None = None,
) -> None:
    """The artifact, and beside it its metadata, whether fuel metering is compiled in, the engine's other settings
    and this user's stamp of its bytes (none of them in the bundle)."""
    record = {**meta._asdict(), "metered": metered, "settings": settings, "stamp": _artifact_stamp(artifact)}
    write_atomic(out_path, artifact)
    write_atomic(metadata_path(out_path), (json.dumps(record, indent=2) + "\n").encode())


def _artifact_stamp(artifact: bytes) -> str:
    return installs.user_stamp("artifact", hashlib.sha256(artifact).digest())


def made_here(artifact_path: Path) -> bool:
    """Whether this user's build compiled the artifact: machine code that came with a project (with a doit
    record saying it is current) must never be signed with this user's dev key, whose artifacts run natively."""
    try:
        recorded = json.loads(metadata_path(artifact_path).read_text()).get("stamp")
        artifact = artifact_path.read_bytes()
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(recorded, str) and hmac.compare_digest(recorded, _artifact_stamp(artifact))


def _read_record(artifact_path: Path) -> tuple[ArtifactMeta, bool, object]:
    """An artifact's metadata, whether it meters fuel, and the engine's other settings it was compiled with."""
    path = metadata_path(artifact_path)
    try:
        raw = json.loads(path.read_text())
        metered = raw.pop("metered", False) is True
        settings = raw.pop("settings", None)
        raw.pop("stamp", None)
        return ArtifactMeta(**{**raw, "cpu_features": tuple(raw["cpu_features"])}), metered, settings
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise InvalidInput(f"{path}: unreadable artifact metadata ({error}); run `doit clean` then build") from None


def read_metadata(artifact_path: Path) -> ArtifactMeta:
    return _read_record(artifact_path)[0]


def wasmtime_artifact_is_current(artifact_path: Path, *, target: Target, wasm_sha256: str, metered: bool) -> bool:
    """Whether the Wasmtime artifact on disk was built here from that .wasm for `target` by this Wasmtime, and is
    metered as asked: Wasmtime loads an artifact only into an engine that meters fuel alike."""
    from ngixi_runtime.engines import wasmtime as engine_wasmtime

    expected = (wasmtime_artifact_metadata(target, wasm_sha256), metered, engine_wasmtime.SETTINGS)
    try:
        current = _read_record(artifact_path) == expected
    except InvalidInput:  # missing or unreadable: build it again
        return False
    return current and made_here(artifact_path)


def precompile_inputs(target: Target) -> dict[str, object]:
    """What a Wasmer artifact depends on besides the .wasm: its CPU baseline and the engine that builds it."""
    from ngixi_runtime.engines import wasmer as engine

    return {"cpu_features": list(target.cpu_features), "engine": engine.current_engine()._asdict()}


def wasmtime_precompile_inputs(target: Target, *, metered: bool) -> dict[str, object]:
    """What a Wasmtime artifact depends on besides the .wasm: its CPU baseline, fuel metering and Wasmtime's version."""
    from ngixi_runtime.engines import wasmtime as engine_wasmtime

    return {
        "cpu_features": list(target.cpu_features),
        "metered": metered,
        "settings": engine_wasmtime.SETTINGS,
        "engine": engine_wasmtime.compiled_by(target.triple)._asdict(),
    }


if __name__ == "__main__":
    sys.exit(_compile_in_child(sys.argv[1:]))
