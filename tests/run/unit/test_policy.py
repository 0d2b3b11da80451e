"""Operator policy files and the memory-limit check, without spawning anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_runtime.capabilities.base import no_ceiling, no_options
from ngixi_runtime.capabilities.registry import every_capability
from ngixi_runtime.errors import InvalidInput, PolicyError
from ngixi_runtime.guest.manifest import LIMIT_KEYS, Manifest, parse_manifest
from ngixi_runtime.loading.loader import check_memory_limit
from ngixi_runtime.spec.wasm import ModuleInfo, read_module_info
from ngixi_runtime.trust.policy import load_policy
from tests.conftest import HELLO_MANIFEST, REPO
from tests.wasmgen import module

MANIFEST = parse_manifest(HELLO_MANIFEST + "[limits]\nmemory_pages = 16\n", source="m", stem="hello")
DEFAULT = " (the default, unless the manifest sets it)"


def test_memory_without_maximum_is_refused() -> None:
    info = read_module_info(module(memory=(1, None)), source="w")
    with pytest.raises(PolicyError, match="its memory declares no maximum"):
        check_memory_limit(MANIFEST, info)


def test_memory_maximum_over_the_limit_is_refused() -> None:
    info = read_module_info(module(memory=(1, 64)), source="w")
    with pytest.raises(PolicyError, match=r"may grow to 64 pages, over its limits\.memory_pages = 16"):
        check_memory_limit(MANIFEST, info)
    check_memory_limit(MANIFEST, read_module_info(module(memory=(1, 16)), source="w"))


def wat_info(wat: str) -> ModuleInfo:
    wasmtime = pytest.importorskip("wasmtime")  # for its WAT assembler
    return read_module_info(wasmtime.wat2wasm(wat), source="w")


def test_every_memory_counts_exported_or_not() -> None:
    info = wat_info('(module (memory (export "memory") 1 16) (memory 1 2))')
    with pytest.raises(PolicyError, match="hello: it has 2 memories; a guest may have 1"):
        check_memory_limit(MANIFEST, info)


def test_a_shared_memory_is_refused_before_an_engine_sees_it() -> None:
    """Wasmtime compiled a -pthread build's shared memory for this machine, then refused it at its first load."""
    info = wat_info('(module (memory (export "memory") 1 16 shared))')
    with pytest.raises(PolicyError, match=r"hello: its memory is shared .* build it without threads$"):
        check_memory_limit(MANIFEST, info)


@pytest.mark.parametrize(
    ("table", "caps_growth", "refusal"),
    [
        ("1 funcref", True, None),
        ("1 funcref", False, "hello: its table 0 declares no maximum, which Wasmer needs: at most the 65536"),
        ("1 100000 funcref", False, "hello: its table 0 may grow to 100000 elements, over the 65536 elements"),
        ("1 65536 funcref", False, None),
        ("70000 funcref", True, "hello: its table 0 starts with 70000 elements, over the 65536 elements"),
    ],
)
def test_tables_are_bounded(table: str, caps_growth: bool, refusal: str | None) -> None:
    info = wat_info(f'(module (memory (export "memory") 1 16) (table {table}))')
    if refusal is None:
        check_memory_limit(MANIFEST, info, engine_caps_growth=caps_growth)
        return
    with pytest.raises(PolicyError) as refused:
        check_memory_limit(MANIFEST, info, engine_caps_growth=caps_growth)
    assert str(refused.value).startswith(refusal)


def test_too_many_tables_are_refused() -> None:
    info = wat_info('(module (memory (export "memory") 1 16) ' + "(table 1 1 funcref) " * 9 + ")")
    with pytest.raises(PolicyError, match="hello: it has 9 tables; a guest may have at most 8"):
        check_memory_limit(MANIFEST, info)


def test_the_table_cap_grows_with_the_memory_limit() -> None:
    big = parse_manifest(HELLO_MANIFEST + "[limits]\nmemory_pages = 1024\n", source="m", stem="hello")
    info = wat_info('(module (memory (export "memory") 1 16) (table 1 1048576 funcref))')
    check_memory_limit(big, info, engine_caps_growth=False)


