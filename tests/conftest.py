"""Shared fixtures: keys, trust files, bundles made from generated modules."""

from __future__ import annotations

import compileall
import io
import os
import shutil
import signal
import tarfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

from ngixi_build.stages.bundle import ArtifactInput, write_bundle
from ngixi_build.stages.signing import SigningKey, TrustEntry, generate_key_pair, render_trust_file
from ngixi_runtime.cli import main
from ngixi_runtime.engines.base import EngineId
from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE
from ngixi_runtime.spec.bundle_format import BuildProfile, Channel
from ngixi_runtime.trust.rollback import STATE_VARIABLE
from tests.system import require_program


def pytest_configure(config: pytest.Config) -> None:
    """A shell starts a background job with SIGINT ignored, and each process started from it inherits that: the
    tests that stop a watcher with Ctrl-C need SIGINT delivered to it, as in a run in the foreground."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not hasattr(config, "workerinput"):  # once, in pytest-xdist's controller (or the only process)
        compile_project_modules()


def compile_project_modules() -> None:
    """Writes the bytecode of both sides' modules (the repository's, which the editable installs import) before any
    test starts a process. Where PYTHONDONTWRITEBYTECODE is set (this machine's environment) no process writes it,
    and each of the suite's doit, ngixi and tenant processes compiled every module it imports from source: a third
    of a `doit list`'s CPU. A process still compiles a module whose source changed since (the stamp is its mtime)."""
    for package in (REPO / "ngixi_build", REPO / "runtime" / "ngixi_runtime"):
        compileall.compile_dir(package, quiet=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Sorts the modules in the order pytest-xdist (`--dist loadfile`, with pyproject's `--no-loadscope-reorder`)
    hands them to its workers: those marked `heavy`, costliest first, then the other integration modules, then the
    unit modules, most tests first within each. By xdist's own order, most tests first, the heavy modules, which
    have few tests, came last, and one worker ran them for minutes after the other had run out of modules; a heavy
    module of few tests handed out late was the run's tail in the same way."""
    counts = Counter(item.path for item in items)
    cost = {item.path: _heavy_cost(item) for item in items}
    items.sort(
        key=lambda item: (
            cost[item.path] == 0,
            item.path.parent.name != "integration",
            -cost[item.path],
            -counts[item.path],
        )
    )


def _heavy_cost(item: pytest.Item) -> float:
    """The CPU seconds a `heavy` module's mark gives (0 for a module not marked heavy)."""
    mark = item.get_closest_marker("heavy")
    return 0.0 if mark is None else float(mark.kwargs["cpu_seconds"])


REPO = Path(__file__).resolve().parents[1]
# The loader's tests also run where only Wasmtime is installed (Python 3.12: `make test-loader`).
needs_wasmer = pytest.mark.skipif(find_spec("wasmer") is None, reason="wasmer is not installed")
# Wasmer's engine metadata (what engine.current_engine() says), for artifacts these tests never deserialize.
WASMER_ENGINE = EngineId("wasmer", "2.1.1", "1.1.0", "cranelift")
File = tuple[str, bytes]
Entry = File | tarfile.TarInfo

HELLO_MANIFEST = """\
[guest]
name = "hello"
version = "0.1.0"

[exports.add]
params = ["i32", "i32"]
results = ["i32"]

[capabilities.log]
"""


@pytest.fixture(scope="session", autouse=True)
def _session_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keeps module-scoped fixtures' runs away from the user's rollback state and host AOT cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STATE_VARIABLE, str(tmp_path_factory.mktemp("session-state")))
        patch.setenv(CACHE_VARIABLE, str(tmp_path_factory.mktemp("session-aot")))
        yield


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh rollback state per test, also seen by the ngixi processes tests start."""
    directory = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_VARIABLE, str(directory))
    return directory


@pytest.fixture(scope="session")
def _aot_cache_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("aot")


@pytest.fixture(autouse=True)
def aot_cache_dir(
    _aot_cache_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """An empty host AOT cache for each test, also seen by the ngixi processes tests start. Always at one path:
    isolated tenants are forked by a fork server per environment, the cache's path part of it, and a path per test
    started a fork server (its imports and warm-up) for every test that ran an isolated tenant. The last test's
    cache is moved away whole (a link or a directory opened to others included), so that a tenant it left running
    writes there, not here, then removed."""
    directory = _aot_cache_path
    if directory.is_symlink() or directory.exists():
        used = tmp_path_factory.mktemp("aot-used") / "aot"
        directory.rename(used)
        if not used.is_symlink():
            used.chmod(0o700)
            shutil.rmtree(used, ignore_errors=True)
    directory.mkdir(mode=0o700)
    monkeypatch.setenv(CACHE_VARIABLE, str(directory))
    return directory


@pytest.fixture(params=["wasmer", "wasmtime"])
def engine_name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per engine: the loader's default engine (also in tenant children) is this one."""
    name: str = request.param
    pytest.importorskip(name)
    monkeypatch.setenv("NGIXI_ENGINE", name)
    return name


@pytest.fixture(params=["fast path", "public API"])
def wasmtime_call_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per way of calling a Wasmtime export, or a host function, made in it: `wasmtime_fastpath`'s
    (skipped on a wasmtime-py it was not tested on) and wasmtime-py's public API."""
    fastpath = pytest.importorskip("ngixi_runtime.engines.wasmtime_fastpath")
    if request.param == "fast path" and not fastpath.ACTIVE:
        pytest.skip("no fast path on this wasmtime-py")
    if request.param == "public API":
        monkeypatch.setattr(fastpath, "ACTIVE", False)
    return str(request.param)


@pytest.fixture(scope="session")
def minisign_tool() -> Path:
    """Debian's reference minisign binary."""
    return Path(require_program("minisign", "minisign"))


class FakeMemory:
    """A guest memory for host-function unit tests."""

    def __init__(self, size: int = 4096) -> None:
        self.data = bytearray(size)

    def read(self, pointer: int, length: int) -> bytes:
        return bytes(self.data[pointer : pointer + length])

    def write(self, pointer: int, data: bytes) -> None:
        self.data[pointer : pointer + len(data)] = data

    @property
    def size_bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class KeyFiles:
    key: SigningKey
    secret: Path
    public: Path
    trust: Path


def make_key(
    directory: Path,
    *,
    guests: Sequence[str] = ("*",),
    channels: Sequence[str] = ("dev",),
    native_code: bool = True,
) -> KeyFiles:
    """A key pair and a trust file for it; by default the key is trusted with native code (its artifacts run)."""
    directory.mkdir(parents=True, exist_ok=True)
    secret, public = directory / "test.key", directory / "test.pub"
    key = generate_key_pair(secret_path=secret, public_path=public, comment="test")
    trust = directory / "trust.toml"
    entry = TrustEntry(key, tuple(guests), tuple(channels), "test key", native_code=native_code)
    trust.write_bytes(render_trust_file([entry]))
    return KeyFiles(key, secret, public, trust)


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return make_key(tmp_path / "keys")


def make_bundle(
    directory: Path,
    key: SigningKey,
    *,
    wasm: bytes,
    manifest: str | bytes = HELLO_MANIFEST,
    guest: str = "hello",
    version: str = "0.1.0",
    channel: Channel = "dev",
    sequence: int = 1,
    artifacts: Sequence[ArtifactInput] = (),
    profile: BuildProfile = "release",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path, wasm_path = directory / f"{guest}.toml", directory / f"{guest}.wasm"
    manifest_path.write_bytes(manifest.encode() if isinstance(manifest, str) else manifest)
    wasm_path.write_bytes(wasm)
    out = directory / f"{guest}-{version}.ngx"
    write_bundle(
        guest=guest,
        version=version,
        manifest_path=manifest_path,
        wasm_path=wasm_path,
        artifacts=artifacts,
        key=key,
        channel=channel,
        sequence=sequence,
        out_path=out,
        profile=profile,
    )
    return out


def exit_code(argv: list[str]) -> int:
    """Runs the `ngixi` command in-process; its exit code."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def entries(path: Path) -> list[File]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def repack(path: Path, items: Sequence[Entry]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for item in items:
            if isinstance(item, tarfile.TarInfo):
                tar.addfile(item)
                continue
            info = tarfile.TarInfo(item[0])
            info.size = len(item[1])
            tar.addfile(info, io.BytesIO(item[1]))
    path.write_bytes(buffer.getvalue())


def sparse_archive(
    path: Path, head: Sequence[File], declared: Sequence[tuple[str, int]], *, cut_after_headers: bool = False
) -> Path:
    """A USTAR archive of `head`'s members as they are, then `declared` members of the given sizes whose bytes
    are holes: a file of any apparent size that costs no disk. `cut_after_headers` ends the file right after
    the last header, so that the last member's declared size runs past its end."""
    last_header_end = 0
    with path.open("wb") as out:
        for name, size, data in [*((n, len(d), d) for n, d in head), *((n, s, None) for n, s in declared)]:
            info = tarfile.TarInfo(name)
            info.size = size
            out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            if cut_after_headers and data is None:
                last_header_end = out.tell()
            padded = -(-size // 512) * 512
            if data is None:
                out.seek(padded, os.SEEK_CUR)
            else:
                out.write(data + bytes(padded - size))
        out.write(bytes(1024))
        out.truncate(last_header_end if cut_after_headers else -(-out.tell() // 10240) * 10240)
    return path
