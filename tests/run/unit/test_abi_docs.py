"""docs/host-abi.md describes exactly the registry's imports and the codes the host returns."""

from __future__ import annotations

import re

from ngixi_runtime.capabilities.registry import provisions
from ngixi_runtime.spec.abi import Errno, Status
from tests.conftest import REPO

DOC = (REPO / "docs" / "host-abi.md").read_text(encoding="utf-8")
IMPORT = re.compile(r'^\(import "(?P<module>[^"]+)" "(?P<name>[^"]+)" \(func(?P<rest>.*)\)\)$', re.MULTILINE)


def documented_imports() -> dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]]:
    found = {}
    for match in IMPORT.finditer(DOC):
        params = tuple(re.findall(r"\(param \$\w+ (\w+)\)", match["rest"]))
        results = tuple(re.findall(r"\(result (\w+)\)", match["rest"]))
        found[(match["module"], match["name"])] = (params, results)
    return found


def test_every_import_is_documented_with_its_signature() -> None:
    registry = {
        key: (p.host_import.signature.params, p.host_import.signature.results) for key, p in provisions().items()
    }
    assert documented_imports() == registry


def test_every_code_is_documented() -> None:
    for codes in (Status, Errno):
        for code in codes:
            assert f"| {code.value} | `{code.name}` |" in DOC, code
