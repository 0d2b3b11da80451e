"""The component half of the fast path (the package's docstring says what it is and when it is active): imported only
by a component's load, since wasmtime-py's `wasmtime.component` imports dataclasses and inspect, which a core guest's
run does without."""

from __future__ import annotations

import ctypes
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Literal

import wasmtime
import wasmtime.component as wc

from ngixi_runtime.engines import wasmtime_fastpath
from ngixi_runtime.engines.wasmtime_fastpath import KEYS, defined

if wasmtime_fastpath.ACTIVE:
    from wasmtime import _ffi as ffi
    from wasmtime.component import _enter as component_enter


# The element types of the lists `component_export` copies in bulk, by their `array` type code and C API kind name.
_Code = Literal["B", "b", "H", "h", "I", "i", "Q", "q", "f", "d"]
_LIST_ELEMENTS: dict[type, tuple[_Code, str]] = {
    wc.U8: ("B", "U8"),
    wc.S8: ("b", "S8"),
    wc.U16: ("H", "U16"),
    wc.S16: ("h", "S16"),
    wc.U32: ("I", "U32"),
    wc.S32: ("i", "S32"),
    wc.U64: ("Q", "U64"),
    wc.S64: ("q", "S64"),
    wc.F32: ("f", "F32"),
    wc.F64: ("d", "F64"),
}


