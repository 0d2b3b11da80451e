"""The bundle index (`bundle.json`): its records, its strict parser and the fixed names.

docs/bundle-format.md describes the format; the writer lives on the build side.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, NoReturn, cast

from ngixi_runtime.errors import VerificationError
from ngixi_runtime.kept import Kept
from ngixi_runtime.printable import clipped
from ngixi_runtime.records import NamedTuple

FORMAT_VERSION = 3
INDEX_NAME = "bundle.json"
SIGNATURE_NAME = "bundle.json.minisig"
# The first member of a bundle in an older format, so that one is refused with what to do.
OLD_INDEX_NAMES = {"bundle.toml": 1}
MANIFEST_NAME = "manifest.toml"
WASM_NAME = "guest.wasm"
ARTIFACT_DIR = "aot"
BUNDLE_SUFFIX = ".ngx"

MAX_INDEX_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 4 * 1024
MAX_MEMBER_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 128  # after the signature: the manifest, the .wasm and the artifacts
MAX_BUNDLE_BYTES = 1024 * 1024 * 1024

Channel = Literal["dev", "release"]
CHANNELS: tuple[Channel, ...] = ("dev", "release")
# How the .wasm was optimized: `dev` (watch mode's quick compiles) or `release` (every other build).
BuildProfile = Literal["dev", "release"]
BUILD_PROFILES: tuple[BuildProfile, ...] = ("dev", "release")
MemberKind = Literal["manifest", "wasm", "artifact"]
_HEX_DIGITS = "0123456789abcdef"
# An artifact's engine version, binding version, compiler and CPU feature names: what engines write, and
# nothing that could change how `ngixi inspect` or a note looks (these strings are the signer's to choose).
_ARTIFACT_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_ARTIFACT_PATH = re.compile(r"aot/[a-z0-9_]+(-[a-z0-9_.]+){0,3}\.(wasmer|cwasm)")
# Each engine's artifacts have their own suffix, so one triple can carry an artifact per engine.
_ARTIFACT_SUFFIXES = {"wasmer": "wasmer", "wasmtime": "cwasm"}


class ArtifactMeta(NamedTuple):
    engine: str
    engine_version: str
    binding_version: str
    compiler: str
    triple: str
    cpu_features: tuple[str, ...]
    wasm_sha256: str


class Member(NamedTuple):
    """A bundle member, stored as it is: `size` and the digests describe its bytes in the archive.

    Loads check `blake3` (the faster one); `sha256` is for tools that know only SHA-256, and a full read checks it too.
    """

    path: str
    kind: MemberKind
    size: int
    sha256: str
    blake3: str
    artifact: ArtifactMeta | None = None


class BundleIndex(NamedTuple):
    format: int
    guest: str
    version: str
    channel: Channel
    sequence: int
    members: tuple[Member, ...]
    # The manifest's TOML table as JSON: loads take it from here, not from parsing manifest.toml.
    manifest: Mapping[str, Any]
    # Absent from indexes written before dev builds existed: all of those were release builds.
    profile: BuildProfile = "release"

    def member(self, kind: MemberKind) -> Member:
        return next(m for m in self.members if m.kind == kind)

    def by_path(self, path: str) -> Member:
        return next(m for m in self.members if m.path == path)

    @property
    def artifacts(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.kind == "artifact")

    @property
    def artifact_engines(self) -> frozenset[str]:
        """The engines the bundle ships machine code for: those its author built it for."""
        return frozenset(m.artifact.engine for m in self.artifacts if m.artifact)


def trusted_comment(index: BundleIndex) -> str:
    """The signature's trusted comment: it repeats what the signer vouches for."""
    return f"ngixi-bundle guest={index.guest} version={index.version} channel={index.channel} sequence={index.sequence}"


def artifact_path(triple: str, engine: str) -> str:
    return f"{ARTIFACT_DIR}/{triple}.{_ARTIFACT_SUFFIXES.get(engine, engine)}"


def is_artifact_path(path: str) -> bool:
    """Whether `path` has the shape of an artifact member's path: aot/<triple>.wasmer or aot/<triple>.cwasm."""
    return _ARTIFACT_PATH.fullmatch(path) is not None


