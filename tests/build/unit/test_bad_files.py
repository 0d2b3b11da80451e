"""The build side's readers of project files: bad ones are one InvalidInput naming the file, never a hang."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ngixi_build.files import link_out_of, regular_files
from ngixi_build.guests import manifests_without_guest, read_guest, read_guests, refuse_manifest_without_guest
from ngixi_build.project import Project, find_project
from ngixi_build.stages.bundle import write_bundle
from ngixi_build.stages.signing import generate_key_pair
from ngixi_build.toolchains import python
from ngixi_build.toolchains.wit import load_catalog, wit_sources
from ngixi_build.workflows import release
from ngixi_build.workflows.clean import remove_leftovers
from ngixi_build.workflows.release import ReleaseError, refuse_secret_keys, source_files, tree_digest
from ngixi_build.workflows.release_history import parse_history
from ngixi_build.workflows.scaffold import init_project, new_guest
from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import atomic_output, open_regular, read_input_bytes, sha256_of, write_atomic
from ngixi_runtime.trust.minisign_format import is_secret_key_file
from tests.file_events import watched_opens
from tests.run.unit.test_odd_paths import files_over

DEEP = "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n"


def test_deeply_nested_release_record_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"^releases\.toml: not valid TOML: .*; restore it from git$"):
        parse_history(DEEP, source="releases.toml")


@pytest.mark.parametrize("text", ["[tool]\nngixi = 3\n", 'tool = "x"\n', DEEP])
def test_a_project_file_of_the_wrong_shape_is_invalid_input(tmp_path: Path, text: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(InvalidInput, match=r"pyproject\.toml: "):
        Project(tmp_path).config  # noqa: B018


@pytest.mark.parametrize("start", [init_project, find_project])
def test_a_directory_that_loops_is_invalid_input(tmp_path: Path, start: Callable[[Path], object]) -> None:
    """`ngixi init LOOP` and `ngixi build --project LOOP` ended in 'unexpected RuntimeError: Symlink loop from ...'
    (Path.resolve before Python 3.13)."""
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    with pytest.raises(InvalidInput, match=r"/a: its symbolic links loop; name the file itself$"):
        start(tmp_path / "a")


@pytest.mark.parametrize(
    ("line", "refusal"),
    [
        ('shared_sources = ["lib\\u0000"]', r"tool\.ngixi\.shared_sources\[0\]: 'lib\\x00' holds a NUL character, "),
        ('targets = ["x86_64-unknown-linux-gnu\\n"]', r'targets\[0\]: unknown target "x86_64-unknown-linux-gnu\\n"; '),
        ('targets = [{ triple = "x86_64-unknown-linux-gnu", cpu_features = ["sse2\\n"] }]', r'"sse2\\n" is not '),
    ],
)
def test_a_config_string_with_a_nul_or_a_line_break_is_one_line(tmp_path: Path, line: str, refusal: str) -> None:
    """A NUL in shared_sources reached os.path.realpath ('unexpected ValueError: embedded null byte'), and a target
    or CPU feature ending in a line break was quoted raw, splitting the error over two lines."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.ngixi]\n{line}\n")
    with pytest.raises(InvalidInput, match=refusal) as refused:
        find_project(tmp_path)
    assert "\n" not in str(refused.value)


def test_init_and_new_that_fail_midway_leave_nothing(tmp_path: Path) -> None:
    """A full disk (or Ctrl-C) in `ngixi init` or `ngixi new` kept the files written before it: a second `ngixi
    new NAME` was then refused as 'guest NAME is taken', and the half guest had to be found and removed by hand."""
    with files_over(300), pytest.raises(OSError, match="File too large"):
        init_project(tmp_path / "project")
    assert not (tmp_path / "project").exists()
    init_project(tmp_path / "project")
    project = find_project(tmp_path / "project")
    before = sorted(p.relative_to(project.root) for p in project.root.rglob("*"))
    with files_over(500), pytest.raises(OSError, match="File too large"):
        new_guest(project, "hello", language="assemblyscript", kind="library", abi="core")
    assert sorted(p.relative_to(project.root) for p in project.root.rglob("*")) == before
    assert new_guest(project, "hello", language="assemblyscript", kind="library", abi="core")


