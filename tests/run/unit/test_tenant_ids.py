"""Tenant ids name sandbox directories: only one safe path component is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.loading.tenants import check_tenant_id, open_tenant


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
