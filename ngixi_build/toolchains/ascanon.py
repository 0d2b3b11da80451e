"""The canonical ABI in generated AssemblyScript: WIT types as AssemblyScript types, lifted and lowered.

Two directions serve both host imports and guest exports. *Lifting* reads a value the other side
wrote (a host function's result, an export's arguments): from core values or from memory, copying
strings and lists into AssemblyScript objects and freeing the buffers the host allocated with
`cabi_realloc`. *Lowering* writes a value for the other side (a host function's arguments, an
export's result): into core values or memory, with new buffers pinned against the garbage collector
until the other side has read them (`__release` unpins them).

WIT → AssemblyScript: scalars as themselves (`char` a one-code-point `string`), `string`,
`list<u8>` → `Uint8Array`, `list<T>` → `Array<T>`, a record → a class of its fields, `tuple<…>` →
`TupleN<…>` (fields `f0`, `f1`, …), `option<T>` → `Option<T>`, `result<T, E>` → `Result<T, E>`
(`Outcome<E>` without `T`; `bool` for a missing `E`), an enum → an `enum`, flags → a `u32` bit set
with an `enum` of the bits, a variant → a class with a `tag` (its `…Tag` enum), one field per case
with a payload and a static constructor per case. Resources are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ngixi_build.toolchains.wit import Catalog, TypeRef, WitError, WitType

MAX_FLAT_PARAMS = 16
MAX_TUPLE = 6
MAX_FLAGS = 32

PRIMITIVES = {
    "bool": ("bool", 1, "i32"),
    "u8": ("u8", 1, "i32"),
    "s8": ("i8", 1, "i32"),
    "u16": ("u16", 2, "i32"),
    "s16": ("i16", 2, "i32"),
    "u32": ("u32", 4, "i32"),
    "s32": ("i32", 4, "i32"),
    "char": ("string", 4, "i32"),
    "f32": ("f32", 4, "f32"),
    "u64": ("u64", 8, "i64"),
    "s64": ("i64", 8, "i64"),
    "f64": ("f64", 8, "f64"),
}
GLOBALS = frozenset({"Array", "Date", "Error", "Map", "Math", "Object", "Option", "Outcome", "Result", "Set", "String"})
GLOBALS |= {f"Tuple{n}" for n in range(2, MAX_TUPLE + 1)}
_VARIANTS = ("variant", "option", "result")

# The generic types and helpers every generated file shares (in the `ngixi-host` package).
RUNTIME = """\
/** A `result<T, E>`: `value` when `isOk`, else `error`. */
export class Result<T, E> {
  constructor(public readonly isOk: bool, public readonly value: T, public readonly error: E) {}
  static ok<T, E>(value: T): Result<T, E> { return new Result<T, E>(true, value, __zero<E>()); }
  static err<T, E>(error: E): Result<T, E> { return new Result<T, E>(false, __zero<T>(), error); }
}

/** A `result<_, E>`: `error` when not `isOk`. */
export class Outcome<E> {
  constructor(public readonly isOk: bool, public readonly error: E) {}
  static ok<E>(): Outcome<E> { return new Outcome<E>(true, __zero<E>()); }
  static err<E>(error: E): Outcome<E> { return new Outcome<E>(false, error); }
}

/** An `option<T>`: `value` when `isSome`. */
export class Option<T> {
  constructor(public readonly isSome: bool, public readonly value: T) {}
  static some<T>(value: T): Option<T> { return new Option<T>(true, value); }
  static none<T>(): Option<T> { return new Option<T>(false, __zero<T>()); }
}
{tuples}
/** The placeholder in a field that is not in use (the other side of a result, another variant case). */
export function __zero<T>(): T {
  if (isReference<T>()) return changetype<T>(0);
  else return <T>0;
}

const __pinned = new Array<usize>();

/** Keeps a new object the other side is to read from being collected, until `__release`. */
export function __keep<T>(value: T): T {
  __pinned.push(__pin(changetype<usize>(value)));
  return value;
}

export function __release(from: i32 = 0): void {
  for (let i = from; i < __pinned.length; i++) __unpin(__pinned[i]);
  __pinned.length = from;
}

export function __pinMark(): i32 {
  return __pinned.length;
}