def test_policy_lists_everything_a_manifest_exceeds(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[limits]\nmemory_pages = 8\n[capabilities]\nallow = ["stdio"]\n')
    assert load_policy(path).exceeded(MANIFEST) == [
        "limits.memory_pages: asks for 16 (the default, unless the manifest sets it), the policy allows at most 8",
        "capabilities.log: not allowed by the policy (it allows: stdio)",
    ]


ASKING = parse_manifest(
    """\
[guest]
name = "probe"
version = "0.1.0"

[capabilities.log]
[capabilities.fs]
preopens = [{ guest = "/data", host = "data", mode = "rw" }, { guest = "/etc/app", host = "secrets/app" }]
[capabilities.http]
allow = ["https://api.example.com", "https://*.cdn.example.com", "https://evil.com", "http://127.0.0.1:8080"]
methods = ["GET", "POST"]
timeout_ms = 20000
[capabilities.kv]
namespaces = ["counters", "secrets"]
max_value_bytes = 1024
max_keys = 5000

[limits]
log_bytes = 100000
stdout_bytes = 4096
""",
    source="m",
    stem="probe",
)
ALL = '[capabilities]\nallow = ["log", "fs", "http", "kv"]\n'


def exceeded(tmp_path: Path, policy: str, manifest: Manifest = ASKING) -> list[str]:
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    return load_policy(path).exceeded(manifest)


@pytest.mark.parametrize(
    ("ceilings", "expected"),
    [
        (
            '[capabilities.http]\nallow = ["https://*.example.com", "http://127.0.0.1:8080"]\n',
            [
                'capabilities.http.allow[2]: "https://evil.com" is not covered by the policy\'s allow '
                "(https://*.example.com, http://127.0.0.1:8080)"
            ],
        ),
        (
            '[capabilities.http]\nmethods = ["GET", "HEAD"]\n',
            ['capabilities.http.methods[1]: "POST" is not allowed by the policy (it allows: GET, HEAD)'],
        ),
        (
            "[capabilities.http]\nmax_response_bytes = 65536\n",  # the manifest's default: 1 MiB
            [f"capabilities.http.max_response_bytes: asks for 1048576{DEFAULT}, the policy allows at most 65536"],
        ),
        (
            "[capabilities.http]\ntimeout_ms = 10000\n",
            ["capabilities.http.timeout_ms: asks for 20000, the policy allows at most 10000"],
        ),
        (
            '[capabilities.fs]\nhost_roots = ["data", "public"]\n',
            ['capabilities.fs.preopens[1].host: "secrets/app" is outside the policy\'s host_roots (data, public)'],
        ),
        ('[capabilities.fs]\nhost_roots = ["secrets", "./data/"]\n', []),
        (
            '[capabilities.fs]\nguest_roots = ["/data"]\n',
            ['capabilities.fs.preopens[1].guest: "/etc/app" is outside the policy\'s guest_roots (/data)'],
        ),
        ('[capabilities.fs]\nguest_roots = ["/"]\n', []),
        (
            "[capabilities.fs]\nwritable = false\n",
            ['capabilities.fs.preopens[0].mode: "rw" is not allowed: the policy allows only read-only mounts'],
        ),
        (
            "[capabilities.fs]\nmax_bytes = 1048576\nmax_files = 10000\n",  # the manifest's defaults: 1 GiB, 10,000
            [f"capabilities.fs.max_bytes: asks for 1073741824{DEFAULT}, the policy allows at most 1048576"],
        ),
        (
            '[capabilities.kv]\nnamespaces = ["counters"]\n',
            ['capabilities.kv.namespaces[1]: "secrets" is not allowed by the policy (it allows: counters)'],
        ),
        (
            "[capabilities.kv]\nmax_value_bytes = 512\nmax_keys = 5000\n",
            ["capabilities.kv.max_value_bytes: asks for 1024, the policy allows at most 512"],
        ),
        (
            "[capabilities.kv]\nmax_keys = 1000\n",
            ["capabilities.kv.max_keys: asks for 5000, the policy allows at most 1000"],
        ),
        (
            "[capabilities.log]\n",
            [],
        ),
    ],
)
def test_each_ceiling_refuses_exactly_what_exceeds_it(tmp_path: Path, ceilings: str, expected: list[str]) -> None:
    assert exceeded(tmp_path, ALL + ceilings) == expected


def test_the_disk_quota_ceiling_leaves_a_guest_without_rw_preopens_alone(tmp_path: Path) -> None:
    reader = parse_manifest(
        '[guest]\nname = "reader"\nversion = "0.1.0"\n[capabilities.fs]\n'
        'preopens = [{ guest = "/data", host = "data" }]\n',
        source="m",
        stem="reader",
    )
    assert exceeded(tmp_path, "[capabilities.fs]\nmax_bytes = 1024\nmax_files = 1\n", reader) == []


def test_a_disk_quota_ceiling_refuses_a_component_guest_it_cannot_hold(tmp_path: Path) -> None:
    """A component guest's files are Wasmtime's WASI, which keeps no disk quota: a policy's max_bytes or max_files
    passed its rw preopens, which then held whatever they wrote."""
    component = '[guest]\nname = "c"\nversion = "0.1.0"\nabi = "component"\n[exports.run]\n[capabilities.fs]\n'
    writer = parse_manifest(
        component + 'preopens = [{ guest = "/data", host = "data", mode = "rw" }]\n', source="m", stem="c"
    )
    reader = parse_manifest(component + 'preopens = [{ guest = "/data", host = "data" }]\n', source="m", stem="c")
    quota = "[capabilities.fs]\nmax_files = 100000\n"
    assert exceeded(tmp_path, quota, writer) == [
        "capabilities.fs.preopens: the policy sets max_files, which a component guest's rw preopens are not held to"
        " (its files are Wasmtime's WASI, which keeps no disk quota); make them ro, or run it under a policy without"
        " these ceilings and its sandbox on a file system with its own limit"
    ]
    assert exceeded(tmp_path, quota, reader) == []
    assert exceeded(tmp_path, '[capabilities.fs]\nhost_roots = ["data"]\n', writer) == []


def test_log_and_stdout_quotas_have_ceilings(tmp_path: Path) -> None:
    assert exceeded(tmp_path, "[limits]\nlog_bytes = 65536\nstdout_bytes = 4096\n") == [
        "limits.log_bytes: asks for 100000, the policy allows at most 65536"
    ]


def test_a_policy_lists_every_excess_at_once(tmp_path: Path) -> None:
    policy = (
        ALL + '[capabilities.http]\nallow = ["https://api.example.com"]\nmethods = ["GET"]\n'
        "[capabilities.fs]\nwritable = false\n"
    )
    assert [line.split(":")[0] for line in exceeded(tmp_path, policy)] == [
        "capabilities.fs.preopens[0].mode",
        "capabilities.http.allow[1]",
        "capabilities.http.allow[2]",
        "capabilities.http.allow[3]",
        "capabilities.http.methods[1]",
    ]


@pytest.mark.parametrize(
    ("ceiling", "asked", "covered"),
    [
        ("https://*.example.com", "https://api.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://*.example.com", True),
        ("https://*.example.com", "https://*.api.example.com", True),
        ("https://*.example.com", "https://example.com", False),  # as in the manifest: subdomains only
        ("https://*.example.com", "https://badexample.com", False),
        ("https://api.example.com", "https://*.example.com", False),
        ("https://*.example.com", "http://api.example.com", False),  # scheme and port must match
        ("https://*.example.com", "https://api.example.com:8443", False),
        ("https://api.example.com:443", "https://api.example.com", True),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081", False),
    ],
)
def test_http_allow_ceiling_uses_the_manifest_wildcard_rules(
    tmp_path: Path, ceiling: str, asked: str, covered: bool
) -> None:
    manifest = parse_manifest(
        f'[guest]\nname = "probe"\nversion = "0.1.0"\n[capabilities.http]\nallow = ["{asked}"]\n',
        source="m",
        stem="probe",
    )
    found = exceeded(tmp_path, f'[capabilities.http]\nallow = ["{ceiling}"]\n', manifest)
    assert found == ([] if covered else [found[0]])
    assert covered or found[0].startswith("capabilities.http.allow[0]: ")


def test_every_capability_with_options_has_ceilings_for_them() -> None:
    for capability in every_capability():
        assert (capability.parse_options is no_options) == (capability.parse_ceiling is no_ceiling), capability.name


def test_a_fuel_ceiling_needs_every_manifest_to_set_fuel_within_it(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[limits]\nfuel = 1000\n")
    policy = load_policy(path)
    assert policy.exceeded(MANIFEST) == ["limits.fuel: not set, so unlimited; the policy allows at most 1000"]
    metered = HELLO_MANIFEST + "[limits]\nmemory_pages = 16\nfuel = {}\n"
    assert policy.exceeded(parse_manifest(metered.format(1000), source="m", stem="hello")) == []
    assert policy.exceeded(parse_manifest(metered.format(1001), source="m", stem="hello")) == [
        "limits.fuel: asks for 1001, the policy allows at most 1000"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limit]\n", 'limit: unknown key; did you mean "limits"?'),
        ("[limits]\nmemory = 1\n", 'limits.memory: unknown key; did you mean "memory_pages"?'),
        ("[limits]\ntimeout_ms = -1\n", "limits.timeout_ms: must be a non-negative integer"),
        ("[limits]\nfule = 1\n", 'limits.fule: unknown key; did you mean "fuel"?'),
        ('[capabilities]\nallow = ["lgo"]\n', "capabilities.allow[0]: unknown capability 'lgo'; did you mean \"log\"?"),
        ("[capabilities.htp]\n", 'capabilities.htp: unknown key; did you mean "http"?'),
        ("[capabilities]\nhttp = 1\n", "capabilities.http: must be a table of ceilings, not an integer"),
        (
            '[capabilities]\nallow = ["log"]\n[capabilities.kv]\nmax_keys = 1\n',
            'capabilities.kv: sets ceilings on a capability capabilities.allow leaves out; add "kv" to allow',
        ),
        ("[capabilities.log]\nquota = 1\n", "capabilities.log.quota: unknown key; [capabilities.log] takes no options"),
        (
            '[capabilities.http]\nallow = ["*.com"]\n',
            'capabilities.http.allow[0]: "*.com" is not scheme://host[:port]; write "https://*.com"',
        ),
        (
            '[capabilities.http]\nallow = ["https://*"]\n',
            'capabilities.http.allow[0]: "https://*" would allow every host; list each origin, '
            'like "https://api.example.com"',
        ),
        ('[capabilities.http]\nmethods = ["get"]\n', 'capabilities.http.methods[0]: "get" is not an HTTP method; did'),
        ("[capabilities.http]\ntimeout_ms = 0\n", "capabilities.http.timeout_ms: must be between 1 and 300000, not 0"),
        (
            '[capabilities.fs]\nhost_roots = ["data/../../etc"]\n',
            'capabilities.fs.host_roots[0]: "data/../../etc" leaves the sandbox root; ".." is not allowed',
        ),
        (
            '[capabilities.fs]\nguest_roots = ["data"]\n',
            'capabilities.fs.guest_roots[0]: "data" must be an absolute, normalized guest path like "/data"',
        ),
        (
            "[capabilities.fs]\nhost_roots = [1]\n",
            'capabilities.fs.host_roots[0]: must be a string like "data", not an integer',
        ),
        (
            "[capabilities.fs]\nguest_roots = [true]\n",
            'capabilities.fs.guest_roots[0]: must be a string like "/data", not a boolean',
        ),
        ('[capabilities.fs]\nwritable = "no"\n', "capabilities.fs.writable: must be true or false, not a string"),
        (
            '[capabilities.kv]\nnamespace = ["a"]\n',
            'capabilities.kv.namespace: unknown key; did you mean "namespaces"?',
        ),
        (
            '[capabilities.kv]\nnamespaces = ["Counters"]\n',
            'capabilities.kv.namespaces[0]: "Counters" must be lowercase letters',
        ),
        ("[capabilities.kv]\nmax_keys = 0\n", "capabilities.kv.max_keys: must be between 1 and 1000000, not 0"),
        ("[capabilities\n", "not valid TOML"),
    ],
)
def test_bad_policy_files_name_the_file_and_field_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_documented_policy_is_valid_and_sets_every_ceiling(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "host-policy.md").read_text(encoding="utf-8")
    path = tmp_path / "policy.toml"
    path.write_text(doc.split("## Format")[1].split("```toml\n")[1].split("```")[0])
    policy = load_policy(path)
    assert set(policy.limits) == set(LIMIT_KEYS)
    assert set(policy.ceilings) == {"fs", "http", "kv"}
    assert all(isinstance(ceiling, tuple) and None not in ceiling for ceiling in policy.ceilings.values())


