"""C guests: every `*.c` file of `guests/<name>/`, compiled by `zig cc` for wasm32-wasi against Zig's wasi-libc, and
linked with the shared source folders' `.c` files as a static library (the linker takes the members the guest uses)."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from itertools import pairwise
from pathlib import Path

from ngixi_build.guests import GuestBuild
from ngixi_build.languages import native, native_reads
from ngixi_build.languages.base import CompileJob
from ngixi_build.languages.wasm import matches
from ngixi_build.project import Project, is_hidden
from ngixi_build.stages import core_bindings
from ngixi_build.stages.compile import CompileError
from ngixi_build.toolchains import ziglang
from ngixi_runtime.files import open_regular
from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.bundle_format import BuildProfile

log = logging.getLogger(__name__)

_NOT_FOUND = re.compile(r"symbol exported via --export not found: (\S+)")
# Dev keeps debug info (turned into a source map); not -O0, with which zig links a debug wasi-libc and UBSan
# runtime that import WASI clocks, files and random_get. Neither strips: the name section stays.
SHARED_ARCHIVE = "libngixi-shared.a"
EDITOR_FLAGS = "compile_flags.txt"  # clangd's flags for the guest's files, which `ngixi new` writes
EDITOR_FLAGS_READ = 64 * 1024  # a larger compile_flags.txt is not clangd's few lines of flags: not looked into
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {"release": ("-O2",), "dev": ("-O1", "-g")}
# `[compile] setjmp = true`: setjmp/longjmp lowered to WebAssembly exception handling, in its standard form (Wasmtime
# runs it; the legacy one is refused at build). wasi-libc's setjmp.h refuses to be included without them.
SETJMP_FLAGS = ("-mexception-handling", "-mllvm", "-wasm-enable-sjlj", "-mllvm", "-wasm-use-legacy-eh=false")
# The exception tag longjmp throws: wasi-libc's runtime (__wasm_longjmp) uses it, and Zig's copy does not define it.
C_LONGJMP_TAG = '__asm__(".globl __c_longjmp\\n.tagtype __c_longjmp i32\\n__c_longjmp:\\n");\n'
# wasi-libc's setjmp.h, included without SETJMP_FLAGS: its #error names the compiler flag, not the manifest's field.
_SETJMP_REFUSED = "error: Setjmp/longjmp support requires Exception handling"
_INCLUDED_FROM = re.compile(r"^In file included from (.+?):\d+:$", re.MULTILINE)


def cc_arguments(job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
    project, guest = job.project, job.guest
    options = c_options(manifest.compile)
    return [
        *_compiler_arguments(project, guest.name, options),
        *source_files(project, guest.name, options),
        "-o",
        str(output),
        f"-Wl,--max-memory={guest.memory_pages * native.PAGE_BYTES}",
        f"-Wl,-z,stack-size={options.stack_bytes}",
        *native.library_arguments(guest, manifest, no_entry="-mexec-model=reactor", export="-Wl,--export="),
        *(f"-l{name}" for name in options.libs),
    ]


def preprocess_arguments(
    project: Project, guest: str, options: CCompileOptions, source: str, scratch: Path
) -> list[str]:
    """zig's arguments that preprocess `source` as its compile does into `scratch`/out.i, with clang's list of the
    files it read in `scratch`/out.d."""
    output = scratch / "out.i"
    return [
        *_compiler_arguments(project, guest, options),
        "-E",
        "-MD",
        "-MF",
        f"{output}.d",
        "-o",
        str(output),
        _input(source),
    ]


def _compiler_arguments(project: Project, guest: str, options: CCompileOptions) -> list[str]:
    return [
        "cc",
        f"--target={native.WASI_TARGET}",
        *OPTIMIZATION[project.profile],
        *(SETJMP_FLAGS if options.setjmp else ()),
        *options.flags,
        "-I",
        native.relative(project, project.guests_dir / guest),
        "-I",
        native.relative(project, core_bindings.c_header(project).parent),
        *(argument for directory in include_dirs(project, guest, options) for argument in ("-I", directory)),
        *(argument for folder in project.shared_sources() for argument in ("-I", native.relative(project, folder))),
    ]


def shared_c_files(project: Project) -> list[str]:
    """The `.c` files of the shared source folders (not hidden ones), which each C guest links as a library."""
    folders = project.shared_sources()
    return [
        native.relative(project, path)
        for path in project.shared_source_files()
        if path.suffix == ".c" and not any(is_hidden(path, folder) for folder in folders if path.is_relative_to(folder))
    ]


def object_arguments(project: Project, guest: str, options: CCompileOptions, source: str, output: Path) -> list[str]:
    """zig's arguments that compile `source` alone into the object `output`, as the guest's own files are."""
    return [*_compiler_arguments(project, guest, options), "-c", "-o", str(output), _input(source)]


def _input(source: str) -> str:
    """`source` as zig's input file: a shared folder at the root named `-DX` or `-fplugin=...` would otherwise be
    read as an option, past the check of `[compile] flags`."""
    return f"./{source}" if source.startswith("-") else source


def c_options(options: CCompileOptions | ZigCompileOptions | None) -> CCompileOptions:
    """A C guest's table, or the defaults (the language check refused a Zig guest's table before the compile)."""
    return options if isinstance(options, CCompileOptions) else CCompileOptions()


def source_files(project: Project, guest: str, options: CCompileOptions) -> list[str]:
    """The guest's .c files `[compile] sources` matches (every one by default), in path order."""
    directory = project.guests_dir / guest
    files = {p.relative_to(directory).as_posix(): p for p in project.visible_guest_sources(guest) if p.suffix == ".c"}
    for index, pattern in enumerate(options.sources):
        if not any(matches(pattern, name) for name in files):
            raise CompileError(f"{_manifest(project, guest)}: compile.sources[{index}]: {pattern!r} matches no .c file")
    chosen = [path for name, path in files.items() if any(matches(pattern, name) for pattern in options.sources)]
    return [native.relative(project, path) for path in chosen]


