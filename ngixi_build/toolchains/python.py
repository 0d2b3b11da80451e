"""The pinned Python toolchain: PyPI `componentize-py` (CPython inside), which makes a Python module a
component of a WIT world.

Installed with `pip install --require-hashes` from `pins/python/requirements.txt` into
`<state>/toolchains/python/<key>/site`, only when a guest is in Python, and run by the build's own
interpreter (its wheel is abi3). Its WASI imports are replaced by trapping stubs (`--stub-wasi`): the
embedded CPython imports all of WASI preview 2, sockets included, whatever the guest uses, and the
host offers a component only the interfaces its manifest grants.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ngixi_build.files import link_out_of
from ngixi_build.proc import run, tool_limits
from ngixi_build.toolchains import installs
from ngixi_runtime.errors import InvalidInput, NgixiError

NAME = "python"
PIN_FILES = ("requirements.txt",)
# componentize-py's `script()` raises AssertionError carrying its diagnostics; print them alone.
_MAIN = (
    "import sys, componentize_py\n"
    "sys.argv[0] = 'componentize-py'\n"
    "try:\n"
    "    componentize_py.script()\n"
    "except AssertionError as error:\n"
    "    sys.exit(str(error))\n"
)
# componentize-py names the n-th --python-path directory /n/ in tracebacks: the guest's folder, its dependencies.
_MOUNTED = re.compile(r'"/0/')
_DEPENDENCIES_MOUNTED = re.compile(r'"/1/')
# The module componentize-py is given: the guest's own module (its `WitWorld` and interface classes), then
# standard output and error made to go nowhere (every WASI call is a stub that traps: a print would end the call),
# and an export's uncaught exception logged (with the log capability) as its message and the guest's line.
_ENTRY_MODULE = "ngixi_guest_entry"
_NOT_COPIED = ("__pycache__", ".*")  # of the guest's folder, into what componentize-py is given
# That module's frame in a traceback of the guest's module failing to import, which diagnostics leave out.
_ENTRY_FRAME = re.compile(rf'  File "[^"]*/{_ENTRY_MODULE}\.py", line \d+, in <module>\n.*\n(?: *\^+\n)?')
# A traceback left with no frame of the guest's: its exception alone is shown.
_NO_FRAME = re.compile(r"Traceback \(most recent call last\):\n(?!  File )")
_ENTRY = """import os
import random
import sys
import traceback


class _Nowhere:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


# The stubs leave no randomness at run time: os.urandom (secrets, uuid4, random.SystemRandom) would trap without a
# word, and random's generator would repeat at every run what it drew while the component was built. Both refuse
# instead, once the guest's module is imported (draws while it is imported, at build, are the build's own).
_REFUSAL = (
    "{{}}: a Python guest gets no randomness from the host ({tool} stubs all of WASI, wasi:random too, so "
    "[capabilities.random] cannot reach it); seed random yourself (random.seed(n)) for repeatable numbers, or pass "
    "what must be unpredictable in as an argument"
)
_building = True
_build_urandom = os.urandom


def _urandom(size):
    if _building:
        return _build_urandom(size)
    raise NotImplementedError(_REFUSAL.format("os.urandom"))


class _SeededOrRefused(random.Random):
    _seeded = False

    def seed(self, a=None, version=2):
        self._seeded = a is not None
        if self._seeded or _building:  # CPython seeds from the system's randomness in C: a stub's trap at run time
            super().seed(a, version)

    def setstate(self, state):
        super().setstate(state)
        self._seeded = True

    def random(self):
        self._refuse_unseeded()
        return super().random()

    def getrandbits(self, k):
        self._refuse_unseeded()
        return super().getrandbits(k)

    def _refuse_unseeded(self):
        if not (_building or self._seeded):
            raise NotImplementedError(_REFUSAL.format("random (unseeded)"))


_generator = _SeededOrRefused()
for _name in dir(random):
    if getattr(getattr(random, _name), "__self__", None) is random._inst:
        setattr(random, _name, getattr(_generator, _name))
random._inst = _generator
random.Random = _SeededOrRefused
os.urandom = random._urandom = _urandom

from {module} import *  # noqa: E402,F403

# An export the guest's class does not define fails here, with Python's traceback: creating the class later, with the
# log stubbed while building, trapped with a wasm backtrace and no word of the export.
_undefined = sorted(getattr(globals().get("WitWorld"), "__abstractmethods__", ()))
if _undefined:
    _undefined = (
        f"{shown_as}/{module}.py: class WitWorld defines no {{', '.join(_undefined)}}, which the manifest's [exports] "
        "declares: define a method of each name (or remove the export)"
    )
    raise NotImplementedError(_undefined)  # one line: the build leaves this module's frames out of what it shows

_building = False
sys.stdout = sys.stderr = _Nowhere()

try:
    from wit_world.imports import log as _log
except ImportError:  # no log capability: an exception's message has nowhere to go
    _log = None