_TOP_KEYS = frozenset({"format", "guest", "version", "channel", "profile", "sequence", "members", "manifest"})
_MEMBER_KEYS = frozenset({"path", "kind", "size", "sha256", "blake3", "artifact"})
_ARTIFACT_KEYS = frozenset(ArtifactMeta._fields)
_ARTIFACT_TEXT_KEYS = tuple(k for k in ArtifactMeta._fields if k != "cpu_features")
_FIXED_PATHS = {"manifest": MANIFEST_NAME, "wasm": WASM_NAME}


class _Strict:
    """Typed reads from the index's JSON; any deviation is a VerificationError naming the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, message: str) -> VerificationError:
        """The error naming `field`; a key or value the signer chose is cut short in it (`printable.clipped`)."""
        return VerificationError(f"{self.source}: {INDEX_NAME}: {clipped(field, 200)}: {clipped(message, 1000)}")

    def get(self, table: Mapping[str, Any], key: str, kind: type, within: str = "") -> Any:
        """`table[key]`, which must be exactly of type `kind` (JSON's types: so no bool for int)."""
        value = table.get(key)
        if type(value) is not kind:
            raise self.fail(f"{within}.{key}" if within else key, f"missing or not {kind.__name__}")
        return value

    def keys(self, table: Mapping[str, Any], allowed: frozenset[str], field: str) -> None:
        if not allowed.issuperset(table):
            raise self.fail(field, f"unexpected keys {sorted(set(table) - allowed)}")


def _parse_artifact(raw: Mapping[str, Any], field: str, strict: _Strict) -> ArtifactMeta:
    strict.keys(raw, _ARTIFACT_KEYS, field)
    features = strict.get(raw, "cpu_features", list, field)
    if not all(type(f) is str and _ARTIFACT_WORD.fullmatch(f) for f in features):
        raise strict.fail(f"{field}.cpu_features", "must be names of letters, digits and _.+-")
    meta = ArtifactMeta(
        **{k: strict.get(raw, k, str, field) for k in _ARTIFACT_TEXT_KEYS}, cpu_features=tuple(features)
    )
    if not _is_hex_digest(meta.wasm_sha256):
        raise strict.fail(f"{field}.wasm_sha256", "is not a sha256 hex digest")
    for key in ("engine_version", "binding_version", "compiler"):
        if not _ARTIFACT_WORD.fullmatch(getattr(meta, key)):
            raise strict.fail(f"{field}.{key}", f"{getattr(meta, key)!r} is not a word of letters, digits and _.+-")
    if meta.engine not in _ARTIFACT_SUFFIXES:
        raise strict.fail(f"{field}.engine", f"{meta.engine!r} is not one of {tuple(_ARTIFACT_SUFFIXES)}")
    return meta


def _is_hex_digest(text: str) -> bool:
    """64 lower-case hex digits (`strip` leaves nothing only when every character is one)."""
    return len(text) == 64 and not text.strip(_HEX_DIGITS)


def _parse_size(raw: Mapping[str, Any], field: str, strict: _Strict) -> int:
    size: int = strict.get(raw, "size", int, field)
    if not 0 <= size <= MAX_MEMBER_BYTES:
        raise strict.fail(f"{field}.size", f"{size} is outside 0..{MAX_MEMBER_BYTES}")
    return size


def _parse_digest(raw: Mapping[str, Any], algorithm: str, field: str, strict: _Strict) -> str:
    digest: str = strict.get(raw, algorithm, str, field)
    if not _is_hex_digest(digest):
        raise strict.fail(f"{field}.{algorithm}", f"is not a {algorithm} hex digest (64 lower-case hex digits)")
    return digest


def _parse_member(raw: object, field: str, strict: _Strict) -> Member:
    if not isinstance(raw, dict):
        raise strict.fail(field, "must be an object")
    strict.keys(raw, _MEMBER_KEYS, field)
    kind = strict.get(raw, "kind", str, field)
    path = strict.get(raw, "path", str, field)
    expected_path = _FIXED_PATHS.get(kind)
    if kind == "artifact":
        if not is_artifact_path(path):
            raise strict.fail(f"{field}.path", f"{path!r} is not aot/<triple>.wasmer or aot/<triple>.cwasm")
        artifact = _parse_artifact(strict.get(raw, "artifact", dict, field), f"{field}.artifact", strict)
        if path != artifact_path(artifact.triple, artifact.engine):
            raise strict.fail(
                f"{field}.path",
                f"{path!r} does not match its triple {artifact.triple!r} and engine {artifact.engine!r}",
            )
    elif expected_path is None or path != expected_path:
        raise strict.fail(field, f"unexpected member {kind!r} at {path!r}")
    elif "artifact" in raw:
        raise strict.fail(f"{field}.artifact", "only artifacts carry this object")
    else:
        artifact = None
    size = _parse_size(raw, field, strict)
    sha256, blake3 = _parse_digest(raw, "sha256", field, strict), _parse_digest(raw, "blake3", field, strict)
    return Member(path, cast(MemberKind, kind), size, sha256, blake3, artifact)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects as dicts, refusing a repeated key (which plain `json` would silently overwrite)."""
    table = dict(pairs)
    if len(table) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        raise ValueError(f"an object repeats the key {next(key for key, _ in pairs if counts[key] > 1)!r}")
    return table


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _load_json(data: bytes, strict: _Strict) -> Any:
    try:
        text = data.decode("utf-8")
        loaded = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise strict.fail("(file)", f"not valid JSON: {error}") from None
    if _LONE_SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(loaded):
        raise strict.fail("(file)", "a string holds half of a UTF-16 surrogate pair, which is no character")
    return loaded


# JSON's \uD800-\uDFFF escapes, which name no character alone (a pair names one); Python's `json` takes a lone one
# into a string no file name, UTF-8 text or TOML can hold.
_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _holds_lone_surrogate(loaded: Any) -> bool:
    try:
        json.dumps(loaded, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_index(data: bytes, *, source: str) -> BundleIndex:
    """Parses index bytes that have already passed signature verification."""
    strict = _Strict(source)
    raw = _load_json(data, strict)
    if not isinstance(raw, dict):
        raise strict.fail("(top)", "must be a JSON object")
    strict.keys(raw, _TOP_KEYS, "(top)")
    if strict.get(raw, "format", int) != FORMAT_VERSION:
        raise strict.fail(
            "format",
            f"unsupported format {raw['format']}; this loader reads {FORMAT_VERSION}: "
            "rebuild the bundle with a matching ngixi-build",
        )
    channel = strict.get(raw, "channel", str)
    if channel not in CHANNELS:
        raise strict.fail("channel", f"{channel!r} is not one of {CHANNELS}")
    profile = strict.get(raw, "profile", str)
    if profile not in BUILD_PROFILES:
        raise strict.fail("profile", f"{profile!r} is not one of {BUILD_PROFILES}")
    listed = strict.get(raw, "members", list)
    if len(listed) > MAX_MEMBERS:
        raise strict.fail("members", f"lists {len(listed)} members, over the limit of {MAX_MEMBERS}")
    members = _members(data, source, listed)
    sequence = strict.get(raw, "sequence", int)
    if sequence < 0:
        raise strict.fail("sequence", f"{sequence} is negative")
    return BundleIndex(
        format=FORMAT_VERSION,
        guest=strict.get(raw, "guest", str),
        version=strict.get(raw, "version", str),
        channel=cast(Channel, channel),
        sequence=sequence,
        members=members,
        manifest=strict.get(raw, "manifest", dict),
        profile=cast(BuildProfile, profile),
    )


def _members(data: bytes, source: str, listed: list[Any]) -> tuple[Member, ...]:
    """The members the index `data` lists (`listed`, decoded from it), parsed and checked once per exact bytes and
    source in a process: the immutable result depends on them alone, so a host that loads again reuses it."""
    known = _PARSED_MEMBERS.get((data, source))
    if known is None:
        strict = _Strict(source)
        members = tuple(_parse_member(m, f"members[{i}]", strict) for i, m in enumerate(listed))
        _check_member_set(members, strict)
        known = _PARSED_MEMBERS.keep((data, source), members)
    return known


_PARSED_MEMBERS: Kept[tuple[bytes, str], tuple[Member, ...]] = Kept(64)


def _check_member_set(members: tuple[Member, ...], strict: _Strict) -> None:
    paths = [m.path for m in members]
    if len(set(paths)) != len(paths):
        raise strict.fail("members", "lists a path twice")
    kinds = [m.kind for m in members]
    if kinds[:2] != ["manifest", "wasm"] or set(kinds[2:]) - {"artifact"}:
        raise strict.fail("members", "must list the manifest, then the .wasm, then the artifacts")
    wasm_sha256 = members[1].sha256
    for position, member in enumerate(members):
        if member.artifact is not None and member.artifact.wasm_sha256 != wasm_sha256:
            raise strict.fail(
                f"members[{position}].artifact.wasm_sha256", f"built from another {WASM_NAME} than this bundle's"
            )
