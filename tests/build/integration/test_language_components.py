"""JavaScript and Python guests end to end: the pinned componentize-js and componentize-py, real bundles,
Wasmtime's component model in a tenant's child and in-process. The components are large (an embedded
engine each), so the module builds them once, for this host's Wasmtime only."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ngixi_build.languages.javascript import LANGUAGE as JAVASCRIPT
from ngixi_build.languages.python import LANGUAGE as PYTHON
from ngixi_build.project import Project
from ngixi_build.toolchains import python_deps
from ngixi_build.toolchains.npm_deps import tree_sha256
from ngixi_build.toolchains.wit import wasm_tools
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.capabilities.context import LogLine, Sandbox
from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.guest.component_memory import component_memory_problems
from ngixi_runtime.guest.manifest import load_manifest
from ngixi_runtime.loading.isolated import IsolatedTenant
from ngixi_runtime.loading.loader import open_guest
from ngixi_runtime.loading.tenants import InProcessTenant, open_tenant
from ngixi_runtime.trust.signatures import load_trust
from tests.build.integration.test_data_conformance import BYTES_CASES, TEXT_CASES
from tests.conftest import REPO
from tests.integration import WatchProcess, copy_project, keep_only_guests, run, set_targets

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=240)]

GUESTS = ("counter-js", "counter-python")
# A guest from each of these languages' `ngixi new` templates, built with the samples.
GENERATED = {"javascript": "greet-js", "python": "greet-python"}
RETURN = '        return f"Hello, {arg0}!"'
RAISE = '            raise ValueError("no boom here")'  # line 15 of the generated app.py
# Line 17, raised in the standard library's traceback.py (loaded at build: an import at run time would read files).
DEEPER = '        if arg0 == "deeper":\n            __import__("traceback").format_exception(arg0)'
JS_RETURN = "  return `Hello, ${name}!`;"
JS_THROW = '  if (name === "boom") throw new RangeError("no boom here");'  # line 9 of the generated index.js
# Lines 10 and 11; then, at the end of the file, the Error subclass and an async export (rejected at its line 3).
JS_THROW_MORE = (
    '  if (name === "plain") throw "not an Error";\n  if (name === "refused") throw new Refused("not today");'
)
JS_MORE = (
    "\nclass Refused extends Error {}\n\nexport async function later(name) {\n  throw new TypeError(`no ${name}`);\n}\n"
)
JS_LATER_LINE = 18
COUNTER_BUMP = "  const now = total() + by;"
COUNTER_THROW = '  if (by === -999) throw new Error("no boom here");'  # line 21 of counter-js's index.js
# counter-js (in the test's copy) is also granted random, and draws with both of JavaScript's sources.
COUNTER_DRAW = (
    "\nexport function draw() {\n  const bytes = new Uint8Array(16);\n  crypto.getRandomValues(bytes);\n"
    "  return `${bytes.join()} ${Math.random()}`;\n}\n"
)
# It is granted clock too, so with stdio its timers wait on the host's clock; the generated guest's refuse.
JS_LATER = (
    "\nexport async function later(text) {\n"
    "  return await new Promise((done) => setTimeout(() => done(`${text} later`), 5));\n}\n"
)
# counter-python (in the test's copy) draws with each of Python's sources: `random` seeded by the guest repeats.
PYTHON_IMPORTS = "import os\nimport random\nimport secrets\nimport uuid\n\nimport wit_world\n"
PYTHON_DRAW = (
    '\n    def draw(self, arg0: str) -> str:\n        if arg0 == "seeded":\n            random.seed(7)\n'
    '        sources = {"urandom": lambda: os.urandom(8).hex(), "secrets": lambda: secrets.token_hex(8),'
    ' "uuid4": lambda: str(uuid.uuid4()), "fresh": lambda: repr(random.Random().random())}\n'
    "        return sources[arg0]() if arg0 in sources else repr(random.random())\n"
)
PYTHON_SOURCES = ("urandom", "secrets", "uuid4", "random", "fresh")
# The generated Python guest also depends on PyPI packages, pinned with their wheels' hashes as pip-compile writes
# them (python-dateutil needs six; humanize needs Python 3.11, which the guest's CPython is and the build's is not): the
# build installs them, and its export `deps` uses each.
REQUIREMENTS = {
    "tomli==2.0.1": "939de3e7a6161af0c887ef91b7d41a53e7c5a1ca976325f429cb46ea9bc30ecc",
    "attrs==24.2.0": "81921eb96de3191c8258c199618104dd27ac608d9366f5e35d011eae1867ede2",
    "python-dateutil==2.9.0.post0": "a8b2bc7bffae282281c8140a97d3aa9c14da0b136dfe83f850eea9a5f7470427",
    "six==1.16.0": "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254",
    "idna==3.10": "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3",
    "humanize==4.17.0": "02d0899527760efe18011944f882df4970943b4cdff7b5a0ba7fed43a576ef98",
}
DEPS_METHOD = "\n\n    def deps(self, arg0: str) -> str:\n        return described(arg0)"
DEPS_MODULE = (
    "\n\nimport datetime\nimport encodings.punycode  # idna's codec: looked up when it encodes\n\n"
    "import attr\nimport humanize\nimport idna\nimport tomli\nfrom dateutil.relativedelta import relativedelta\n"
    "\n\n@attr.s(frozen=True)\nclass Pinned:\n    name = attr.ib()\n    version = attr.ib()\n\n\n"
    "def described(text):\n    pinned = Pinned(**tomli.loads(text))\n"
    "    later = datetime.date(2024, 1, 31) + relativedelta(months=1)\n"
    "    return f\"{pinned} {later} {idna.encode('bücher.example').decode()} {humanize.intcomma(1234567)}\"\n"
)
# The generated JavaScript guest also imports npm's ms (CommonJS) by its package name, on its import's line (line 4):
# one component checks both, the guest's own lines still its own through the bundle.
LOG_IMPORT = 'import { write } from "ngixi:host/log@0.1.0";'
MS_IMPORT = 'import ms from "ms";'
MS_EXPORT = '\nexport function span(name) {\n  return `${name}: ${ms(name === "boom" ? "" : name)}`;\n}\n'
# It imports its own package `shapes` too (file:shapes): what a browser bundler would take of a package made for both
# Node.js and browsers. Its "browser" export (its "default" one imports node:crypto), process.env.NODE_ENV, the global
# Buffer from npm's buffer (a dependency of the guest), and a Unicode property escape (SpiderMonkey has no ICU).
SHAPES_IMPORT = 'import { shape } from "shapes";'
SHAPES = {
    "package.json": json.dumps({"name": "shapes", "exports": {".": {"browser": "./web.js", "default": "./node.js"}}}),
    "node.js": 'import { createHash } from "node:crypto";\nexport const shape = (text) => createHash("md5");\n',
    "web.js": "export const shape = (text) =>\n"
    '  [process.env.NODE_ENV, Buffer.from(text).toString("base64"), /^\\p{Lu}\\p{Ll}+$/u.test(text)].join(" ");\n',
}
SHAPES_EXPORT = "\nexport function shapes(text) {\n  return shape(text);\n}\n"
# Bytes as the guest's own Uint8Array (componentize-js's glue made them in another realm), and no `location`.
JS_BYTES = (
    "\nexport function bytes(data) {\n"
    "  return `${data instanceof Uint8Array} ${data.join()} ${typeof globalThis.location}`;\n}\n"
)
# The generated JavaScript and Python guests each give back what they take (test_data_conformance's table), and a string
# holding a lone surrogate.
SAME_EXPORTS = {"same": (["string"], ["string"]), "data": (["list<u8>"], ["list<u8>"]), "lone": ([], ["string"])}
PYTHON_SAME = (
    "\n\n    def same(self, arg0: str) -> str:\n        return arg0\n"
    "\n    def data(self, arg0: bytes) -> bytes:\n        return arg0\n"
    '\n    def lone(self) -> str:\n        return "\\ud800x"'
)
# Values componentize-js's own glue changed (the build corrects it): an s64 each way, a string's leading U+FEFF.
JS_VALUES = (
    "\nexport function less(by, from) {\n  return from - by;\n}\n"
    "\nexport function echo(text) {\n  return `${text.length}:${text}`;\n}\n"
    "\nexport function parse(text) {\n  return JSON.stringify(JSON.parse(text));\n}\n"
    "\nexport function same(text) {\n  return text;\n}\n"
    "\nexport function data(bytes) {\n  return bytes;\n}\n"
    '\nexport function lone() {\n  return "\\ud800x";\n}\n'
)
JS_VALUE_EXPORTS = {
    "less": (["u64", "s64"], ["s64"]),
    "echo": (["string"], ["string"]),
    "bytes": (["list<u8>"], ["string"]),
    "parse": (["string"], ["string"]),
    **SAME_EXPORTS,
}
# The generated JavaScript guest is not granted random: each of its sources refuses at run time, at the guest's line.
JS_SOURCES = {"bytes": "crypto.getRandomValues", "uuid": "crypto.randomUUID", "math": "Math.random"}
JS_DRAW = (
    "\nexport function draw(what) {\n"
    '  if (what === "bytes") return crypto.getRandomValues(new Uint8Array(8)).join();\n'
    '  if (what === "uuid") return crypto.randomUUID();\n  return String(Math.random());\n}\n'
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for language in (JAVASCRIPT, PYTHON):
        language.install(REPO / ".ngixi")
    project = copy_project(
        tmp_path_factory.mktemp("languages") / "project", toolchain_from=REPO, with_language_components=True
    )
    set_targets(project, [], ["host"])
    for lang, guest in GENERATED.items():
        run(project, "ngixi", "new", guest, "--lang", lang)  # a library component: these languages' only template
    app = project / "guests" / GENERATED["python"] / "app.py"
    greet = f'        if arg0 == "boom":\n{RAISE}\n{DEEPER}\n{RETURN}{DEPS_METHOD}{PYTHON_SAME}'
    app.write_text(app.read_text().replace(RETURN, greet) + DEPS_MODULE)
    (app.parent / "requirements.txt").write_text(
        "# pip-compile --generate-hashes\n"
        + "".join(f"{pinned} \\\n    --hash=sha256:{digest}\n" for pinned, digest in REQUIREMENTS.items())
    )
    index = project / "guests" / GENERATED["javascript"] / "index.js"
    _edit(
        index,
        (JS_RETURN, f"{JS_THROW}\n{JS_THROW_MORE}\n{JS_RETURN}"),
        (LOG_IMPORT, f"{LOG_IMPORT} {MS_IMPORT} {SHAPES_IMPORT}"),
    )
    later = JS_LATER.replace("function later(", "function wait(")
    index.write_text(index.read_text() + JS_MORE + MS_EXPORT + JS_VALUES + JS_DRAW + SHAPES_EXPORT + later + JS_BYTES)
    (index.parent / "shapes").mkdir()
    for name, text in SHAPES.items():
        (index.parent / "shapes" / name).write_text(text)
    _depend_on_ms(index.parent, "buffer@6.0.3", "./shapes")
    counter = project / "guests" / "counter-js" / "index.js"  # granted stdio: its WASI writers are Wasmtime's
    counter.write_text(
        counter.read_text().replace(COUNTER_BUMP, f"{COUNTER_THROW}\n{COUNTER_BUMP}") + COUNTER_DRAW + JS_LATER
    )
    with (project / "manifests" / "counter-js.toml").open("a") as manifest:
        manifest.write(
            '\n[capabilities.random]\n\n[capabilities.clock]\n\n[exports.draw]\nparams = []\nresults = ["string"]\n'
        )
        manifest.write('\n[exports.later]\nparams = ["string"]\nresults = ["string"]\n')
    drawing = project / "guests" / "counter-python" / "app.py"
    drawing.write_text(drawing.read_text().replace("import wit_world\n", PYTHON_IMPORTS, 1) + PYTHON_DRAW)
    with (project / "manifests" / "counter-python.toml").open("a") as manifest:
        manifest.write('\n[exports.draw]\nparams = ["string"]\nresults = ["string"]\n')
    with (project / "manifests" / f"{GENERATED['javascript']}.toml").open("a") as manifest:
        for export in ("later", "span", "draw", "shapes", "wait"):
            manifest.write(f'\n[exports.{export}]\nparams = ["string"]\nresults = ["string"]\n')
        for export, (params, results) in JS_VALUE_EXPORTS.items():
            manifest.write(f"\n[exports.{export}]\nparams = {json.dumps(params)}\nresults = {json.dumps(results)}\n")
    with (project / "manifests" / f"{GENERATED['python']}.toml").open("a") as manifest:
        manifest.write('\n[exports.deps]\nparams = ["string"]\nresults = ["string"]\n')
        for export, (params, results) in SAME_EXPORTS.items():
            manifest.write(f"\n[exports.{export}]\nparams = {json.dumps(params)}\nresults = {json.dumps(results)}\n")
    smoked = run(project, "doit", *(f"smoke:{guest}" for guest in (*GUESTS, *GENERATED.values())))
    (project.parent / "smoke.log").write_text(smoked.stdout + smoked.stderr)
    return project


def _depend_on_ms(guest: Path, *more: str) -> None:
    """A package.json and lock file naming npm's ms (and `more` packages); the build installs them, with npm ci."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("no npm on PATH to write the guest's lock file")
    (guest / "package.json").write_text(f'{{"name": "{guest.name}", "private": true}}\n')
    install = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "ms@2.1.3", *more]
    subprocess.run(install, cwd=guest, check=True, capture_output=True, timeout=600)
    shutil.rmtree(guest / "node_modules")


