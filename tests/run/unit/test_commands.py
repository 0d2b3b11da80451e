"""`ngixi` runs its own commands without reading package metadata and finds the others by entry point."""

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from ngixi_runtime import cli
from ngixi_runtime.cli import COMMAND_GROUP, Command, _collection_paused, _commands_for, _parser, main
from tests.conftest import KeyFiles, exit_code, make_bundle, make_key
from tests.wasmgen import ADD_BODY, Func, module


def _greet(args: argparse.Namespace) -> int:
    print(f"hello, {args.name}")
    return 0


def _greet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="world")


GREET = Command("greet someone", _greet, _greet_arguments)
NOT_A_COMMAND = "greet"


def _entry_points(*values: str) -> list[metadata.EntryPoint]:
    return [metadata.EntryPoint(value.rpartition(":")[2].lower(), value, COMMAND_GROUP) for value in values]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[metadata.EntryPoint]:
    """The entry points `ngixi` finds: those the test puts here, instead of the installed distributions'."""
    points: list[metadata.EntryPoint] = []

    def entry_points(*, group: str) -> list[metadata.EntryPoint]:
        assert group == COMMAND_GROUP
        return points

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    return points


def test_verify_reads_no_package_metadata(
    tmp_path: Path, keys: KeyFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(**_: object) -> None:
        raise AssertionError("ngixi verify read the installed distributions' entry points")

    monkeypatch.setattr(metadata, "entry_points", refuse)
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32", "i32"], ["i32"])]))
    assert exit_code(["-v", "verify", "--trust", str(keys.trust), str(bundle)]) == 0
    assert capsys.readouterr().out.startswith("ok: hello 0.1.0")


def test_a_command_from_an_entry_point_runs_and_is_listed(
    installed: list[metadata.EntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    installed.extend(_entry_points(f"{__name__}:GREET"))
    assert exit_code(["greet", "--name", "Ada"]) == 0
    assert capsys.readouterr().out == "hello, Ada\n"
    assert exit_code(["--help"]) == 0
    assert "{run,verify,inspect,trust,pull,greet}" in capsys.readouterr().out


def test_an_entry_point_that_is_broken_is_skipped_with_a_warning(
    installed: list[metadata.EntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    installed.extend(_entry_points("no_such_module:GREET", f"{__name__}:NOT_A_COMMAND"))
    assert exit_code(["--help"]) == 0
    output = capsys.readouterr()
    assert "{run,verify,inspect,trust,pull}" in output.out
    assert "command greet (no_such_module:GREET) does not load: No module named 'no_such_module'" in output.err
    assert f"command not_a_command ({__name__}:NOT_A_COMMAND) is not an ngixi Command" in output.err


def test_an_entry_point_cannot_replace_a_command_of_the_run_side(
    installed: list[metadata.EntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    installed.append(metadata.EntryPoint("run", f"{__name__}:GREET", COMMAND_GROUP))
    assert exit_code(["--help"]) == 0
    assert "verify a bundle and call an export" in capsys.readouterr().out


def test_a_named_command_gets_its_parser_alone_and_help_or_a_typo_lists_every_command(
    installed: list[metadata.EntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    installed.extend(_entry_points(f"{__name__}:GREET"))
    assert list(_commands_for(["-v", "verify", "b.ngx"])) == ["verify"]
    assert list(_commands_for(["run", "--help"])) == ["run"]
    every = ["run", "verify", "inspect", "trust", "pull", "greet"]
    assert list(_commands_for(["--help", "run"])) == every
    assert list(_commands_for(["greet"])) == every  # another distribution's command: looked up by entry point
    assert exit_code(["vreify"]) == 2
    assert "invalid choice: 'vreify' (choose from 'run', 'verify', 'inspect', 'trust', 'pull', 'greet')" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "export", "args", "in_process", "env"),
    [
        (["b.ngx", "add", "2", "3"], "add", ["2", "3"], False, []),
        (["b.ngx", "--in-process", "add", "2", "3"], "add", ["2", "3"], True, []),
        (["b.ngx", "add", "--in-process", "2", "3"], "add", ["2", "3"], True, []),
        (["b.ngx", "--env", "X=1", "--", "--save", "-v"], "--save", ["-v"], False, ["X=1"]),
        (["--in-process", "b.ngx", "Ada", "--env", "X"], "Ada", [], True, ["X"]),
        (["b.ngx", "main", "--", "--", "-x"], "main", ["--", "-x"], False, []),
        (["b.ngx", "--in-process", "--", "grep", "-e", "--", "--json"], "grep", ["-e", "--", "--json"], True, []),
    ],
)
def test_run_takes_its_options_between_the_bundle_the_export_and_its_arguments(
    argv: list[str], export: str, args: list[str], in_process: bool, env: list[str]
) -> None:
    """argparse alone filled the optional export with nothing at the first option after the bundle, then refused the
    rest (`unrecognized arguments: add 2 3`); `--` still passes what follows to the guest as it is, where argparse
    dropped a later `--` too."""
    parsed = _parser(_commands_for(["run"])).parse_args(["run", *argv])
    assert (parsed.bundle, parsed.export, parsed.args) == (Path("b.ngx"), export, args)
    assert (parsed.in_process, parsed.env) == (in_process, env)


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (
            ["trust", "add", "--trust", "t.toml", "--guest", "g", "--channel", "dev", "--", "--"],
            "public_key",
            Path("--"),
        ),
        (["run", "--", "--", "greet"], "bundle", Path("--")),
        (["run", "--", "-b.ngx", "-e"], "bundle", Path("-b.ngx")),
        (["trust", "remove", "--trust", "t.toml", "--", "-AB"], "key_id", "-AB"),
    ],
)
def test_what_follows_the_first_dashes_is_the_operand_as_written(argv: list[str], name: str, value: object) -> None:
    """A later `--` reached a path argument as the NUL-prefixed token that hid it (`ngixi trust add ... -- --` ended
    in `unexpected ValueError: embedded null byte`), and a "-b.ngx" after `--` was refused as a missing bundle."""
    assert getattr(_parser(_commands_for(argv[:1])).parse_args(argv), name) == value


def test_a_command_with_subcommands_of_its_own_still_parses() -> None:
    parsed = _parser(_commands_for(["trust"])).parse_args(["trust", "remove", "--trust", "t.toml", "ABCD"])
    assert (parsed.action, parsed.trust, parsed.key_id) == ("remove", Path("t.toml"), "ABCD")


@pytest.mark.parametrize("collecting", [True, False])
def test_a_start_pauses_collection_and_freezes_only_its_own_process(collecting: bool) -> None:
    """`main` called in a process that goes on (these tests) keeps the collector as it found it and freezes
    nothing; a command's own process freezes what its start made."""
    (gc.enable if collecting else gc.disable)()
    frozen = gc.get_freeze_count()
    try:
        with _collection_paused(own_process=False):
            assert not gc.isenabled()
        assert (gc.isenabled(), gc.get_freeze_count()) == (collecting, frozen)
        with _collection_paused(own_process=True):
            pass
        assert gc.isenabled() == collecting and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """`parser` and every parser of its subcommands, theirs included."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.extend(_parsers(sub))
    return found


def test_no_parser_takes_an_abbreviated_option() -> None:
    """`--js` was taken for `--json`: a script using an abbreviation breaks, or means another option, once an option
    sharing its start is added. Every command is here, the build side's (found by entry point) too."""
    parsers = _parsers(_parser(_commands_for(["--help"])))
    assert {"run", "verify", "inspect", "trust", "add", "remove", "list"} <= {p.prog.split()[-1] for p in parsers}
    assert [p.prog for p in parsers if p.allow_abbrev] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "b.ngx", "--js"],
        ["--verb", "verify", "b.ngx"],
        ["inspect", "b.ngx", "--tru", "t.toml"],
        ["trust", "add", "--trust", "t.toml", "--guest", "g", "--channel", "dev", "--native", "k.pub"],
    ],
)
def test_an_abbreviated_option_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser(_commands_for(argv[:1])).parse_args(argv)
    assert exited.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_options_in_full_with_their_value_after_equals_and_combined_short_flags_still_parse() -> None:
    parsed = _parser(_commands_for(["run"])).parse_args(
        ["-vv", "run", "b.ngx", "--trust=t.toml", "--env=X=1", "-vv", "--json", "add"]
    )
    assert (parsed.verbose, parsed.trust, parsed.env, parsed.json, parsed.export) == (
        True,
        Path("t.toml"),
        ["X=1"],
        True,
        "add",
    )
    parsed = _parser(_commands_for(["trust"])).parse_args(["trust", "-vv", "remove", "--trust=t.toml", "ABCD"])
    assert (parsed.trust, parsed.verbose, parsed.key_id) == (Path("t.toml"), True, "ABCD")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--json"], "ngixi run: the following arguments are required: bundle"),
        (["-v", "run", "b.ngx", "--json", "--engine", "x"], "ngixi run: argument --engine: invalid choice: 'x'"),
        (["run", "--json", "b.ngx", "--bogus"], "ngixi: unrecognized arguments: --bogus"),
    ],
)
def test_run_json_prints_a_failure_document_for_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A command-line error (exit 2) printed argparse's usage and no document."""
    with pytest.raises(SystemExit) as ended:
        main(argv)
    shown = capsys.readouterr()
    error = json.loads(shown.out)["error"]
    assert (ended.value.code, error["exit_code"], error["kind"]) == (2, 2, "input")
    assert error["message"].startswith(message)
    assert shown.err.startswith("usage: ")