class _NumberList(wc.ValType):
    """A `list<T>` of one number type, lowered from bytes (`list<u8>`) or a list and lifted to the same, as
    wasmtime-py's `ListType` converts it: the C API's array of values, one `wasmtime_component_val_t` of `kind` per
    element, filled and read by strided copies instead of a Python call per element."""

    def __init__(self, element: wc.ValType) -> None:
        self._code, kind = _LIST_ELEMENTS[type(element)]
        self._kind = getattr(ffi, f"WASMTIME_COMPONENT_{kind}").value
        self._stride = ctypes.sizeof(ffi.wasmtime_component_val_t)
        self._width = array(self._code).itemsize
        self._kinds_at = ffi.wasmtime_component_val_t.kind.offset
        self._values_at = ffi.wasmtime_component_val_t.of.offset // self._width

    def add_classes(self, s: set[type]) -> None:
        s.add(bytes if self._code == "B" else list)

    def convert_to_c(self, store: Any, val: Any, ptr: Any) -> None:
        """Writes the list into the value `ptr` points to; raises TypeError for a value of another type, as
        wasmtime-py does, before allocating anything."""
        if not isinstance(val, bytes if self._code == "B" else list):
            raise TypeError(f"expected {'bytes' if self._code == 'B' else 'list'} value")
        numbers = val if isinstance(val, bytes) else array(self._code, val)
        listed = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(listed, len(numbers))
        if numbers:
            cells = self._cells(listed.data.contents, len(numbers))
            cells[self._kinds_at :: self._stride] = bytes([self._kind]) * len(numbers)
            cells.cast(self._code)[self._values_at :: self._stride // self._width] = numbers
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
        ptr.contents.of.list = listed

    def convert_from_c(self, c: Any) -> Any:
        """The list held in the value `c`, whose C array it frees."""
        listed = c.of.list
        try:
            if not listed.size:
                return b"" if self._code == "B" else []
            numbers = self._cells(listed.data.contents, listed.size).cast(self._code)
            picked = numbers[self._values_at :: self._stride // self._width]
            return bytes(picked) if self._code == "B" else picked.tolist()
        finally:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(listed))

    def _cells(self, first: Any, count: int) -> memoryview:
        return memoryview((ctypes.c_char * (count * self._stride)).from_address(ctypes.addressof(first))).cast("B")


def _bulk_property(name: str) -> property:
    return property(lambda self: self._bulk_children[name])


# wasmtime-py's types that hold others, with the properties their conversions read those through; the same types
# reading them from `_bulk_children` instead, made once, where a list of numbers is a `_NumberList`.
_CHILDREN: dict[type, tuple[str, ...]] = {
    wc.ListType: ("element",),
    wc.RecordType: ("fields",),
    wc.TupleType: ("elements",),
    wc.OptionType: ("payload",),
    wc.ResultType: ("ok", "err"),
    wc.VariantType: ("cases",),
}
_BULK_CLASSES = {
    kind: type(f"Bulk{kind.__name__}", (kind,), {name: _bulk_property(name) for name in names})
    for kind, names in _CHILDREN.items()
}


def _bulk_type(ty: wc.ValType) -> wc.ValType | None:
    """`ty` converting each list of numbers in it in bulk (a `_NumberList`, or `ty` itself made a `_BULK_CLASSES`
    type reading its children's bulk types); None when it holds no list of numbers."""
    if isinstance(ty, wc.ListType) and type(element := ty.element) in _LIST_ELEMENTS:
        return _NumberList(element)
    names = _CHILDREN.get(type(ty), ())
    children = {name: getattr(ty, name) for name in names}
    bulk = {name: _bulk_children(child) for name, child in children.items()}
    if all(child is None for child in bulk.values()):
        return None
    vars(ty)["_bulk_children"] = {name: children[name] if child is None else child for name, child in bulk.items()}
    ty.__class__ = _BULK_CLASSES[type(ty)]
    return ty


def _bulk_children(child: Any) -> Any:
    """A child type, or a list of types or of (name, type) pairs, with bulk types for those holding a list of
    numbers; None when none does."""
    if isinstance(child, wc.ValType):
        return _bulk_type(child)
    if not isinstance(child, list):
        return None  # no payload
    bulk = [_bulk_item(item) for item in child]
    if all(new is None for new in bulk):
        return None
    return [item if new is None else new for item, new in zip(child, bulk, strict=True)]


def _bulk_item(item: wc.ValType | tuple[str, wc.ValType | None]) -> Any:
    if not isinstance(item, tuple):
        return _bulk_type(item)
    name, ty = item
    bulk = None if ty is None else _bulk_type(ty)
    return None if bulk is None else (name, bulk)


class ComponentExport:
    """A component's export called as wasmtime-py's `component.Func.__call__` calls it, but with its lists of
    numbers, wherever they are in its parameters and result, copied in bulk, and its types read once."""

    def __init__(self, function: wc.Func, params: list[wc.ValType], result: wc.ValType | None) -> None:
        self._func = function._func
        self._params = params
        self._result = result

    def __call__(self, store: wasmtime.Store, args: Sequence[Any]) -> Any:
        if len(args) != len(self._params):
            raise TypeError(f"wrong number of parameters provided: given {len(args)}, expected {len(self._params)}")
        values = (ffi.wasmtime_component_val_t * len(args))()
        lowered = 0
        try:
            for ty, value in zip(self._params, args, strict=True):
                ty.convert_to_c(store, value, ctypes.pointer(values[lowered]))
                lowered += 1
            return self._call(store, values, lowered)
        finally:
            for slot in range(lowered):
                ffi.wasmtime_component_val_delete(ctypes.byref(values[slot]))

    def _call(self, store: wasmtime.Store, values: Any, count: int) -> Any:
        result = ffi.wasmtime_component_val_t()
        returns = self._result is not None
        target = ctypes.byref(result) if returns else None
        context = store._context()
        component_enter.enter_wasm(
            lambda: ffi.wasmtime_component_func_call(ctypes.byref(self._func), context, values, count, target, returns)
        )
        return None if self._result is None else self._result.convert_from_c(result)


def component_export(function: wc.Func, store: wasmtime.Store) -> ComponentExport | None:
    """The bulk call of a component's export, or None: on a wasmtime-py not in `TESTED_ON`, or for an export with
    no list of numbers in its parameters or result (wasmtime-py's own call is as fast for those)."""
    if not wasmtime_fastpath.ACTIVE:
        return None
    kind = function.type(store)
    params = [ty for _, ty in kind.params]
    bulk_params = [_bulk_type(ty) for ty in params]
    result = kind.result
    bulk_result = None if result is None else _bulk_type(result)
    if bulk_result is None and all(ty is None for ty in bulk_params):
        return None
    merged = [ty if new is None else new for ty, new in zip(params, bulk_params, strict=True)]
    return ComponentExport(function, merged, result if bulk_result is None else bulk_result)


# The component host functions `define_component_import` defined, by the key Wasmtime hands back to the trampoline:
# each function and, from its first call, its parameter and result types, bulk types where a list of numbers is.
_COMPONENT_IMPORTS: dict[int, tuple[Callable[..., Any], list[tuple[list[wc.ValType], wc.ValType | None]]]] = {}


def _import_types(key: int, kind: Any, store: wasmtime.StoreContext) -> tuple[list[wc.ValType], wc.ValType | None]:
    _, types = _COMPONENT_IMPORTS[key]
    if not types:
        with wc.FuncType._from_ptr(kind, owner=store) as read:
            params, result = [ty for _, ty in read.params], read.result
        bulk = None if result is None else _bulk_type(result) or result
        types.append(([_bulk_type(ty) or ty for ty in params], bulk))
    return types[0]


def _call_component_import(key: int, context: Any, kind: Any, args: Any, results: Any) -> int:
    """Runs a host function as wasmtime-py's component trampoline does, its lists of numbers copied in bulk."""

    def run(store: wasmtime.StoreContext) -> None:
        params, result = _import_types(key, kind, store)
        returned = _COMPONENT_IMPORTS[key][0](store, *(ty.convert_from_c(args[i]) for i, ty in enumerate(params)))
        if result is not None:
            result.convert_to_c(store, returned, results)
        elif returned is not None:
            raise wasmtime.WasmtimeError("callback produced results when it shouldn't")

    return int(component_enter.catch_exceptions(context, run) or 0)


if wasmtime_fastpath.ACTIVE:
    _COMPONENT_TRAMPOLINE = ffi.wasmtime_component_func_callback_t(
        lambda key, context, kind, args, _nargs, results, _nresults: _call_component_import(
            key or 0, context, kind, args, results
        )
    )
    _COMPONENT_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda key: _COMPONENT_IMPORTS.pop(key or 0, None))


def define_component_import(instance: wc.LinkerInstance, name: str, function: Callable[..., Any]) -> bool:
    """Defines a component's host function as `LinkerInstance.add_func` does, its lists of numbers copied in bulk;
    False (nothing defined) on a wasmtime-py not in `TESTED_ON`. Raises what `add_func` raises when Wasmtime
    refuses the definition."""
    if not wasmtime_fastpath.ACTIVE:
        return False
    key = next(KEYS)
    _COMPONENT_IMPORTS[key] = (function, [])
    name_bytes = name.encode()
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(),
        ctypes.create_string_buffer(name_bytes),
        len(name_bytes),
        _COMPONENT_TRAMPOLINE,
        key,
        _COMPONENT_RELEASE,
    )
    return defined(error, _COMPONENT_IMPORTS, key)