def _imports(project: Path, guest: str) -> set[str]:
    wit = subprocess.run(
        [wasm_tools(), "component", "wit", project / "artifacts" / "wasm" / f"{guest}.wasm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in wit.splitlines() if line.strip().startswith("import ")}


@pytest.mark.parametrize("guest", GUESTS)
def test_the_guest_imports_only_its_granted_interfaces(built: Path, guest: str) -> None:
    imports = _imports(built, guest)
    assert {i for i in imports if i.startswith("import ngixi:")} == {
        f"import ngixi:host/{name}@0.1.0;" for name in ("log", "types", "kv")
    }
    wasi = {i for i in imports if i.startswith("import wasi:")}
    assert bool(wasi) == (guest == "counter-js")  # the one granted stdio imports console.log's WASI
    assert "import wasi:cli/stdout@0.2.12;" in wasi or not wasi


def test_a_javascript_guest_without_stdio_gets_no_wasi(built: Path) -> None:
    assert [i for i in _imports(built, GENERATED["javascript"]) if i.startswith("import wasi:")] == []


@pytest.mark.parametrize("guest", GUESTS)
@pytest.mark.parametrize("isolation", [[], ["--in-process"]])
def test_the_guest_runs_isolated_and_in_process(built: Path, guest: str, isolation: list[str]) -> None:
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    before = int(run(built, "ngixi", "run", *isolation, bundle, "total").stdout)  # kv outlives a run
    result = run(built, "ngixi", "run", *isolation, bundle, "bump", "4")
    printed = f"total {before + 4}\n" if guest == "counter-js" else ""  # its console.log, granted stdio
    assert result.stdout == f"{printed}{before + 4}\n"
    assert result.stderr == f"info: {guest}: bumped by 4 to {before + 4}\n"


@pytest.mark.parametrize("guest", GUESTS)
def test_a_memory_limit_below_the_runtime_s_start_is_refused(built: Path, guest: str, tmp_path: Path) -> None:
    text = (built / "manifests" / f"{guest}.toml").read_text().replace("memory_pages = 512", "memory_pages = 16")
    (tmp_path / f"{guest}.toml").write_text(text)
    manifest = load_manifest(tmp_path / f"{guest}.toml")
    wasm = (built / "artifacts" / "wasm" / f"{guest}.wasm").read_bytes()
    [problem] = component_memory_problems(manifest, wasm, source=guest)
    assert problem.startswith(f"{tmp_path / guest}.toml: limits.memory_pages: 16 pages, but the component's memory")
    assert "raise limits.memory_pages to at least" in problem


@pytest.mark.parametrize("guest", GENERATED.values())
def test_a_generated_guest_builds_passes_its_smoke_calls_and_runs(built: Path, guest: str) -> None:
    assert f"{guest}: 1 smoke call passed" in (built.parent / "smoke.log").read_text()
    greeted = run(built, "ngixi", "run", f"artifacts/bundles/{guest}-0.1.0.ngx", "greet", "Grüße")
    assert (greeted.stdout, greeted.stderr) == ('"Hello, Grüße!"\n', f"info: {guest} greets Grüße\n")


def test_a_python_exception_is_logged_with_the_guests_line(built: Path) -> None:
    guest = GENERATED["python"]
    failed = run(built, "ngixi", "run", f"artifacts/bundles/{guest}-0.1.0.ngx", "greet", "boom", check=False)
    assert failed.returncode == 5
    assert f"error: ValueError: no boom here (at guests/{guest}/app.py:15 in greet)\n" in failed.stderr
    trap = failed.stderr.splitlines()[-1]  # names no frame of the Python runtime's (libc.so, its Rust std)
    assert trap.startswith(f"ngixi: error: {guest}: greet trapped: unreachable") and ".so!" not in trap, trap
    assert "std::" not in trap and "componentize_py_runtime" not in trap, trap
    deeper = run(built, "ngixi", "run", f"artifacts/bundles/{guest}-0.1.0.ngx", "greet", "deeper", check=False)
    assert deeper.returncode == 5  # the guest's own line, not traceback.py's where the exception was raised
    assert f"error: TypeError: Exception expected for value, str found (at guests/{guest}/app.py:17 in greet)\n" in (
        deeper.stderr
    )


def test_a_python_guest_without_memory_for_its_argument_says_so(built: Path) -> None:
    """componentize-py's runtime panics when CPython finds no memory for a string argument, and the trap read
    `greet trapped: unreachable in greet` at 512 pages, naming no limit."""
    guest = GENERATED["python"]
    trust = built / ".ngixi" / "trust.toml"
    bundle = built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"
    with open_tenant(bundle, trust_file=trust, isolated=False, engine="wasmtime") as tenant:
        with pytest.raises(GuestError) as failed:
            tenant.call("greet", ("x" * 12_000_000,))
        assert str(failed.value).startswith(
            f"{guest}: greet ran out of memory for its arguments (limits.memory_pages = 512)"
        )
        assert failed.value.outcome == "memory"


def test_a_python_guest_imports_the_pypi_packages_its_requirements_pin(built: Path) -> None:
    """Installed by the build with pip, hashes checked, outside the guest's folder; an exception raised in a package
    is logged at the guest's own line that called it."""
    guest = GENERATED["python"]
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    ran = run(built, "ngixi", "run", bundle, "deps", 'name = "tomli"\nversion = "2.0.1"')
    assert ran.stdout == "\"Pinned(name='tomli', version='2.0.1') 2024-02-29 xn--bcher-kva.example 1,234,567\"\n"
    failed = run(built, "ngixi", "run", bundle, "deps", "not toml", check=False)
    app = (built / "guests" / guest / "app.py").read_text().splitlines()
    line = app.index("    pinned = Pinned(**tomli.loads(text))") + 1
    [logged] = [text for text in failed.stderr.splitlines() if text.startswith("error: TOMLDecodeError: ")]
    assert logged.endswith(f" (at guests/{guest}/app.py:{line} in described)"), logged  # not tomli's own line
    [site] = (Project(built).state_dir / "python-deps" / guest).glob("*/site")
    installed = {f"{p.name}=={p.version}" for p in python_deps.installed_packages(site)}
    assert installed == set(REQUIREMENTS)
    assert sorted(p.name for p in (built / "guests" / guest).iterdir()) == ["app.py", "requirements.txt"]


def test_a_second_build_downloads_nothing_and_an_install_elsewhere_is_the_same_bytes(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guest_dir = built / "guests" / GENERATED["python"]
    shown = Path("guests") / guest_dir.name / "requirements.txt"
    [site] = (Project(built).state_dir / "python-deps" / guest_dir.name).glob("*/site")
    marker = (site.parent / ".complete").stat()
    with monkeypatch.context() as offline:  # a pip that ran now would find none of the packages
        offline.setenv("PIP_NO_INDEX", "1")
        offline.setenv("PIP_FIND_LINKS", str(tmp_path))
        assert python_deps.ensure_dependencies(Project(built).state_dir, guest_dir, shown_as=shown) == site
    assert (site.parent / ".complete").stat().st_mtime_ns == marker.st_mtime_ns
    elsewhere = python_deps.ensure_dependencies(tmp_path / "state", guest_dir, shown_as=shown)
    assert elsewhere is not None and tree_sha256(elsewhere) == tree_sha256(site)


def test_a_wheel_whose_hash_its_line_does_not_list_is_refused(tmp_path: Path) -> None:
    guest_dir = tmp_path / "guest"
    guest_dir.mkdir()
    six = REQUIREMENTS["six==1.16.0"]
    (guest_dir / "requirements.txt").write_text(
        f"six==1.16.0 --hash=sha256:{six}\ntomli==2.0.1 --hash=sha256:{'0' * 64}\n"
    )
    with pytest.raises(InvalidInput) as refused:
        python_deps.ensure_dependencies(tmp_path / "state", guest_dir, shown_as=Path("requirements.txt"))
    got = REQUIREMENTS["tomli==2.0.1"]
    assert str(refused.value).startswith(f"requirements.txt:2: tomli: the wheel the index gave has sha256 {got}, ")
    assert not list((tmp_path / "state" / "python-deps").glob("*/*/site"))


def test_a_pip_constraint_of_the_user_s_against_a_pin_is_named(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's pip settings apply to the guest's install (its index, certificates, proxy), constraints too: one
    holding tomli to another version failed with pip's ResolutionImpossible and a link."""
    (tmp_path / "constraints.txt").write_text("tomli==2.5.0\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraints.txt"))
    guest_dir, shown = built / "guests" / GENERATED["python"], Path("requirements.txt")
    with pytest.raises(InvalidInput) as refused:
        python_deps.ensure_dependencies(tmp_path / "state", guest_dir, shown_as=shown)
    assert str(refused.value).startswith("requirements.txt:2: tomli: a pip constraint of yours holds it to another")
    assert not list((tmp_path / "state" / "python-deps").glob("*/*/site"))


def test_a_package_with_native_code_or_only_a_source_is_refused_naming_its_line(built: Path) -> None:
    for name, requirements in (
        ("native-python", "markupsafe==3.0.2\n"),
        ("sdist-python", "six==1.16.0\ndocopt==0.6.2\n"),
    ):
        _broken_guest(built, name, GENERATED["python"], "app.py", "import wit_world\n")
        (built / "guests" / name / "requirements.txt").write_text(requirements)
    result = run(built, "doit", "--continue", "compile:native-python", "compile:sdist-python", check=False)
    printed = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in printed
    pure = "the index has no pure-Python wheel of it (*-none-any) for CPython 3.14; a package with native code, or"
    assert f"guests/native-python/requirements.txt:1: markupsafe==3.0.2: {pure}" in printed
    assert f"guests/sdist-python/requirements.txt:2: docopt==0.6.2: {pure}" in printed
    for name in ("native-python", "sdist-python"):
        assert not list((Project(built).state_dir / "python-deps" / name).glob("*/site"))
        assert not (built / "artifacts" / "wasm" / f"{name}.wasm").exists()


def test_a_bad_export_name_is_refused_before_the_python_packages_are_installed(built: Path) -> None:
    """A manifest's export name that no built guest may have was refused once pip had downloaded and installed the
    guest's packages (or failed to): it is the first thing said now, and pip never runs."""
    _broken_guest(built, "named-python", GENERATED["python"], "app.py", "import wit_world\n")
    manifest = built / "manifests" / "named-python.toml"
    manifest.write_text(manifest.read_text() + '\n[exports.bad-name]\nresults = ["i32"]\n')
    (built / "guests" / "named-python" / "requirements.txt").write_text(f"six==1.16.0 --hash=sha256:{'0' * 64}\n")
    result = run(built, "doit", "compile:named-python", check=False)
    printed = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in printed
    assert "manifests/named-python.toml: exports.bad-name: a guest built from its sources" in printed, printed
    assert "requirements.txt" not in printed, printed
    assert not (Project(built).state_dir / "python-deps" / "named-python").exists()


def test_a_javascript_error_is_logged_with_the_guests_line(built: Path) -> None:
    """componentize-js traps without a word on an uncaught Error (a guest without stdio); the build's wrapper of
    the exports logs it first: any thrown value, an Error subclass by its name and the line it was thrown at, and
    an async export's rejection. From an export returning a result, a thrown value is its err (docs/components.md)."""
    guest = GENERATED["javascript"]
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    lines = {
        ("greet", "boom"): f"error: RangeError: no boom here (at guests/{guest}/index.js:9 in greet)",
        ("greet", "plain"): 'error: uncaught "not an Error" (in greet)',
        ("greet", "refused"): f"error: Refused: not today (at guests/{guest}/index.js:11 in greet)",
        ("later", "soon"): f"error: TypeError: no soon (at guests/{guest}/index.js:{JS_LATER_LINE} in later)",
    }
    for (export, argument), line in lines.items():
        failed = run(built, "ngixi", "run", bundle, export, argument, check=False)
        assert failed.returncode == 5
        assert f"{line}\n" in failed.stderr
    assert not list((built / "artifacts" / "wasm").glob(".*.mjs"))  # the wrapper is the build's only


@pytest.mark.parametrize("isolated", [True, False])
def test_a_javascript_guest_takes_and_gives_signed_64_bit_integers_and_any_string(built: Path, isolated: bool) -> None:
    """componentize-js 0.23.0's engine hands an export's i64 over as unsigned and takes a returned one as unsigned,
    where its glue treats both as signed (an s64 of -1 arrived as 18446744073709551615n; a result of -1n trapped),
    and its glue's TextDecoder dropped a string's leading U+FEFF. The build corrects the glue; a u64 is unchanged."""
    guest = GENERATED["javascript"]
    bundle = built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"
    with open_tenant(bundle, trust_file=built / ".ngixi" / "trust.toml", isolated=isolated) as tenant:
        assert tenant.call("less", (1, -1)).values == (-2,)
        assert tenant.call("less", (2**63, 2**63 - 1)).values == (-1,)
        assert tenant.call("less", (0, -(2**63))).values == (-(2**63),)
        assert tenant.call("echo", ("\ufeffx",)).values == ("2:\ufeffx",)


@pytest.mark.parametrize("isolated", [True, False])
def test_a_javascript_guest_out_of_memory_in_its_code_names_the_limit(built: Path, isolated: bool) -> None:
    """SpiderMonkey throws the string "out of memory" when an allocation finds none (`JSON.parse` of a 0.4 MB string at
    512 pages), and the call trapped with `unreachable in parse`: the host cannot see a component's memory, nor name
    the engine's functions. The build's wrapper logs `out of memory (in parse)`, which the host reads."""
    guest = GENERATED["javascript"]
    bundle = built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"
    with open_tenant(bundle, trust_file=built / ".ngixi" / "trust.toml", isolated=isolated) as tenant:
        with pytest.raises(GuestError) as failed:
            tenant.call("parse", (json.dumps("y" * 400_000),))
        assert str(failed.value).startswith(
            f"{guest}: parse ran out of memory (an allocation needed more than limits.memory_pages = 512 allows)"
        )
        assert failed.value.outcome == "memory"
        assert tenant.call("parse", ('"ok"',)).values == ('"ok"',)


@pytest.mark.parametrize("isolated", [True, False])
def test_a_javascript_guest_without_memory_for_its_argument_says_so_on_stderr(
    built: Path, tmp_path: Path, isolated: bool
) -> None:
    """The engine makes a string argument with C++'s `new`; past its memory, libc++ writes `bad_alloc was thrown` on
    stderr (a guest granted stdio, as counter-js is) and aborts before any JavaScript runs: the call trapped with
    `unreachable in later`."""
    bundle = built / "artifacts" / "bundles" / "counter-js-0.1.0.ngx"
    trust = built / ".ngixi" / "trust.toml"
    with open_tenant(bundle, trust_file=trust, isolated=isolated, sandboxes=tmp_path) as tenant:
        with pytest.raises(GuestError) as failed:
            tenant.call("later", ("x" * 9_000_000,))
        assert str(failed.value).startswith(
            "counter-js: later ran out of memory (an allocation needed more than limits.memory_pages = 512 allows)"
        )
        assert failed.value.outcome == "memory"


@pytest.mark.parametrize("isolated", [True, False])
def test_a_javascript_guest_granted_random_draws_from_the_host_at_each_run(
    built: Path, tmp_path: Path, isolated: bool
) -> None:
    """Built without componentize-js's random feature whatever its grants, a guest's crypto.getRandomValues and
    Math.random gave what was drawn while it was built, the same at every run: an outsider's tokens were a constant."""
    bundle = built / "artifacts" / "bundles" / "counter-js-0.1.0.ngx"
    draws = set()
    for _ in range(2):
        with open_tenant(
            bundle, trust_file=built / ".ngixi" / "trust.toml", isolated=isolated, sandboxes=tmp_path
        ) as tenant:
            draws.add(tenant.call("draw", ()).values[0])
    assert len(draws) == 2, draws


def _logged_tenant(
    built: Path, guest: str, sandboxes: Path, logged: list[LogLine], *, isolated: bool
) -> InProcessTenant | IsolatedTenant:
    """A tenant of one of the built guests, its log lines kept in `logged`."""
    return open_tenant(
        built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx",
        trust_file=built / ".ngixi" / "trust.toml",
        isolated=isolated,
        sandboxes=sandboxes,
        logs=lambda line, _: logged.append(line),
    )


@pytest.mark.parametrize("isolated", [True, False])
def test_a_javascript_guest_not_granted_random_refuses_to_draw_at_its_line(
    built: Path, tmp_path: Path, isolated: bool
) -> None:
    """Without [capabilities.random], crypto.getRandomValues, crypto.randomUUID and Math.random gave what was drawn
    while the component was built, the same at every run. Each now throws, logged at the guest's own line (through
    the bundle of its npm dependencies) and naming the grant."""
    guest = GENERATED["javascript"]
    lines = (built / "guests" / guest / "index.js").read_text().splitlines()
    logged: list[LogLine] = []
    with _logged_tenant(built, guest, tmp_path, logged, isolated=isolated) as tenant:
        for what in JS_SOURCES:
            with pytest.raises(GuestError, match="draw trapped"):
                tenant.call("draw", (what,))
    assert [line.level for line in logged] == ["error"] * len(JS_SOURCES)
    for line, source in zip(logged, JS_SOURCES.values(), strict=True):
        number = next(n for n, text in enumerate(lines, 1) if f"{source}(" in text)
        assert line.message.startswith(f"Error: {source}: this guest is not granted [capabilities.random]"), line
        assert line.message.endswith(f"(at guests/{guest}/index.js:{number} in draw)"), line


@pytest.mark.parametrize("isolated", [True, False])
def test_a_python_guest_s_randomness_fails_loudly_rather_than_repeating_the_build_s(
    built: Path, tmp_path: Path, isolated: bool
) -> None:
    """componentize-py's --stub-wasi leaves a Python guest no randomness: its random.random() gave what was drawn
    while the component was built, the same at every run (0.761709200975832, in every open and call), and
    os.urandom, secrets and uuid4 trapped without a word. Each now refuses with an error naming why, and a `random`
    the guest seeds itself repeats as seeded."""
    logged: list[LogLine] = []
    seeded = set()
    for _ in range(2):
        with _logged_tenant(built, "counter-python", tmp_path, logged, isolated=isolated) as tenant:
            for source in PYTHON_SOURCES:
                with pytest.raises(GuestError, match="draw trapped"):
                    tenant.call("draw", (source,))
            seeded.add(tenant.call("draw", ("seeded",)).values[0])
    assert len(seeded) == 1 and float(seeded.pop()) < 1
    assert [line.level for line in logged] == ["error"] * 2 * len(PYTHON_SOURCES)
    refused = [line.message.split(": a Python guest gets no randomness", 1)[0] for line in logged]
    assert refused == (["NotImplementedError: os.urandom"] * 3 + ["NotImplementedError: random (unseeded)"] * 2) * 2
    assert all("[capabilities.random]" in line.message for line in logged)
    assert all("(at guests/counter-python/app.py:" in line.message for line in logged)  # the guest's line


def test_a_javascript_guest_imports_an_npm_package_by_name(built: Path) -> None:
    """componentize-js resolves no package names: the build bundles the guest with its node_modules first, and an
    Error thrown in the package still names its file and line, not the bundle's (the guest's own lines are
    test_a_javascript_error_is_logged_with_the_guests_line's)."""
    guest = GENERATED["javascript"]
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    ran = run(built, "ngixi", "run", "--in-process", bundle, "span", "1h")
    assert ran.stdout == '"1h: 3600000"\n'
    failed = run(built, "ngixi", "run", bundle, "span", "boom", check=False)
    assert failed.returncode == 5
    thrown = 'error: Error: val is not a non-empty string or a valid number. val=""'
    assert f"{thrown} (at guests/{guest}/node_modules/ms/index.js:" in failed.stderr
    assert not list((built / "artifacts" / "wasm").glob(".*.mjs"))  # the bundle is the build's only


def test_a_javascript_guest_s_packages_are_bundled_as_for_a_browser(built: Path) -> None:
    """A package's "browser" export, not its Node.js one (which failed the build: node:crypto), with
    process.env.NODE_ENV (a ReferenceError at build), Buffer from the guest's npm buffer (likewise) and a regular
    expression's Unicode property escape (the engine has no ICU: a SyntaxError at build) rewritten into characters.
    Bytes given to an export are a Uint8Array of the guest's (tweetnacl refused them), and reading `location`, which
    url-parse does, no longer traps."""
    bundle = f"artifacts/bundles/{GENERATED['javascript']}-0.1.0.ngx"
    for text, upper in (("Émile", "true"), ("émile", "false")):
        ran = run(built, "ngixi", "run", "--in-process", bundle, "shapes", text)
        encoded = base64.b64encode(text.encode()).decode()
        assert ran.stdout == json.dumps(f"production {encoded} {upper}") + "\n"
    ran = run(built, "ngixi", "run", bundle, "bytes", "[1, 2, 255]")
    assert ran.stdout == '"true 1,2,255 undefined"\n'


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_a_javascript_guest_s_timers_wait_on_the_host_s_clock_or_refuse(
    built: Path, tmp_path: Path, isolated: bool
) -> None:
    """Granted clock and stdio, setTimeout waits (componentize-js's clocks feature); without, it throws naming the
    grants, where the engine trapped ('unreachable in subscribe-instant') with nothing logged (jszip, rxjs's timer)."""
    with _logged_tenant(built, "counter-js", tmp_path / "counter", [], isolated=isolated) as tenant:
        assert tenant.call("later", ("soon",)).values == ("soon later",)
    logged: list[LogLine] = []
    greet = _logged_tenant(built, GENERATED["javascript"], tmp_path / "greet", logged, isolated=isolated)
    with greet as tenant, pytest.raises(GuestError):
        tenant.call("wait", ("soon",))
    assert [line.message.split("; add both", 1)[0] for line in logged] == [
        "Error: setTimeout: this guest is not granted [capabilities.clock] and [capabilities.stdio], which a "
        "JavaScript guest's timers wait with"
    ]


def _failed_npm_guest_compile(built: Path, guest: Path, package: str) -> str:
    """What compiling `guest` (its files written, importing `package` where the generated JavaScript guest imports
    ms) with that guest's manifest printed; it must fail and leave no component."""
    template = GENERATED["javascript"]
    source = (built / "guests" / template / "index.js").read_text()
    source = source.replace(SHAPES_IMPORT, "const shape = (text) => text;")  # the guest has no package shapes
    (guest / "index.js").write_text(source.replace(MS_IMPORT, MS_IMPORT.replace('"ms"', f'"{package}"')))
    manifest = (built / "manifests" / f"{template}.toml").read_text().replace(template, guest.name)
    (built / "manifests" / f"{guest.name}.toml").write_text(manifest)
    result = run(built, "doit", f"compile:{guest.name}", check=False)
    assert result.returncode != 0
    assert not (built / "artifacts" / "wasm" / f"{guest.name}.wasm").exists()
    return result.stdout + result.stderr


def _with_local_package(guest: Path, name: str) -> Path:
    """Makes `guest` depend on its own folder `name` (`file:name`, linked into node_modules by npm ci) with a
    package.json whose main is index.js; returns that folder, for its index.js."""
    (guest / name).mkdir(parents=True)
    (guest / "package.json").write_text(json.dumps({"name": guest.name, "dependencies": {name: f"file:{name}"}}))
    lock = {
        "": {"dependencies": {name: f"file:{name}"}},
        name: {},
        f"node_modules/{name}": {"resolved": name, "link": True},
    }
    (guest / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3, "requires": True, "packages": lock}))
    (guest / name / "package.json").write_text(json.dumps({"name": name, "main": "index.js"}))
    return guest / name


def test_a_package_the_guest_did_not_install_is_named(built: Path) -> None:
    guest = built / "guests" / "unresolved-js"
    shutil.copytree(built / "guests" / GENERATED["javascript"], guest, ignore=shutil.ignore_patterns("node_modules"))
    printed = _failed_npm_guest_compile(built, guest, "left-pad")
    summary = next(line for line in printed.splitlines() if line.startswith("failed: unresolved-js"))
    assert "Could not resolve 'left-pad' in guests/unresolved-js/index.js:" in summary
    assert " at " not in printed and "main" not in printed  # rolldown's stack and its help of no use here


def test_a_node_builtin_imported_by_a_package_is_named_as_one(built: Path) -> None:
    """An outsider's package using Node's crypto: rolldown's 'Could not resolve' with its own stack trace and a help
    about "main" fields, and a summary line saying only 'Build failed with 1 error:'."""
    guest = built / "guests" / "builtin-js"
    (_with_local_package(guest, "hasher") / "index.js").write_text(
        'const { createHash } = require("crypto");\nconst { EOL } = require("node:os");\n'
        'module.exports = (t) => eval("createHash")("md5").update(t + EOL);\n'
    )
    printed = _failed_npm_guest_compile(built, guest, "hasher")
    summary = next(line for line in printed.splitlines() if line.startswith("failed: builtin-js"))
    assert "guests/builtin-js/hasher/index.js:1:32: imports 'crypto', a Node.js built-in module: " in summary
    # Each such import is said (only the first was), and rolldown's warning of the direct eval after them (it was the
    # build's one line for the failure, ahead of the cause).
    assert "\nguests/builtin-js/hasher/index.js:2:25: imports 'node:os', a Node.js built-in module: " in printed
    assert "Use of direct `eval`" in printed.split("imports 'node:os'")[1]
    assert " at " not in printed


def test_a_package_file_outside_the_guest_is_refused(built: Path, tmp_path: Path) -> None:
    """rolldown followed a link out of a package (a package.json "main" likewise) and built that file of the build
    machine into the guest."""
    guest = built / "guests" / "outside-js"
    package = _with_local_package(guest, "near")
    (tmp_path / "elsewhere.js").write_text("module.exports = () => 'from elsewhere on the build machine';\n")
    (package / "index.js").symlink_to(tmp_path / "elsewhere.js")
    printed = _failed_npm_guest_compile(built, guest, "near")
    assert "elsewhere.js: outside the guest's directory guests/outside-js" in printed


def test_a_trapped_component_with_stdio_lets_go_of_its_store(built: Path, tmp_path: Path) -> None:
    """The failure a caller keeps holds no frame with the store, so closing the guest need not wait for
    Wasmtime's stdio writers (it waited 5 s, and the process then panicked in a Wasmtime thread at exit)."""
    bundle = read_bundle(built / "artifacts/bundles/counter-js-0.1.0.ngx", load_trust(built / ".ngixi" / "trust.toml"))
    with open_guest(bundle, sandbox=Sandbox.under(tmp_path)) as guest:
        with pytest.raises(GuestError) as failed:
            guest.call("bump", (-999,))
        started = time.monotonic()
    assert time.monotonic() - started < 2.0, failed.value
    ran = run(
        built,
        "ngixi",
        "run",
        "--in-process",
        "artifacts/bundles/counter-js-0.1.0.ngx",
        "bump",
        "--",
        "-999",
        check=False,
    )
    assert ran.returncode == 5
    assert "error: Error: no boom here (at guests/counter-js/index.js:21 in bump)\n" in ran.stderr
    assert "panicked" not in ran.stderr


def _broken_guest(project: Path, name: str, template: str, entry: str, source: str) -> None:
    (project / "guests" / name).mkdir()
    (project / "guests" / name / entry).write_text(source)
    manifest = (project / "manifests" / f"{template}.toml").read_text().replace(template, name)
    (project / "manifests" / f"{name}.toml").write_text(manifest)


def test_a_build_error_in_a_package_names_the_package_s_file(built: Path) -> None:
    """SpiderMonkey has no ICU: a Unicode property escape the build cannot rewrite (a pattern made from a string; a
    literal's are rewritten) fails the build where the regex is, which was a line of the bundle
    (artifacts/wasm/.NAME.bundle.mjs:5064:83), a file the build removes; it is the package's own file."""
    guest = built / "guests" / "unicode-js"
    (_with_local_package(guest, "uni") / "index.js").write_text(
        '// upper case?\nconst upper = new RegExp("\\\\p{Lu}", "u");\nmodule.exports = (text) => upper.test(text);\n'
    )
    printed = _failed_npm_guest_compile(built, guest, "uni")
    assert "guests/unicode-js/uni/index.js:2 SyntaxError: invalid property name in regular expression" in printed
    hint = "guests/unicode-js/uni/index.js:2: a Unicode property escape (\\p{...}) in a regular expression cannot "
    summary = next(line for line in printed.splitlines() if line.startswith("failed: unicode-js"))
    assert hint in summary  # the build's one line for the failed guest says why, not wizer's "Failed to initialize"
    assert ".bundle.mjs" not in printed


def test_a_package_drawing_random_numbers_when_imported_is_named(built: Path) -> None:
    """Wizer cannot call the host while it snapshots the guest's module: such a draw (bignumber.js, immutable and
    @noble/curves make one when imported) failed the build as 'the `componentize.wizer` function trapped', with a wasm
    backtrace and no word of the package."""
    guest = built / "guests" / "drawing-js"
    (_with_local_package(guest, "seeded") / "index.js").write_text(
        "// a seed of its own\nconst seed = Math.random();\nmodule.exports = (text) => `${text} ${seed}`;\n"
    )
    printed = _failed_npm_guest_compile(built, guest, "seeded")
    summary = next(line for line in printed.splitlines() if line.startswith("failed: drawing-js"))
    assert (
        "guests/drawing-js/seeded/index.js:2: Error: Math.random was called while the guest's module is imported"
        in (summary)
    )
    assert "draw inside an export" in summary and "trapped" not in printed


def test_compiler_errors_name_file_and_line_and_leave_no_output(built: Path) -> None:
    _broken_guest(built, "bad-js", "counter-js", "index.js", "export function bump(by) {\n  return by +* 1;\n}\n")
    python = "import wit_world\n\n\nclass WitWorld(wit_world.WitWorld):\n    def bump(self, arg0):\n        return (\n"
    _broken_guest(built, "bad-python", "counter-python", "app.py", python)
    # an export of the manifest's the class does not define trapped building, with a wasm backtrace and not a word
    counter = (built / "guests" / "counter-python" / "app.py").read_text()
    _broken_guest(built, "lacking-python", "counter-python", "app.py", counter.replace("def total(", "def totals("))
    compiles = ("compile:bad-js", "compile:bad-python", "compile:lacking-python")
    result = run(built, "doit", "--continue", *compiles, check=False)
    assert result.returncode != 0
    assert "bad-js/index.js:2:" in result.stdout + result.stderr
    assert 'File "guests/bad-python/app.py", line 6' in result.stdout + result.stderr
    assert "Stack backtrace" not in result.stdout + result.stderr
    lacking = (
        "failed: lacking-python (compile): componentize-py guests/lacking-python failed (exit 1): NotImplementedError:"
    )
    assert (
        f"{lacking} guests/lacking-python/app.py: class WitWorld defines no total, which the manifest's [exports]"
        in (result.stdout + result.stderr)
    )
    assert "wasm backtrace" not in result.stdout + result.stderr
    wasm = built / "artifacts" / "wasm"
    assert not [name for name in ("bad-js", "bad-python", "lacking-python") if (wasm / f"{name}.wasm").exists()]
    assert not [p for p in wasm.iterdir() if p.name.startswith(".")]


def test_importing_an_ungranted_interface_is_the_tool_s_own_error(built: Path) -> None:
    source = (built / "guests" / "counter-python" / "app.py").read_text().replace("kv, log, types", "http, kv, log")
    _broken_guest(built, "greedy-python", "counter-python", "app.py", source)
    result = run(built, "doit", "compile:greedy-python", check=False)
    assert result.returncode != 0
    assert 'File "guests/greedy-python/app.py", line' in result.stdout + result.stderr
    assert "cannot import name 'http'" in result.stdout + result.stderr
    assert (  # and first, what to grant
        "manifests/greedy-python.toml: capabilities.http: the guest imports the host's http interface, which needs"
        " [capabilities.http]; grant it in the manifest or remove the import"
    ) in result.stdout + result.stderr


def _edit(path: Path, *replacements: tuple[str, str]) -> None:
    """One save of `path` with each (old, new) replaced."""
    text = path.read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)