@pytest.mark.parametrize("argv", [["run", "b.ngx", "--bogus"], ["inspect", "--json"], ["run", "b", "--", "--json"]])
def test_only_run_json_prints_a_document_for_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--no-such-option"])
    assert capsys.readouterr().out == ""


def test_run_json_prints_a_failure_document_when_interrupted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(_: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run_isolating", interrupted)
    assert main(["run", "--json", "b.ngx"]) == 130
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "ok": False,
        "error": {"kind": "interrupted", "message": "interrupted (SIGINT)", "exit_code": 130},
    }


@pytest.mark.parametrize("argv", [["verify", "b.ngx"], ["run", "--json", "b.ngx"]])
def test_ctrl_c_while_the_command_starts_is_its_exit_code_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """A Ctrl-C in the command's first tenth of a second (loading its commands, building its parser, importing an
    engine's names) came before main's error boundary: Python's KeyboardInterrupt traceback, status -2."""

    def interrupted(_: Sequence[str]) -> list[Command]:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_commands_for", interrupted)
    assert main(argv) == 130
    out = capsys.readouterr().out
    assert (json.loads(out)["error"]["kind"] if out else None) == ("interrupted" if "--json" in argv else None)


def test_the_console_script_is_the_launcher() -> None:
    scripts = metadata.distribution("ngixi-runtime").entry_points.select(group="console_scripts")
    assert [(script.name, script.value) for script in scripts] == [("ngixi", "ngixi_runtime.launch:main")]


