"""Native code only from keys trusted with it; everything else is compiled here, through the host AOT cache.

The attack: a key scoped to one guest signs a bundle whose artifact was compiled from other code than
its .wasm (here a different `add`; in the wild, code that forks a shell). Digest and signature hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ngixi_build.project import Project
from ngixi_build.stages.bundle import ArtifactInput
from ngixi_build.stages.precompile import precompile_guest, precompile_wasmtime, wasmtime_artifact_metadata
from ngixi_runtime.bundles.reader import read_bundle
from ngixi_runtime.errors import InvalidInput, NgixiError
from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE, AotCache, CacheUnavailable
from ngixi_runtime.loading.loader import Guest, likely_artifacts, open_guest
from ngixi_runtime.spec.targets import SUPPORTED_TARGETS, host_triple
from ngixi_runtime.trust.signatures import load_trust
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.file_events import watched_opens
from tests.wasmgen import ADD_BODY, Func, module

HONEST = module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
CRAFTED = module(functions=[Func("add", ["i32", "i32"], ["i32"], b"\x41\x9a\x05")])  # i32.const 666


def crafted_artifact(tmp_path: Path, engine: str) -> ArtifactInput:
    """An artifact compiled from CRAFTED whose metadata names HONEST's digest: what a hostile signer ships."""
    source = tmp_path / "crafted.wasm"
    source.write_bytes(CRAFTED)
    if engine == "wasmer":
        out = tmp_path / "crafted.wasmer"
        meta = precompile_guest(wasm_path=source, target=SUPPORTED_TARGETS[host_triple()], out_path=out)
    else:
        out = tmp_path / "crafted.cwasm"
        target = Project(tmp_path).wasmtime_target(host_triple())
        meta = precompile_wasmtime(wasm_path=source, target=target, metered=False, out_path=out)
    return ArtifactInput(out, meta._replace(wasm_sha256=hashlib.sha256(HONEST).hexdigest()))


def load(tmp_path: Path, keys: KeyFiles, engine: str, *, artifacts: list[ArtifactInput] | None = None) -> Guest:
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST, artifacts=artifacts or [])
    return open_guest(read_bundle(path, load_trust(keys.trust)))


def cache_entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.aot"))


def first_cache_entry(tmp_path: Path, engine: str, cache_dir: Path) -> tuple[KeyFiles, Path]:
    """A key not trusted with native code, and the one host AOT cache entry its guest's first load compiled."""
    keys = make_key(tmp_path / "keys", native_code=False)
    load(tmp_path, keys, engine)
    [entry] = cache_entries(cache_dir)
    return keys, entry


def test_a_key_without_native_code_trust_cannot_run_its_own_machine_code(tmp_path: Path, engine_name: str) -> None:
    keys = make_key(tmp_path / "keys", native_code=False)
    guest = load(tmp_path, keys, engine_name, artifacts=[crafted_artifact(tmp_path, engine_name)])
    assert guest.call("add", (2, 3)) == (5,)  # the signed .wasm's answer, not the artifact's 666
    assert guest.compiled
    assert guest.origin.startswith(
        f"compiled from guest.wasm (key {keys.key.key_id} is not trusted with native code, "
        "so the bundle's artifacts are not run); kept in the host AOT cache "
    )


def test_a_key_trusted_with_native_code_runs_its_artifacts_as_they_are(tmp_path: Path, engine_name: str) -> None:
    """Documented: native_code = true trusts the key with this host; its artifact is not checked against its .wasm."""
    keys = make_key(tmp_path / "keys", native_code=True)
    guest = load(tmp_path, keys, engine_name, artifacts=[crafted_artifact(tmp_path, engine_name)])
    assert guest.origin.startswith("artifact aot/")
    assert guest.call("add", (2, 3)) == (666,)