def test_watch_shows_each_tool_s_diagnostic_and_rebuilds_on_save(tmp_path: Path) -> None:
    """The watcher starts on a syntax error in each guest (its first build is the failing one), keeps
    watching, and one save of each fixes it: a verified dev bundle of the new source. (That a compile installs
    its toolchain where missing, as watch mode needs, is test_languages's.)"""
    for language in (JAVASCRIPT, PYTHON):
        language.install(REPO / ".ngixi")
    root = copy_project(tmp_path / "project", toolchain_from=REPO, with_language_components=True)
    project = Project(keep_only_guests(root, GUESTS), profile="dev")
    set_targets(root, [], [])  # no Wasmtime artifact: the dev bundle holds the component alone
    script, app = project.guests_dir / "counter-js" / "index.js", project.guests_dir / "counter-python" / "app.py"
    _depend_on_ms(script.parent)  # bundled with it, in watch mode's own directory (a relative entry is no package)
    _edit(script, ("total() + by;", "total() + by +* 1;"))
    _edit(app, ("self.total() + arg0\n", "self.total() + arg0 +\n"))
    watch = WatchProcess(root)
    try:
        started = "\n".join(line.text for line in watch.until("watching"))
        assert "counter-js: failed" in started and "guests/counter-js/index.js:21:" in started, started
        assert "counter-python: failed" in started and 'File "guests/counter-python/app.py", line 26' in started
        _edit(script, ("+* 1;", ";"), ("bumped by", "raised by"))
        assert watch.until("counter-js: rebuilt", "counter-js: failed")[-1].text.startswith("counter-js: rebuilt")
        _edit(app, ("arg0 +\n", "arg0\n"), ("bumped by", "raised by"))
        assert watch.until("counter-python: rebuilt", "counter-python: failed")[-1].text.startswith(
            "counter-python: rebuilt"
        )
    finally:
        watch.stop()
    for guest in GUESTS:
        bundle = read_bundle(project.bundle_path(guest, "0.1.0"), load_trust(project.dev_trust_file))
        assert bundle.index.profile == "dev"
        assert f"{guest}: raised by ".encode() in bundle.data(bundle.index.member("wasm"))


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_text_and_bytes_cross_javascript_and_python_as_they_cross_assemblyscript(built: Path, isolated: bool) -> None:
    """test_data_conformance's table of text and bytes comes back from a JavaScript and a Python component as from an
    AssemblyScript one. A lone surrogate a guest returns is where they differ: componentize-js's glue encodes it as
    U+FFFD (as `TextEncoder` does), componentize-py traps (docs/host-abi.md, "The data contract")."""
    lone = {"javascript": ("\ufffdx",), "python": None}
    for language, guest in GENERATED.items():
        bundle = built / "artifacts" / "bundles" / f"{guest}-0.1.0.ngx"
        with open_tenant(bundle, trust_file=built / ".ngixi" / "trust.toml", isolated=isolated) as tenant:
            for data, refused in TEXT_CASES:
                if refused is None:
                    assert tenant.call("same", (data.decode(),)).values == (data.decode(),), (language, data[:20])
            for data in BYTES_CASES:
                assert tenant.call("data", (data,)).values == (data,), language
            if lone[language] is None:
                with pytest.raises(GuestError, match=f"^{guest}: lone trapped: unreachable"):
                    tenant.call("lone", ())
            else:
                assert tenant.call("lone", ()).values == lone[language]
