"""AssemblyScript guests using the shipped `ngixi-data` package, compiled by the real compile stage and run."""

from __future__ import annotations

import difflib
import json
import math
import random
import time
from collections.abc import Iterator

import pytest
import tomli

from ngixi_build.guests import read_guest
from ngixi_build.project import Project
from ngixi_build.stages.compile import CompileError
from ngixi_build.stages.validate import validate_guest
from ngixi_build.toolchains import asdata
from ngixi_build.toolchains.assemblyscript import ensure_toolchain
from ngixi_build.workflows import pipeline
from ngixi_runtime.errors import GuestError
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from tests import data_values
from tests.conftest import REPO, make_bundle, make_key

TOOLCHAINS = asdata.RUNTIME.parent.parent  # ngixi_build/toolchains, where its package-data patterns start

pytestmark = pytest.mark.integration

SOURCE = """\
import { input, output, Json } from "ngixi-data";

export function reverse(): void {
  const data = input.bytes();
  data.reverse();
  output.bytes(data);
}

export function roundtrip(): void {
  output.json(input.json());
}

export function pieces(): void {
  const text = input.text();
  output.text(text);
  output.text("|");
  output.text(text);
}

export function built(): void {
  output.json(
    Json.object()
      .set("s", Json.fromString("quote \\" slash \\\\ tab \\t nul \\u0000 é"))
      .set("n", Json.fromNumber(-2.5))
      .set("i", Json.fromNumber(1e15))
      .set("b", Json.fromBool(true))
      .set("z", Json.null())
      .set("a", Json.array().push(Json.fromNumber(1)).push(Json.array())),
  );
}
"""
MANIFEST = """\
[guest]
name = "probe"
version = "0.1.0"

[exports.reverse]
input = "bytes"
output = "bytes"

[exports.roundtrip]
input = "json"
output = "json"

[exports.pieces]
input = "text"
output = "text"

[exports.built]
output = "json"

[limits]
memory_pages = 256
timeout_ms = 10000
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project using the repository's toolchain, with the guest `probe`."""
    ensure_toolchain(state_dir=REPO / ".ngixi")
    project = Project(tmp_path_factory.mktemp("data-guest"))
    project.state_dir.mkdir()
    (project.state_dir / "toolchain").symlink_to(REPO / ".ngixi" / "toolchain")
    add_guest(project, "probe", SOURCE, MANIFEST)
    return project


def add_guest(project: Project, name: str, source: str, manifest: str) -> None:
    (project.guests_dir / name / "assembly").mkdir(parents=True)
    (project.guests_dir / name / "assembly" / "index.ts").write_text(source)
    project.manifests_dir.mkdir(exist_ok=True)
    project.manifest_path(name).write_text(manifest)


@pytest.fixture(scope="module")
def tenant(project: Project) -> Iterator[InProcessTenant]:
    root = project.root
    pipeline.compile_guest(project, read_guest(project, "probe"))
    validate_guest(
        manifest_path=project.manifest_path("probe"),
        wasm_path=project.wasm_path("probe"),
        record_path=root / "validated.json",
    )
    keys = make_key(root / "keys")
    wasm = project.wasm_path("probe").read_bytes()
    bundle = make_bundle(root / "bundle", keys.key, wasm=wasm, manifest=MANIFEST, guest="probe")
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmtime") as opened:
        assert isinstance(opened, InProcessTenant)
        yield opened


def test_bytes_text_and_json_in_one_line_each(tenant: InProcessTenant) -> None:
    assert tenant.call("reverse", input=b"\x00\x01\xff").data == b"\xff\x01\x00"
    assert tenant.call("reverse", input=b"").data == b""
    assert tenant.call("pieces", input="grüße 👋").data == "grüße 👋|grüße 👋"


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, -3e-7, True, False, None], "b": {"nested": 'quote " back \\ nl \n \u0001 é 👋'}},
        [],
        "just a string",
        0,
    ],
)
def test_json_values_survive_the_guests_parser_and_writer(tenant: InProcessTenant, value: object) -> None:
    assert tenant.call("roundtrip", input=value).data == value


def test_json_that_utf_8_or_a_shortcut_would_change_survives(tenant: InProcessTenant) -> None:
    """Lone surrogates (AssemblyScript strings hold them; UTF-8 does not) were written raw, and the host refused the
    output as not UTF-8; -0.0 came back as 0."""
    value = ["\ud800", "a\udc00b", "\U0001f600 \ud83d", -0.0, 0.0, "\u001f\u2028"]
    data = tenant.call("roundtrip", input=value).data
    assert data == value and math.copysign(1, data[3]) == -1 and math.copysign(1, data[4]) == 1


