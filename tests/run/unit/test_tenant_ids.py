"""Tenant ids name sandbox directories: only one safe path component is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.tenants import check_tenant_id, open_tenant
from tests.conftest import KeyFiles, exit_code, make_bundle
from tests.wasmgen import ADD_BODY, Func, module


@pytest.mark.parametrize(
    "tenant", ["../acme", "..", ".", "a/b", "/tmp", "", "Acme", "-x", "_x", "a" * 65, "acme\n", "a b"]
)
def test_a_bad_tenant_id_is_refused_before_the_bundle_is_read(tmp_path: Path, tenant: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        open_tenant(tmp_path / "missing.ngx", trust_file=tmp_path / "missing.toml", tenant=tenant)
    assert str(caught.value) == (
        f"tenant: {tenant!r} is not a tenant id; "
        'use 1 to 64 lowercase letters, digits, "-" and "_", starting with a letter or digit'
    )


@pytest.mark.parametrize("tenant", ["default", "acme-1_b", "0", "a" * 64])
def test_good_tenant_ids_are_accepted(tenant: str) -> None:
    check_tenant_id(tenant)


def test_ngixi_run_names_its_option_for_a_bad_tenant_id(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal said `tenant:`, the API's keyword, to an operator who typed --tenant."""
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32"] * 2, ["i32"], ADD_BODY)]))
    argv = ["run", "--in-process", "--trust", str(keys.trust), "--tenant", "Acme", str(bundle), "add", "1", "2"]
    assert exit_code(argv) == 2
    assert capsys.readouterr().err.startswith("ngixi: error: --tenant: 'Acme' is not a tenant id; use 1 to 64 ")


@pytest.mark.parametrize("under", ["file", "/dev/null"])
def test_a_sandbox_under_a_file_is_refused_naming_the_option(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str], under: str
) -> None:
    """It was `/dev/null/x/default: Not a directory`, an OSError's text, even for a guest that keeps no state."""
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32"] * 2, ["i32"], ADD_BODY)]))
    blocking = tmp_path / under
    blocking.touch()
    sandbox = blocking / "x" / "y"
    argv = ["run", "--in-process", "--trust", str(keys.trust), "--sandbox", str(sandbox), str(bundle), "add", "1", "2"]
    assert exit_code(argv) == 2
    assert capsys.readouterr().err == (
        f"ngixi: error: --sandbox {sandbox}: it is under {blocking}, which is not a directory; name a directory "
        "(it is made if missing)\n"
    )
