"""The official WASI preview 1 conformance suite (tests/data/wasi-testsuite), through the real loader.

Each upstream test becomes a signed bundle granting what its JSON specification needs (args, env, its
`root` preopened as `/` read-write, stdin/stdout/stderr), its memory bounded as the build bounds a
module that declares no maximum; each runs isolated and in-process on Wasmer and on Wasmtime, each time in a
fresh copy of its fixture directory, and passes as upstream's runner decides: the exit code matches,
and so does the start of stdout when the specification gives one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ngixi_build.stages.memory import bound_memory
from ngixi_runtime.capabilities.registry import GRANTABLE, provisions
from ngixi_runtime.loading.tenants import CallFailed, open_tenant
from ngixi_runtime.spec.wasm import read_module_info
from tests.conftest import REPO, KeyFiles, make_bundle, make_key

pytestmark = pytest.mark.integration

SUITE = REPO / "tests" / "data" / "wasi-testsuite"
LANGUAGES = ("assemblyscript", "c", "rust")
MEMORY_PAGES = 1024
ENGINES = ("wasmer", "wasmtime")
TENANT = "conformance"


@dataclass(frozen=True)
class Case:
    language: str
    name: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    root: str | None = None
    exit_code: int = 0
    stdout: str | None = None

    @property
    def wasm(self) -> Path:
        return SUITE / self.language / f"{self.name}.wasm"

    @property
    def guest(self) -> str:
        return re.sub(r"[^a-z0-9-]", "-", f"{self.language}-{self.name}".lower())


def read_case(wasm: Path) -> Case:
    spec_path = wasm.with_suffix(".json")
    spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
    return Case(
        language=wasm.parent.name,
        name=wasm.stem,
        args=tuple(spec.get("args", ())),
        env=dict(spec.get("env", {})),
        root=spec.get("root"),
        exit_code=spec.get("exit_code", 0),
        stdout=spec.get("stdout"),
    )


CASES = [read_case(wasm) for language in LANGUAGES for wasm in sorted((SUITE / language).glob("*.wasm"))]


def manifest_for(case: Case, wasm: bytes) -> str:
    """Grants stdio (as upstream's runner gives a process: an empty stdin, stdout, stderr), `root` as `/`,
    and the capability of each import the module has."""
    providers = provisions(GRANTABLE)
    granted = {"stdin", "stdio", *(["fs"] if case.root is not None else [])}
    for item in read_module_info(wasm, source=case.name).imports:
        found = providers.get((item.module, item.name))
        if found and not found.is_baseline and not {c.name for c in found.capabilities} & granted:
            granted.add(found.capabilities[0].name)
    text = f'[guest]\nname = "{case.guest}"\nversion = "0.1.0"\nkind = "command"\n\n'
    text += "".join(f"[capabilities.{name}]\n" for name in GRANTABLE if name in granted and name not in ("env", "fs"))
    if "env" in granted:
        text += f"[capabilities.env]\nallow = {json.dumps(sorted(case.env))}\n"
    if "fs" in granted:
        root = '{ guest = "/", host = "root", mode = "rw" }' if case.root is not None else ""
        text += f"[capabilities.fs]\npreopens = [{root}]\n"
    return text + f"\n[limits]\nmemory_pages = {MEMORY_PAGES}\ntimeout_ms = 20000\n"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyFiles, dict[str, Path]]:
    """Every test's signed bundle, made once for both engines."""
    directory = tmp_path_factory.mktemp("wasi-testsuite")
    keys = make_key(directory / "keys")
    bundles = {}
    for case in CASES:
        wasm_path = directory / f"{case.guest}.wasm"
        shutil.copyfile(case.wasm, wasm_path)
        bound_memory(wasm_path=wasm_path, memory_pages=MEMORY_PAGES)  # as the build does for its own guests
        wasm = wasm_path.read_bytes()
        bundles[case.guest] = make_bundle(
            directory / case.guest, keys.key, wasm=wasm, manifest=manifest_for(case, wasm), guest=case.guest
        )
    return keys, bundles


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.language}/{case.name}")
def test_conformance(case: Case, engine: str, suite: tuple[KeyFiles, dict[str, Path]], tmp_path: Path) -> None:
    pytest.importorskip(engine)
    keys, bundles = suite
    check_both_ways(case, bundles[case.guest], keys, tmp_path, engine=engine, how=f"on {engine}")


def check_both_ways(case: Case, bundle: Path, keys: KeyFiles, tmp_path: Path, *, engine: str, how: str) -> None:
    """Isolated, then in-process: the second finds the code the first compiled in the host's cache."""
    for isolated, way in ((True, "isolated"), (False, "in-process")):
        check_case(case, bundle, keys, tmp_path / way, engine=engine, how=f"{way} {how}", isolated=isolated)


def check_case(
    case: Case, bundle: Path, keys: KeyFiles, tmp_path: Path, *, engine: str, how: str, isolated: bool = True
) -> None:
    """Runs the test's bundle as upstream's runner does (its args, env and root directory) and compares its
    exit code and the start of its stdout."""
    if case.root is not None:
        shutil.copytree(SUITE / case.language / case.root, tmp_path / TENANT / case.guest / "files" / "root")
    with open_tenant(
        bundle,
        trust_file=keys.trust,
        isolated=isolated,
        args=case.args,
        env=case.env,
        sandboxes=tmp_path,
        tenant=TENANT,
        engine=engine,
    ) as tenant:
        try:
            result = tenant.run()
        except CallFailed as error:
            stderr = error.result.stderr.decode(errors="replace")
            pytest.fail(f"{case.name} {how} did not exit: {error}; stderr: {stderr}")
    stderr = result.stderr.decode(errors="replace")
    assert result.exit_code == case.exit_code, f"exit code {result.exit_code}, stderr: {stderr}"
    if case.stdout is not None:
        assert result.stdout[: len(case.stdout.encode())].decode() == case.stdout
