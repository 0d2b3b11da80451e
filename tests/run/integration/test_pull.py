"""`ngixi pull` on the run side alone (`make test-loader`: Python 3.12, Wasmtime, the `pull` extra) against a real
registry on loopback: the bundle pulled, verified and run; a file already there with other bytes kept; and, without
the extra, one line naming what to install."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ngixi_runtime.registry import oci
from tests.conftest import KeyFiles, make_bundle, make_key
from tests.oci_registry import serve_registry
from tests.wasmgen import ADD_BODY, Func, Imp, module

NGIXI = Path(sys.executable).parent / "ngixi"
ADD_WASM = module(
    imports=[Imp("ngixi", "log", ["i32"] * 3)], functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)]
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


@pytest.fixture(scope="module")
def release_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key(tmp_path_factory.mktemp("keys"), channels=["release"])


@pytest.fixture(scope="module")
def published(registry: str, release_keys: KeyFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """hello 0.1.0 pushed as `doit publish` pushes it (one gzip'd layer); its reference and the bundle's bytes."""
    scratch = tmp_path_factory.mktemp("published")
    bundle = make_bundle(scratch / "bundle", release_keys.key, wasm=ADD_WASM, channel="release").read_bytes()
    layer = scratch / "layer"
    layer.write_bytes(gzip.compress(bundle, mtime=0))
    oci.client_for(registry).push(
        target=f"{registry}/ngixi/hello:0.1.0",
        files=[f"{layer}:{oci.GZIP_BUNDLE_MEDIA_TYPE}"],
        disable_path_validation=True,
        quiet=True,
    )
    return f"{registry}/ngixi/hello:0.1.0", bundle


def ngixi(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `ngixi`, run away from the source tree."""
    return subprocess.run([NGIXI, *arguments], cwd=cwd, capture_output=True, text=True, check=False)


def test_ngixi_pulls_verifies_and_runs_a_published_bundle(
    published: tuple[str, bytes], release_keys: KeyFiles, tmp_path: Path
) -> None:
    reference, bundle = published
    trust = ("--trust", str(release_keys.trust))
    pulled = ngixi("pull", *trust, "--out", "bundles", "--timeout", "60", reference, cwd=tmp_path)
    assert (pulled.returncode, pulled.stdout, pulled.stderr) == (0, "ok: bundles/hello-0.1.0.ngx\n", "")
    path = tmp_path / "bundles" / "hello-0.1.0.ngx"
    assert path.read_bytes() == bundle
    assert ngixi("run", "--in-process", *trust, str(path), "add", "2", "3", cwd=tmp_path).stdout == "5\n"
    again = ngixi("pull", *trust, "--out", "bundles", reference, cwd=tmp_path)
    assert again.returncode == 0 and path.read_bytes() == bundle  # the same bytes: left as they are


def test_a_pull_over_a_file_with_other_bytes_is_refused_and_the_file_kept(
    published: tuple[str, bytes], release_keys: KeyFiles, tmp_path: Path
) -> None:
    (tmp_path / "hello-0.1.0.ngx").write_bytes(b"the operator's own")
    refused = ngixi("pull", "--trust", str(release_keys.trust), published[0], cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("ngixi: error: hello-0.1.0.ngx: already exists, with other content than this")
    assert len(refused.stderr.splitlines()) == 1
    assert (tmp_path / "hello-0.1.0.ngx").read_bytes() == b"the operator's own"


@pytest.mark.parametrize("missing", ["oras", "requests"])
def test_without_the_pull_extra_ngixi_pull_names_the_extra_to_install(missing: str, tmp_path: Path) -> None:
    """As on a host that installed ngixi-runtime without `[pull]`: the extra's module is not importable."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from ngixi_runtime.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "pull", "127.0.0.1:5000/ngixi/hello:0.1.0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"ngixi: error: ngixi pull needs the registry client ({missing} is not installed): "
        "pip install 'ngixi-runtime[pull]'\n"
    )
