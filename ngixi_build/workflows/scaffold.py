"""`ngixi init` and `ngixi new`: a guest project, and guests that build, run and pass their smoke calls as made.

Templates are package data under ngixi_build/templates/: `project/` for `ngixi init`, and one folder per
guest language, kind and ABI, `guests/<language>/<kind>-<abi>/`, holding `manifest.toml` and `guest/`
(copied to guests/<name>/). A language adds its guests by adding folders. In template files `{{name}}` is the
guest's name, `{{state}}` and `{{artifacts}}` the paths from the guest's folder to the project's state and
artifacts, `{{project}}` the project's folder name and `{{targets}}` the default targets; a file name's
`dot-` prefix becomes `.`, its `.tmpl` suffix is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from ngixi_build.files import refuse_links
from ngixi_build.languages import c
from ngixi_build.project import Project
from ngixi_build.toolchains import asdata
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import resolved, write_atomic
from ngixi_runtime.guest.manifest import NAME_PATTERN
from ngixi_runtime.spec.project import PROJECT_FILE, is_project_root
from ngixi_runtime.spec.targets import DEFAULT_TARGETS

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
EDITOR_LINKS = "editor"
DEFAULT_LANGUAGE = "assemblyscript"


@dataclass(frozen=True)
class GuestTemplate:
    language: str
    kind: str
    abi: str

    @property
    def folder(self) -> Path:
        return TEMPLATES / "guests" / self.language / f"{self.kind}-{self.abi}"


def guest_templates() -> list[GuestTemplate]:
    """Every guest template the installed package has."""
    found = []
    for language in sorted(p for p in (TEMPLATES / "guests").iterdir() if p.is_dir()):
        for variant in sorted(p for p in language.iterdir() if (p / "manifest.toml").is_file()):
            kind, _, abi = variant.name.partition("-")
            found.append(GuestTemplate(language.name, kind, abi))
    return found


def languages() -> list[str]:
    return sorted({t.language for t in guest_templates()})


def init_project(directory: Path) -> list[Path]:
    """Writes a new project into `directory` (made if missing); returns the files written."""
    if directory.exists() and not directory.is_dir():
        raise InvalidInput(f"{directory}: exists and is not a directory")
    if directory.is_dir() and is_project_root(directory):
        raise InvalidInput(f"{directory}: already an ngixi project ({PROJECT_FILE} has [tool.ngixi]); add guests to it")
    values = {"project": resolved(directory).name, "targets": json.dumps(list(DEFAULT_TARGETS), indent=4)}
    files = _rendered(TEMPLATES / "project", values)
    _refuse_existing(directory, files, what="ngixi init")
    written = write_all({directory / name: data for name, data in files.items()})
    for folder in ("guests", "manifests"):
        (directory / folder).mkdir(exist_ok=True)
    return written


def new_guest(project: Project, name: str, *, language: str, kind: str, abi: str) -> list[Path]:
    """Writes guests/<name>/ and manifests/<name>.toml from the template for `language`, `kind` and `abi`."""
    guest_dir, manifest = new_guest_paths(project, name)
    template = _template(language, kind, abi)
    values = {
        "name": name,
        "state": _relative(project.state_dir, guest_dir),
        "artifacts": _relative(project.artifacts_dir, guest_dir),
        "shared_includes": "".join(f"-I{folder}\n" for folder in c.editor_include_dirs(project, name)),
    }
    files = {guest_dir / name: data for name, data in _rendered(template.folder / "guest", values).items()}
    return write_all({**files, manifest: _render(template.folder / "manifest.toml", values)})


def new_guest_paths(project: Project, name: str) -> tuple[Path, Path]:
    """A new guest's folder and manifest, refused for a name that is no guest name or is taken."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"{name!r}: not a guest name; use a lowercase letter, then up to 62 lowercase letters, digits and"
            ' "-" (it names the folder, the manifest and the bundle)'
        )
    guest_dir, manifest = project.guests_dir / name, project.manifest_path(name)
    taken = [p for p in (guest_dir, manifest) if os.path.lexists(p)]
    if taken:
        raise InvalidInput(f"{taken[0]}: already exists; guest {name!r} is taken, choose another name")
    return guest_dir, manifest


