"""Manifest validation from a table of (manifest text, exact expected error lines)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ngixi_runtime.capabilities.fs import FsOptions, Preopen
from ngixi_runtime.capabilities.http_client import HttpOptions, Origin
from ngixi_runtime.capabilities.kv import KvOptions
from ngixi_runtime.errors import InvalidInput, VerificationError
from ngixi_runtime.guest.manifest import SEMVER_PATTERN, ManifestError, load_manifest, parse_manifest
from ngixi_runtime.spec.bundle_format import parse_index

COMPONENT_NAME = (
    "a component guest's export name must be a WIT name (lowercase words joined by -), or INTERFACE#NAME for a "
    "function of an exported interface, e.g."
)
F = "manifests/hello.toml"
ANY = "…"  # a line the case does not pin down (it is pinned by another case)
GUEST = '[guest]\nname = "hello"\nversion = "0.1.0"\n'
FS = GUEST + "[capabilities.fs]\n"
HTTP = GUEST + "[capabilities.http]\n"
KV = GUEST + "[capabilities.kv]\n"
PREOPENS = "[capabilities.fs.preopens]]\n"

INVALID = [
    ("", [f"{F}: guest: the [guest] table is required (name, version, kind)"]),
    ('[guest]\nversion = "0.1.0"\n', [f"{F}: guest.name: is required"]),
    (
        GUEST.replace('"hello"', '"Hello"'),
        [f'{F}: guest.name: "Hello" must be lowercase letters, digits and "-", starting with a letter'],
    ),
    (
        GUEST.replace('"hello"', '"other"'),
        [f'{F}: guest.name: "other" must match the file name "hello.toml"; rename one of them'],
    ),
    (GUEST.replace('"0.1.0"', '"1.0"'), [f'{F}: guest.version: "1.0" is not a semantic version like "1.2.3"']),
    (GUEST.replace('"0.1.0"', "1"), [f"{F}: guest.version: must be a string, not an integer"]),
    (GUEST + 'kind = "cmd"\n', [f'{F}: guest.kind: "cmd" must be "library" or "command" (a WASI program with _start)']),
    (GUEST + 'nmae = "x"\n', [f'{F}: guest.nmae: unknown key; did you mean "name"?']),
    ("limit = 1\n" + GUEST, [f'{F}: limit: unknown key; did you mean "limits"?']),
    (GUEST + "[export.add]\n", [f'{F}: export: unknown key; did you mean "exports"?']),
    (
        GUEST + '[exports.add]\nparams = ["i33"]\n',
        [f"{F}: exports.add.params[0]: 'i33' is not one of i32, i64, f32, f64; did you mean \"i32\"?"],
    ),
    (
        GUEST + '[exports.add]\nparams = "i32"\n',
        [f"{F}: exports.add.params: must be an array of value types, not a string"],
    ),
    (GUEST + '[exports.add]\nparam = ["i32"]\n', [f'{F}: exports.add.param: unknown key; did you mean "params"?']),
    (GUEST + "[capabilities.lgo]\n", [f'{F}: capabilities.lgo: unknown capability; did you mean "log"?']),
    (
        GUEST + "[capabilities.log]\nlevel = 1\n",
        [f"{F}: capabilities.log.level: unknown key; [capabilities.log] takes no options"],
    ),
    (GUEST + "[limits]\nmemory_pages = 0\n", [f"{F}: limits.memory_pages: must be between 1 and 65536, not 0"]),
    (GUEST + "[limits]\ntimeout_ms = 1.5\n", [f"{F}: limits.timeout_ms: must be an integer, not a number"]),
    (GUEST + "[limits]\nmemory = 2\n", [f'{F}: limits.memory: unknown key; did you mean "memory_pages"?']),
    (GUEST + "[limits]\nfuel = 0\n", [f"{F}: limits.fuel: must be between 1 and {(1 << 63) - 1}, not 0"]),
    (GUEST + '[limits]\nfuel = "1e6"\n', [f"{F}: limits.fuel: must be an integer, not a string"]),
    (GUEST + "[limits]\nfeul = 1\n", [f'{F}: limits.feul: unknown key; did you mean "fuel"?']),
    (GUEST + '[[smoke]]\ncall = "nope"\n', [f'{F}: smoke[0].call: "nope" is not declared under [exports]']),
    (
        GUEST + '[exports.add]\nparams = ["i32"]\n[[smoke]]\ncall = "add"\nargs = []\n',
        [f"{F}: smoke[0].args: add takes 1 argument, the smoke call gives 0"],
    ),
    (
        GUEST + 'smoke = "x"\n',
        [f"{F}: guest.smoke: unknown key; allowed: name, version, kind, description, abi, language"],
    ),
    (
        GUEST + 'abi = "wasi"\n',
        [f'{F}: guest.abi: "wasi" must be "core" (a core module) or "component" (the component model)'],
    ),
    (
        GUEST + 'abi = "component"\n[exports.add_two]\n[capabilities.random]\n',
        [f'{F}: exports.add_two: {COMPONENT_NAME} "add-two"'],
    ),
    (  # not also told that any letters, digits and underscores would do
        GUEST + 'abi = "component"\n[exports.sort--keys]\n[exports."2x"]\n[exports."acme:calc/api#"]\n',
        [
            f'{F}: exports.sort--keys: {COMPONENT_NAME} "sort-keys"',
            f'{F}: exports.2x: {COMPONENT_NAME} "x"',
            f'{F}: exports.acme:calc/api#: {COMPONENT_NAME} "acme-calc-api"',
        ],
    ),
    ("[guest\n", [f"{F}: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 7)"]),
    # fs
    (FS + 'preopens = "data"\n', [f"{F}: capabilities.fs.preopens: must be an array, not a string"]),
    (
        FS + 'preopens = ["data"]\n',
        [
            f"{F}: capabilities.fs.preopens[0]: must be a table like "
            '{ guest = "/data", host = "data", mode = "rw" }, not a string'
        ],
    ),
    (
        FS + 'preopens = [{ guest = "/data", host = "/etc" }]\n',
        [
            f'{F}: capabilities.fs.preopens[0].host: "/etc" is absolute; '
            "give a path relative to the tenant's sandbox root"
        ],
    ),
    (
        FS + 'preopens = [{ guest = "/data", host = "data/../../etc" }]\n',
        [f'{F}: capabilities.fs.preopens[0].host: "data/../../etc" leaves the sandbox root; ".." is not allowed'],
    ),
    (  # a signed manifest's NUL ended its load in a ValueError traceback ("report it"), isolated and in-process
        FS + 'preopens = [{ guest = "/d\\u0000", host = "da\\u0000ta" }]\n',
        [
            f'{F}: capabilities.fs.preopens[0].guest: "/d\\x00" holds a NUL character, which no path can hold',
            f'{F}: capabilities.fs.preopens[0].host: "da\\x00ta" holds a NUL character, which no path can hold',
        ],
    ),
    (
        FS + 'preopens = [{ guest = "/data", host = "" }]\n',
        [f'{F}: capabilities.fs.preopens[0].host: "" is empty; use "." for the sandbox root itself'],
    ),
    (
        FS + 'preopens = [{ guest = "data", host = "data" }]\n',
        [f'{F}: capabilities.fs.preopens[0].guest: "data" must be an absolute, normalized guest path like "/data"'],
    ),
    (
        FS + 'preopens = [{ guest = "/data/../x", host = "data" }]\n',
        [
            f'{F}: capabilities.fs.preopens[0].guest: "/data/../x" must be an absolute, normalized guest path '
            'like "/data"'
        ],
    ),
    (
        FS + 'preopens = [{ guest = "/data", host = "data", mode = "wr" }]\n',
        [f'{F}: capabilities.fs.preopens[0].mode: "wr" must be "ro" (read-only) or "rw" (read-write)'],
    ),
    (
        FS + 'preopens = [{ guest = "/data", hots = "data" }]\n',
        [
            f'{F}: capabilities.fs.preopens[0].hots: unknown key; did you mean "host"?',
            f"{F}: capabilities.fs.preopens[0].host: is required",
        ],
    ),
    (
        FS + 'preopens = [{ guest = "/data", host = "a" }, { guest = "/data", host = "b" }]\n',
        [f'{F}: capabilities.fs.preopens[1]: "/data" is listed twice'],
    ),
    (
        FS + 'preopens = [{ guest = "/d", host = "d", mode = "rw" }, { guest = "/c", host = "d/c", mode = "ro" }]\n',
        [
            f'{F}: capabilities.fs.preopens[1].host: "d/c" is read-only, but a rw preopen reaches it; '
            "move it out or make both ro"
        ],
    ),
    (FS + "preopen = []\n", [f'{F}: capabilities.fs.preopen: unknown key; did you mean "preopens"?']),
    # http
    (
        HTTP,
        [
            f"{F}: capabilities.http.allow: is required: list the origins the guest may fetch, "
            'like ["https://api.example.com"]'
        ],
    ),
    (
        HTTP + 'allow = ["*"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "*" would allow every host; list each origin, like "https://api.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["https://*"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "https://*" would allow every host; list each origin, '
            'like "https://api.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["api.example.com"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "api.example.com" is not scheme://host[:port]; write "https://api.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["ftp://files.example.com"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "ftp://files.example.com" is not scheme://host[:port]: '
            "the scheme must be http or https"
        ],
    ),
    (
        HTTP + 'allow = ["https://api.example.com/v1"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "https://api.example.com/v1" is an origin without path, query or '
            'fragment; write "https://api.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["https://me:pw@api.example.com"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "https://me:pw@api.example.com" must not contain user info; '
            'write "https://api.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["http://127.0.0.1:99999"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "http://127.0.0.1:99999" is not scheme://host[:port]: '
            "the port must be a number from 1 to 65535"
        ],
    ),
    (
        HTTP + 'allow = ["https://*.com"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "https://*.com" has a wildcard that does not stand for subdomains '
            'of one domain, like "*.example.com"'
        ],
    ),
    (
        HTTP + 'allow = ["https://exa_mple.com"]\n',
        [
            f'{F}: capabilities.http.allow[0]: "https://exa_mple.com" is not scheme://host[:port]: '
            '"exa_mple.com" is not a host name or IP address'
        ],
    ),
    (
        HTTP + 'allow = ["https://a.example", "https://A.example:443"]\n',
        [f'{F}: capabilities.http.allow[1]: "https://a.example" is listed twice'],
    ),
    (
        HTTP + 'allow = ["https://a.example"]\nmethods = ["get"]\n',
        [f'{F}: capabilities.http.methods[0]: "get" is not an HTTP method; did you mean "GET"?'],
    ),
    (
        HTTP + 'allow = ["https://a.example"]\nmax_response_bytes = 0\ntimeout_ms = "5s"\n',
        [
            f"{F}: capabilities.http.max_response_bytes: must be between 1 and 1073741824, not 0",
            f"{F}: capabilities.http.timeout_ms: must be an integer, not a string",
        ],
    ),
    (
        HTTP + 'allow = ["https://a.example"]\nallow_redirects = true\n',
        [
            f"{F}: capabilities.http.allow_redirects: unknown key; "
            "allowed: allow, methods, max_response_bytes, timeout_ms"
        ],
    ),
    # kv
    (
        KV,
        [f'{F}: capabilities.kv.namespaces: is required: name the namespaces the guest may use, like ["counters"]'],
    ),
    (
        KV + "namespaces = []\n",
        [
            f"{F}: capabilities.kv.namespaces: must not be empty: name the namespaces the guest may use, "
            'like ["counters"]'
        ],
    ),
    (
        KV + 'namespaces = ["Counters", 7]\n',
        [
            f'{F}: capabilities.kv.namespaces[0]: "Counters" must be lowercase letters, digits, "-" and "_", '
            "starting with a letter",
            f"{F}: capabilities.kv.namespaces[1]: must be a string, not an integer",
        ],
    ),
    (
        KV + 'namespaces = ["a", "a"]\n',
        [f'{F}: capabilities.kv.namespaces[1]: "a" is listed twice'],
    ),
    (
        KV + 'namespaces = ["a"]\nmax_keys = 0\nmax_value_bytes = 1e3\n',
        [
            f"{F}: capabilities.kv.max_value_bytes: must be an integer, not a number",
            f"{F}: capabilities.kv.max_keys: must be between 1 and 1000000, not 0",
        ],
    ),
    (
        GUEST + "[capabilities.fs]\nmax_bytes = -1\nmax_files = 1e3\n",
        [
            f"{F}: capabilities.fs.max_bytes: must be between 0 and {1 << 50}, not -1",
            f"{F}: capabilities.fs.max_files: must be an integer, not a number",
        ],
    ),
    (
        KV + 'namespace = ["a"]\n',
        [f'{F}: capabilities.kv.namespace: unknown key; did you mean "namespaces"?', ANY],
    ),
    (
        '[guest]\nname = "Bad"\nversion = "x"\n[limits]\nmemory_pages = -1\n',
        [
            f'{F}: guest.name: "Bad" must be lowercase letters, digits and "-", starting with a letter',
            f'{F}: guest.version: "x" is not a semantic version like "1.2.3"',
            f"{F}: limits.memory_pages: must be between 1 and 65536, not -1",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID, ids=[f"case{i}" for i in range(len(INVALID))])
def test_invalid_manifest_reports_every_problem(text: str, expected: list[str]) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source=F, stem="hello")
    assert len(caught.value.lines) == len(expected)
    for line, want in zip(caught.value.lines, expected, strict=True):
        assert want in (line, ANY)


def test_valid_manifest_becomes_typed_records() -> None:
    text = GUEST + (
        'kind = "library"\n[exports.add]\nparams = ["i32", "i32"]\nresults = ["i32"]\n'
        '[capabilities.log]\n[limits]\nmemory_pages = 4\n[[smoke]]\ncall = "add"\nargs = [2, 3]\nexpect = 5\n'
    )
    manifest = parse_manifest(text, source=F, stem="hello")
    assert manifest.guest.name == "hello" and manifest.guest.type.kind == "library"
    assert manifest.export("add") is not None
    assert manifest.grants == frozenset({"log"})
    assert manifest.limits.memory_pages == 4 and manifest.limits.timeout_ms == 5000
    assert manifest.limits.fuel is None
    metered = parse_manifest(text.replace("memory_pages = 4", "fuel = 1000000"), source=F, stem="hello")
    assert metered.limits.fuel == 1_000_000
    assert manifest.smoke[0].args == (2, 3) and manifest.smoke[0].expect == (5,)


def test_a_component_exports_wit_names_and_functions_of_its_exported_interfaces() -> None:
    """As prebuilt components of other toolchains export them (wit-bindgen's, jco's)."""
    names = ("add", "sort-keys", "get-URL", "x1-y2", "acme:calc/api#add", "wasi:http/incoming-handler@0.2.6#handle")
    text = GUEST + 'abi = "component"\n' + "".join(f'[exports."{name}"]\n' for name in names)
    manifest = parse_manifest(text, source=F, stem="hello")
    assert tuple(export.name for export in manifest.exports) == names


def test_sample_manifests_are_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "manifests"
    for path in sorted(root.glob("*.toml")):
        assert load_manifest(path).guest.name == path.stem


def test_unreadable_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^\S+missing\.toml: missing; create it: each guest needs manifests/"):
        load_manifest(tmp_path / "missing.toml")
    (tmp_path / "directory.toml").mkdir()
    with pytest.raises(InvalidInput, match=r"directory\.toml: a directory, not a regular file"):
        load_manifest(tmp_path / "directory.toml")


def test_capability_options_become_typed_records() -> None:
    text = GUEST + (
        "[capabilities.fs]\n"
        'preopens = [{ guest = "/data", host = "./tenant/data", mode = "rw" },'
        ' { guest = "/etc/app", host = "config" }]\n'
        "[capabilities.http]\n"
        'allow = ["https://API.example.com", "http://127.0.0.1:8080", "https://*.cdn.example.net"]\n'
        'methods = ["GET", "POST"]\n'
        "[capabilities.kv]\n"
        'namespaces = ["counters", "sessions"]\n'
        "max_keys = 5\n"
    )
    manifest = parse_manifest(text, source=F, stem="hello")
    assert manifest.grants == frozenset({"fs", "http", "kv"})
    fs = manifest.options(FsOptions)
    assert fs is not None
    assert fs.preopens == (Preopen("/data", "tenant/data", "rw"), Preopen("/etc/app", "config", "ro"))
    http = manifest.options(HttpOptions)
    assert http is not None
    assert [str(o) for o in http.allow] == [
        "https://api.example.com",
        "http://127.0.0.1:8080",
        "https://*.cdn.example.net",
    ]
    assert (http.methods, http.max_response_bytes, http.timeout_ms) == (("GET", "POST"), 1 << 20, 10_000)
    assert http.allowing(Origin("https", "img.cdn.example.net", 443)) == http.allow[2]
    assert http.allowing(Origin("https", "cdn.example.net", 443)) is None
    assert http.allowing(Origin("http", "api.example.com", 80)) is None
    assert http.allow[1].address is not None and http.allow[0].address is None
    assert manifest.options(KvOptions) == KvOptions(("counters", "sessions"), 65536, 5)


def test_options_of_an_ungranted_capability_are_none() -> None:
    manifest = parse_manifest(GUEST + "[capabilities.log]\n", source=F, stem="hello")
    assert manifest.options(FsOptions) is None and manifest.grants == frozenset({"log"})


@pytest.mark.parametrize(
    "version",
    ["0.1.0", "10.20.30", "1.2.3-rc.1", "1.2.3+build.5", "01.2.3", "1.02.3", "1.2", "1.2.3.4", "1..3", "1.2.",
     "\u0661.2.3", "1.2.\u0663", "+1.2.3", " 1.2.3", "1.2.3\n", "1.2.3-", "0.0.0"],
)  # fmt: skip
def test_version_checked_as_the_semver_pattern_says(version: str) -> None:
    """A plain MAJOR.MINOR.PATCH is told without compiling the pattern; every version gets the pattern's verdict."""
    try:
        parse_manifest(GUEST.replace('"0.1.0"', json.dumps(version)), source=F, stem="hello")
        lines: list[str] = []
    except ManifestError as error:
        lines = error.lines
    refused = any("guest.version:" in line and "is not a semantic version" in line for line in lines)
    assert refused == (re.match(SEMVER_PATTERN, version) is None)