def test_a_wrong_config_value_is_refused_when_the_project_is_found(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ngixi]\nrelease = "x"\n')
    with pytest.raises(InvalidInput, match=r"tool\.ngixi\.release: must be an array of guest names"):
        find_project(tmp_path)


def test_a_manifest_that_is_a_fifo_is_read_leniently_without_waiting(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    os.mkfifo(tmp_path / "manifests" / "hi.toml")
    assert read_guest(Project(tmp_path), "hi").version


@pytest.mark.parametrize("make", [os.mkfifo, Path.mkdir], ids=["fifo", "directory"])
def test_only_a_regular_file_is_read(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "input"
    make(path)
    with watched_opens(path) as opens:
        with pytest.raises(InvalidInput, match=r"input: a (FIFO|directory), not a regular file; name the file of it"):
            read_input_bytes(path, what="it")
        assert opens() == 0 or make is Path.mkdir  # a FIFO is refused unopened: an open would wake its writer


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(bytes(11))
    with pytest.raises(InvalidInput, match=r"big: over 10 bytes, too large for it"):
        read_input_bytes(tmp_path / "big", what="it", limit=10)
    assert read_input_bytes(tmp_path / "big", what="it", limit=11) == bytes(11)


def special_entries(directory: Path) -> list[Path]:
    """A FIFO, a socket, a symlink to /dev/zero, a dangling symlink and a symlinked directory in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    os.mkfifo(directory / "fifo.c")
    os.mknod(directory / "socket.c", stat.S_IFSOCK | 0o600)
    (directory / "zero.c").symlink_to("/dev/zero")
    (directory / "dangling.c").symlink_to(directory / "missing")
    (directory / "linked").symlink_to(directory.parent)
    return [directory / name for name in ("fifo.c", "socket.c", "zero.c", "dangling.c", "linked")]


def test_a_walk_lists_regular_files_only_and_opens_nothing_else(tmp_path: Path) -> None:
    special = special_entries(tmp_path / "tree" / "src")
    (tmp_path / "tree" / "src" / "main.c").write_text("int x;\n")
    (tmp_path / "tree" / "alias.c").symlink_to(tmp_path / "tree" / "src" / "main.c")
    assert regular_files(tmp_path / "tree") == [tmp_path / "tree" / "alias.c", tmp_path / "tree" / "src" / "main.c"]
    (tmp_path / "loop.c").symlink_to(tmp_path / "loop.c")  # ELOOP once raised where Path.is_file says no
    for path in [*special, tmp_path / "loop.c"]:
        with open_regular(path) as stream:
            assert stream is None
    with watched_opens(special[0]) as opens, open_regular(special[0]) as stream:
        assert stream is None and opens() == 0  # a FIFO refused unopened: an open would wake its writer
        assert not is_secret_key_file(path) and sha256_of(path) is None


@pytest.mark.parametrize("linked", ["secret.py", "package"])
def test_a_python_guests_link_out_of_its_directory_is_refused_before_componentize_py(
    tmp_path: Path, linked: str
) -> None:
    """componentize-py is given a copy of the guest's folder, and the copy followed links: a file or package
    linked from elsewhere on the build machine went into the copy the guest is built from (componentize-py ran)."""
    guest = tmp_path / "guests" / "g"
    (guest / "helpers").mkdir(parents=True)
    (guest / "app.py").write_text("import secret\n")
    (guest / "same.py").symlink_to(guest / "app.py")  # a link inside the folder is copied as before
    (guest / "helpers-again").symlink_to(guest / "helpers")
    (guest / ".venv" / "bin").mkdir(parents=True)
    (guest / ".venv" / "bin" / "python").symlink_to(sys.executable)  # not copied: not refused
    assert link_out_of(guest, ignored=python.not_copied) is None
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.py").write_text("KEY = 'the build machine'\n")
    (guest / linked).symlink_to(tmp_path / "elsewhere" / ("secret.py" if linked == "secret.py" else ""))
    with pytest.raises(InvalidInput, match=rf"guests/g/{linked}: a link out of the guest's directory guests/g \(to "):
        python.build_component(
            python.PythonToolchain(tmp_path / "toolchain"),
            module="app",
            source_dir=guest,
            shown_as=Path("guests/g"),
            world_dir=tmp_path / "wit",
            world="w",
            out_path=tmp_path / "out.wasm",
        )


def test_the_build_sides_walks_pass_over_special_files(tmp_path: Path) -> None:
    project = Project(tmp_path)
    special_entries(project.guests_dir / "g")
    (project.guests_dir / "g" / "main.c").write_text("int x;\n")
    generate_key_pair(secret_path=tmp_path / "keys" / "k.key", public_path=tmp_path / "keys" / "k.pub", comment="t")
    special_entries(tmp_path / "keys")
    assert project.guest_sources("g") == [project.guests_dir / "g" / "main.c"]
    files = source_files(tmp_path)  # outside git: the walk of the tree
    assert files == [Path("guests/g/main.c"), Path("keys/k.key"), Path("keys/k.pub")]
    assert len(tree_digest(tmp_path, files)) == 64
    with pytest.raises(ReleaseError, match=r"keys/k\.key: a minisign secret key inside the source tree"):
        refuse_secret_keys(tmp_path, files)


def test_a_python_environment_by_any_name_is_not_source(tmp_path: Path) -> None:
    """An author's `venv/` or `.venv-3.12/` (not .venv, not ignored by git) went into a release's clean copies and
    its source digest: thousands of files, none of them the project's. (Outside git here: unit tests start no
    process; git's list goes through the same filter.)"""
    for environment in ("venv", "tools/.venv-3.12"):
        (tmp_path / environment / "lib").mkdir(parents=True)
        (tmp_path / environment / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (tmp_path / environment / "lib" / "site.py").write_text("")
    (tmp_path / "guests" / "g").mkdir(parents=True)
    (tmp_path / "guests" / "g" / "main.c").write_text("")
    (tmp_path / "tools" / "gen.py").write_text("")
    assert source_files(tmp_path) == [Path("guests/g/main.c"), Path("tools/gen.py")]  # as git's list is filtered


def test_clean_removes_a_leftover_symlink_not_what_it_points_at(tmp_path: Path) -> None:
    project = Project(tmp_path)
    kept = tmp_path / "kept"
    (kept / "inside").mkdir(parents=True)
    project.artifacts_dir.mkdir()
    (project.artifacts_dir / ".x.abcdefgh.tmp").symlink_to(kept)
    (project.artifacts_dir / ".y.abcdefgh.tmp").symlink_to(tmp_path / "missing")
    assert {p.name for p in remove_leftovers(project)} == {".x.abcdefgh.tmp", ".y.abcdefgh.tmp"}
    assert (kept / "inside").is_dir() and list(project.artifacts_dir.iterdir()) == []


def test_clean_removes_the_python_packages_of_guests_that_list_none_any_more(tmp_path: Path) -> None:
    """A removed guest's packages (megabytes each) stayed in `.ngixi/python-deps/` for ever; so did those of a guest
    whose requirements.txt was removed. A guest that still lists packages keeps its install."""
    project = Project(tmp_path)
    installs = project.state_dir / "python-deps"
    for guest in ("kept", "removed", "unlisted"):
        (installs / guest / "key" / "site").mkdir(parents=True)
    (installs / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    (project.guests_dir / "kept").mkdir(parents=True)
    (project.guests_dir / "kept" / "requirements.txt").write_text("six==1.16.0\n")
    (project.guests_dir / "unlisted").mkdir()
    removed = {p.relative_to(project.state_dir).as_posix() for p in remove_leftovers(project)}
    assert removed == {"python-deps/removed", "python-deps/unlisted", "python-deps/linked"}
    assert [p.name for p in installs.iterdir()] == ["kept"] and (tmp_path / "elsewhere").is_dir()


def test_new_never_writes_through_a_dangling_symlink(tmp_path: Path) -> None:
    init_project(tmp_path)
    (tmp_path / "guests" / "g").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="guest 'g' is taken"):
        new_guest(find_project(tmp_path), "g", language="c", kind="library", abi="core")
    assert not (tmp_path / "elsewhere").exists()


def test_a_bundles_manifest_that_became_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "hello.toml")
    (tmp_path / "hello.wasm").write_bytes(b"\0asm\1\0\0\0")
    key = generate_key_pair(secret_path=tmp_path / "k.key", public_path=tmp_path / "k.pub", comment="t")
    with pytest.raises(InvalidInput, match=r"hello\.toml: a FIFO, not a regular file"):
        write_bundle(
            guest="hello",
            version="0.1.0",
            manifest_path=tmp_path / "hello.toml",
            wasm_path=tmp_path / "hello.wasm",
            artifacts=[],
            key=key,
            channel="dev",
            sequence=1,
            out_path=tmp_path / "hello.ngx",
        )
    assert not (tmp_path / "hello.ngx").exists()


def test_an_existing_release_holding_a_fifo_bundle_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "hello-0.1.0.ngx")
    (tmp_path / "extra.ngx").mkdir()
    with pytest.raises(ReleaseError, match=r"different content \(hello-0\.1\.0\.ngx\)"):
        release._compare_existing(tmp_path, {"hello-0.1.0.ngx": b"bundle"})


def test_a_wit_catalog_entry_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "host.wit").write_text("package ngixi:host@0.1.0;\n")
    os.mkfifo(tmp_path / "extra.wit")
    assert wit_sources(tmp_path) == [tmp_path / "host.wit"]
    with pytest.raises(InvalidInput, match=r"extra\.wit: not a regular file"):
        load_catalog(tmp_path)


