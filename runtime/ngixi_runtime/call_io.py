"""`ngixi run`'s call data: `--input TEXT | @FILE | -` read within the limit, the output shown safely.

Input: `--input TEXT` is the text itself (UTF-8), `--input @FILE` a file's bytes, `--input -` standard
input; `@@...` stands for text starting with `@`. Nothing larger than the export's
`limits.input_bytes` is read: a file is measured first, standard input read one byte past it.
Output: text and JSON as they are, with a newline after them on a terminal; bytes raw when standard
output is a pipe or a file, as base64 (with a note on stderr) when it is a terminal; `--output FILE`
writes the output's bytes to FILE instead, replacing it atomically.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any

from ngixi_runtime.capabilities.component import text_positions
from ngixi_runtime.capabilities.context import StdinReader, read_whole
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import read_by, write_atomic
from ngixi_runtime.guest.data import MAX_JSON_DEPTH, BeyondJsonLimits, NumberBeyondADouble, kind_word, read_json
from ngixi_runtime.loading.loader import parse_arguments, why_no_input
from ngixi_runtime.loading.tenants import CallResult, Tenant

STDIN = "-"
_NUMBER_STARTS = frozenset("-0123456789")  # how a JSON document that is one number starts
_TERMINAL_NOTE = "note: reading standard input from the terminal; end it with Ctrl-D (</dev/null gives none)"


def call_export(
    tenant: Tenant,
    bundle: Path,
    export: str | None,
    arguments: Sequence[str],
    input_spec: str | None,
    *,
    output_file: Path | None = None,
) -> CallResult:
    """Calls a library guest's export with the command line's arguments and `--input`; `--output` needs an
    export that declares output."""
    manifest = tenant.manifest
    guest = manifest.guest.name
    declared = manifest.export(export or "")
    if declared is None:
        names = ", ".join(e.name for e in manifest.exports) or "none"
        problem = "name the export to call" if export is None else f"no export {export!r}"
        raise InvalidInput(f"{bundle}: {problem}; the manifest declares: {names}")
    if declared.input is not None and arguments and not declared.params:
        text = " ".join(arguments)
        raise InvalidInput(
            f"{guest}: {declared.name} takes {kind_word(declared.input)} input, not arguments: use --input {text!r}"
        )
    what = f"{guest}: {declared.name}"
    if output_file is not None and declared.output is None:
        raise InvalidInput(f"{what} declares no output, so --output {output_file} would stay empty: drop --output")
    if output_file is not None:
        _check_output_file(output_file)
    if input_spec == STDIN and "stdin" in manifest.grants:
        raise InvalidInput(f"{what}: the guest reads standard input itself ([capabilities.stdin]): use --input @FILE")
    if input_spec is not None and declared.input is None:  # before reading it: its size is not what is wrong
        raise InvalidInput(f"{what} takes no input ({why_no_input(manifest)})")
    limits = manifest.limits
    data = None
    if input_spec is not None:
        data = read_input(input_spec, limit=limits.input_bytes, what=what, timeout_ms=limits.timeout_ms)
    if manifest.guest.type.is_component:  # JSON arguments, checked against the component's WIT by the engine
        texts = tenant.text_parameters(declared.name) if declared.from_wit else text_positions(declared.params)
        return tenant.call(declared.name, json_arguments(arguments, what=what, texts=texts), input=data)
    return tenant.call(declared.name, parse_arguments(declared, arguments, guest=guest), input=data)


def json_arguments(raw: Sequence[str], *, what: str, texts: Collection[int] = frozenset()) -> tuple[Any, ...]:
    """Command-line arguments of a typed (component) export: each one JSON, else taken as a string.

    So `analyze "two words"` passes the text as it is, `add 2 3` numbers, `tag '{"name": "x"}'` a record;
    a JSON string (`'"3"'`) passes text that would otherwise read as JSON. An argument whose WIT type is `string`
    (its position, from 1, in `texts`) is its text unless it is a JSON string: `greet 42` passes "42".
    JSON past the fixed limits of call data (nested more than MAX_JSON_DEPTH deep, a number beyond a double's
    range) is refused, not taken as text.
    """
    values = []
    for position, text in enumerate(raw, start=1):
        _check_utf8(text, what=f"{what}: argument {position}")
        try:
            value = read_json(text)
        except BeyondJsonLimits as error:
            if position not in texts:
                raise InvalidInput(f"{what}: argument {position} is {error}; {_within_limits(error, text)}") from None
            value = text
        except ValueError:
            value = text
        is_text = position in texts and not isinstance(value, str)
        values.append(text if is_text else value)
    return tuple(values)


def _check_utf8(argument: str, *, what: str) -> None:
    """A command-line argument is text: bytes that are not UTF-8 (which Python keeps as lone surrogates) are refused
    as such, rather than as a string holding a surrogate that the caller never wrote."""
    if argument.isascii():
        return
    try:
        os.fsencode(argument).decode()
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{what} is not valid UTF-8 (byte {error.start}): give text as UTF-8, and bytes as a JSON list of numbers"
        ) from None


def _within_limits(error: BeyondJsonLimits, text: str) -> str:
    """What to do about a command-line argument past one of call data's JSON limits: the limit it passed, and
    quoting where the argument as text could be what was meant."""
    as_text = "or quote it as a JSON string ('\"...\"') to pass it as text"
    if isinstance(error, NumberBeyondADouble):
        if text.lstrip()[:1] in _NUMBER_STARTS:  # the argument is the number, not an array or object holding it
            return f"give a number within a double's range (about ±1.8e308), {as_text}"
        return "give numbers within a double's range (about ±1.8e308)"
    return f"nest arrays and objects at most {MAX_JSON_DEPTH} deep, {as_text}"


def _check_output_file(path: Path) -> None:
    """Before the call: `--output` names a file in a folder that exists (a mistyped folder is not made)."""
    if path.is_dir():
        raise InvalidInput(f"--output {path}: it is a folder; name a file")
    if not path.parent.is_dir():
        raise InvalidInput(f"--output {path}: {path.parent} is not a folder; name a file in an existing folder")


def read_input(spec: str, *, limit: int, what: str, timeout_ms: int, stdin: StdinReader | None = None) -> bytes:
    """The bytes `--input spec` names, refused once they would exceed `limit` (limits.input_bytes). Standard input
    (`standard_input`, unless `stdin` reads another) is read as a guest's granted stdin is: a pipe or file that has
    not ended within `timeout_ms` (limits.timeout_ms) is refused."""
    if spec == STDIN:
        subject = f"{what}: standard input"
        data = read_whole(stdin or standard_input, limit, timeout_ms, subject=subject)
        if len(data) > limit:
            raise InvalidInput(f"{what}: standard input is over the input limit of {limit} bytes (limits.input_bytes)")
        return data
    if spec.startswith("@@"):
        return os.fsencode(spec[1:])
    if spec == "@":
        raise InvalidInput(f"{what}: --input @ names no file: give @FILE, or @@ for the text @")
    if spec.startswith("@"):
        return _read_file(Path(spec[1:]), limit=limit, what=what)
    return os.fsencode(spec)  # the argument's bytes as given, even when they are not UTF-8


def standard_input(limit: int, deadline: float) -> bytes:
    """Up to `limit + 1` bytes of this process's standard input, to its end: `ngixi run`'s `Stdin` reader, for a
    guest granted stdin and for `--input -` alike (`stream_reader`)."""
    return stream_reader(sys.stdin)(limit, deadline)


def stream_reader(stream: IO[Any] | None) -> StdinReader:
    """A `Stdin` reader of `stream` (sys.stdin or one like it): a pipe or file is read by the deadline, since one
    whose writer never closes it (`tail -f log | ngixi run ...`) held the run for ever; a terminal as a person types,
    until Ctrl-D, whatever the deadline (a note says so); a closed one (`<&-`: Python's sys.stdin is None) gives no
    bytes, as /dev/null does; one in memory (an embedding program's, a test's) is read as it is."""

    def read(limit: int, deadline: float) -> bytes:
        if stream is None:
            return b""
        binary = getattr(stream, "buffer", stream)
        if stream.isatty():
            print(_TERMINAL_NOTE, file=sys.stderr)
            return bytes(binary.read(limit + 1))
        descriptor = _descriptor(stream)
        return bytes(binary.read(limit + 1)) if descriptor is None else read_by(descriptor, limit, deadline)

    return read


def _descriptor(source: IO[Any]) -> int | None:
    """The stream's file descriptor, or None for one in memory (an embedding program's, a test's)."""
    try:
        return source.fileno()
    except (OSError, ValueError):
        return None


def _read_file(path: Path, *, limit: int, what: str) -> bytes:
    over = f"over the input limit of {limit} bytes (limits.input_bytes)"
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                raise InvalidInput(f"{what}: --input @{path} is {size} bytes, {over}")
            data = file.read(limit + 1)  # a file growing meanwhile is held to the limit too
    except OSError as error:
        raise InvalidInput(f"{what}: --input @{path}: cannot read it: {error.strerror or error}") from None
    if len(data) > limit:
        raise InvalidInput(f"{what}: --input @{path} is {over}")
    return data


def write_output(output: bytes, kind: str, *, to_file: Path | None, stdout: IO[bytes], stderr: IO[str]) -> None:
    """Shows a call's output: to `to_file`, or on `stdout` as text, JSON, or bytes (base64 on a terminal)."""
    if to_file is not None:
        replacing = to_file.exists()
        try:
            write_atomic(to_file, output)
        except OSError as error:
            raise InvalidInput(f"--output {to_file}: cannot write it: {error.strerror or error}") from None
        if replacing:
            print(f"note: replaced {to_file} with the output ({len(output)} bytes)", file=stderr)
        return
    terminal = stdout.isatty()
    if kind == "bytes" and terminal:
        print("note: the output is bytes, shown as base64; --output FILE or a pipe gives them raw", file=stderr)
        output = base64.b64encode(output) + b"\n"
    elif kind != "bytes" and terminal and output and not output.endswith(b"\n"):
        output += b"\n"
    stdout.write(output)
    stdout.flush()


def json_output(output: bytes | None, kind: str | None, data: Any) -> dict[str, Any]:
    """The output's fields in `ngixi run --json`: text and JSON as values, bytes as base64."""
    if output is None or kind is None:
        return {"output": None, "output_kind": None}
    if kind == "bytes":
        return {"output": base64.b64encode(output).decode(), "output_kind": kind, "output_encoding": "base64"}
    return {"output": data, "output_kind": kind}