def include_dirs(project: Project, guest: str, options: CCompileOptions) -> list[str]:
    directory = project.guests_dir / guest
    for index, name in enumerate(options.include):
        found = directory / name
        if not found.is_dir() or not found.resolve().is_relative_to(directory.resolve()):
            where = f"{_manifest(project, guest)}: compile.include[{index}]"
            raise CompileError(f"{where}: guests/{guest}/{name} is not a directory inside the guest's")
    return [native.relative(project, directory / name) for name in options.include]


def _manifest(project: Project, guest: str) -> str:
    return native.relative(project, project.manifest_path(guest))


def setjmp_not_enabled(project: Project, guest: str, failure: str) -> CompileError | None:
    """The manifest's field that gives setjmp/longjmp, when wasi-libc's setjmp.h refused a compile without it; None
    for any other failure."""
    if _SETJMP_REFUSED not in failure:
        return None
    including = _INCLUDED_FROM.search(failure)
    source = including.group(1) if including else "a source"
    return CompileError(
        f"{_manifest(project, guest)}: compile.setjmp: {source} includes setjmp.h, whose setjmp and longjmp need "
        "`setjmp = true` in [compile] (what wasi-libc's error calls -mllvm -wasm-enable-sjlj); the module then runs "
        'on Wasmtime alone (README, "Porting a C program someone else wrote")'
    )


def editor_include_dirs(project: Project, guest: str) -> list[str]:
    """The shared source folders as a guest's `compile_flags.txt` names them: relative to the guest's folder."""
    directory = project.guests_dir / guest
    return [Path(os.path.relpath(folder, directory)).as_posix() for folder in project.shared_sources()]


def editor_flags_warning(project: Project, guest: str, options: CCompileOptions) -> str | None:
    """What the guest's `compile_flags.txt` (clangd's view of its compile), if it has one, lacks of the include
    paths of `[compile] include` and of the shared folders, and of `setjmp`'s exception handling (without which
    wasi-libc's setjmp.h is an #error), in one line saying what to add; None when it lacks none (or is past
    EDITOR_FLAGS_READ).

    Each compile of the guest says it, as a compiler repeats its warnings: a compile runs only when one of the
    guest's inputs changed (the file is one), where the author is looking, until the file is fixed."""
    path = project.guests_dir / guest / EDITOR_FLAGS
    lines = _editor_lines(path)
    if lines is None:
        return None
    given = _include_dirs(lines)
    wanted = {
        f"{_manifest(project, guest)}'s compile.include": [Path(name).as_posix() for name in options.include],
        "tool.ngixi.shared_sources": editor_include_dirs(project, guest),
    }
    missing = {field: [f"-I{d}" for d in dirs if os.path.normpath(d) not in given] for field, dirs in wanted.items()}
    setjmp_lacking = options.setjmp and SETJMP_FLAGS[0] not in lines
    if setjmp_lacking:
        missing[f"{_manifest(project, guest)}'s compile.setjmp"] = [SETJMP_FLAGS[0]]
    lacking = [f"{' '.join(flags)} for {field}" for field, flags in missing.items() if flags]
    if not lacking:
        return None
    lines_to_add = "that line" if sum(map(len, missing.values())) == 1 else "those lines"
    purpose = "reads the guest's files as the compile does" if setjmp_lacking else "finds the headers the compile finds"
    where = native.relative(project, path)
    return f"warning: {where}: no {' and '.join(lacking)}; add {lines_to_add} so that clangd {purpose}"


