"""Core WASI guests on both engines, isolated and in-process: duplicate imports, and what the manifest grants."""

from __future__ import annotations

import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.loading.tenants import CallFailed, TenantPool, open_tenant
from tests.conftest import KeyFiles, make_bundle
from tests.wasmgen import DROP, I64, Func, Imp, call_import, load_i32, module, push

WASI = "wasi_snapshot_preview1"
FD_WRITE = Imp(WASI, "fd_write", ["i32"] * 4, ["i32"])
PROC_EXIT = Imp(WASI, "proc_exit", ["i32"])
COMMAND = '[guest]\nname = "hello"\nversion = "0.1.0"\nkind = "command"\n'
HELLO_AT = 200  # "hello", and an iovec for it at 100
BADF = 8


def hello_data() -> list[tuple[int, bytes]]:
    return [(100, struct.pack("<II", HELLO_AT, 5)), (HELLO_AT, b"hello")]


@pytest.fixture(params=[True, False], ids=["isolated", "in-process"])
def isolated(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_a_function_imported_twice_is_linked_once(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    """AssemblyScript's WASI shim imports fd_write twice; each import calls the one host function."""
    start = call_import(0, 1, 100, 1, 300) + DROP + call_import(2, 2, 100, 1, 300) + DROP + call_import(1, 3)
    wasm = module(imports=[FD_WRITE, PROC_EXIT, FD_WRITE], functions=[Func("_start", body=start)], data=hello_data())
    bundle = make_bundle(tmp_path, keys.key, wasm=wasm, manifest=COMMAND + "[capabilities.stdio]\n")
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name) as tenant:
        result = tenant.run()
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"hello", b"hello")
    assert result.metrics.host_calls == {"stdio": 2, "baseline": 1}


# --- stdin -------------------------------------------------------------------------------------------

FD_READ = Imp(WASI, "fd_read", ["i32"] * 4, ["i32"])
STORE_I32 = b"\x36\x02\x00"
STDIN_ECHO = module(  # reads up to 64 bytes of stdin into 200, then writes what it read to stdout
    imports=[FD_READ, FD_WRITE],
    functions=[
        Func(
            "_start",
            body=call_import(0, 0, 100, 1, 300)
            + DROP
            + push(104)
            + load_i32(300)
            + STORE_I32
            + call_import(1, 1, 100, 1, 304)
            + DROP,
        )
    ],
    data=[(100, struct.pack("<II", 200, 64))],
)
STDIN_GRANT = COMMAND + "[capabilities.stdio]\n[capabilities.stdin]\nmax_bytes = 100\n"


def test_stdin_reaches_a_guest_granted_it(tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT)
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, stdin=b"ping") as tenant:
        assert tenant.run().stdout == b"ping"
        assert tenant.run().stdout == b""  # the input is read: end of file


def test_echoed_stdin_stays_within_the_output_quota(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT + "[limits]\nstdout_bytes = 3\n")
    tenant = open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, stdin=b"ping")
    with tenant, pytest.raises(CallFailed) as refused:
        tenant.run()
    assert refused.value.outcome == "quota"
    assert str(refused.value) == "hello: stdout/stderr exceeded its quota of 3 bytes (limits.stdout_bytes)"


def test_stdin_beyond_max_bytes_is_refused_before_the_guest_starts(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT)
    asked = []

    def reader(limit: int, deadline: float) -> bytes:
        asked.append(limit)
        return b"x" * (limit + 1)

    for given in (b"x" * 101, reader):
        with pytest.raises(InvalidInput, match=r"^hello: its standard input is over capabilities\.stdin\.max_bytes"):
            open_tenant(bundle, trust_file=keys.trust, stdin=given)
    assert asked == [100]


def test_stdin_for_a_guest_without_the_grant_is_refused_and_a_reader_not_asked(tmp_path: Path, keys: KeyFiles) -> None:
    bundle = make_bundle(
        tmp_path,
        keys.key,
        wasm=module(imports=[FD_WRITE], functions=[Func("_start")]),
        manifest=COMMAND + "[capabilities.stdio]\n",
    )
    with pytest.raises(InvalidInput, match=r"^hello: it is not granted \[capabilities\.stdin\]"):
        open_tenant(bundle, trust_file=keys.trust, stdin=b"secret")

    def reader(limit: int, deadline: float) -> bytes:
        raise AssertionError("read the caller's stdin for a guest not granted it")

    with open_tenant(bundle, trust_file=keys.trust, isolated=False, stdin=reader) as tenant:
        assert tenant.run().exit_code == 0


