"""A tenant runs exactly what was checked, in a clean room: attacks on the path, the cwd and the environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.stages.signing import TrustEntry, render_trust_file
from ngixi_runtime.errors import InvalidInput, NgixiError, PolicyError, VerificationError
from ngixi_runtime.loading.aot_cache import CACHE_VARIABLE, default_cache_dir
from ngixi_runtime.loading.isolated import CHILD_ENVIRONMENT, IsolatedTenant, child_environment
from ngixi_runtime.loading.tenants import CallFailed, TenantPool, open_tenant
from ngixi_runtime.trust.policy import Policy, load_policy
from ngixi_runtime.trust.project_trust import dev_keys_file
from tests.conftest import HELLO_MANIFEST, KeyFiles, exit_code, make_bundle, make_key
from tests.integration import descriptors_of
from tests.run.integration.test_rollback import wait_until_dead
from tests.run.unit.test_bundle import rewritten_in_place
from tests.run.unit.test_native_code import HONEST, crafted_artifact
from tests.wasmgen import ADD_BODY, Func, Imp, module, push

LOG = Imp("ngixi", "log", ["i32"] * 3)
SPIN_BODY = b"\x03\x40\x0c\x00\x0b"  # loop, br 0, end
TIMEOUT_MS = 300
FS_GRANT = '[capabilities.fs]\npreopens = [{ guest = "/data", host = "data", mode = "rw" }]\n'
HOSTILE_MODULES = ("json", "resource", "select", "math", "sitecustomize", "usercustomize", "ngixi_runtime")


def manifest(guest: str, *, extra: str = "", timeout_ms: int = TIMEOUT_MS) -> str:
    named = HELLO_MANIFEST.replace('name = "hello"', f'name = "{guest}"')
    return f"{named}{extra}\n[exports.spin]\n\n[limits]\ntimeout_ms = {timeout_ms}\n"


def guest_wasm(add_body: bytes = ADD_BODY, *, start: str | None = None) -> bytes:
    functions = [Func("add", ["i32", "i32"], ["i32"], add_body), Func("spin", body=SPIN_BODY)]
    return module(imports=[LOG], functions=functions, start=start)


class Bundles:
    """The victim's bundle and the attackers' ones, with one trust file for both keys."""

    def __init__(self, root: Path) -> None:
        self.victim_key = make_key(root / "victim-key")
        self.other_key = make_key(root / "other-key", guests=["other"])
        self.trust = root / "trust.toml"
        self.trust.write_bytes(
            render_trust_file(
                [
                    TrustEntry(self.victim_key.key, ("*",), ("dev",), "victim"),
                    TrustEntry(self.other_key.key, ("other",), ("dev",), "another signer"),
                ]
            )
        )
        self.victim = make_bundle(root / "v1", self.victim_key.key, wasm=guest_wasm(), manifest=manifest("hello"))
        # v2 of the same guest by the same key: it asks for env, which the policy refuses; its add says 666.
        self.refused = make_bundle(
            root / "v2",
            self.victim_key.key,
            wasm=guest_wasm(push(666)),
            manifest=manifest("hello", extra="[capabilities.env]\n"),
            sequence=2,
        )
        # Another signer's guest, put where the victim's bundle was: its add says 777.
        self.foreign = make_bundle(
            root / "other", self.other_key.key, wasm=guest_wasm(push(777)), manifest=manifest("other"), guest="other"
        )
        self.other_only = self.other_key.trust  # trusts the other key alone, not the victim's
        self.policy_file = root / "policy.toml"
        self.policy_file.write_text('[capabilities]\nallow = ["log"]\n')

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)

    def attacker(self, which: str) -> Path:
        return self.refused if which == "policy-refused" else self.foreign


@pytest.fixture
def bundles(tmp_path: Path) -> Bundles:
    return Bundles(tmp_path / "bundles")


def renamed_over(attacker: Path, victim: Path) -> None:
    staged = victim.with_suffix(".staged")
    shutil.copyfile(attacker, staged)
    os.replace(staged, victim)


def written_into(attacker: Path, victim: Path) -> None:
    victim.write_bytes(attacker.read_bytes())  # the same file, its bytes changed in place


SWAPS: dict[str, Callable[[Path, Path], None]] = {"renamed": renamed_over, "in-place": written_into}
ATTACKERS = ("policy-refused", "other-signer")


def call_add(tenant: object) -> tuple[object, ...]:
    assert isinstance(tenant, IsolatedTenant)
    return tenant.call("add", (2, 3)).values


@pytest.mark.usefixtures("engine_name")
@pytest.mark.parametrize("attacker", ATTACKERS)
@pytest.mark.parametrize("swap", SWAPS)
def test_a_child_restarted_after_a_timeout_runs_the_checked_bundle_or_refuses(
    bundles: Bundles, swap: str, attacker: str
) -> None:
    with open_tenant(bundles.victim, trust_file=bundles.trust, policy=bundles.policy) as tenant:
        assert call_add(tenant) == (5,)
        with pytest.raises(CallFailed) as timed_out:
            tenant.call("spin", ())
        assert timed_out.value.outcome == "timeout" and isinstance(tenant, IsolatedTenant)
        SWAPS[swap](bundles.attacker(attacker), bundles.victim)
        if tenant.pid is not None:  # Wasmtime interrupted the guest and kept its child: the same code runs on
            assert call_add(tenant) == (5,)
            end_child(tenant)
        if swap == "renamed":  # the child reads the file that was checked, not the path
            assert call_add(tenant) == (5,)
            return
        with pytest.raises(VerificationError, match="the bundle changed since it was verified"):
            call_add(tenant)
        with pytest.raises(VerificationError, match="the bundle changed since it was verified"):
            call_add(tenant)  # and every later restart too


@pytest.mark.parametrize("attacker", ATTACKERS)
@pytest.mark.parametrize("swap", SWAPS)
def test_a_bundle_swapped_between_the_parents_check_and_the_childs_start_never_runs(
    bundles: Bundles, swap: str, attacker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawn = IsolatedTenant._spawn

    def swapped_first(self: IsolatedTenant) -> object:
        SWAPS[swap](bundles.attacker(attacker), bundles.victim)
        return spawn(self)

    monkeypatch.setattr(IsolatedTenant, "_spawn", swapped_first)
    if swap == "in-place":
        with pytest.raises(VerificationError, match="the bundle changed since it was verified"):
            open_tenant(bundles.victim, trust_file=bundles.trust, policy=bundles.policy)
        return
    with open_tenant(bundles.victim, trust_file=bundles.trust, policy=bundles.policy) as tenant:
        assert call_add(tenant) == (5,)


def end_child(tenant: IsolatedTenant) -> None:
    """Kills the tenant's child, so that its next call but one starts a new one."""
    assert tenant.pid is not None
    pid = tenant.pid
    os.kill(pid, signal.SIGKILL)
    wait_until_dead(pid)
    with pytest.raises(CallFailed, match="the tenant process died"):
        tenant.call("add", (2, 3))