def _report(kind, value, trace):
    # componentize-py shows an export's exception with sys.excepthook, then traps: its message and the guest's
    # line go to the log, without reading source lines (every WASI call, a file's open too, traps); the line is
    # the innermost in the guest's own files (/0/, this module's aside), not in the standard library's or the
    # bindings' it called
    frames = traceback.StackSummary.extract(traceback.walk_tb(trace), lookup_lines=False)
    own = [f for f in frames if f.filename.startswith("/0/") and f.filename != __file__] or frames
    where = [f"{{f.filename.replace('/0/', '{shown_as}/', 1)}}:{{f.lineno}} in {{f.name}}" for f in own[-1:]]
    if _log is not None:
        _log.write_at(_log.Level.ERROR, f"{{kind.__name__}}: {{value}}" + (f" (at {{where[0]}})" if where else ""))


sys.excepthook = _report
"""
ENTRY_DIGEST = hashlib.sha256(_ENTRY.encode()).hexdigest()  # a compile's setting: a changed module rebuilds guests


class PythonBuildError(NgixiError):
    """componentize-py refused the guest; the message carries its diagnostics."""


@dataclass(frozen=True)
class PythonToolchain:
    root: Path

    @property
    def site(self) -> Path:
        return self.root / "site"


def pins() -> dict[str, bytes]:
    return installs.pin_files(NAME, PIN_FILES)


def pinned_version() -> str:
    """`componentize-py 0.25.1`, from the pinned requirements."""
    found = re.search(rb"^([a-z0-9-]+)==(\S+)", pins()["requirements.txt"], re.MULTILINE)
    assert found is not None
    return f"{found.group(1).decode()} {found.group(2).decode()}"


def toolchain_for(state_dir: Path) -> PythonToolchain:
    """Where the toolchain for the current pins lives (installed or not)."""
    return PythonToolchain(installs.install_root(state_dir, NAME, pins()))


def ensure_python_toolchain(*, state_dir: Path) -> PythonToolchain:
    """Installs the pinned componentize-py once, checked against the pinned hashes."""
    toolchain = toolchain_for(state_dir)

    def install(root: Path) -> None:
        requirements = root / "requirements.txt"
        requirements.write_bytes(pins()["requirements.txt"])
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
        run(
            [*pip, "--require-hashes", "--only-binary=:all:", "--target", root / "site", "-r", requirements],
            what="pip install (componentize-py)",
            timeout=1800,
        )

    installs.ensure_install(toolchain.root, install)
    return toolchain


def not_copied(name: str) -> bool:
    """Whether a file or folder of this name in a guest's folder is left out of what componentize-py is given."""
    return any(fnmatch(name, pattern) for pattern in _NOT_COPIED)


def build_component(
    toolchain: PythonToolchain,
    *,
    module: str,
    source_dir: Path,
    shown_as: Path,
    world_dir: Path,
    world: str,
    out_path: Path,
    dependencies: Path | None = None,
) -> None:
    """Makes `out_path` the component of the module `module` in `source_dir` for `world`, with the installed
    `dependencies` on its path after the guest's own folder.

    A failure raises componentize-py's diagnostics, with the guest's files named under `shown_as`.
    """
    env = {**os.environ, "PYTHONPATH": str(toolchain.site), "RUST_BACKTRACE": "0"}
    command: list[str | Path] = [sys.executable, "-c", _MAIN, "--quiet", "-d", world_dir, "-w", world, "componentize"]
    # A copy, because the embedded interpreter writes __pycache__ beside the modules it imports.
    outside = link_out_of(source_dir, ignored=not_copied)
    if outside is not None:
        link, target = outside
        raise InvalidInput(
            f"{shown_as / link.relative_to(source_dir)}: a link out of the guest's directory {shown_as} (to "
            f"{target}); a Python guest's files must be under it: copy what it needs there"
        )
    with tempfile.TemporaryDirectory(prefix="ngixi-python-") as copy:
        sources = Path(copy) / "src"
        shutil.copytree(source_dir, sources, ignore=shutil.ignore_patterns(*_NOT_COPIED))
        (sources / f"{_ENTRY_MODULE}.py").write_text(
            _ENTRY.format(module=module, shown_as=shown_as.as_posix(), tool=pinned_version()), encoding="utf-8"
        )
        path: list[str | Path] = ["-p", sources]
        if dependencies is not None:  # a copy too, for its __pycache__
            shutil.copytree(dependencies, Path(copy) / "dependencies", ignore=shutil.ignore_patterns("__pycache__"))
            path += ["-p", Path(copy) / "dependencies"]
        try:
            arguments: list[str | Path] = ["--stub-wasi", *path, _ENTRY_MODULE, "-o", out_path]
            run([*command, *arguments], what=f"componentize-py {shown_as}", env=env, limits=tool_limits())
        except NgixiError as error:
            diagnostics = _MOUNTED.sub(f'"{shown_as}/', str(error).split("\n\nCaused by:", 1)[0])
            if dependencies is not None:
                diagnostics = _DEPENDENCIES_MOUNTED.sub(f'"{dependencies}/', diagnostics)
            raise PythonBuildError(_NO_FRAME.sub("", _ENTRY_FRAME.sub("", diagnostics))) from None
