"""Rust's mangled function names as Rust writes the paths: `_ZN4main4main17h0123456789abcdefE` (legacy, rustc's
default) and `_RNvCs1a2b_4main4main` (v0, `-C symbol-mangling-version=v0`) both read `main::main`.

A module's name section (and an engine's backtrace) holds them as the linker left them; a trap's line names a
guest's function by this reading, and tells the guest's own functions from Rust's library by its crate (`std::`,
`core::`). The hash that ends a legacy name and the crates' disambiguators are left out, as `rustc-demangle`'s
alternate form does. A name that is not one of these, or that this reading does not follow (Punycode
identifiers, constants other than integers, booleans and chars), is returned unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_LEGACY_HASH = re.compile(r"^h[0-9a-f]{16}\Z")
_LEGACY_ESCAPES = {
    "SP": "@",
    "BP": "*",
    "RF": "&",
    "LT": "<",
    "GT": ">",
    "LP": "(",
    "RP": ")",
    "C": ",",
}
_BASIC_TYPES = {
    "a": "i8",
    "b": "bool",
    "c": "char",
    "d": "f64",
    "e": "str",
    "f": "f32",
    "h": "u8",
    "i": "isize",
    "j": "usize",
    "l": "i32",
    "m": "u32",
    "n": "i128",
    "o": "u128",
    "p": "_",
    "s": "i16",
    "t": "u16",
    "u": "()",
    "v": "...",
    "x": "i64",
    "y": "u64",
    "z": "!",
}
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A name nested deeper, or whose reading takes more steps (backrefs may repeat a part many times), is left as it is.
_MAX_DEPTH = 64
_MAX_STEPS = 2000


class _Unreadable(Exception):
    """The name is not one this reading follows."""


def rust_path(name: str) -> str:
    """`name` as Rust writes the path it mangles, or `name` itself if it mangles none this module reads."""
    try:
        if name.startswith("_R"):
            return _V0(name).symbol()
        if name.startswith(("_ZN", "__ZN")):
            return _legacy(name)
    except (_Unreadable, IndexError, ValueError, OverflowError):  # a part cut short, a number out of range
        return name
    return name


def _legacy(name: str) -> str:
    body = name[name.index("ZN") + 2 :]
    parts: list[str] = []
    at = 0
    while body[at] != "E":
        digits = re.match(r"\d+", body[at:])
        if digits is None:
            raise _Unreadable
        at += len(digits.group())
        length = int(digits.group())
        part = body[at : at + length]
        if len(part) != length:
            raise _Unreadable
        parts.append(part)
        at += length
    if body[at + 1 :] and body[at + 1] != ".":  # after the E only a suffix LLVM adds (`.llvm.123`)
        raise _Unreadable
    if parts and _LEGACY_HASH.match(parts[-1]):
        parts.pop()
    return "::".join(_legacy_part(part) for part in parts)


def _legacy_part(part: str) -> str:
    if part.startswith("_$"):
        part = part[1:]
    out, at = [], 0
    while at < len(part):
        if part.startswith("..", at):
            out.append("::")
            at += 2
        elif part[at] == "$" and (end := part.find("$", at + 1)) > at:
            out.append(_legacy_escape(part[at + 1 : end]))
            at = end + 1
        else:
            out.append(part[at])
            at += 1
    return "".join(out)


def _legacy_escape(code: str) -> str:
    if code in _LEGACY_ESCAPES:
        return _LEGACY_ESCAPES[code]
    if code.startswith("u") and re.fullmatch(r"[0-9a-f]{1,6}", code[1:]):
        return chr(int(code[1:], 16))
    raise _Unreadable


class _V0:
    """A reader of one v0 symbol (RFC 2603's grammar), printing as it reads."""

    def __init__(self, name: str) -> None:
        self.text = name[2:]  # backrefs count from after `_R`
        self.at = 0
        self.depth = 0
        self.steps = 0

    def symbol(self) -> str:
        if self.text[:1].isdigit():  # an encoding version this reading does not know
            raise _Unreadable
        return self.path(in_value=True)  # the instantiating crate and a vendor suffix after it are left out

    def next(self) -> str:
        char = self.text[self.at]
        self.at += 1
        return char

    def eat(self, char: str) -> bool:
        if self.text.startswith(char, self.at):
            self.at += 1
            return True
        return False

    def base62(self) -> int:
        if self.eat("_"):
            return 0
        value = 0
        while not self.eat("_"):
            value = value * 62 + _BASE62.index(self.next())
        return value + 1

    def disambiguator(self) -> int:
        return self.base62() + 1 if self.eat("s") else 0

    def identifier(self) -> str:
        if self.eat("u"):  # Punycode
            raise _Unreadable
        digits = re.match(r"0|[1-9]\d*", self.text[self.at :])  # a decimal number has no leading zeros
        if digits is None:
            raise _Unreadable
        self.at += len(digits.group())
        self.eat("_")
        length = int(digits.group())
        word = self.text[self.at : self.at + length]
        if len(word) != length:
            raise _Unreadable
        self.at += length
        return word

    def backref(self, read: Callable[[], str]) -> str:
        """What `read` reads where a back reference points (earlier in the symbol); reading goes on after it."""
        target = self.base62()
        if target >= self.at:
            raise _Unreadable
        here, self.at = self.at, target
        try:
            return read()
        finally:
            self.at = here

    def nested(self, read: Callable[[], str]) -> str:
        """What `read` reads, one level deeper and one step further than the part it is in."""
        self.depth += 1
        self.steps += 1
        if self.depth > _MAX_DEPTH or self.steps > _MAX_STEPS:
            raise _Unreadable
        try:
            return read()
        finally:
            self.depth -= 1

    def path(self, *, in_value: bool) -> str:
        return self.nested(lambda: self.path_here(in_value=in_value))

    def type(self) -> str:
        return self.nested(self.type_here)

    def path_here(self, *, in_value: bool) -> str:
        tag = self.next()
        if tag == "C":
            self.disambiguator()
            return self.identifier()
        if tag == "N":
            return self.nested_name(in_value=in_value)
        if tag in "MXY":
            return self.impl_path(tag)
        if tag == "I":
            base = self.path(in_value=in_value)
            arguments = []
            while not self.eat("E"):
                arguments.append(self.generic_argument())
            return f"{base}{'::' if in_value else ''}<{', '.join(arguments)}>"
        if tag == "B":
            return self.backref(lambda: self.path(in_value=False))
        raise _Unreadable

    def nested_name(self, *, in_value: bool) -> str:
        namespace = self.next()
        parent = self.path(in_value=in_value)
        number = self.disambiguator()
        word = self.identifier()
        if namespace == "C":
            return f"{parent}::{{closure#{number}}}"
        if namespace.isupper():
            return f"{parent}::{{{'shim' if namespace == 'S' else namespace}:{word}#{number}}}"
        return f"{parent}::{word}"

    def impl_path(self, tag: str) -> str:
        """`<Type>` (M, an inherent impl) or `<Type as Trait>` (X, a trait's impl; Y, the trait's own item)."""
        if tag != "Y":
            self.disambiguator()
            self.path(in_value=False)  # where the impl is, which Rust does not write
        self_type = self.type()
        return f"<{self_type}>" if tag == "M" else f"<{self_type} as {self.path(in_value=False)}>"

    def generic_argument(self) -> str:
        if self.eat("L"):
            self.base62()
            return "'_"
        if self.eat("K"):
            return self.const()
        return self.type()

    def const(self) -> str:
        if self.eat("p"):
            return "_"
        kind = self.next()
        if kind == "B":
            return self.backref(lambda: self.nested(self.const))
        if kind not in "abcdhijlmnostxy":
            raise _Unreadable
        negative = self.eat("n")
        end = self.text.index("_", self.at)
        value = int(self.text[self.at : end] or "0", 16)
        self.at = end + 1
        if kind == "b":
            return "true" if value else "false"
        if kind == "c":
            return repr(chr(value))
        return str(-value if negative else value)

    def type_here(self) -> str:
        tag = self.next()
        if tag in _BASIC_TYPES:
            return _BASIC_TYPES[tag]
        if tag in "CNMXYI":
            self.at -= 1
            return self.path(in_value=False)
        if tag == "B":
            return self.backref(self.type)
        return self.compound_type(tag)

    def compound_type(self, tag: str) -> str:
        if tag == "A":
            element = self.type()
            return f"[{element}; {self.const()}]"
        if tag == "S":
            return f"[{self.type()}]"
        if tag == "T":
            members = []
            while not self.eat("E"):
                members.append(self.type())
            return f"({members[0]},)" if len(members) == 1 else f"({', '.join(members)})"
        if tag in "RQPO":
            return self.pointer_type(tag)
        if tag == "F":
            return self.function_type()
        if tag == "D":
            return self.dyn_type()
        raise _Unreadable

    def pointer_type(self, tag: str) -> str:
        if tag in "RQ":
            if self.eat("L"):
                self.base62()
            return f"&{'mut ' if tag == 'Q' else ''}{self.type()}"
        return f"*{'mut' if tag == 'O' else 'const'} {self.type()}"

    def function_type(self) -> str:
        if self.eat("G"):
            self.base62()
        unsafe = "unsafe " if self.eat("U") else ""
        abi = ""
        if self.eat("K"):
            abi = 'extern "C" ' if self.eat("C") else f'extern "{self.identifier().replace("_", "-")}" '
        parameters = []
        while not self.eat("E"):
            parameters.append(self.type())
        result = self.type()
        return f"{unsafe}{abi}fn({', '.join(parameters)})" + ("" if result == "()" else f" -> {result}")

    def dyn_type(self) -> str:
        if self.eat("G"):
            self.base62()
        traits = []
        while not self.eat("E"):
            trait = self.path(in_value=False)
            bindings = []
            while self.eat("p"):
                word = self.identifier()
                bindings.append(f"{word} = {self.type()}")
            if bindings:  # `Trait<Assoc = T>`, inside the trait's own generic arguments if it has any
                trait = f"{trait[:-1]}, " if trait.endswith(">") else f"{trait}<"
                trait += f"{', '.join(bindings)}>"
            traits.append(trait)
        if self.eat("L"):
            self.base62()
        return f"dyn {' + '.join(traits)}"