def test_large_documents_take_time_and_memory_in_proportion(tenant: InProcessTenant) -> None:
    """An object of 30,000 keys took time quadratic in them (each key searched for among those before it: past 1 s
    already at 20,000), and every value held three arrays of its own (10,000 small objects, 335 KB, ran out of the
    256 pages). The time is the CPU time of this thread, where the in-process guest runs: a loaded machine leaves
    the call waiting for a core several times as long as it runs."""
    many_keys = {f"k{n}": n for n in range(30_000)}
    started = time.thread_time()
    assert tenant.call("roundtrip", input=many_keys).data == many_keys
    assert time.thread_time() - started < 1.0
    objects = [{"a": n, "b": [n, n / 2]} for n in range(10_000)]
    assert tenant.call("roundtrip", input=objects).data == objects
    duplicates = "{" + ",".join(f'"k{n % 20}": {n}' for n in range(40)) + "}"  # past the keys looked up in a map
    assert tenant.call("roundtrip", input=duplicates.encode()).data == json.loads(duplicates)


def test_a_value_built_in_the_guest_is_valid_json(tenant: InProcessTenant) -> None:
    built = tenant.call("built").data
    assert built == {
        "s": 'quote " slash \\ tab \t nul \u0000 é',
        "n": -2.5,
        "i": 10**15,
        "b": True,
        "z": None,
        "a": [1, []],
    }


FOOTGUN = """\
export function words(text: string): i32 { return text.length; }
export function add(a: i32, b: i32): i32 { return a + b; }
export function label(n: i32): string { return n.toString(); }
export function sum(values: Array<f64>, scale: f64): f64 { return values.length * scale; }
"""


def test_an_export_taking_or_giving_a_managed_type_is_refused_at_build(project: Project) -> None:
    add_guest(project, "footgun", FOOTGUN, '[guest]\nname = "footgun"\nversion = "0.1.0"\n')
    with pytest.raises(CompileError) as error:
        pipeline.compile_guest(project, read_guest(project, "footgun"))
    message = str(error.value)
    assert "export words: its parameter text: string compiles to a pointer (i32)" in message
    assert "export label: its result string compiles to a pointer (i32)" in message
    assert "export sum: its parameter values: Array<f64> compiles to a pointer (i32)" in message
    assert "export add" not in message
    assert 'declare input = "text"' in message and 'from "ngixi-data"' in message
    assert "    at " not in message  # no JavaScript stack
    assert not project.wasm_path("footgun").exists()


def test_numbers_are_read_as_the_nearest_double(tenant: InProcessTenant) -> None:
    """AssemblyScript's parseFloat read 17 significant digits followed by an exponent of 23 to 37 10^(exponent - 22)
    times too small (3.2398712582659267e+50 as 3.2398712582659267e+38): 96 of 3,000 seeded doubles came back
    changed. A seeded sample of doubles in their shortest form, long decimals and 64-bit edges."""
    rng = random.Random(19)
    edges = ["3.2398712582659267e+50", "1.4859567915924416e+39", *data_values.EDGE_NUMBERS, *HALFWAY]
    numbers = edges + [data_values.number(rng) for _ in range(600)]
    returned = tenant.call("roundtrip", input=("[" + ",".join(numbers) + "]").encode()).data
    wrong = [(n, r) for n, r in zip(numbers, returned, strict=True) if float(r) != float(n)]
    assert wrong == []
    assert math.copysign(1, returned[edges.index("-0.0")]) == -1


# Numbers at or just past the halfway point between two doubles, where a reader that is one unit off shows: the
# standard library's scaling took 66505405520e-204 to the double above the nearest one.
HALFWAY = [
    "66505405520e-204",
    "9007199254740993",  # halfway between 2^53 and 2^53 + 2: to the even one
    "2.4703282292062327e-324",  # just below half the smallest double: 0
    "2.4703282292062328e-324",  # just above: the smallest double
    "1.00000000000000011102230246251565404236316680908203125",  # 1 + 2^-53 exactly: to 1
    "1.000000000000000111022302462515654042363166809082031251",
    "0." + "0" * 300 + "1" * 900 + "e300",  # past the 800 digits read exactly
]


def test_seeded_documents_survive_the_guests_parser_and_writer(tenant: InProcessTenant) -> None:
    """Generated documents with the edges of JSON text (escapes, every plane, empty, duplicate and escaped keys,
    whitespace) come back as Python reads them, numbers as doubles."""
    rng = random.Random(19)
    documents = [data_values.document(rng) for _ in range(150)]
    returned = tenant.call("roundtrip", input=("[" + ",".join(documents) + "]").encode()).data
    for document, value in zip(documents, returned, strict=True):
        assert data_values.same(data_values.as_doubles(value), data_values.as_doubles(json.loads(document))), document


SMALL_SOURCE = """\
import { input, output } from "ngixi-data";

export function text(): void {
  output.text(input.text());
}

export function json(): void {
  output.json(input.json());
}

export function upper(): void {
  output.text(input.text().toUpperCase());
}
"""
SMALL_MANIFEST = """\
[guest]
name = "small"
version = "0.1.0"

[exports.text]
input = "text"
output = "text"

[exports.json]
input = "json"
output = "json"

[exports.upper]
input = "text"
output = "text"

[limits]
memory_pages = 16
timeout_ms = 10000
"""


