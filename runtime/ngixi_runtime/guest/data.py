"""What crosses the call data ABI (capabilities/data.py): bytes, text or JSON, checked at the boundary.

A manifest declares, per export, `input = "bytes" | "text" | "json"` and `output = ...`. Text is
UTF-8; JSON is one UTF-8 JSON document (no NaN or Infinity, no number beyond a double's range).
The host holds the input to `limits.input_bytes` before the call and the guest's output to
`limits.output_bytes` while it writes; each refusal is one line naming the guest, the export and
the limit or declaration.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Literal

from ngixi_runtime.errors import GuestError, InvalidInput
from ngixi_runtime.spec.wasm import ModuleInfo

DataKind = Literal["bytes", "text", "json"]
DATA_KINDS: tuple[DataKind, ...] = ("bytes", "text", "json")
DataValue = Any  # bytes for "bytes", str for "text", a JSON value (dict, list, str, int, ...) for "json"
INPUT_IMPORT = ("ngixi", "input_read")
OUTPUT_IMPORT = ("ngixi", "output_write")
_KIND_WORDS = {"bytes": "bytes", "text": "text", "json": "JSON"}


def kind_word(kind: DataKind) -> str:
    """How messages name a kind: "text input", "JSON output"."""
    return _KIND_WORDS[kind]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"the number {number} is out of range of a double")
    return value


def _problem(kind: DataKind, raw: bytes) -> str | None:
    """Why `raw` is not a valid value of `kind`, or None."""
    if kind == "bytes":
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not valid UTF-8 (byte {error.start})"
    if kind == "text":
        return None
    try:
        json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except ValueError as error:
        return f"not valid JSON: {error}"
    except RecursionError:
        return "not valid JSON: nested too deeply"
    return None


def check_input(guest: str, export: str, kind: DataKind, raw: bytes, limit: int) -> None:
    """The input of a call, before it reaches the guest: within `limit` bytes, and valid for `kind`."""
    if len(raw) > limit:
        raise InvalidInput(
            f"{guest}: {export}: the input is {len(raw)} bytes, over its limit of {limit} (limits.input_bytes)"
        )
    problem = _problem(kind, raw)
    if problem is not None:
        raise InvalidInput(f"{guest}: {export} takes {kind_word(kind)} input, and this is {problem}")


def check_output(guest: str, export: str, kind: DataKind, raw: bytes) -> None:
    """The output a guest wrote must be what its export declares (its size was held to the limit as it wrote)."""
    problem = _problem(kind, raw)
    if problem is not None:
        raise GuestError(f'{guest}: {export} declares output = "{kind}", but wrote {problem}', outcome="output")


def encode(kind: DataKind, value: DataValue, *, what: str) -> bytes:
    """A caller's value as the bytes the guest reads: bytes as they are (for JSON: a document), str as UTF-8,
    anything else (JSON only) serialized."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if kind == "json":
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"{what}: the input cannot be written as JSON: {error}") from None
    if isinstance(value, str):
        return value.encode("utf-8", errors="strict")
    raise InvalidInput(f"{what} takes {kind_word(kind)} input: pass bytes or str, not {type(value).__name__}")


def decode(kind: DataKind, raw: bytes) -> DataValue:
    """Checked output as the caller gets it: bytes, str, or the JSON value."""
    if kind == "bytes":
        return raw
    text = raw.decode("utf-8")
    return text if kind == "text" else json.loads(text)


def module_problems(declares: Callable[[str], bool], info: ModuleInfo) -> list[str]:
    """What the module lacks for the data its exports declare, or imports without any declaring it.

    `declares("input")` says whether any export declares an input (likewise "output").
    """
    imported = {(i.module, i.name) for i in info.imports}
    problems = []
    for side, (module, name) in (("input", INPUT_IMPORT), ("output", OUTPUT_IMPORT)):
        if declares(side) and (module, name) not in imported:
            problems.append(
                f"exports: an export declares {side}, but the .wasm does not import {module}.{name}; "
                f'read and write the call\'s data through the data ABI (docs/host-abi.md, "Call data")'
            )
        elif not declares(side) and (module, name) in imported:
            problems.append(
                f"exports: the .wasm imports {module}.{name}, but no export declares {side}; "
                f'add {side} = "bytes", "text" or "json" to the export that uses it'
            )
    return problems