@pytest.mark.parametrize(
    ("epoch_interruption", "limits", "refusal"),
    [
        (False, "", "compiled without epoch interruption but it is enabled for the host"),
        (True, "[limits]\nfuel = 1000000\n", "compiled without fuel support but it is enabled for the host"),
    ],
)
def test_an_artifact_without_the_deadlines_instrumentation_is_refused_and_compiled(
    tmp_path: Path, epoch_interruption: bool, limits: str, refusal: str
) -> None:
    """A trusted key's artifact built without what the deadline or fuel limit counts with (an engine set otherwise)
    would escape them: Wasmtime refuses it, and the signed .wasm is compiled here instead."""
    wasmtime = pytest.importorskip("wasmtime")
    config = wasmtime.Config()
    config.epoch_interruption = epoch_interruption
    config.wasm_relaxed_simd_deterministic = True
    artifact = tmp_path / "uninstrumented.cwasm"
    artifact.write_bytes(wasmtime.Module(wasmtime.Engine(config), CRAFTED).serialize())
    target = Project(tmp_path).wasmtime_target(host_triple())
    meta = wasmtime_artifact_metadata(target, hashlib.sha256(HONEST).hexdigest())
    keys = make_key(tmp_path / "keys", native_code=True)
    path = make_bundle(
        tmp_path / "bundle",
        keys.key,
        wasm=HONEST,
        manifest=HELLO_MANIFEST + limits,
        artifacts=[ArtifactInput(artifact, meta)],
    )
    with open_guest(read_bundle(path, load_trust(keys.trust)), engine="wasmtime") as guest:
        assert guest.call("add", (2, 3)) == (5,)  # not the artifact's 666
        assert guest.compiled and refusal in guest.origin


def test_the_second_load_is_a_host_cache_hit(tmp_path: Path, engine_name: str, aot_cache_dir: Path) -> None:
    keys = make_key(tmp_path / "keys", native_code=False)
    first = load(tmp_path, keys, engine_name)
    second = load(tmp_path / "again", keys, engine_name)
    [entry] = cache_entries(aot_cache_dir)
    assert first.compiled and not second.compiled
    assert second.origin.startswith(f"host AOT cache {entry} (key {keys.key.key_id} is not trusted")
    assert second.call("add", (40, 2)) == (42,)


def test_a_compiled_guest_from_a_trusted_key_is_cached_too(tmp_path: Path, engine_name: str) -> None:
    keys = make_key(tmp_path / "keys")
    guest = load(tmp_path, keys, engine_name)
    again = load(tmp_path / "again", keys, engine_name)
    assert guest.origin.startswith("compiled from guest.wasm (no artifact fits: the bundle has no artifacts); kept")
    assert again.origin.startswith("host AOT cache ") and again.call("add", (1, 2)) == (3,)


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _swap_in_crafted_code(path: Path, tmp_path: Path, engine: str, cache_dir: Path) -> None:
    """Another entry's whole file (its own record and code) put at this entry's name."""
    other_keys = make_key(tmp_path / "other-keys", native_code=False)
    make = make_bundle(tmp_path / "other", other_keys.key, wasm=CRAFTED)
    open_guest(read_bundle(make, load_trust(other_keys.trust)))
    other = next(p for p in cache_entries(cache_dir) if p != path)
    os.replace(other, path)


def test_an_entry_this_users_loads_did_not_make_is_never_loaded(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path
) -> None:
    """An entry with the right record and digests that another program wrote into the cache (copied from another
    machine or user, or made by a process of the operator's from bytes a guest chose) was deserialized: entries
    carry a keyed digest only this user's loads can make, and one without it is compiled again and replaced."""
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    header, _, code = entry.read_bytes().partition(b"\n")
    record = json.loads(header)
    for planted in ({**record, "mac": "0" * 64}, {k: v for k, v in record.items() if k != "mac"}):
        entry.write_bytes(json.dumps(planted).encode() + b"\n" + code)
        guest = load(tmp_path / "again", keys, engine_name)
        assert "refused (this user's loads did not make it: its keyed digest does not match) and replaced" in (
            guest.origin
        )
        assert guest.compiled and guest.call("add", (2, 3)) == (5,)
    assert load(tmp_path / "third", keys, engine_name).origin.startswith("host AOT cache ")


def test_a_truncated_cache_entry_is_refused_before_any_of_it_is_deserialized(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path
) -> None:
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    entry.write_bytes(entry.read_bytes()[:-100])
    guest = load(tmp_path / "again", keys, engine_name)
    assert "refused (its record is damaged or does not give its code's size) and replaced" in guest.origin
    assert guest.call("add", (2, 3)) == (5,)


@pytest.mark.parametrize("tamper", ["flipped byte", "swapped entry"])
def test_a_tampered_cache_entry_is_refused_and_compiled_again(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path, tamper: str
) -> None:
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    if tamper == "flipped byte":
        _flip_last_byte(entry)
    else:
        _swap_in_crafted_code(entry, tmp_path, engine_name, aot_cache_dir)
    guest = load(tmp_path / "again", keys, engine_name)
    assert guest.call("add", (2, 3)) == (5,)
    assert guest.compiled
    assert "its host AOT cache entry was refused (its code does not match the digest and key of its record)" in (
        guest.origin
    )
    assert load(tmp_path / "third", keys, engine_name).origin.startswith("host AOT cache ")


