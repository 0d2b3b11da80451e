"""Operator policy files and the memory-limit check, without spawning anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.runtime.errors import InvalidInput, PolicyError
from ngixi_build.runtime.loader import check_memory_limit
from ngixi_build.runtime.manifest import parse_manifest
from ngixi_build.runtime.policy import load_policy
from ngixi_build.runtime.wasm import read_module_info
from tests.conftest import HELLO_MANIFEST
from tests.wasmgen import module

MANIFEST = parse_manifest(HELLO_MANIFEST + "[limits]\nmemory_pages = 16\n", source="m", stem="hello")


def test_memory_without_maximum_is_refused() -> None:
    info = read_module_info(module(memory=(1, None)), source="w")
    with pytest.raises(PolicyError, match="its memory declares no maximum"):
        check_memory_limit(MANIFEST, info)


def test_memory_maximum_over_the_limit_is_refused() -> None:
    info = read_module_info(module(memory=(1, 64)), source="w")
    with pytest.raises(PolicyError, match=r"may grow to 64 pages, over its limits\.memory_pages = 16"):
        check_memory_limit(MANIFEST, info)
    check_memory_limit(MANIFEST, read_module_info(module(memory=(1, 16)), source="w"))


def test_policy_lists_everything_a_manifest_exceeds(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[limits]\nmemory_pages = 8\n[capabilities]\nallow = ["stdio"]\n')
    assert load_policy(path).exceeded(MANIFEST) == [
        "limits.memory_pages: asks for 16, the policy allows at most 8",
        "capabilities.log: not allowed by the policy (it allows: stdio)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limit]\n", 'limit: unknown key; did you mean "limits"?'),
        ("[limits]\nmemory = 1\n", 'limits.memory: unknown key; did you mean "memory_pages"?'),
        ("[limits]\ntimeout_ms = -1\n", "limits.timeout_ms: must be a non-negative integer"),
        ('[capabilities]\nallow = ["lgo"]\n', "capabilities.allow[0]: unknown capability 'lgo'"),
        ("[capabilities\n", "not valid TOML"),
    ],
)
def test_bad_policy_files_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_policy(path)