@pytest.mark.usefixtures("engine_name")
def test_a_member_changed_in_place_after_the_check_never_runs(bundles: Bundles) -> None:
    """The signed index is left as it was and only guest.wasm is rewritten in the file, at its size, with an add
    that says 666: a restarted child, which does not check the signature again, runs the verified code (from the
    host AOT cache, found by the signed digest) or refuses the changed bytes; it never runs them."""
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        rewritten_in_place(bundles.victim, "guest.wasm", lambda _: guest_wasm(push(666) + b"\x01\x01"))  # nop, nop
        end_child(tenant)
        try:
            assert call_add(tenant) == (5,)
        except VerificationError as refused:
            assert "guest.wasm does not match its digest in the signed index" in str(refused)


def test_a_bundle_removed_after_the_check_still_restarts(bundles: Bundles) -> None:
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant)
        bundles.victim.unlink()
        bundles.victim.symlink_to(bundles.foreign)  # and the path now leads to another signer's guest
        end_child(tenant)
        assert call_add(tenant) == (5,)


def trusting(bundles: Bundles, *, victim_guests: tuple[str, ...] | None = ("*",), native_code: bool = False) -> None:
    """Rewrites the trust file as an operator would: the victim's key for `victim_guests` (None: removed)."""
    entries = [TrustEntry(bundles.other_key.key, ("other",), ("dev",), "another signer")]
    if victim_guests is not None:
        entries.append(TrustEntry(bundles.victim_key.key, victim_guests, ("dev",), "victim", native_code=native_code))
    bundles.trust.write_bytes(render_trust_file(entries))