def test_a_cache_directory_others_may_write_is_not_used(tmp_path: Path, engine_name: str, aot_cache_dir: Path) -> None:
    aot_cache_dir.chmod(0o777)
    keys = make_key(tmp_path / "keys", native_code=False)
    guest = load(tmp_path, keys, engine_name)
    assert guest.call("add", (2, 3)) == (5,)
    assert "; host AOT cache unavailable: " in guest.origin and "others than this user may write it" in guest.origin
    assert cache_entries(aot_cache_dir) == []


def test_a_cache_entry_others_may_write_is_refused_and_replaced(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path
) -> None:
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    entry.chmod(0o666)
    guest = load(tmp_path / "again", keys, engine_name)
    assert "refused (others than this user may write it) and replaced" in guest.origin
    assert entry.stat().st_mode & 0o777 == 0o600


def test_a_symlinked_cache_entry_is_not_followed(tmp_path: Path, engine_name: str, aot_cache_dir: Path) -> None:
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    planted = tmp_path / "planted.aot"
    os.replace(entry, planted)
    entry.symlink_to(planted)
    guest = load(tmp_path / "again", keys, engine_name)
    assert guest.compiled and guest.call("add", (2, 3)) == (5,)
    assert "its host AOT cache entry was refused (it is a symbolic link) and replaced" in guest.origin
    assert not entry.is_symlink() and planted.exists()


def test_a_fifo_at_an_entry_does_not_block_the_load_and_is_replaced(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path
) -> None:
    keys, entry = first_cache_entry(tmp_path, engine_name, aot_cache_dir)
    entry.unlink()
    os.mkfifo(entry, 0o600)
    with watched_opens(entry) as opens:
        guest = load(tmp_path / "again", keys, engine_name)
        assert opens() == 0  # refused unopened: an open would wake a writer waiting on it
    assert "its host AOT cache entry was refused (it is not a regular file) and replaced" in guest.origin
    assert load(tmp_path / "third", keys, engine_name).origin.startswith("host AOT cache ")


def test_the_cache_refuses_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(CacheUnavailable, match=rf"^{blocker}/aot: "):
        AotCache.opened(blocker / "aot")


def test_without_native_code_trust_and_no_compiling_the_load_says_why(tmp_path: Path, engine_name: str) -> None:
    keys = make_key(tmp_path / "keys", native_code=False)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST, artifacts=[crafted_artifact(tmp_path, engine_name)])
    with pytest.raises(NgixiError, match=rf"key {keys.key.key_id} is not trusted with native code, .* and compiling"):
        open_guest(read_bundle(path, load_trust(keys.trust)), allow_compile=False)


@pytest.mark.parametrize(
    ("line", "valid"),
    [("native_code = true", True), ("native_code = false", True), ("", True), ('native_code = "yes"', False)],
)
def test_the_trust_file_native_code_field(tmp_path: Path, line: str, valid: bool) -> None:
    keys = make_key(tmp_path / "keys")
    text = keys.trust.read_text().replace("native_code = true\n", line + "\n")
    keys.trust.write_text(text)
    if valid:
        assert load_trust(keys.trust).keys[0].native_code is (line == "native_code = true")
        return
    with pytest.raises(InvalidInput, match=rf"^{keys.trust}: keys\[0\].native_code: must be true or false"):
        load_trust(keys.trust)


def test_inspect_and_run_say_which_code_runs_and_why(
    tmp_path: Path, engine_name: str, aot_cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = make_key(tmp_path / "keys", native_code=False)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST, artifacts=[crafted_artifact(tmp_path, engine_name)])
    why = f"(key {keys.key.key_id} is not trusted with native code, so the bundle's artifacts are not run)"
    assert exit_code(["inspect", str(path), "--trust", str(keys.trust)]) == 0
    assert f"  code on {engine_name}: compiled from guest.wasm {why}; not in the host AOT cache" in (
        capsys.readouterr().out
    )
    run = ["-v", "run", "--in-process", str(path), "add", "2", "3", "--trust", str(keys.trust)]
    assert exit_code(run) == 0
    output = capsys.readouterr()
    assert output.out == "5\n"
    assert f"note: hello: compiled from guest.wasm {why}; kept in the host AOT cache {aot_cache_dir}" in output.err
    assert exit_code(run) == 0
    [entry] = cache_entries(aot_cache_dir)
    assert f"note: hello: host AOT cache {entry} {why}" in capsys.readouterr().err
    assert exit_code(["inspect", str(path), "--trust", str(keys.trust)]) == 0
    assert f"  code on {engine_name}: host AOT cache {entry} {why}" in capsys.readouterr().out