@pytest.mark.parametrize(
    "text",
    [
        GUEST + f"{'y' * 100_000} = 1\n",
        HTTP + f'allow = ["{"h" * 60_000}"]\n',  # under TEXT_BYTES, which ends the check before it is quoted
        GUEST + f'[exports.f]\nparams = ["{"x" * 60_000}"]\n',
    ],
    ids=["key", "value", "export parameter"],
)
def test_a_huge_key_or_value_is_quoted_cut_short(text: str) -> None:
    """A signer's manifest quoted in full a key or value of 100,000 characters (200,000 where a message names it
    twice) on the operator's terminal: each field and message is cut in its middle, keeping what to do at its end."""
    with pytest.raises(ManifestError) as refused:
        parse_manifest(text, source=F, stem="hello")
    [line] = str(refused.value).splitlines()
    assert len(line) < 1300 and "characters left out)…" in line, line[:200]


def test_an_index_repeating_a_key_names_that_key_alone() -> None:
    """A signed index object of 100,000 keys, one repeated, listed them all in one line."""
    keys = ", ".join(f'"k{n}": 0' for n in range(100_000))
    repeated = r"^b: bundle\.json: \(file\): not valid JSON: an object repeats the key 'k7'$"
    with pytest.raises(VerificationError, match=repeated):
        parse_index(f'{{{keys}, "k7": 1}}'.encode(), source="b")