@pytest.mark.parametrize("removal", ["key removed", "narrowed to another guest"])
def test_a_restarted_child_is_refused_once_the_operator_no_longer_trusts_its_signer(
    bundles: Bundles, removal: str
) -> None:
    """The operator takes the key out of the trust file (or its scope off this guest) while a host runs: the tenant's
    next child does not start, with the reason a new load would give; trusted again, it starts again."""
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        trusting(bundles, victim_guests=None if removal == "key removed" else ("other",))
        end_child(tenant)
        key = bundles.victim_key.key.key_id
        refusal = "no longer trusts" if removal == "key removed" else f"key {key} may not sign guest 'hello'"
        for _ in range(2):
            with pytest.raises(VerificationError, match=refusal):
                call_add(tenant)
        trusting(bundles)
        assert call_add(tenant) == (5,)


def test_a_restarted_child_is_refused_while_the_trust_file_cannot_be_read(bundles: Bundles) -> None:
    """Refused, not run with what the file said before: the operator may be taking the key out."""
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant)
        text = bundles.trust.read_bytes()
        bundles.trust.write_text("not = [a trust file")
        end_child(tenant)
        with pytest.raises(NgixiError, match=str(bundles.trust)):
            call_add(tenant)
        bundles.trust.write_bytes(text)
        assert call_add(tenant) == (5,)


def test_a_restarted_child_is_refused_once_others_may_change_the_project_trust_file_it_found(
    bundles: Bundles,
) -> None:
    """A found project trust file is used only while no one but this user can change it: a restart read it again
    without that check, trusting a file a new load refuses (made writable by others under a running host)."""
    with open_tenant(bundles.victim, trust_file=bundles.trust, project_trust=True) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        bundles.trust.chmod(0o666)
        end_child(tenant)
        with pytest.raises(InvalidInput, match=f"{bundles.trust}: not used as the trust file: .* any user"):
            call_add(tenant)
        bundles.trust.chmod(0o644)
        assert call_add(tenant) == (5,)


def test_a_restarted_child_is_refused_once_the_operator_lowers_a_ceiling_of_the_policy_file(bundles: Bundles) -> None:
    """A policy tightened under a running host holds the tenant's next child, as it holds a new load; an unreadable
    policy refuses the restart (the operator may be tightening it)."""
    with open_tenant(bundles.victim, trust_file=bundles.trust, policy=bundles.policy) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        bundles.policy_file.write_text('[capabilities]\nallow = ["stdio"]\n')
        end_child(tenant)
        with pytest.raises(PolicyError, match=r"capabilities\.log: not allowed by the policy"):
            call_add(tenant)
        bundles.policy_file.write_text("[limits\n")
        with pytest.raises(NgixiError, match=str(bundles.policy_file)):
            call_add(tenant)
        bundles.policy_file.write_text('[capabilities]\nallow = ["log"]\n')
        assert call_add(tenant) == (5,)


def test_a_pool_holds_each_added_tenant_to_the_policy_file_as_it_is_then(bundles: Bundles) -> None:
    with TenantPool(trust_file=bundles.trust, policy=bundles.policy) as pool:
        pool.add("first", bundles.victim)
        bundles.policy_file.write_text("[limits]\ntimeout_ms = 100\n")
        with pytest.raises(PolicyError, match=r"limits\.timeout_ms: asks for 300"):
            pool.add("second", bundles.victim)