def test_a_quota_the_manifest_leaves_at_its_default_is_said_to_be_the_default(tmp_path: Path) -> None:
    """hello grants no stdio and sets no stdout_bytes: the operator reading the refusal learns the 1 MiB is the
    default, not something its author asked for."""
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\nstdout_bytes = 10\ntimeout_ms = 10\n")
    manifest = parse_manifest(HELLO_MANIFEST + "[limits]\ntimeout_ms = 20\n", source="m", stem="hello")
    assert load_policy(policy).exceeded(manifest) == [
        "limits.stdout_bytes: asks for 1048576 (the default, unless the manifest sets it), "
        "the policy allows at most 10",
        "limits.timeout_ms: asks for 20, the policy allows at most 10",
    ]


CAPABILITY_DEFAULTS = [
    ('[capabilities.kv]\nnamespaces = ["n"]\nmax_keys = 5\n', "kv", {"max_value_bytes": 65536}, {"max_keys": 5}),
    (
        '[capabilities.http]\nallow = ["https://example.com"]\ntimeout_ms = 5\n',
        "http",
        {"max_response_bytes": 1 << 20},
        {"timeout_ms": 5},
    ),
    (
        '[capabilities.fs]\npreopens = [{ guest = "/d", host = "d", mode = "rw" }]\nmax_files = 5\n',
        "fs",
        {"max_bytes": 1 << 30},
        {"max_files": 5},
    ),
    ("[capabilities.stdin]\n", "stdin", {"max_bytes": 1 << 20}, {}),
]


