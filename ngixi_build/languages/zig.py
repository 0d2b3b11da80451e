"""Zig guests: `main.zig` (or `src/main.zig`, or the guest's one `.zig` file) built by `zig build-exe` for wasm32-wasi.

The generated bindings are the module `ngixi` (`const ngixi = @import("ngixi");`). The manifest's `[compile]` may
name the root source, the optimize mode (ReleaseSmall by default) and more modules, each `@import`able by its name
from the root and from each other. Each `.zig` file directly in a folder `[tool.ngixi] shared_sources` names is a
module of every Zig guest, by its file's stem (`lib/geometry.zig`: `@import("geometry")`): Zig's code shared by guests.
"""

from __future__ import annotations

from pathlib import Path

from ngixi_build.files import regular_files
from ngixi_build.guests import GuestBuild
from ngixi_build.languages import native, native_reads
from ngixi_build.languages.base import CompileJob
from ngixi_build.project import Project
from ngixi_build.stages import core_bindings
from ngixi_build.stages.compile import CompileError
from ngixi_runtime.guest.compile_options import CCompileOptions, ZigCompileOptions
from ngixi_runtime.guest.manifest import Manifest
from ngixi_runtime.spec.bundle_format import BuildProfile
from ngixi_runtime.spec.project import PROJECT_FILE

# Every mode keeps debug info and names (-fno-strip; the build drops the DWARF, a dev build after making a source map
# of it); not Zig's Debug mode, whose panic handler imports WASI clocks and files. The dev profile builds the mode
# the manifest asks for too: the others change which imports the module has.
OPTIMIZATION: dict[BuildProfile, tuple[str, ...]] = {"release": ("-fno-strip",), "dev": ("-fno-strip",)}
ROOTS = ("main.zig", "src/main.zig")
# Module names a shared file cannot have: Zig's own, the guest's root's and the bindings'.
RESERVED_MODULES = ("std", "builtin", "root", core_bindings.ZIG_MODULE)


def zig_options(options: CCompileOptions | ZigCompileOptions | None) -> ZigCompileOptions:
    """A Zig guest's table, or the defaults (the language check refused a C guest's table before the compile)."""
    return options if isinstance(options, ZigCompileOptions) else ZigCompileOptions()


def root_source(project: Project, guest: str, options: ZigCompileOptions) -> Path:
    directory = project.guests_dir / guest
    if options.root is not None:
        return _guest_file(project, guest, options.root, "compile.root")
    for name in ROOTS:
        if (directory / name).is_file():
            return directory / name
    found = [p for p in project.visible_guest_sources(guest) if p.suffix == ".zig"]
    if len(found) != 1:
        raise CompileError(f"guests/{guest}: a Zig guest's root is {' or '.join(ROOTS)} (or its only .zig file)")
    return found[0]


def _guest_file(project: Project, guest: str, name: str, field: str) -> Path:
    directory = project.guests_dir / guest
    found = directory / name
    if not found.is_file() or not found.resolve().is_relative_to(directory.resolve()):
        manifest = native.relative(project, project.manifest_path(guest))
        raise CompileError(f"{manifest}: {field}: guests/{guest}/{name} is not a file inside the guest's directory")
    return found


def build_arguments(job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
    project, guest = job.project, job.guest
    options = zig_options(manifest.compile)
    return [
        "build-exe",
        "-target",
        native.WASI_TARGET,
        "-O",
        options.optimize,
        *OPTIMIZATION[project.profile],
        *native.library_arguments(guest, manifest, no_entry="-fno-entry", export="--export="),
        f"--max-memory={guest.memory_pages * native.PAGE_BYTES}",
        "--stack",
        str(native.STACK_BYTES),
        f"-femit-bin={output}",
        *modules(project, guest.name, options),
    ]


def modules(project: Project, guest: str, options: ZigCompileOptions) -> list[str]:
    """The root source and the manifest's modules, each importing the others and the bindings, the module `ngixi`
    (when the project has a WIT catalog), by name. Each module's `--dep`s come right before its `-M`."""
    own = {name: _guest_file(project, guest, path, f"compile.modules.{name}") for name, path in options.modules}
    sources = {"root": root_source(project, guest, options), **own}
    for name, path in shared_modules(project).items():
        if name in sources:
            raise CompileError(
                f"{native.relative(project, project.manifest_path(guest))}: compile.modules.{name}: a shared module "
                f"has that name ({native.relative(project, path)}); rename the guest's"
            )
        sources[name] = path
    if core_bindings.available(project):
        sources[core_bindings.ZIG_MODULE] = core_bindings.zig_module(project)
    arguments: list[str] = []
    for name, source in sources.items():
        imported = [other for other in sources if other not in (name, "root")]
        imported = [] if name == core_bindings.ZIG_MODULE else imported
        arguments += [
            *(part for other in imported for part in ("--dep", other)),
            f"-M{name}={native.relative(project, source)}",
        ]
    return arguments


def shared_modules(project: Project) -> dict[str, Path]:
    """The `.zig` files directly in the shared source folders, by module name (their stem)."""
    found: dict[str, Path] = {}
    files = (path for folder in project.shared_sources() for path in sorted(folder.glob("*.zig")) if path.is_file())
    for path in files:
        if path.stem in found or path.stem in RESERVED_MODULES:
            raise CompileError(
                f"{project.root / PROJECT_FILE}: tool.ngixi.shared_sources: {native.relative(project, path)} would "
                f"be the Zig module {path.stem!r}, which {found.get(path.stem, 'Zig or the bindings')} is; rename it"
            )
        found[path.stem] = path
    return found


class Zig(native.ZigCompiled):
    name = "zig"
    optimization = OPTIMIZATION
    command = "zig build-exe"

    def settings(self, project: Project, guest: GuestBuild) -> dict[str, object]:
        return {**super().settings(project, guest), "compile": zig_options(guest.compile)._asdict()}

    def bindings(self, project: Project) -> Path:
        return core_bindings.zig_module(project)

    def arguments(self, job: CompileJob, output: Path, manifest: Manifest) -> list[str]:
        return build_arguments(job, output, manifest)

    def refuse_reads(self, job: CompileJob, manifest: Manifest, zig: Path) -> None:
        """Zig reads no file outside a module's folder (and links out of the guest's and the shared folders are
        refused): only its assembly is looked for, in every .zig file of the guest's folder and the shared folders,
        hidden ones too (every module is in one)."""
        project, guest = job.project, job.guest
        folders = [project.guests_dir / guest.name, *project.shared_sources()]
        for path in (path for folder in folders for path in regular_files(folder)):
            if path.suffix == ".zig":
                source = native.relative(project, path)
                native_reads.refuse_zig_assembly(guest.name, source, path.read_text(encoding="latin-1"))


LANGUAGE = Zig()