def test_without_stdin_fd_0_is_at_its_end(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    """As Wasmtime's WASI (and a component guest's) answers a program given no input: fd 0 was not open (BADF), and
    CPython's python.wasm, which opens descriptors 0 to 2 as it starts, stopped with "Fatal Python error:
    init_sys_streams: can't initialize sys standard streams" unless granted stdin."""
    read_then_exit = call_import(0, 0, 100, 1, 300) + load_i32(300) + b"\x6a" + b"\x10\x01"  # errno + bytes read
    reads = module(
        imports=[FD_READ, PROC_EXIT],
        functions=[Func("_start", body=push(300, 99) + STORE_I32 + read_then_exit)],
        data=[(100, struct.pack("<II", 200, 64))],
    )
    manifest = COMMAND + "[capabilities.fs]\n"
    bundle = make_bundle(tmp_path, keys.key, wasm=reads, manifest=manifest)
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine_name) as tenant:
        assert tenant.run().exit_code == 0


# --- env ---------------------------------------------------------------------------------------------

ENVIRON = module(  # writes its environment, NUL-separated, to stdout
    imports=[
        Imp(WASI, "environ_sizes_get", ["i32"] * 2, ["i32"]),
        Imp(WASI, "environ_get", ["i32"] * 2, ["i32"]),
        FD_WRITE,
    ],
    functions=[
        Func(
            "_start",
            body=call_import(0, 400, 404)
            + DROP
            + call_import(1, 500, 1000)
            + DROP
            + push(100, 1000)
            + STORE_I32
            + push(104)
            + load_i32(404)
            + STORE_I32
            + call_import(2, 1, 100, 1, 300)
            + DROP,
        )
    ],
)
ENV_GRANT = COMMAND + '[capabilities.stdio]\n[capabilities.env]\nallow = ["LANG", "DEBUG"]\nfixed = { MODE = "prod" }\n'


def test_env_shows_fixed_and_allowed_variables(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=ENVIRON, manifest=ENV_GRANT)
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, env={"LANG": "C"}) as tenant:
        assert tenant.run().stdout == b"MODE=prod\0LANG=C\0"  # the fixed ones, then the caller's as given


@pytest.mark.parametrize(
    "case",
    [
        (
            ENV_GRANT,
            {"HOME": "/root"},
            "hello: environment variable HOME is not allowed by its manifest; "
            "capabilities.env.allow lists: LANG, DEBUG",
        ),
        (ENV_GRANT, {"MODE": "dev"}, "hello: environment variable MODE is fixed by its manifest; do not pass it"),
        (
            COMMAND + "[capabilities.stdio]\n",
            {"LANG": "C"},
            "hello: it is not granted [capabilities.env], so it takes no environment variables (given: LANG)",
        ),
    ],
    ids=["not allowed", "fixed", "no env grant"],
)
def test_variables_the_manifest_does_not_take_are_refused(
    tmp_path: Path, keys: KeyFiles, case: tuple[str, dict[str, str], str], isolated: bool
) -> None:
    manifest, env, refusal = case
    bundle = make_bundle(
        tmp_path, keys.key, wasm=ENVIRON if "env" in manifest else module(functions=[Func("_start")]), manifest=manifest
    )
    with pytest.raises(InvalidInput) as refused:
        open_tenant(bundle, trust_file=keys.trust, isolated=isolated, env=env)
    assert str(refused.value) == refusal


# --- fs without preopens -----------------------------------------------------------------------------

C_STARTUP = module(  # as wasi-libc's startup: looks for preopens from fd 3, closes and seeks; exits with the errno
    imports=[
        Imp(WASI, "fd_prestat_get", ["i32"] * 2, ["i32"]),
        Imp(WASI, "fd_close", ["i32"], ["i32"]),
        Imp(WASI, "fd_seek", ["i32", "i64", "i32", "i32"], ["i32"]),
        FD_WRITE,
        PROC_EXIT,
    ],
    functions=[
        Func(
            "_start",
            body=call_import(1, 3)
            + DROP
            + call_import(2, 1, I64(0), 0, 700)
            + DROP
            + call_import(3, 1, 100, 1, 300)
            + DROP
            + push(3, 600)
            + b"\x10\x00\x10\x04",
        )
    ],
    data=hello_data(),
)