@pytest.mark.parametrize(("table", "name", "defaulted", "given"), CAPABILITY_DEFAULTS)
def test_a_capability_quota_left_at_its_default_is_said_to_be_the_default_as_limits_are(
    tmp_path: Path, table: str, name: str, defaulted: dict[str, int], given: dict[str, int]
) -> None:
    """[limits]' refusals said when the value was the default; capability ceilings' did not."""
    policy = tmp_path / "policy.toml"
    ceilings = "".join(f"{key} = 1\n" for key in (*defaulted, *given))
    policy.write_text(f'[capabilities]\nallow = ["log", "{name}"]\n[capabilities.{name}]\n{ceilings}')
    manifest = parse_manifest(HELLO_MANIFEST + table, source="m", stem="hello")
    asked = [(key, f"{value}{DEFAULT}") for key, value in defaulted.items()] + [(k, str(v)) for k, v in given.items()]
    assert sorted(load_policy(policy).exceeded(manifest)) == sorted(
        f"capabilities.{name}.{key}: asks for {value}, the policy allows at most 1" for key, value in asked
    )


def test_http_methods_left_at_their_default_are_said_to_be_the_default(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities.http]\nmethods = ["HEAD"]\n')
    manifest = parse_manifest(
        HELLO_MANIFEST + '[capabilities.http]\nallow = ["https://example.com"]\n', source="m", stem="hello"
    )
    assert load_policy(policy).exceeded(manifest) == [
        f'capabilities.http.methods[0]: "GET"{DEFAULT} is not allowed by the policy (it allows: HEAD)'
    ]


def test_a_policy_file_that_cannot_be_opened_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    """`--policy /missing` said "cannot read the policy: No such file or directory", and no more."""
    with pytest.raises(InvalidInput, match=r"/missing\.toml: cannot read the policy: .*; name an existing file$"):
        load_policy(tmp_path / "missing.toml")
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInput, match=r"file/policy\.toml: .*Not a directory; name an existing file$"):
        load_policy(tmp_path / "file" / "policy.toml")
    (tmp_path / "loop.toml").symlink_to("loop.toml")
    with pytest.raises(InvalidInput, match=r"loop\.toml: .*; its symbolic links loop; name the file itself$"):
        load_policy(tmp_path / "loop.toml")