def test_a_pool_keeps_the_files_it_was_given_when_its_host_changes_directory(
    bundles: Bundles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool given relative paths (TenantPool(trust_file=Path("trust.toml"), ...)) read them again at each add and
    restart from whatever directory its host had moved to since: a host that changed into a directory someone else
    prepared (an upload, a checkout) added a bundle of their key, trusted by their trust.toml, under their policy."""
    attacker = make_key(tmp_path / "attacker")  # its trust.toml trusts the attacker's key for every guest
    (tmp_path / "attacker" / "policy.toml").write_text("")
    planted = make_bundle(tmp_path / "planted", attacker.key, wasm=guest_wasm(push(777)), manifest=manifest("hello"))
    monkeypatch.chdir(bundles.trust.parent)
    pool = TenantPool(
        trust_file=Path(bundles.trust.name), policy=load_policy(Path(bundles.policy_file.name)), sandboxes=Path("sb")
    )
    with pool:
        pool.add("first", bundles.victim)
        monkeypatch.chdir(tmp_path / "attacker")
        with pytest.raises(VerificationError, match=f"{attacker.key.key_id}, which .*{bundles.trust} does not trust"):
            pool.add("planted", planted)
        pool.add("second", bundles.victim)
        first = pool._tenant("first")
        assert isinstance(first, IsolatedTenant)
        bundles.policy_file.write_text('[capabilities]\nallow = ["stdio"]\n')
        end_child(first)
        with pytest.raises(PolicyError, match=str(bundles.policy_file)):
            call_add(first)


def test_native_code_taken_from_a_key_is_not_run_by_a_restarted_child(
    tmp_path: Path, bundles: Bundles, engine_name: str, aot_cache_dir: Path
) -> None:
    """The key's artifact (its add says 666, its .wasm's 5) runs while the key is trusted with native code; once
    the operator takes that away, a restarted child compiles the .wasm. Given back, it is not given to a running
    tenant's next child: a trust file changed under a host only narrows what its tenants were checked for."""
    artifact = crafted_artifact(tmp_path, engine_name)
    trusting(bundles, native_code=True)
    bundle = make_bundle(tmp_path / "native", bundles.victim_key.key, wasm=HONEST, artifacts=[artifact])
    with open_tenant(bundle, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (666,)
        trusting(bundles, native_code=False)
        end_child(tenant)
        assert call_add(tenant) == (5,) and tenant.compiled
    with open_tenant(bundle, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        trusting(bundles, native_code=True)
        end_child(tenant)
        assert call_add(tenant) == (5,)


def test_a_restarted_child_is_refused_once_its_sandbox_was_handed_to_another_key(
    bundles: Bundles, tmp_path: Path
) -> None:
    """The operator removes the sandbox's signer record to give the guest's state to another key, whose bundle then
    claims it: the first key's running tenant restarted onto that state, two signers' guests sharing it."""
    second = make_key(tmp_path / "second")
    trusting(bundles)
    bundles.trust.write_bytes(
        bundles.trust.read_bytes() + render_trust_file([TrustEntry(second.key, ("*",), ("dev",), "b")])
    )
    granted = manifest("hello", extra=FS_GRANT)
    first = make_bundle(tmp_path / "first", bundles.victim_key.key, wasm=guest_wasm(), manifest=granted)
    other = make_bundle(tmp_path / "other", second.key, wasm=guest_wasm(push(777)), manifest=granted)
    sandboxes = tmp_path / "sandboxes"
    with open_tenant(first, trust_file=bundles.trust, sandboxes=sandboxes) as tenant:
        assert isinstance(tenant, IsolatedTenant) and call_add(tenant) == (5,)
        (sandboxes / "default" / "hello" / "signer").unlink()
        with open_tenant(other, trust_file=bundles.trust, sandboxes=sandboxes) as claimed:
            assert call_add(claimed) == (777,)
        end_child(tenant)
        with pytest.raises(
            InvalidInput, match=f"signed by key {second.key.key_id} \\(public key .*\\), and key .* signed this one"
        ):
            call_add(tenant)


def test_a_pools_restarted_child_is_refused_once_a_newer_version_was_accepted(tmp_path: Path, keys: KeyFiles) -> None:
    """A host that accepted sequence 2 of a guest (in this pool, or another process with the same rollback state)
    restarts no child of its sequence 1: that is a rollback, as a new load of it would be."""
    older, newer = sequence_bundle(tmp_path, keys, 1), sequence_bundle(tmp_path, keys, 2)
    with TenantPool(trust_file=keys.trust) as pool:
        pool.add("old", older)
        assert pool.call("old", "add", (1, 2)).values == (3,)
        assert exit_code(["verify", "--trust", str(keys.trust), str(newer)]) == 0
        old = pool._tenant("old")
        assert isinstance(old, IsolatedTenant)
        end_child(old)
        with pytest.raises(VerificationError, match="sequence 1 of guest 'hello' on channel 'dev' is lower than 2"):
            pool.call("old", "add", (1, 2))


def test_a_bundle_truncated_in_place_is_refused_at_restart(bundles: Bundles) -> None:
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant)
        os.truncate(bundles.victim, 1024)
        end_child(tenant)
        with pytest.raises(VerificationError):
            call_add(tenant)


def test_no_descriptor_is_left_open_by_a_refused_or_closed_tenant(bundles: Bundles) -> None:
    open_tenant(bundles.victim, trust_file=bundles.trust).close()  # the fork server's socket stays open
    before = descriptors_of().items()
    for _ in range(5):
        for isolated in (True, False):
            with pytest.raises(PolicyError):
                open_tenant(bundles.refused, trust_file=bundles.trust, policy=bundles.policy, isolated=isolated)
            open_tenant(bundles.victim, trust_file=bundles.trust, isolated=isolated).close()
            with pytest.raises(InvalidInput):
                open_tenant(bundles.victim, trust_file=bundles.trust.with_name("missing.toml"), isolated=isolated)
            with pytest.raises(VerificationError):
                open_tenant(bundles.victim, trust_file=bundles.other_only, isolated=isolated)
    assert descriptors_of().items() - before == set()


def hostile_directory(root: Path, marker: Path) -> Path:
    """A directory of modules named like ones the child imports; each leaves a marker file when imported."""
    root.mkdir()
    code = f"open({str(marker)!r} + '-' + __name__, 'w').close()\n"
    for name in HOSTILE_MODULES:
        if name == "ngixi_runtime":
            (root / name).mkdir()
            (root / name / "__init__.py").write_text(code)
            continue
        (root / f"{name}.py").write_text(code)
    return root


def test_the_cli_child_imports_nothing_from_the_working_directory(bundles: Bundles, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    cwd = hostile_directory(tmp_path / "cwd", marker)
    ngixi = Path(sys.executable).parent / "ngixi"
    command = [str(ngixi), "run", "--trust", str(bundles.trust), str(bundles.victim), "add", "2", "3"]
    finished = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert (finished.returncode, finished.stdout) == (0, "5\n"), finished.stderr
    assert list(tmp_path.glob("imported*")) == []


def test_the_api_child_imports_nothing_from_the_parents_cwd_or_python_variables(
    bundles: Bundles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    hostile = hostile_directory(tmp_path / "cwd", marker)
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PYTHONPATH", str(hostile))
    monkeypatch.setenv("PYTHONSTARTUP", str(hostile / "json.py"))
    monkeypatch.setenv("PYTHONUSERBASE", str(hostile))
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert call_add(tenant) == (5,)
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        assert Path(f"/proc/{tenant.pid}/cwd").readlink() == Path("/")
    assert list(tmp_path.glob("imported*")) == []


def child_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().partition("=")[::2] for entry in raw.split(b"\0") if entry)


def test_the_child_sees_only_allowlisted_and_operator_passed_variables(
    bundles: Bundles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGIXI_HOST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter3")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("LANG", "C.UTF-8")
    with open_tenant(bundles.victim, trust_file=bundles.trust, child_env={"SSL_CERT_FILE": "/etc/ca.pem"}) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        environ = child_environ(tenant.pid)
        assert call_add(tenant) == (5,)
    assert set(environ) <= {*CHILD_ENVIRONMENT, CACHE_VARIABLE, "XDG_STATE_HOME", "SSL_CERT_FILE"}
    assert environ["SSL_CERT_FILE"] == "/etc/ca.pem" and environ["LANG"] == "C.UTF-8"
    assert environ[CACHE_VARIABLE] == str(default_cache_dir())
    assert environ["XDG_STATE_HOME"] == str(dev_keys_file().parent.parent)  # the key of the cache's entries
    assert "hunter2" not in str(environ) and "hunter3" not in str(environ)


def test_the_child_runs_isolated_python(bundles: Bundles) -> None:
    """Forked from a fork server started as `python -I`: its command line is the server's."""
    with open_tenant(bundles.victim, trust_file=bundles.trust) as tenant:
        assert isinstance(tenant, IsolatedTenant) and tenant.pid is not None
        arguments = Path(f"/proc/{tenant.pid}/cmdline").read_bytes().split(b"\0")
    assert arguments[1:4] == [b"-I", b"-m", b"ngixi_runtime.loading.zygote_server"]


def sequence_bundle(root: Path, keys: KeyFiles, sequence: int) -> Path:
    return make_bundle(
        root / f"seq-{sequence}", keys.key, wasm=guest_wasm(), manifest=manifest("hello"), sequence=sequence
    )


def test_a_pool_refuses_a_rollback_with_the_state_of_ngixi_run(tmp_path: Path, keys: KeyFiles) -> None:
    newer, older = sequence_bundle(tmp_path, keys, 9), sequence_bundle(tmp_path, keys, 8)
    assert exit_code(["run", "--trust", str(keys.trust), str(newer), "add", "2", "3"]) == 0
    with TenantPool(trust_file=keys.trust) as pool:
        with pytest.raises(VerificationError, match="sequence 8 of guest 'hello' on channel 'dev' is lower than 9"):
            pool.add("old", older)
        pool.add("new", newer)
        assert pool.call("new", "add", (1, 2)).values == (3,)


def test_a_pool_records_what_it_accepts_and_allows_a_downgrade_only_when_told(
    tmp_path: Path, keys: KeyFiles, state_dir: Path
) -> None:
    newer, older = sequence_bundle(tmp_path, keys, 4), sequence_bundle(tmp_path, keys, 3)
    with TenantPool(trust_file=keys.trust) as pool:
        pool.add("new", newer)
        with pytest.raises(VerificationError, match="is lower than 4"):
            pool.add("old", older)
    assert exit_code(["verify", "--trust", str(keys.trust), str(older)]) == 3
    elsewhere = tmp_path / "elsewhere"
    with TenantPool(trust_file=keys.trust, state_dir=elsewhere) as pool:
        pool.add("old", older)
    with TenantPool(trust_file=keys.trust, allow_downgrade=True) as pool:
        pool.add("old", older)
        assert pool.call("old", "add", (2, 2)).values == (4,)


@pytest.mark.parametrize("timeout_ms", [200, 1500])
def test_a_spinning_start_function_is_cut_at_the_guests_timeout(
    tmp_path: Path, keys: KeyFiles, engine_name: str, timeout_ms: int
) -> None:
    path = make_bundle(
        tmp_path / "start",
        keys.key,
        wasm=guest_wasm(start="spin"),
        manifest=manifest("hello", timeout_ms=timeout_ms),
    )
    started = time.monotonic()
    with pytest.raises(NgixiError) as stopped:
        open_tenant(path, trust_file=keys.trust, engine=engine_name)
    elapsed = time.monotonic() - started
    assert elapsed < timeout_ms / 1000 + 5, f"{engine_name}: the start function held open_tenant for {elapsed:.1f} s"
    # Wasmer cannot interrupt a guest: its child is stopped; Wasmtime interrupts the start function itself
    assert f"hello: start exceeded its {timeout_ms} ms timeout" in str(stopped.value)


def test_a_child_slow_to_prepare_is_stopped_with_its_own_reason(
    bundles: Bundles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ngixi_runtime.loading.loader._COMPILE_BASE_SECONDS", 0.0)
    with pytest.raises(CallFailed, match="verifying and preparing the guest took over 0 s; the tenant was stopped"):
        open_tenant(bundles.victim, trust_file=bundles.trust)


def test_a_pool_refuses_a_second_tenant_of_the_same_name(bundles: Bundles) -> None:
    with TenantPool(trust_file=bundles.trust) as pool:
        pool.add("a", bundles.victim)
        before = descriptors_of().items()
        with pytest.raises(InvalidInput, match="tenant 'a' is already in the pool"):
            pool.add("a", bundles.foreign)
        assert descriptors_of().items() - before == set() and pool.call("a", "add", (2, 3)).values == (5,)


@pytest.mark.parametrize("isolated", [True, False])
def test_a_fifo_or_directory_at_the_path_is_refused_at_once(bundles: Bundles, tmp_path: Path, isolated: bool) -> None:
    fifo, directory = tmp_path / "waiting.ngx", tmp_path / "directory.ngx"
    os.mkfifo(fifo)
    directory.mkdir()
    for path in (fifo, directory):
        with pytest.raises(InvalidInput, match="not a regular file"):
            open_tenant(path, trust_file=bundles.trust, isolated=isolated)
    assert exit_code(["verify", "--trust", str(bundles.trust), str(fifo)]) == 2


FAILED_CLEAN_ROOM = """
import os, sys
from pathlib import Path
from ngixi_runtime.errors import NgixiError
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote_server import tenants_forked_here

parent = os.getpid()
chdir = os.chdir
def refuse(path):
    if os.getpid() == parent:
        return chdir(path)
    raise PermissionError(13, "refused for the test", path)
os.chdir = refuse
try:
    with tenants_forked_here(), open_tenant(Path(sys.argv[1]), trust_file=Path(sys.argv[2])) as tenant:
        tenant.call("add", [2, 3])
except NgixiError as error:
    print("refused:", error)
print("ended in", "parent" if os.getpid() == parent else "child")
"""


def test_a_child_forked_from_the_command_that_cannot_enter_its_clean_room_ends_there(
    bundles: Bundles, tmp_path: Path
) -> None:
    command = [sys.executable, "-c", FAILED_CLEAN_ROOM, str(bundles.victim), str(bundles.trust)]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[-1] == "ended in parent" and len(lines) == 2, finished.stdout
    assert "the tenant process died" in lines[0] and "PermissionError" in lines[0], lines[0]


NO_PIDFD = """
import errno, os, sys
from pathlib import Path
from ngixi_runtime.loading.tenants import open_tenant
from ngixi_runtime.loading.zygote_server import tenants_forked_here

def no_descriptor(pid, flags=0):
    raise OSError(errno.EMFILE, "no descriptor for the test")
os.pidfd_open = no_descriptor
try:
    with tenants_forked_here(), open_tenant(Path(sys.argv[1]), trust_file=Path(sys.argv[2])) as tenant:
        tenant.call("add", [2, 3])
except BaseException as error:
    print("refused:", type(error).__name__)
try:
    print("child left:", os.waitpid(-1, os.WNOHANG))
except ChildProcessError:
    print("no child left")
"""


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="a system with pidfds")
def test_a_child_forked_from_the_command_without_a_pidfd_is_killed_and_reaped(bundles: Bundles, tmp_path: Path) -> None:
    command = [sys.executable, "-c", NO_PIDFD, str(bundles.victim), str(bundles.trust)]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60)
    assert finished.stdout.splitlines()[-1] == "no child left", (finished.stdout, finished.stderr)


@pytest.mark.parametrize("home", ["", "relative", "/nonexistent-home-of-ngixi"])
def test_a_home_this_process_refuses_is_the_childs_so_it_keeps_nothing_elsewhere(home: str, tmp_path: Path) -> None:
    """A child has no HOME of its own: where this process refused an empty or missing $HOME (and so did without
    the cache), the child found the password database's home and made its cache and key there."""
    environ = {"HOME": home, "NGIXI_STATE_DIR": str(tmp_path)}
    assert child_environment(environ=environ) == {"HOME": home}
    assert child_environment(environ={"HOME": str(tmp_path)})["XDG_STATE_HOME"] == str(tmp_path / ".local" / "state")