def test_inspect_says_a_load_refuses_a_module_crafted_to_cost_its_compile(
    tmp_path: Path, aot_cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ngixi inspect` said such a module would be compiled and kept in the host AOT cache, where a load refuses it."""
    wasmtime = pytest.importorskip("wasmtime")
    keys = make_key(tmp_path / "keys")
    crafted = wasmtime.wat2wasm(
        '(module (memory 1) (func (export "add") (param i32 i32) (result i32) i32.const 0)' + "(func)" * 50_001 + ")"
    )
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=bytes(crafted))
    assert exit_code(["inspect", str(path), "--trust", str(keys.trust)]) == 0
    plan = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  code on "))
    assert plan.endswith(
        ": none: a load refuses to compile guest.wasm (no artifact fits: the bundle has no "
        "artifacts): it declares more than 50000 functions, types, element segments and globals in "
        f"{len(crafted)} bytes, where real programs have hundreds of bytes for each: each takes an "
        "engine kilobytes of memory (a global, in each instance), so a module may declare 50000, or "
        "one per 64 bytes of its size; whoever built it can build it with fewer, larger functions "
        "(an optimizing build, such as wasm-opt -O, inlines small ones and drops those never called)"
    )
    assert cache_entries(aot_cache_dir) == []


def test_run_says_when_it_runs_a_shipped_artifact(
    tmp_path: Path, engine_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = make_key(tmp_path / "keys", native_code=True)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST, artifacts=[crafted_artifact(tmp_path, engine_name)])
    assert exit_code(["-v", "run", "--in-process", str(path), "add", "2", "3", "--trust", str(keys.trust)]) == 0
    assert "(its signer's trust entry has native_code = true, so the bundle's artifacts run)" in capsys.readouterr().err
    assert exit_code(["inspect", str(path), "--trust", str(keys.trust)]) == 0
    assert "is trusted with native code, so its artifacts run" in capsys.readouterr().out


@pytest.mark.parametrize("where", ["before the command", "after the command"])
def test_verbose_goes_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    keys = make_key(tmp_path / "keys", native_code=True)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST)
    run = ["run", "--in-process", str(path), "add", "2", "3", "--trust", str(keys.trust)]
    assert exit_code(run) == 0  # compiles, keeps the code in the host AOT cache, and says so
    capsys.readouterr()
    assert exit_code(run) == 0
    assert "note:" not in capsys.readouterr().err
    verbose = ["-v", *run] if where == "before the command" else [run[0], "-v", *run[1:]]
    assert exit_code(verbose) == 0
    assert "note: hello:" in capsys.readouterr().err


def test_a_relative_cache_directory_is_not_used(
    tmp_path: Path, engine_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_VARIABLE, "relative/aot")
    monkeypatch.chdir(tmp_path)
    guest = load(tmp_path, make_key(tmp_path / "keys", native_code=False), engine_name)
    unavailable = f"; host AOT cache unavailable: ${CACHE_VARIABLE}: must be an absolute path, not 'relative/aot'"
    assert unavailable in guest.origin
    assert not (tmp_path / "relative").exists()


def test_inspect_json_says_which_code_a_load_would_run(
    tmp_path: Path, engine_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = make_key(tmp_path / "keys", native_code=False)
    path = make_bundle(tmp_path / "bundle", keys.key, wasm=HONEST)
    assert exit_code(["inspect", "--json", str(path), "--trust", str(keys.trust)]) == 0
    assert json.loads(capsys.readouterr().out)["code"].startswith(
        f"compiled from guest.wasm (key {keys.key.key_id} is not trusted with native code"
    )


def test_nothing_is_read_ahead_for_a_trust_file_that_trusts_no_key_with_native_code(tmp_path: Path) -> None:
    trusted, untrusted = make_key(tmp_path / "a"), make_key(tmp_path / "b", native_code=False)
    assert likely_artifacts("wasmtime", load_trust(trusted.trust)) == (f"aot/{host_triple()}.cwasm",)
    assert likely_artifacts("wasmtime", load_trust(untrusted.trust)) == ()


def test_an_empty_cache_key_keys_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty (or cut) key of this user's made every entry's keyed digest one anyone could compute."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    key = tmp_path / "state" / "ngixi" / "aot-cache.key"
    key.parent.mkdir(parents=True, mode=0o700)
    key.write_bytes(b"")
    key.chmod(0o600)
    with pytest.raises(CacheUnavailable, match=rf"^{key}: is not used: it holds 0 bytes, under 32 \(remove it\)"):
        AotCache.opened(tmp_path / "aot")