@pytest.mark.parametrize("escape", [r"\ud800", r"x\uDFFFx", r"\ud83d\u0041"])
def test_an_index_holding_half_a_surrogate_pair_is_refused(escape: str) -> None:
    """JSON's escape of a lone UTF-16 surrogate became a string no path or TOML can hold: a signed index's manifest
    giving a preopen's host one verified and ended the load in a UnicodeEncodeError ("report it") in-process, a dead
    tenant isolated. A whole pair (an emoji's) is a character."""
    lone = r"^b: bundle\.json: \(file\): a string holds half of a UTF-16 surrogate pair, which is no character$"
    with pytest.raises(VerificationError, match=lone):
        parse_index(f'{{"manifest": {{"host": "{escape}"}}}}'.encode(), source="b")
    with pytest.raises(VerificationError, match="unexpected keys"):  # read on past the pair
        parse_index(b'{"manifest": {"host": "\\ud83d\\ude00"}, "x": 1}', source="b")


def test_a_file_of_thousands_of_problems_reports_the_first_twenty() -> None:
    """A signed manifest of 20,000 unknown keys printed 20,000 lines (1.8 MB) at every load (a table may now hold
    at most 10,000 entries)."""
    text = GUEST + "".join(f"k{n} = 1\n" for n in range(9_000))
    with pytest.raises(ManifestError) as refused:
        parse_manifest(text, source=F, stem="hello")
    lines = str(refused.value).splitlines()
    assert len(refused.value.lines) == 9_000 and len(lines) == 21
    assert lines[0].startswith(f"{F}: guest.k0: unknown key")
    assert lines[-1] == "… and 8980 more problems in the same file: fix those above first"