export function __bytes(data: usize, length: u32): Uint8Array {
  const out = new Uint8Array(length);
  memory.copy(out.dataStart, data, length);
  if (length > 0) heap.free(data);
  return out;
}

export function __string(data: usize, length: u32): string {
  const text = String.UTF8.decodeUnsafe(data, length);
  if (length > 0) heap.free(data);
  return text;
}

export function __lowerBytes(bytes: Uint8Array): usize {
  const copy = __keep(new ArrayBuffer(bytes.byteLength));
  memory.copy(changetype<usize>(copy), bytes.dataStart, bytes.byteLength);
  return changetype<usize>(copy);
}

export function __buffer(size: i32): usize {
  return changetype<usize>(__keep(new ArrayBuffer(size)));
}
"""


def tuple_classes() -> str:
    classes = []
    for arity in range(2, MAX_TUPLE + 1):
        names = [chr(ord("A") + i) for i in range(arity)]
        fields = ", ".join(f"public f{i}: {n}" for i, n in enumerate(names))
        classes.append(f"\nexport class Tuple{arity}<{', '.join(names)}> {{\n  constructor({fields}) {{}}\n}}\n")
    return "".join(classes)


def camel(name: str) -> str:
    first, *rest = name.split("-")
    return first + "".join(w.capitalize() for w in rest)


def pascal(name: str) -> str:
    return "".join(w.capitalize() for w in name.split("-"))


def align_to(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def _enum_size(cases: int) -> int:
    return 1 if cases <= 256 else 2


def _flags_size(flags: int) -> int:
    return 1 if flags <= 8 else 2 if flags <= 16 else 4


def _join(a: str, b: str) -> str:
    if a == b:
        return a
    return "i32" if {a, b} == {"i32", "f32"} else "i64"


# Converting a core value of one type (first) to the joined type of a variant's payload (second), and back.
_WIDEN = {("f32", "i32"): "reinterpret<i32>({})", ("i32", "i64"): "<i64><u32>({})"}
_WIDEN |= {("f32", "i64"): "<i64><u32>reinterpret<i32>({})", ("f64", "i64"): "reinterpret<i64>({})"}
_NARROW = {("i32", "f32"): "reinterpret<f32>({})", ("i64", "i32"): "<i32>({})"}
_NARROW |= {("i64", "f32"): "reinterpret<f32>(<i32>({}))", ("i64", "f64"): "reinterpret<f64>({})"}


@dataclass(frozen=True)
class Case:
    """One case of a variant-like type, as generated code reads and builds it."""

    index: int
    payload: TypeRef | None
    test: Callable[[str], str]  # is the value (an expression) this case?
    value: Callable[[str], str]  # its payload
    make: Callable[[str], str]  # a value of this case from a payload expression (ignored without payload)


def _lift_flat_primitive(name: str, values: list[str]) -> str:
    if name == "string":
        return f"__string(<usize>{values[0]}, <u32>{values[1]})"
    if name == "char":
        return f"String.fromCodePoint({values[0]})"
    return f"{values[0]} != 0" if name == "bool" else f"<{PRIMITIVES[name][0]}>({values[0]})"


def _lower_flat_primitive(name: str, value: str) -> str:
    if name == "char":
        return f"<i32>{value}.codePointAt(0)"
    core = PRIMITIVES[name][2]
    return value if core in ("f32", "f64") else f"<{core}>{value}"


def _variant_case(as_type: str, index: int, name: str, payload: TypeRef | None) -> Case:
    field_name = identifier(name)
    return Case(
        index,
        payload,
        lambda v: f"{v}.tag == {index}",
        lambda v: f"{v}.{field_name}",
        lambda x: f"{as_type}.{field_name}({x if payload is not None else ''})",
    )


@dataclass
class Codegen:
    """Generates the helper functions of one file; `helpers` is their text, in the order they were needed."""

    catalog: Catalog
    where: str
    helpers: list[str] = field(default_factory=list)
    _named: dict[tuple[str, TypeRef], str] = field(default_factory=dict)
    _locals: int = 0

    # --- types -----------------------------------------------------------------------------

    def definition(self, ref: TypeRef) -> WitType | None:
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str):
            return None
        definition = self.catalog.types[resolved]
        if definition.kind == "unsupported":
            kinds = ", ".join(definition.cases)
            raise WitError(f"{self.where}: {definition.name or kinds}: resources and async types are not supported")
        return definition

    def type_name(self, definition: WitType) -> str:
        assert definition.name is not None
        name = pascal(definition.name)
        if name in GLOBALS:
            name += "Code" if definition.kind == "enum" else "Record"
        return name if definition.owner is None else f"{camel(definition.owner)}.{name}"

    def as_type(self, ref: TypeRef) -> str:
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str):
            if resolved == "string":
                return "string"
            if resolved in PRIMITIVES:
                return PRIMITIVES[resolved][0]
            raise WitError(f"{self.where}: the AssemblyScript bindings do not support {resolved}")
        definition = self.definition(resolved)
        assert definition is not None
        if definition.kind == "flags":
            self.check_flags(definition)
            return "u32"
        if definition.name is not None and definition.kind in ("enum", "record", "variant"):
            return self.type_name(definition)
        return self.anonymous_type(definition)

    def anonymous_type(self, definition: WitType) -> str:
        if definition.kind == "list":
            assert definition.element is not None
            element = self.catalog.resolve(definition.element)
            return "Uint8Array" if element == "u8" else f"Array<{self.as_type(element)}>"
        if definition.kind == "option":
            assert definition.element is not None
            return f"Option<{self.as_type(definition.element)}>"
        if definition.kind == "tuple":
            if not 2 <= len(definition.elements) <= MAX_TUPLE:
                raise WitError(f"{self.where}: tuples of 2 to {MAX_TUPLE} elements are supported")
            return f"Tuple{len(definition.elements)}<{', '.join(self.as_type(e) for e in definition.elements)}>"
        if definition.kind == "result":
            err = "bool" if definition.err is None else self.as_type(definition.err)
            if definition.ok is None:
                return f"Outcome<{err}>"
            return f"Result<{self.as_type(definition.ok)}, {err}>"
        raise WitError(f"{self.where}: an anonymous {definition.kind} type is not supported")

    def check_flags(self, definition: WitType) -> None:
        if len(definition.cases) > MAX_FLAGS:
            raise WitError(f"{self.where}: flags {definition.name} has more than {MAX_FLAGS} flags")

    def members(self, definition: WitType) -> list[tuple[str, TypeRef]]:
        """A record's fields or a tuple's elements, as (AssemblyScript field name, type)."""
        if definition.kind == "tuple":
            return [(f"f{i}", e) for i, e in enumerate(definition.elements)]
        return [(identifier(n), r) for n, r in definition.fields]

    def cases(self, ref: TypeRef, definition: WitType) -> list[Case]:
        if definition.kind == "option":
            return self._option_cases(definition)
        if definition.kind == "result":
            return self._result_cases(definition)
        as_type = self.as_type(ref)
        return [_variant_case(as_type, i, name, payload) for i, (name, payload) in enumerate(definition.payloads)]

    def _option_cases(self, definition: WitType) -> list[Case]:
        assert definition.element is not None
        inner = self.as_type(definition.element)
        return [
            Case(0, None, lambda v: f"!{v}.isSome", lambda v: "", lambda _: f"Option.none<{inner}>()"),
            Case(
                1,
                definition.element,
                lambda v: f"{v}.isSome",
                lambda v: f"{v}.value",
                lambda x: f"Option.some<{inner}>({x})",
            ),
        ]

    def _result_cases(self, definition: WitType) -> list[Case]:
        ok_type = "" if definition.ok is None else f"{self.as_type(definition.ok)}, "
        err_type = "bool" if definition.err is None else self.as_type(definition.err)
        kind = "Outcome" if definition.ok is None else "Result"
        ok_value = "" if definition.ok is None else "{}"
        err_value = "true" if definition.err is None else "{}"
        return [
            Case(
                0,
                definition.ok,
                lambda v: f"{v}.isOk",
                lambda v: f"{v}.value",
                lambda x: f"{kind}.ok<{ok_type}{err_type}>({ok_value.format(x)})",
            ),
            Case(
                1,
                definition.err,
                lambda v: f"!{v}.isOk",
                lambda v: f"{v}.error",
                lambda x: f"{kind}.err<{ok_type}{err_type}>({err_value.format(x)})",
            ),
        ]

    # --- layout ----------------------------------------------------------------------------

    def size_align(self, ref: TypeRef) -> tuple[int, int]:
        """The canonical ABI's size and alignment of a value in memory."""
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str):
            if resolved == "string":
                return 8, 4
            size = PRIMITIVES[resolved][1]
            return size, size
        definition = self.definition(resolved)
        assert definition is not None
        if definition.kind in ("enum", "flags"):
            size = (
                _enum_size(len(definition.cases)) if definition.kind == "enum" else _flags_size(len(definition.cases))
            )
            return size, size
        if definition.kind == "list":
            return 8, 4
        if definition.kind in ("record", "tuple"):
            offsets, alignment = self.member_layout(definition)
            members = self.members(definition)
            end = offsets[-1] + self.size_align(members[-1][1])[0] if offsets else 0
            return align_to(end, alignment), alignment
        payload_offset, alignment = self.variant_layout(resolved, definition)
        payloads = [c.payload for c in self.cases(resolved, definition) if c.payload is not None]
        largest = max((self.size_align(p)[0] for p in payloads), default=0)
        return align_to(payload_offset + largest, alignment), alignment

    def member_layout(self, definition: WitType) -> tuple[list[int], int]:
        offsets, offset, alignment = [], 0, 1
        for _, ref in self.members(definition):
            size, member_alignment = self.size_align(ref)
            offset = align_to(offset, member_alignment)
            offsets.append(offset)
            offset += size
            alignment = max(alignment, member_alignment)
        return offsets, alignment

    def discriminant(self, ref: TypeRef, definition: WitType) -> tuple[str, int]:
        count = len(self.cases(ref, definition))
        return ("u8", 1) if count <= 256 else ("u16", 2)

    def variant_layout(self, ref: TypeRef, definition: WitType) -> tuple[int, int]:
        """A variant's payload offset after its discriminant, and its alignment."""
        _, size = self.discriminant(ref, definition)
        cases = self.cases(ref, definition)
        alignment = max([size, *(self.size_align(c.payload)[1] for c in cases if c.payload is not None)])
        return align_to(size, alignment), alignment

    def flat(self, ref: TypeRef) -> list[str]:
        """The core types the canonical ABI flattens a value into."""
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str):
            return ["i32", "i32"] if resolved == "string" else [PRIMITIVES[resolved][2]]
        definition = self.definition(resolved)
        assert definition is not None
        if definition.kind == "list":
            return ["i32", "i32"]
        if definition.kind in ("record", "tuple"):
            return [t for _, r in self.members(definition) for t in self.flat(r)]
        if definition.kind in _VARIANTS:
            return ["i32", *self.joined(resolved, definition)]
        return ["i32"]

    def joined(self, ref: TypeRef, definition: WitType) -> list[str]:
        joined: list[str] = []
        for case in self.cases(ref, definition):
            if case.payload is None:
                continue
            for i, core in enumerate(self.flat(case.payload)):
                joined[i : i + 1] = [core if i >= len(joined) else _join(joined[i], core)]
        return joined

    # --- lifting ---------------------------------------------------------------------------

    def _helper(self, kind: str, ref: TypeRef, make: Callable[[str], str]) -> str:
        key = (kind, self.catalog.resolve(ref))
        if key not in self._named:
            self._named[key] = name = f"__{kind}{len(self._named)}"
            self.helpers.append(make(name))
        return self._named[key]

    def load(self, ref: TypeRef, pointer: str) -> str:
        """An expression reading a value at `pointer` (freeing what the host allocated for it)."""
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str) and resolved != "string":
            core = PRIMITIVES[resolved][0]
            if resolved == "bool":
                return f"load<u8>({pointer}) != 0"
            return f"String.fromCodePoint(load<u32>({pointer}))" if resolved == "char" else f"load<{core}>({pointer})"
        definition = self.definition(resolved)
        if definition is not None and definition.kind in ("enum", "flags"):
            width = {1: "u8", 2: "u16", 4: "u32"}[self.size_align(resolved)[0]]
            return f"<{self.as_type(resolved)}>load<{width}>({pointer})"
        name = self._helper("load", resolved, lambda n: self._load_function(resolved, n))
        return f"{name}({pointer})"

    def _load_function(self, ref: TypeRef, name: str) -> str:
        body = self._load_body(ref)
        return _function(name, "p: usize", self.as_type(ref), body)

    def _load_body(self, ref: TypeRef) -> list[str]:
        if ref == "string":
            return ["return __string(load<usize>(p), load<u32>(p, 4));"]
        definition = self.definition(ref)
        assert definition is not None
        if definition.kind == "list":
            return [f"return {self.lift_list(ref, 'load<usize>(p)', 'load<u32>(p, 4)')};"]
        if definition.kind in ("record", "tuple"):
            offsets, _ = self.member_layout(definition)
            values = [self.load(r, f"p + {o}") for (_, r), o in zip(self.members(definition), offsets, strict=True)]
            return [f"return new {self.as_type(ref)}({', '.join(values)});"]
        width, _ = self.discriminant(ref, definition)
        offset, _ = self.variant_layout(ref, definition)
        lines = [f"const tag = load<{width}>(p);"]
        for case in self.cases(ref, definition):
            payload = "" if case.payload is None else self.load(case.payload, f"p + {offset}")
            lines.append(f"if (tag == {case.index}) return {case.make(payload)};")
        lines.append("unreachable();")
        lines.append(f"return changetype<{self.as_type(ref)}>(0);")
        return lines

    def _list_element(self, ref: TypeRef) -> TypeRef:
        """The element type of the list type `ref`, resolved."""
        definition = self.definition(ref)
        assert definition is not None and definition.element is not None
        return self.catalog.resolve(definition.element)

    def lift_list(self, ref: TypeRef, data: str, length: str) -> str:
        element = self._list_element(ref)
        if element == "u8":
            return f"__bytes({data}, {length})"
        name = self._helper("list", ref, lambda n: self._list_function(ref, element, n))
        return f"{name}({data}, {length})"

    def _list_function(self, ref: TypeRef, element: TypeRef, name: str) -> str:
        size = self.size_align(element)[0]
        body = [
            f"const out = new {self.as_type(ref)}(length);",
            f"for (let i: u32 = 0; i < length; i++) out[i] = {self.load(element, f'data + i * {size}')};",
            "if (length > 0) heap.free(data);",
            "return out;",
        ]
        return _function(name, "data: usize, length: u32", self.as_type(ref), body)

    def lift_flat(self, ref: TypeRef, values: list[str]) -> str:
        """An expression of a value from its flat core values (expressions of the types `flat(ref)`)."""
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str):
            return _lift_flat_primitive(resolved, values)
        definition = self.definition(resolved)
        assert definition is not None
        if definition.kind in ("enum", "flags"):
            return f"<{self.as_type(resolved)}>({values[0]})"
        if definition.kind == "list":
            return self.lift_list(resolved, f"<usize>{values[0]}", f"<u32>{values[1]}")
        if definition.kind in ("record", "tuple"):
            parts, rest = [], list(values)
            for _, member in self.members(definition):
                count = len(self.flat(member))
                parts.append(self.lift_flat(member, rest[:count]))
                rest = rest[count:]
            return f"new {self.as_type(resolved)}({', '.join(parts)})"
        name = self._helper("flat", resolved, lambda n: self._flat_variant_function(resolved, definition, n))
        return f"{name}({', '.join(values)})"

    def _flat_variant_function(self, ref: TypeRef, definition: WitType, name: str) -> str:
        joined = self.joined(ref, definition)
        params = ", ".join(["tag: i32", *(f"j{i}: {t}" for i, t in enumerate(joined))])
        lines = []
        for case in self.cases(ref, definition):
            payload = ""
            if case.payload is not None:
                wanted = self.flat(case.payload)
                narrowed = [_NARROW.get((joined[i], t), "{}").format(f"j{i}") for i, t in enumerate(wanted)]
                payload = self.lift_flat(case.payload, narrowed)
            lines.append(f"if (tag == {case.index}) return {case.make(payload)};")
        lines += ["unreachable();", f"return changetype<{self.as_type(ref)}>(0);"]
        return _function(name, params, self.as_type(ref), lines)

    # --- lowering --------------------------------------------------------------------------

    def fresh(self, stem: str) -> str:
        self._locals += 1
        return f"__{stem}{self._locals}"

    def store(self, ref: TypeRef, pointer: str, value: str) -> str:
        """A statement writing `value` at `pointer`, its strings and lists in new pinned buffers."""
        resolved = self.catalog.resolve(ref)
        if isinstance(resolved, str) and resolved != "string":
            if resolved == "bool":
                return f"store<u8>({pointer}, {value} ? 1 : 0);"
            if resolved == "char":
                return f"store<u32>({pointer}, <u32>{value}.codePointAt(0));"
            return f"store<{PRIMITIVES[resolved][0]}>({pointer}, {value});"
        definition = self.definition(resolved)
        if definition is not None and definition.kind in ("enum", "flags"):
            width = {1: "u8", 2: "u16", 4: "u32"}[self.size_align(resolved)[0]]
            return f"store<{width}>({pointer}, <{width}>{value});"
        name = self._helper("store", resolved, lambda n: self._store_function(resolved, n))
        return f"{name}({pointer}, {value});"

    def _store_function(self, ref: TypeRef, name: str) -> str:
        return _function(name, f"p: usize, v: {self.as_type(ref)}", "void", self._store_body(ref))

    def _store_body(self, ref: TypeRef) -> list[str]:
        if ref == "string":
            return [
                "const text = __keep(String.UTF8.encode(v));",
                "store<usize>(p, changetype<usize>(text));",
                "store<u32>(p, text.byteLength, 4);",
            ]
        definition = self.definition(ref)
        assert definition is not None
        if definition.kind == "list":
            return [f"store<usize>(p, {self.lower_list(ref, 'v')});", "store<u32>(p, v.length, 4);"]
        if definition.kind in ("record", "tuple"):
            offsets, _ = self.member_layout(definition)
            members = zip(self.members(definition), offsets, strict=True)
            return [self.store(ref, f"p + {offset}", f"v.{name}") for (name, ref), offset in members]
        width, _ = self.discriminant(ref, definition)
        offset, _ = self.variant_layout(ref, definition)
        lines = []
        for case in self.cases(ref, definition):
            payload = "" if case.payload is None else " " + self.store(case.payload, f"p + {offset}", case.value("v"))
            lines.append(f"if ({case.test('v')}) {{ store<{width}>(p, {case.index});{payload} return; }}")
        return lines

    def lower_list(self, ref: TypeRef, value: str) -> str:
        """An expression of a pinned copy of a list's elements in the canonical layout; its address."""
        element = self._list_element(ref)
        if element == "u8":
            return f"__lowerBytes({value})"
        name = self._helper("lowerList", ref, lambda n: self._lower_list_function(ref, element, n))
        return f"{name}({value})"

    def _lower_list_function(self, ref: TypeRef, element: TypeRef, name: str) -> str:
        size = self.size_align(element)[0]
        body = [
            f"const data = __buffer(v.length * {size});",
            f"for (let i = 0; i < v.length; i++) {self.store(element, f'data + <usize>i * {size}', 'v[i]')}",
            "return data;",
        ]
        return _function(name, f"v: {self.as_type(ref)}", "usize", body)

    def lower_flat(self, ref: TypeRef, value: str) -> tuple[list[str], list[str]]:
        """Statements, then expressions of the flat core values of `value` (which is evaluated once)."""
        resolved = self.catalog.resolve(ref)
        definition = self.definition(resolved)
        if definition is None and resolved != "string":
            return [], [_lower_flat_primitive(str(resolved), value)]
        if definition is not None and definition.kind in ("enum", "flags"):
            return [], [f"<i32>{value}"]
        local = self.fresh("v")
        statements = [f"const {local} = {value};"]
        if resolved == "string":
            text = self.fresh("s")
            statements.append(f"const {text} = __keep(String.UTF8.encode({local}));")
            return statements, [f"changetype<usize>({text})", f"{text}.byteLength"]
        assert definition is not None
        if definition.kind == "list":
            bytes_ = self.catalog.resolve(definition.element or "") == "u8"  # the caller holds them during the call
            data = f"{local}.dataStart" if bytes_ else self.lower_list(resolved, local)
            return statements, [data, f"{local}.{'byteLength' if bytes_ else 'length'}"]
        if definition.kind in ("record", "tuple"):
            values = []
            for name, member in self.members(definition):
                more, member_values = self.lower_flat(member, f"{local}.{name}")
                statements += more
                values += member_values
            return statements, values
        return self._lower_flat_variant(resolved, definition, local, statements)

    def _lower_flat_variant(
        self, ref: TypeRef, definition: WitType, local: str, statements: list[str]
    ) -> tuple[list[str], list[str]]:
        joined = self.joined(ref, definition)
        tag, slots = self.fresh("tag"), [self.fresh("j") for _ in joined]
        statements.append(f"let {tag}: i32 = 0;")
        statements += [f"let {s}: {t} = 0;" for s, t in zip(slots, joined, strict=True)]
        for case in self.cases(ref, definition):
            body = [f"{tag} = {case.index};"]
            if case.payload is not None:
                more, values = self.lower_flat(case.payload, case.value(local))
                body += more
                wanted = self.flat(case.payload)
                body += [
                    f"{slots[i]} = {_WIDEN.get((t, joined[i]), '{}').format(values[i])};" for i, t in enumerate(wanted)
                ]
            statements.append(f"if ({case.test(local)}) {{ {' '.join(body)} }}")
        return statements, [tag, *slots]