def test_a_manifest_whose_guest_has_no_directory_is_named_not_passed_over(tmp_path: Path) -> None:
    """`doit build` built the other guests and ended with status 0, saying nothing of manifests/gone.toml."""
    init_project(tmp_path)
    new_guest(Project(tmp_path), "kept", language="c", kind="library", abi="core")
    (tmp_path / "manifests" / "gone.toml").write_text('[guest]\nname = "gone"\n')
    assert list(read_guests(Project(tmp_path))) == ["kept"]
    assert manifests_without_guest(Project(tmp_path)) == [tmp_path / "manifests" / "gone.toml"]
    with pytest.raises(InvalidInput, match=r"manifests/gone\.toml: guest 'gone' has no directory .*/guests/gone/; put"):
        refuse_manifest_without_guest(project=Project(tmp_path), manifest=tmp_path / "manifests" / "gone.toml")
    (tmp_path / "guests" / "gone").mkdir()
    (tmp_path / "guests" / "gone" / "main.c").write_text("int main(void) { return 0; }\n")
    assert manifests_without_guest(Project(tmp_path)) == []

    assert list(read_guests(Project(tmp_path))) == ["gone", "kept"]


@pytest.mark.parametrize("hard_links", [True, False], ids=["linked", "no-hard-links"])
def test_a_new_file_is_never_put_over_one_made_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    """`new=True` writes only where nothing is, a dangling symlink included, and leaves no temporary file."""
    if not hard_links:
        monkeypatch.setattr(os, "link", lambda *_: (_ for _ in ()).throw(PermissionError("no hard links")))
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("theirs", "dangling"):
        with pytest.raises(FileExistsError), atomic_output(tmp_path / name, new=True) as stream:
            (tmp_path / "theirs").write_bytes(b"theirs")  # another process, while ours is being written
            stream.write(b"ours")
    write_atomic(tmp_path / "fresh", b"ours", new=True)
    assert (tmp_path / "theirs").read_bytes() == b"theirs" and (tmp_path / "fresh").read_bytes() == b"ours"
    assert sorted(os.listdir(tmp_path)) == ["dangling", "fresh", "theirs"]