@pytest.fixture(scope="module")
def small(project: Project) -> Iterator[InProcessTenant]:
    """A guest with the default limits: 16 pages (1 MiB) of memory, 1 MiB of input."""
    add_guest(project, "small", SMALL_SOURCE, SMALL_MANIFEST)
    pipeline.compile_guest(project, read_guest(project, "small"))
    keys = make_key(project.root / "small-keys")
    wasm = project.wasm_path("small").read_bytes()
    bundle = make_bundle(project.root / "small", keys.key, wasm=wasm, manifest=SMALL_MANIFEST, guest="small")
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine="wasmtime") as opened:
        assert isinstance(opened, InProcessTenant)
        yield opened


def test_text_and_json_take_little_more_memory_than_their_strings(small: InProcessTenant) -> None:
    """`input.text()` read the input into bytes and decoded a copy, `output.text` encoded another, and JSON held the
    document as text and each string again as a substring, then joined and encoded its output whole: at 16 pages,
    text of 217 KB and a JSON string of 84 KB were the most a call took. Text is read into its string's own block
    and widened in place, JSON read from its UTF-8, and output encoded in pieces."""
    text = "abcdefghij" * 40_000  # 400 KB: its string takes 800 KB of the 1 MiB
    assert small.call("text", input=text).data == text
    document = "é😀" * 30_000 + "y" * 150_000  # 330 KB of UTF-8 in one JSON string
    assert small.call("json", input=document).data == document
    wide = "日本語" * 60_000  # 540 KB of UTF-8, a string of 360 KB
    assert small.call("text", input=wide).data == wide


def test_garbage_is_collected_before_the_memory_runs_out(small: InProcessTenant) -> None:
    """AssemblyScript's allocator trapped when the memory could not grow, with a call's garbage still held: a 60 KB
    `toUpperCase` fit in 16 pages once and failed the second time. The runtime ngixi-data's guests get collects
    first."""
    text = "abcdefghij" * 6_000
    for _ in range(20):
        assert small.call("upper", input=text).data == text.upper()


def test_input_that_cannot_fit_names_the_limit_to_raise(small: InProcessTenant) -> None:
    """The runtime's allocator traps in functions named `~lib/ngixi-runtime/...`: read as the allocator failing, not
    as a bare `unreachable`."""
    with pytest.raises(GuestError) as failed:
        small.call("text", input="x" * 600_000)
    assert str(failed.value).startswith(
        "small: text ran out of memory (an allocation needed more than limits.memory_pages = 16 allows;"
    )
    assert failed.value.outcome == "memory"
    assert small.call("text", input="fits").data == "fits"


def test_assemblyscripts_licence_and_notice_are_beside_its_allocator_as_the_pinned_package_has_them() -> None:
    """`tlsf.ts` is AssemblyScript's (Apache-2.0), changed: the licence and the NOTICE file's attributions go with it
    (the licence's section 4), in the repository and in the package (pyproject's package-data). They were not there."""
    toolchain = ensure_toolchain(state_dir=REPO / ".ngixi")
    package_data = tomli.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in package_data["ngixi_build.toolchains"] for path in TOOLCHAINS.glob(pattern)}
    for name in ("LICENSE", "NOTICE"):
        ours = asdata.RUNTIME / f"ASSEMBLYSCRIPT-{name}"
        assert ours.read_bytes() == (toolchain.root / "node_modules/assemblyscript" / name).read_bytes()
        assert ours in shipped


def test_the_runtime_is_the_pinned_compilers_tlsf_with_the_marked_change() -> None:
    """A new pin of AssemblyScript must bring its allocator's other changes into `asruntime/ngixi-runtime/tlsf.ts`: of
    the pinned file, only the lines the change replaces are missing from it."""
    toolchain = ensure_toolchain(state_dir=REPO / ".ngixi")
    pinned = (toolchain.root / "node_modules/assemblyscript/std/assembly/rt/tlsf.ts").read_text().splitlines()
    ours = (asdata.RUNTIME / "tlsf.ts").read_text().splitlines()
    diff = difflib.unified_diff(pinned, ours, lineterm="", n=0)
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    assert removed == [
        'import { AL_BITS, AL_SIZE, AL_MASK, DEBUG, BLOCK, BLOCK_OVERHEAD, BLOCK_MAXSIZE } from "./common";',
        'import { oninit, onalloc, onresize, onmove, onfree } from "./rtrace";',
        'import { E_ALLOCATION_TOO_LARGE } from "../util/error";',
        "function growMemory(root: Root, size: usize): void {",
        "    return;",
        "    if (memory.grow(pagesNeeded) < 0) unreachable();",
        "    growMemory(root, payloadSize);",
    ]