_KEYWORD_TEXT = """abstract as async await break case catch class const continue debugger declare default delete do
else enum export extends false finally for function if implements import in instanceof interface let module namespace
new null package private protected public readonly return static super switch this throw true try type typeof var void
while with yield"""
KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def identifier(name: str) -> str:
    named = camel(name)
    return f"{named}_" if named in KEYWORDS else named


def _function(name: str, params: str, returns: str, body: list[str]) -> str:
    lines = "\n".join(f"  {line}" for line in body)
    return f"function {name}({params}): {returns} {{\n{lines}\n}}\n"


def declaration(codegen: Codegen, definition: WitType, indent: str) -> list[str]:
    """The AssemblyScript declaration of a named enum, flags, record or variant."""
    name = codegen.type_name(definition).split(".")[-1]
    if definition.kind == "enum":
        cases = ", ".join(f"{pascal(c)} = {i}" for i, c in enumerate(definition.cases))
        return [f"{indent}export enum {name} {{ {cases} }}"]
    if definition.kind == "flags":
        codegen.check_flags(definition)
        bits = ", ".join(f"{pascal(c)} = {1 << i}" for i, c in enumerate(definition.cases))
        return [f"{indent}export enum {name} {{ {bits} }}"]
    if definition.kind == "record":
        fields = ", ".join(f"public {identifier(n)}: {codegen.as_type(r)}" for n, r in definition.fields)
        return [f"{indent}export class {name} {{", f"{indent}  constructor({fields}) {{}}", f"{indent}}}"]
    if definition.kind == "variant":
        return _variant_declaration(codegen, definition, name, indent)
    return []


def _variant_declaration(codegen: Codegen, definition: WitType, name: str, indent: str) -> list[str]:
    tags = ", ".join(f"{pascal(c)} = {i}" for i, (c, _) in enumerate(definition.payloads))
    with_payload = [(identifier(c), codegen.as_type(p)) for c, p in definition.payloads if p is not None]
    fields = ", ".join(["public readonly tag: i32", *(f"public readonly {c}: {t}" for c, t in with_payload)])
    lines = [f"{indent}export enum {name}Tag {{ {tags} }}", f"{indent}export class {name} {{"]
    lines.append(f"{indent}  constructor({fields}) {{}}")
    for index, (case, payload) in enumerate(definition.payloads):
        case_name = identifier(case)
        values = [f"{'value' if c == case_name else f'__zero<{t}>()'}" for c, t in with_payload]
        param = "" if payload is None else f"value: {codegen.as_type(payload)}"
        arguments = ", ".join([str(index), *values])
        lines.append(f"{indent}  static {case_name}({param}): {name} {{ return new {name}({arguments}); }}")
    lines.append(f"{indent}}}")
    return lines
