"""A Python guest's requirements.txt: what is read, what is refused (one line naming the file, line and what to do),
and the checks of what pip installed. The installs themselves, from PyPI, are in
tests/build/integration/test_language_components.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngixi_build.toolchains import python, python_deps
from ngixi_build.toolchains.python_deps import Requirement
from ngixi_runtime.errors import InvalidInput

SHOWN = Path("guests/x/requirements.txt")
HASH = "sha256:" + "ab" * 32


def parsed(text: str) -> list[Requirement]:
    return python_deps.parse_requirements(text, SHOWN)


def refusal(text: str) -> str:
    with pytest.raises(InvalidInput) as refused:
        parsed(text)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_pinned_lines_as_pip_freeze_and_pip_compile_write_them() -> None:
    assert parsed("# generated\n\nPython_DateUtil==2.9.0.post0\nsix == 1.16.0  # via python-dateutil\n") == [
        Requirement("python-dateutil", "2.9.0.post0", (), 3),
        Requirement("six", "1.16.0", (), 4),
    ]
    hashed = f"tomli==2.0.1 \\\n    --hash={HASH} \\\n    # via app\nsix==1.16.0 --hash sha256:{'AB' * 32}\n"
    assert parsed(hashed) == [
        Requirement("tomli", "2.0.1", (HASH,), 1),
        Requirement("six", "1.16.0", (HASH,), 4),
    ]


def test_a_file_of_comments_only_lists_nothing() -> None:
    assert parsed("# nothing yet\n\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomli>=2\n", "guests/x/requirements.txt:1: tomli>=2: not pinned to one version; write `name==version`"),
        ("tomli\n", "guests/x/requirements.txt:1: tomli: not pinned"),
        ("idna==3.*\n", "idna==3.*: not pinned"),
        ("\nattrs[tests]==24.2.0\n", ":2: attrs[tests]==24.2.0: extras are not installed"),
        ('tomli==2.0.1 ; python_version < "3.11"\n', "environment markers are not read"),
        ("-r other.txt\n", ":1: -r: pip options are not read from a guest's requirements"),
        ("--index-url https://example.org/simple\n", ":1: --index-url: pip options are not read"),
        ("-e ./local\n", ":1: -e: pip options are not read"),
        ("tomli @ https://example.org/tomli.whl\n", "tomli @ https://example.org/tomli.whl: not pinned"),
        ("tomli==2.0.1 --no-binary :all:\n", ":1: --no-binary: only --hash options are read"),
        ("tomli==2.0.1\nTomli==2.0.2\n", ":2: tomli is listed twice"),
        (f"tomli==2.0.1 --hash={HASH}\nsix==1.16.0\n", ":2: six has no --hash while tomli has"),
    ],
)
def test_what_is_not_a_pinned_package_is_refused_naming_its_line(text: str, expected: str) -> None:
    assert expected in refusal(text)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"tomli==2.0.1 \xff\n")
    with pytest.raises(InvalidInput, match=r"^guests/x/requirements\.txt: not UTF-8 text"):
        python_deps.read_requirements(path, shown_as=SHOWN)


def test_the_install_is_keyed_by_the_file_s_bytes_per_guest(tmp_path: Path) -> None:
    root = python_deps.dependencies_root(tmp_path, "x", b"tomli==2.0.1\n")
    assert root.parent == tmp_path / "python-deps" / "x"
    assert python_deps.dependencies_root(tmp_path, "x", b"tomli==2.0.2\n") != root
    assert python_deps.dependencies_root(tmp_path, "y", b"tomli==2.0.1\n").name == root.name


def _installed(site: Path, name: str, version: str, *, tag: str = "py3-none-any", requires: str = "") -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}\nbody\n")
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,sha256=x,1\n{name}.py,sha256=x,1\n{info.name}/RECORD,,\n")


def test_an_installed_wheel_with_native_code_is_refused(tmp_path: Path) -> None:
    _installed(tmp_path, "fast", "1.0", tag="cp314-cp314-manylinux_2_28_x86_64")
    with pytest.raises(InvalidInput, match=r"^guests/x/requirements.txt:1: fast 1.0: its wheel is not pure Python"):
        python_deps.check_installed(tmp_path, [Requirement("fast", "1.0", (), 1)], SHOWN)


def test_a_package_needing_one_the_file_does_not_list_is_refused(tmp_path: Path) -> None:
    requires = (
        'Requires-Dist: six>=1.5\nRequires-Dist: pytest ; extra == "tests"\nRequires-Dist: tzdata ; os_name=="nt"'
    )
    _installed(tmp_path, "python_dateutil", "2.9.0", requires=requires)
    listed = [Requirement("python-dateutil", "2.9.0", (), 3)]
    with pytest.raises(InvalidInput, match=r":3: python-dateutil 2.9.0 needs six, which .* does not list; add it"):
        python_deps.check_installed(tmp_path, listed, SHOWN)
    _installed(tmp_path, "six", "1.16.0")
    python_deps.check_installed(tmp_path, [*listed, Requirement("six", "1.16.0", (), 4)], SHOWN)


def test_a_guest_module_with_a_dependency_s_name_is_refused(tmp_path: Path) -> None:
    site, guest = tmp_path / "site", tmp_path / "guest"
    _installed(site, "six", "1.16.0")
    guest.mkdir()
    (guest / "app.py").write_text("")
    (guest / "six.txt").write_text("")  # no module
    python_deps.refuse_shadowing(guest, site, Path("guests/x"))
    (guest / "six.py").write_text("")
    with pytest.raises(InvalidInput, match=r"^guests/x/six.py: six 1.16.0, which guests/x/requirements.txt lists"):
        python_deps.refuse_shadowing(guest, site, Path("guests/x"))


def test_the_wheels_are_chosen_for_the_python_inside_the_pinned_componentize_py() -> None:
    """A new componentize-py may embed another CPython: look up its libpython3.N.so, then change both here."""
    assert (python.pinned_version(), python_deps.GUEST_PYTHON) == ("componentize-py 0.25.1", "3.14")