def test_fs_without_preopens_links_its_functions_without_a_sandbox(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    manifest = COMMAND + "[capabilities.stdio]\n[capabilities.fs]\n"
    bundle = make_bundle(tmp_path, keys.key, wasm=C_STARTUP, manifest=manifest)
    with open_tenant(bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, sandboxes=None) as tenant:
        result = tenant.run()
    assert (result.exit_code, result.stdout) == (BADF, b"hello")  # fd 3 is no preopen: none are


def test_fs_without_stdio_is_refused_for_a_guest_that_writes(tmp_path: Path, keys: KeyFiles, engine_name: str) -> None:
    bundle = make_bundle(tmp_path, keys.key, wasm=C_STARTUP, manifest=COMMAND + "[capabilities.fs]\n")
    with pytest.raises(NgixiError, match=r"capabilities\.stdio: the guest imports wasi_snapshot_preview1\.fd_write"):
        open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine_name)


# --- what a guest makes is its user's alone ------------------------------------------------------------

MAKES_A_FILE = module(  # mkdir d, then path_open(d/f, CREAT, read and write); exits with path_open's errno
    imports=[
        Imp(WASI, "path_create_directory", ["i32"] * 3, ["i32"]),
        Imp(WASI, "path_open", ["i32"] * 5 + ["i64", "i64", "i32", "i32"], ["i32"]),
        PROC_EXIT,
    ],
    functions=[
        Func(
            "_start",
            body=call_import(0, 3, 500, 1)
            + DROP
            + call_import(1, 3, 0, 510, 3, 1, I64(66), I64(0), 0, 700)
            + call_import(2),
        )
    ],
    data=[(500, b"d"), (510, b"d/f")],
)
READ_WRITE_DATA = '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'


# --- deep paths ------------------------------------------------------------------------------------------

DEPTH = 250  # directories, below MAX_PATH_DEPTH
DEEP_PATH = b"d/" * DEPTH + b"f"
OPENS_DEEP = module(  # path_open(d/d/.../f, read), then path_rename of it to its own name: exits with both errnos
    imports=[
        Imp(WASI, "path_open", ["i32"] * 5 + ["i64", "i64", "i32", "i32"], ["i32"]),
        Imp(WASI, "path_rename", ["i32"] * 6, ["i32"]),
        PROC_EXIT,
    ],
    functions=[
        Func(
            "_start",
            body=call_import(0, 3, 0, 1000, len(DEEP_PATH), 0, I64(2), I64(0), 0, 700)
            + push(100)
            + b"\x6c"  # i32.mul: path_open's errno * 100
            + call_import(1, 3, 1000, len(DEEP_PATH), 3, 1000, len(DEEP_PATH))
            + b"\x6a\x10\x02",  # + path_rename's errno, proc_exit
        )
    ],
    data=[(1000, DEEP_PATH)],
)


