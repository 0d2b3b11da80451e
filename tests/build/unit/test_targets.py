from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.spec.targets import (
    ARCHITECTURES,
    DEFAULT_TARGETS,
    Target,
    _linux_cpu_features,
    host_triple,
    resolve_target,
)


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


def configured(tmp_path: Path, targets: str) -> Project:
    (tmp_path / "pyproject.toml").write_text(f"[tool.ngixi]\ntargets = {targets}\n")
    return Project(tmp_path)


def test_a_table_names_its_own_baseline(tmp_path: Path) -> None:
    project = configured(
        tmp_path,
        '["aarch64-apple-darwin", { triple = "x86_64-unknown-linux-gnu", cpu_features = ["sse4.2", "sse2", "avx"] }]',
    )
    assert project.targets() == (
        Target("aarch64-apple-darwin", ()),
        Target("x86_64-unknown-linux-gnu", ("avx", "sse2", "sse4.2")),
    )


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (
            '[{ triple = "aarch64-unknown-linux-gnu", cpu_features = ["avx2"] }]',
            r'targets\[0\]\.cpu_features\[0\]: "avx2" is an x86_64 feature; Wasmer 2.1 knows no aarch64 CPU features',
        ),
        (
            '[{ triple = "aarch64-apple-darwin", cpu_features = ["neon"] }]',
            r'targets\[0\]\.cpu_features\[0\]: "neon" is not a CPU feature Wasmer knows; .* leave cpu_features empty',
        ),
        (
            '[{ triple = "x86_64-apple-darwin", cpu_features = ["avx"] }]',
            r"targets\[0\]\.cpu_features: x86_64-apple-darwin needs sse2 \(Cranelift cannot do without it\); add it",
        ),
        (
            '[{ triple = "x86_64-apple-darwin", cpu_features = ["sse2", "sse4_2"] }]',
            r'cpu_features\[1\]: "sse4_2" is not one of the x86_64 CPU features Wasmer knows; did you mean "sse4.2"\?',
        ),
        (
            '[{ triple = "x86_64-pc-windows-msvc", cpu_features = ["sse2"] }]',
            r'targets\[0\]: target "x86_64-pc-windows-msvc" is not supported: .*unwind information',
        ),
        ('[{ cpu_features = ["sse2"] }]', r"targets\[0\]\.triple: must be a target triple"),
        ('[{ triple = "aarch64-apple-darwin" }]', r"targets\[0\]\.cpu_features: must be an array of CPU feature names"),
        (
            '[{ triple = "aarch64-apple-darwin", cpu_features = [], cpu = [] }]',
            r"targets\[0\]\.cpu: unknown key; allowed: triple, cpu_features",
        ),
        ("[42]", r"targets\[0\]: must be a target triple or a \{ triple, cpu_features \} table"),
        ('"x86_64-apple-darwin"', r"targets: must be an array of target triples"),
        (
            '["aarch64-apple-darwin", { triple = "aarch64-apple-darwin", cpu_features = [] }]',
            r'targets: "aarch64-apple-darwin" is listed twice',
        ),
    ],
)
def test_bad_target_configuration_names_file_and_field(tmp_path: Path, targets: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=rf"^{tmp_path}/pyproject\.toml: tool\.ngixi\.(targets\[0\]\.)?{message}"):
        configured(tmp_path, targets).targets()


def test_host_feature_spellings_become_wasmer_names() -> None:
    assert _linux_cpu_features("flags\t: sse2 bmi1 bmi2 abm\n") == {"sse2", "bmi", "bmi2", "lzcnt"}
    assert set(_linux_cpu_features("flags\t: sse2 bmi1 abm pni sse4_1\n")) <= set(ARCHITECTURES["x86_64"].features)


def test_wasmtime_targets_are_opt_in_and_host_means_this_machine(tmp_path: Path) -> None:
    assert Project(tmp_path).wasmtime_triples() == ()
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nwasmtime_targets = ["host", "pulley64", "host"]\n')
    assert Project(tmp_path).wasmtime_triples() == (host_triple(), "pulley64")


def test_wasmtime_targets_other_than_host_and_pulley64_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nwasmtime_targets = ["aarch64-unknown-linux-gnu"]\n')
    with pytest.raises(InvalidInput, match=r"tool\.ngixi\.wasmtime_targets: must be an array of 'host' and 'pulley64'"):
        Project(tmp_path).wasmtime_triples()
