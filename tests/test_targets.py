from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.runtime.errors import InvalidInput
from ngixi_build.runtime.targets import DEFAULT_TARGETS, _linux_cpu_features, resolve_target


def test_default_targets_have_explicit_baselines() -> None:
    assert DEFAULT_TARGETS == (
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
    )
    for triple in DEFAULT_TARGETS:
        features = resolve_target(triple, source="t").cpu_features
        assert ("sse2" in features) == triple.startswith("x86_64")


@pytest.mark.parametrize(
    ("triple", "message"),
    [
        ("x86_64-pc-windows-msvc", "not supported: Wasmer 2.1's Cranelift panics on Windows unwind information"),
        ("riscv64gc-unknown-linux-gnu", "not supported: Wasmer 2.1's Cranelift has no riscv64 backend"),
        ("bogus-x", 'unknown target "bogus-x"'),
    ],
)
def test_unsupported_targets_are_clear_errors(triple: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_target(triple, source="pyproject.toml: tool.ngixi.targets[0]")


def test_project_configuration_names_the_bad_entry(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ngixi]\ntargets = ["x86_64-unknown-linux-gnu", "x86_64-pc-windows-msvc"]\n'
    )
    with pytest.raises(InvalidInput, match=r"tool.ngixi.targets\[1\]: target \"x86_64-pc-windows-msvc\""):
        Project(tmp_path).targets()


def test_cpuinfo_flags_use_wasmer_spelling() -> None:
    cpuinfo = "processor\t: 0\nflags\t\t: fpu sse2 pni sse4_1 sse4_2 avx2\n"
    assert _linux_cpu_features(cpuinfo) == {"fpu", "sse2", "sse3", "sse4.1", "sse4.2", "avx2"}
    assert _linux_cpu_features("Features\t: fp asimd aes\n") == {"fp", "asimd", "aes"}