LONG_NAME = "n" * 1025
LONG_PATH = "/" + "p" * 4096


@pytest.mark.parametrize(
    ("text", "field", "limit"),
    [
        (GUEST + f"[exports.{LONG_NAME}]\n", "exports.n", "the export name is 1025 bytes long, over the limit of 1024"),
        (GUEST + f'[capabilities.env]\nallow = ["{LONG_NAME}"]\n', "capabilities.env.allow[0]", "is 1025 bytes"),
        (GUEST + f'[capabilities.env.fixed]\n{LONG_NAME} = "v"\n', "capabilities.env.fixed.n", "the name is 1025"),
        (FS + f'[{PREOPENS}guest = "{LONG_PATH}"\nhost = "d"\n', "capabilities.fs.preopens[0].guest", "is 4097 bytes"),
        (FS + f'[{PREOPENS}guest = "/d"\nhost = "{LONG_PATH[1:]}x"\n', "capabilities.fs.preopens[0].host", "4097"),
    ],
    ids=["export", "env allow", "env fixed", "guest path", "host path"],
)
def test_a_name_or_path_over_its_limit_is_one_problem_naming_the_limit(text: str, field: str, limit: str) -> None:
    """A 100,000-character export or variable name, or guest path, was accepted, and carried into every signed
    index and load: names are at most 1,024 bytes and paths 4,096 (README.md, Manifests)."""
    with pytest.raises(ManifestError) as refused:
        parse_manifest(text, source=F, stem="hello")
    [line] = refused.value.lines
    assert line.startswith(f"{F}: {field}") and limit in line and "bytes" in line, line[:300]


