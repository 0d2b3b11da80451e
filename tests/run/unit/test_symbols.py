"""Rust's mangled names read as the paths they mangle (`spec/symbols.py`), for a trap's line: the names are those of
real modules' name sections (tests/data/rust-programs' cli.wasm, legacy mangling; wasi-testsuite's Rust tests, v0)."""

from __future__ import annotations

import pytest

from ngixi_runtime.spec.sourcemap import is_panic, named_location
from ngixi_runtime.spec.symbols import rust_path

LEGACY = {
    "_ZN3cli4main17h49bb4cd6a5cee6d8E": "cli::main",
    "_ZN4core3ptr46drop_in_place$LT$alloc..vec..Vec$LT$u8$GT$$GT$17he9399393173868b9E": (
        "core::ptr::drop_in_place<alloc::vec::Vec<u8>>"
    ),
    "_ZN42_$LT$$RF$T$u20$as$u20$core..fmt..Debug$GT$3fmt17ha74ee9fd0763a149E": "<&T as core::fmt::Debug>::fmt",
    "_ZN4core3ops8function6FnOnce40call_once$u7b$$u7b$vtable.shim$u7d$$u7d$17h399217455846ec1eE": (
        "core::ops::function::FnOnce::call_once{{vtable.shim}}"
    ),
    "_ZN3std9panicking11panic_count17LOCAL_PANIC_COUNT7__getit17ha52a2c99a0f7b2caE.llvm.5831750": (
        "std::panicking::panic_count::LOCAL_PANIC_COUNT::__getit"
    ),
    "_ZN9hashbrown3raw21RawTable$LT$T$C$A$GT$14reserve_rehash17h8f8c8f603299c589E": (
        "hashbrown::raw::RawTable<T,A>::reserve_rehash"
    ),
}
V0 = {
    "_RNvCs2v3WdN2sac9_8readlink4main": "readlink::main",
    "_RNvCsGIExRX8pES_7___rustc18___rust_start_panic": "__rustc::__rust_start_panic",
    "_RINvNtCsltDuuzhejvA_4core9panicking13assert_failedjjEB4_": "core::panicking::assert_failed::<usize, usize>",
    "_RNvXsi_NtCsltDuuzhejvA_4core3fmteNtB5_7Display3fmt": "<str as core::fmt::Display>::fmt",
    "_RNvYNtNtNtNtCs6TxCtTcuIIP_3std3sys5stdio4unix6StderrNtNtBa_2io5Write9write_allBa_": (
        "<std::sys::stdio::unix::Stderr as std::io::Write>::write_all"
    ),
    "_RNvNvMs1_NtNtCsltDuuzhejvA_4core3ptr8non_nullINtB7_7NonNullpE13new_unchecked18precondition_check": (
        "<core::ptr::non_null::NonNull<_>>::new_unchecked::precondition_check"
    ),
    "_RNCINvNtNtCs6TxCtTcuIIP_3std6thread7current17with_current_nameNCNCNvNtB8_9panicking12default_hook00uE0B8_": (
        "std::thread::current::with_current_name::<std::panicking::default_hook::{closure#0}::{closure#0}, ()>"
        "::{closure#0}"
    ),
    "_RINvC1a1fKj1_KB8_E": "a::f::<1, 1>",  # a const that refers back to the one before it
}


@pytest.mark.parametrize(("mangled", "path"), [*LEGACY.items(), *V0.items()])
def test_a_mangled_name_reads_as_rust_writes_its_path(mangled: str, path: str) -> None:
    assert rust_path(mangled) == path


@pytest.mark.parametrize(
    "name",
    [
        *("main", "__main_void", "_ZN3abc", "_ZN3fooEx", "_ZN99999999999999999999aE", "_R", "_RZ", "_RB_"),
        *("_RNvB_3foo", "_R0NvC1a1f", f"_RINvC1a1fKc{'f' * 20}_E", "_RINvC1a1fKc110000_E", "_RINvC1a1fKBc_E"),
    ],
)
def test_a_name_that_mangles_no_rust_path_stays_as_it_is(name: str) -> None:
    """C's names, cut or damaged names, a backref that points forward or at itself, an unknown encoding version, a
    char constant beyond Unicode."""
    assert rust_path(name) == name


def _backref(position: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    value, text = position - 1, ""
    while position and (value or not text):
        text, value = digits[value % 62] + text, value // 62
    return f"B{text}_"


def test_a_name_whose_backrefs_multiply_or_that_nests_deep_is_left_as_it_is() -> None:
    """A guest chooses its names: each tuple here holds the one before it twice (2^40 `u8`s if read whole), and
    3,000 nested references would take Python's stack."""
    text, previous = "INvC1a1fh", 8
    for _ in range(40):
        at = len(text)
        text += f"T{_backref(previous)}{_backref(previous)}E"
        previous = at
    assert rust_path("_RINvC1a1fThEE") == "a::f::<(u8,)>"
    for name in (f"_R{text}E", "_R" + "R" * 3000 + "h", "_R" + "T" * 3000 + "h" + "E" * 3000):
        assert rust_path(name) == name


def test_a_rust_traps_place_is_the_guests_own_function_by_its_path() -> None:
    """Frames of a panic in rustc 1.63's cli.wasm, innermost first: its library's mangled names are passed over."""
    frames = [
        "_ZN3std3sys4wasi14abort_internal17h741f4196561a38bdE",
        "_ZN3std7process5abort17h0f8c56e2e0ab9b4dE",
        "rust_oom",
        "__rg_oom",
        "_ZN5alloc5alloc18handle_alloc_error17h5b8f64a3d5b3f6aeE",
        "memcpy",
        "_ZN3cli8allocate17h2e0c1160c04dc686E",
        "_ZN3cli4main17hc0ccd4fe09910014E",
    ]
    assert named_location(frames) == "in cli::allocate"
    assert named_location(["_RNvCsGIExRX8pES_7___rustc18___rust_start_panic", *V0]) == "in readlink::main"
    assert not is_panic(frames)
    assert is_panic(["__rust_start_panic", "rust_begin_unwind", "_ZN3cli4main17hc0ccd4fe09910014E"])
    assert is_panic(["_RNvCsGIExRX8pES_7___rustc18___rust_start_panic"])


def test_a_language_runtimes_panic_is_not_the_guests() -> None:
    """componentize-py's Rust runtime ends a Python guest's uncaught exception with a panic of its own: the trap was
    said to be the guest's panic ("greet panicked in greet"), though the guest wrote no Rust."""
    runtime = ["libcomponentize_py_runtime.so!rust_panic", "componentize_py_runtime.wasm!rust_begin_unwind"]
    assert not is_panic([*runtime, "app.wasm!greet"])
    assert is_panic(["guest.wasm!rust_begin_unwind", "guest.wasm!_ZN3cli4main17hc0ccd4fe09910014E"])