def default_abi(language: str) -> str:
    """The ABI `ngixi new` picks when none is given: the core ABI, unless `language`'s templates are all of
    one other ABI (JavaScript and Python build only components)."""
    abis = {t.abi for t in guest_templates() if t.language == language}
    return abis.pop() if len(abis) == 1 else "core"


def editor_link(state_dir: Path) -> Path:
    """`<state>/editor/assemblyscript`: where guests' tsconfig.json find AssemblyScript's types."""
    return state_dir / EDITOR_LINKS / "assemblyscript"


def link_for_editors(state_dir: Path, node_modules: Path) -> Path:
    """Points `editor_link` at the toolchain's AssemblyScript (a stable path while the toolchain's changes), and
    `<state>/editor/ngixi-data` at the call data ABI's package; returns `editor_link`."""
    refuse_links((state_dir / EDITOR_LINKS,), InvalidInput)  # its links are replaced by name
    _link(state_dir / EDITOR_LINKS / asdata.PACKAGE, asdata.LIBRARY_DIR / asdata.PACKAGE)
    return _link(editor_link(state_dir), _from_link(editor_link(state_dir), node_modules / "assemblyscript", state_dir))


def _from_link(link: Path, target: Path, state_dir: Path) -> Path:
    """`target` as `link` should name it: relative when both are in the state directory, which moves with the
    project (a link there stays good when the project is moved or renamed)."""
    return Path(os.path.relpath(target, link.parent)) if target.is_relative_to(state_dir) else target


def _link(link: Path, target: Path) -> Path:
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.tmp")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(link)
    return link


def _template(language: str, kind: str, abi: str) -> GuestTemplate:
    templates = guest_templates()
    wanted = GuestTemplate(language, kind, abi)
    if wanted in templates:
        return wanted
    offered = ", ".join(f"--kind {t.kind} --abi {t.abi}" for t in templates if t.language == language)
    raise InvalidInput(f"no {language} template for --kind {kind} --abi {abi}; {language} has {offered}")


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _render(path: Path, values: Mapping[str, str]) -> bytes:
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text.encode()


def _output_name(relative: Path) -> Path:
    name = relative.name.removesuffix(".tmpl")
    name = f".{name.removeprefix('dot-')}" if name.startswith("dot-") else name
    return relative.with_name(name)


def _rendered(folder: Path, values: Mapping[str, str]) -> dict[str, bytes]:
    """Every file under `folder` rendered, by its output path relative to `folder`."""
    return {
        _output_name(p.relative_to(folder)).as_posix(): _render(p, values)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _refuse_existing(directory: Path, files: Mapping[str, bytes], *, what: str) -> None:
    existing = [directory / name for name in files if os.path.lexists(directory / name)]
    if existing:
        names = ", ".join(str(p) for p in existing)
        exist, them = ("exists", "it") if len(existing) == 1 else ("exist", "them")
        raise InvalidInput(f"{what}: {names} already {exist}; {what} overwrites nothing, move {them} away first")


def write_all(files: Mapping[Path, bytes]) -> list[Path]:
    """Writes each file; a failure (a full disk, Ctrl-C) removes the files and folders this call made, so that a
    second try is not refused as a guest or project that exists."""
    made: list[Path] = []
    try:
        for path, data in files.items():
            made += _new_folders(path.parent)
            write_atomic(path, data)
            made.append(path)
    except BaseException:
        _remove(made)
        raise
    return [path for path in made if path in files]


def _new_folders(folder: Path) -> list[Path]:
    """Makes `folder` and the folders above it that are missing; those it made, the outermost first."""
    missing = [d for d in (folder, *folder.parents) if not d.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove(made: list[Path]) -> None:
    for path in reversed(made):
        with suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