def _include_dirs(lines: list[str]) -> set[str]:
    """The include folders compile_flags.txt's `lines` name (`-Idir` or `-I` then `dir`), normalized."""
    given = {os.path.normpath(line[2:]) for line in lines if line.startswith("-I") and line != "-I"}
    return given | {os.path.normpath(after) for line, after in pairwise(lines) if line == "-I"}


def _editor_lines(path: Path) -> list[str] | None:
    """The lines of `compile_flags.txt` at `path`, stripped; None when there is no such file or it is past
    EDITOR_FLAGS_READ."""
    try:
        with open_regular(path) as stream:
            if stream is None:
                return None
            data = stream.read(EDITOR_FLAGS_READ + 1)
    except OSError:
        return None
    if len(data) > EDITOR_FLAGS_READ:
        return None
    return [line.strip() for line in data.decode("utf-8", errors="replace").splitlines()]


class C(native.ZigCompiled):
    name = "c"
    optimization = OPTIMIZATION
    command = "zig cc"

    def bindings(self, project: Project) -> Path:
        return core_bindings.c_header(project)

    def compile(self, job: CompileJob) -> int:
        warning = editor_flags_warning(job.project, job.guest.name, c_options(job.guest.compile))
        if warning is not None:
            log.warning("%s", warning)
        try:
            return super().compile(job)
        except CompileError as failed:
            raise setjmp_not_enabled(job.project, job.guest.name, str(failed)) or failed from None

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {**super().settings(project, guest), "compile": c_options(guest.compile)._asdict()}

    def arguments(self, job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
        return cc_arguments(job, output, manifest)

    def refuse_reads(self, job: CompileJob, manifest: Manifest, zig: Path) -> None:
        """Preprocesses each source as its compile does: clang's list of the files that read, and the assembly."""
        project, guest = job.project, job.guest
        options = c_options(manifest.compile)
        allowed = [
            project.guests_dir / guest.name,
            *project.shared_sources(),
            core_bindings.bindings_dir(project),
            ziglang.lib_dir(zig),
        ]
        with tempfile.TemporaryDirectory(prefix="ngixi-cc-") as scratch:
            for source in [*source_files(project, guest.name, options), *shared_c_files(project)]:
                self.run_zig(
                    project, guest, [zig, *preprocess_arguments(project, guest.name, options, source, Path(scratch))]
                )
                listed = Path(scratch) / "out.i.d"
                if not listed.is_file():  # seen for an #embed of a file that is not there: no error, no list
                    raise CompileError(
                        f"{guest.name}: {source}: its preprocessing listed no files it read (an #embed of a file "
                        "that is not there?): check its #include and #embed lines"
                    )
                read = native_reads.make_dependencies(listed.read_text(encoding="utf-8", errors="surrogateescape"))
                native_reads.refuse_reads_outside(guest.name, source, read, project.root, allowed)
                preprocessed = (Path(scratch) / "out.i").read_text(encoding="latin-1")
                native_reads.refuse_c_assembly(guest.name, source, preprocessed)

    def libraries(self, job: CompileJob, manifest: Manifest, zig: Path, scratch: Path) -> list[str]:
        """The shared folders' `.c` files, each compiled as the guest's own are, in one archive: like any static
        library, the linker takes a member only for a function or variable the guest uses and does not define. With
        `setjmp`, the source of longjmp's tag too."""
        project, guest = job.project, job.guest
        options = c_options(manifest.compile)
        tag = [str(_written(scratch / "c_longjmp_tag.c", C_LONGJMP_TAG))] if options.setjmp else []
        sources = shared_c_files(project)
        if not sources:
            return tag
        objects = [scratch / f"{index}-{Path(source).stem}.o" for index, source in enumerate(sources)]
        for source, output in zip(sources, objects, strict=True):
            self.run_zig(project, guest, [zig, *object_arguments(project, guest.name, options, source, output)])
        archive = scratch / SHARED_ARCHIVE
        self.run_zig(project, guest, [zig, "ar", "rcs", archive, *objects])
        return [*tag, str(archive)]

    def arguments_again(self, arguments: list[str], failure: str) -> list[str] | None:
        """Without `--export=NAME` for each export no C function is named: one marked
        `__attribute__((export_name("NAME")))` exports itself, and validation names an export still missing.
        (zig cc has no `--export-if-defined`.)"""
        missing = {f"-Wl,--export={name}" for name in _NOT_FOUND.findall(failure)}
        return [a for a in arguments if a not in missing] if missing else None


def _written(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


LANGUAGE = C()