def test_a_name_and_a_path_at_their_limits_are_accepted() -> None:
    exports = f'kind = "library"\n[exports.{"n" * 1024}]\n'
    preopen = f'[capabilities.fs]\n[{PREOPENS}guest = "/{"p" * 4095}"\nhost = "d"\n'
    manifest = parse_manifest(GUEST + exports + preopen, source=F, stem="hello")
    assert len(manifest.exports[0].name) == 1024


DEEP = "[" * 40 + "]" * 40
LONG_TEXT = "t" * (64 * 1024 + 1)


@pytest.mark.parametrize(
    ("text", "field", "limit"),
    [
        (GUEST + f'description = "{LONG_TEXT}"\n', "guest.description", "is 65537 bytes long, over the limit of 65536"),
        (GUEST + f'[capabilities.env.fixed]\nMODE = "{LONG_TEXT}"\n', "capabilities.env.fixed.MODE", "65537 bytes"),
        (HTTP + "allow = [" + '"http://a",' * 10_001 + "]\n", "capabilities.http.allow", "has 10001 entries"),
        (GUEST + "[exports]\n" + "".join(f"f{n} = {{}}\n" for n in range(10_001)), "exports", "10001 entries"),
        (GUEST + f"[[smoke]]\ncall = 'f'\nargs = [{DEEP}]\n", "smoke[0].args", "nests tables and arrays over 32"),
    ],
    ids=["description", "env fixed value", "array", "table", "nesting"],
)
def test_every_string_array_and_table_of_a_manifest_is_bounded(text: str, field: str, limit: str) -> None:
    """A signer's description or fixed variable's value had no limit (a 100 MB one was carried into every signed
    index and load), nor had the number of entries of an array or table, nor how deep they nest: any key or string
    is at most 64 KiB, any array or table 10,000 entries, 32 deep, each refused naming its field."""
    with pytest.raises(ManifestError) as refused:
        parse_manifest(text, source=F, stem="hello")
    [line] = refused.value.lines
    assert line.startswith(f"{F}: {field}") and limit in line, line[:300]