def test_a_path_as_deep_as_the_host_resolves_opens_in_a_tenants_process_too(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    """Found by CPython's os.makedirs 200 directories deep: resolving a path holds each directory open, and an
    isolated tenant's descriptor limit left room for 192 beyond the guest's own (EMFILE); a rename holds two paths'."""
    bundle = make_bundle(tmp_path, keys.key, wasm=OPENS_DEEP, manifest=COMMAND + READ_WRITE_DATA)
    data = tmp_path / "sandboxes" / "default" / "hello" / "files" / "data"
    deepest = data.joinpath(*["d"] * DEPTH)
    deepest.mkdir(parents=True)
    (deepest / "f").write_text("found")
    with open_tenant(
        bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, sandboxes=tmp_path / "sandboxes"
    ) as tenant:
        assert tenant.run().exit_code == 0
    assert (deepest / "f").read_text() == "found"


def test_files_and_folders_a_guest_makes_are_its_users_alone(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    """Whatever the umask and the mode of a sandbox made beforehand: 0700 folders (the preopen's too), 0600 files."""
    bundle = make_bundle(tmp_path, keys.key, wasm=MAKES_A_FILE, manifest=COMMAND + READ_WRITE_DATA)
    files = tmp_path / "sandboxes" / "default" / "hello" / "files"
    files.mkdir(parents=True)
    files.chmod(0o755)
    umask = os.umask(0)
    try:
        with open_tenant(
            bundle, trust_file=keys.trust, isolated=isolated, engine=engine_name, sandboxes=tmp_path / "sandboxes"
        ) as tenant:
            assert tenant.run().exit_code == 0
    finally:
        os.umask(umask)
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (files / "data", files / "data/d", files / "data/d/f")}
    assert modes == {files / "data": 0o700, files / "data/d": 0o700, files / "data/d/f": 0o600}


CPU_CLOCK_READER = module(
    imports=[Imp(WASI, "clock_time_get", ["i32", "i64", "i32"], ["i32"])],
    functions=[
        # cpu(): the process CPU clock's reading (clock 2), in nanoseconds
        Func("cpu", results=["i64"], body=call_import(0, 2, I64(1), 104) + DROP + push(104) + b"\x29\x03\x00")
    ],
)


def test_an_in_process_guests_cpu_clock_counts_its_own_calls_not_the_hosts(
    tmp_path: Path, keys: KeyFiles, engine_name: str
) -> None:
    """WASI's process CPU clock read the host process's CPU time: a guest run in-process (a pool's, an embedding
    host's) saw how much CPU the host and every other tenant used between its calls (here the 0.3 s the host spent,
    all of it). It counts the guest's own calls now."""
    manifest = f'{COMMAND.replace("command", "library")}\n[exports.cpu]\nresults = ["i64"]\n\n[capabilities.clock]\n'
    bundle = make_bundle(tmp_path, keys.key, wasm=CPU_CLOCK_READER, manifest=manifest)
    with open_tenant(bundle, trust_file=keys.trust, isolated=False, engine=engine_name) as tenant:
        (first,) = tenant.call("cpu").values
        busy_until = time.thread_time() + 0.3  # the host's (or another tenant's) work between two calls
        while time.thread_time() < busy_until:
            pass
        (second,) = tenant.call("cpu").values
    assert 0 <= first <= second < first + 100_000_000


# --- a TenantPool's command guests ----------------------------------------------------------------

# Writes its arguments, then its environment, each string NUL-terminated, to stdout.
ARGS_AND_ENV_ECHO = """(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1)
  (func (export "_start")
    (drop (call $args_sizes (i32.const 0) (i32.const 4)))
    (drop (call $args (i32.const 64) (i32.const 1024)))
    (drop (call $environ_sizes (i32.const 8) (i32.const 12)))
    (drop (call $environ (i32.const 256) (i32.add (i32.const 1024) (i32.load (i32.const 4)))))
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.add (i32.load (i32.const 4)) (i32.load (i32.const 12))))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"""
ARGS_AND_ENV = COMMAND + '[capabilities.stdio]\n[capabilities.args]\n[capabilities.env]\nallow = ["a", "b"]\n'


def test_a_pool_gives_a_command_guest_args_env_and_stdin_as_open_tenant_does(
    tmp_path: Path, keys: KeyFiles, engine_name: str, isolated: bool
) -> None:
    """TenantPool.add took no args, env, stdin or engine, and a pool could not run a command guest: open_tenant
    and `ngixi run` could. Each is passed on, and refused as open_tenant refuses it."""
    echo = make_bundle(
        tmp_path / "echo", keys.key, wasm=bytes(wasmtime.wat2wasm(ARGS_AND_ENV_ECHO)), manifest=ARGS_AND_ENV
    )
    stdin_echo = make_bundle(tmp_path / "stdin", keys.key, wasm=STDIN_ECHO, manifest=STDIN_GRANT)
    given: dict[str, Any] = {"engine": engine_name, "isolated": isolated}
    with TenantPool(trust_file=keys.trust, state_dir=tmp_path / "state") as pool:
        pool.add("echo", echo, args=["first", "2"], env={"a": "text", "b": "new\nline"}, **given)
        pool.add("stdin", stdin_echo, stdin=b"ping", **given)
        assert pool.run("echo").stdout == b"hello\0first\x002\0a=text\0b=new\nline\0"
        assert pool.run("stdin").stdout == b"ping"
        refusals: list[dict[str, Any]] = [{"env": {"HOME": "/root"}}, {"args": ["a\0b"]}, {"engine": "v8"}]
        for refused in [*refusals, {"stdin": b"x" * 101}]:
            bundle = stdin_echo if "stdin" in refused else echo
            with pytest.raises(NgixiError) as by_open_tenant:
                open_tenant(bundle, trust_file=keys.trust, **refused)
            with pytest.raises(NgixiError) as by_pool:
                pool.add("refused", bundle, **refused)
            assert str(by_pool.value) == str(by_open_tenant.value)