def test_run_json_stays_one_document_when_interrupted_while_printing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the call's document was written (a reader slow to take it) added the interrupted document
    after the part written; what was begun is left, with exit code 130 and no second document."""
    keys = make_key(tmp_path / "keys")
    bundle = make_bundle(
        tmp_path / "bundle", keys.key, wasm=module(functions=[Func("add", ["i32", "i32"], ["i32"], ADD_BODY)])
    )

    def cut_short(result: object, *, as_json: bool, output_file: Path | None) -> None:
        print('{"ok": true,', end="")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_write_call", cut_short)
    argv = ["run", "--json", "--in-process", str(bundle), "add", "2", "3", "--trust", str(keys.trust)]
    assert main(argv) == 130
    assert capsys.readouterr().out == '{"ok": true,'


def test_a_bare_run_names_only_the_bundle_as_required(capsys: pytest.CaptureFixture[str]) -> None:
    """`ngixi run` alone said "the following arguments are required: bundle, args", though arguments are optional."""
    with pytest.raises(SystemExit):
        main(["run"])
    assert capsys.readouterr().err.endswith("ngixi run: error: the following arguments are required: bundle\n")


def test_a_command_of_the_build_side_says_where_it_comes_from(
    installed: list[metadata.EntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    """A host with ngixi-runtime alone (Python 3.12, as README's operator steps install it) that ran one of
    ngixi-build's commands (`ngixi pull` was one) was told "invalid choice: 'pull' (choose from 'run', ...)"."""
    assert exit_code(["publish", "--help"]) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("ngixi: error: ngixi publish comes with ngixi-build (Python 3.10), which is not installed")
    assert exit_code(["vreify"]) == 2
    assert "invalid choice: 'vreify'" in capsys.readouterr().err


def test_verify_checks_a_received_bundle_against_the_operator_policy(
    tmp_path: Path, keys: KeyFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator could check a received bundle against their policy only by running an export with it
    (`ngixi run --policy`): `ngixi verify` took no --policy."""
    bundle = make_bundle(tmp_path, keys.key, wasm=module(functions=[Func("add", ["i32", "i32"], ["i32"])]))
    policy = tmp_path / "policy.toml"
    policy.write_text('[capabilities]\nallow = ["stdio"]\n')
    verify = ["verify", "--trust", str(keys.trust), "--policy", str(policy), str(bundle)]
    assert exit_code(verify) == 6
    assert capsys.readouterr().err.splitlines() == [
        f"ngixi: error: {policy} refuses hello 0.1.0:",
        "  capabilities.log: not allowed by the policy (it allows: stdio)",
    ]
    policy.write_text('[capabilities]\nallow = ["log"]\n')
    assert exit_code(verify) == 0
    assert capsys.readouterr().out.endswith(f", within {policy}\n")
    policy.write_text("[limit]\n")
    assert exit_code(verify) == 2
    assert 'limit: unknown key; did you mean "limits"?' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "takes_sandboxes"), [(["run"], True), (["verify"], False), (["trust", "add"], False)]
)
def test_project_help_names_sandboxes_only_where_the_command_has_them(
    capsys: pytest.CaptureFixture[str], command: list[str], takes_sandboxes: bool
) -> None:
    """`ngixi trust add --help` (and verify's, inspect's) said --project chose sandboxes "unless --sandbox", an option
    those commands do not have."""
    assert exit_code([*command, "--help"]) == 0
    assert ("--sandbox)" in " ".join(capsys.readouterr().out.split())) == takes_sandboxes


@pytest.mark.parametrize("number", ["-1e5", "-1.5E-3", "-4.3696359959950046e+20", "-Infinity", "-inf", "-NaN", "-1_0"])
def test_a_negative_number_in_any_form_is_an_argument(number: str) -> None:
    """argparse took `-5` and `-0.5` as arguments but `-1e5` and `-Infinity` for unknown options: `ngixi run B f
    -1e5` was refused with 'unrecognized arguments' (the fuzzer's floats through the CLI)."""
    parsed = _parser(_commands_for(["run"])).parse_args(["run", "b.ngx", "f", number, "--json", number])
    assert (parsed.export, parsed.args, parsed.json) == ("f", [number, number], True)
    assert _parser(_commands_for(["run"])).parse_args(["run", "b.ngx", "f", "--input", number]).input == number
