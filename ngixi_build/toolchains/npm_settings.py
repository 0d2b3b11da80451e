"""A guest's `.npmrc`, which npm reads beside the package.json it installs: only settings that cannot run a program,
read or write a file elsewhere, weaken TLS, route traffic or carry credentials, each with a value of its kind.

npm 10 reads `.npmrc` as ini: lines split at any CR or LF, `#` or `;` starts a comment line, `key=value` (a key
alone is `true`), a value either quoted (JSON) or cut at its first `;` or `#` not escaped by `\\`, each trimmed
as JavaScript trims (a byte order mark too), and `${VAR}` anywhere is replaced by the environment's value. Every
other key (`git`, `script-shell`, `node-options`, `prefix`, `cache`, `userconfig`, `globalconfig`, `init-module`,
`proxy`, `cafile`, `strict-ssl`, …), an auth line (`_auth`, `_authToken`, `//host/:…`), a `[section]`, a `${VAR}`,
and a registry reached without TLS (other than on this machine) or with a user and password in its URL are refused:
npm sends the user's token for a registry's host whatever its scheme.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import KEY_FILE_LIMIT, read_input_text
from ngixi_runtime.registry.names import is_loopback_host

_BOOLEAN = re.compile(r"^(true|false|)$")
_NUMBER = re.compile(r"^[0-9]{1,9}$")
_REGISTRY = re.compile(r"^https?://[A-Za-z0-9._~:/?&=%+@!,*-]+$")
_SCOPED_REGISTRY = re.compile(r"^@[a-z0-9][a-z0-9._-]*:registry$")
_ALLOWED: dict[str, re.Pattern[str]] = {
    "registry": _REGISTRY,
    **dict.fromkeys(
        (
            "save-exact",
            "legacy-peer-deps",
            "strict-peer-deps",
            "engine-strict",
            "audit",
            "fund",
            "progress",
            "update-notifier",
            "prefer-offline",
            "prefer-online",
            "offline",
            "package-lock",
        ),
        _BOOLEAN,
    ),
    **dict.fromkeys(
        ("fetch-retries", "fetch-retry-factor", "fetch-retry-mintimeout", "fetch-retry-maxtimeout", "fetch-timeout"),
        _NUMBER,
    ),
    "save-prefix": re.compile(r"^[~^]?$"),
    "loglevel": re.compile(r"^(silent|error|warn|notice|http|info|verbose|silly)$"),
}
# What JavaScript's trim() and `\\s` take for white space (Python's `\\s` differs: it takes \\x1c-\\x1f, not U+FEFF).
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_COMMENT = re.compile(f"^[{_JS_SPACE}]*([#;].*)?$", re.DOTALL)
_MOVE = "move it to your own ~/.npmrc"


def check_npm_settings(path: Path) -> None:
    """Refuses `path`, if it exists, at its first line npm would take but this module does not allow: one line naming
    the file, the line and what to do."""
    if not path.exists() and not path.is_symlink():
        return
    text = read_input_text(path, what="a guest's npm settings", limit=KEY_FILE_LIMIT)
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        problem = _problem(line)
        if problem is not None:
            raise InvalidInput(f"{path}:{number}: {problem}")


def _problem(line: str) -> str | None:
    if _COMMENT.match(line):
        return None
    if "${" in line:
        return f"npm would put your environment's values in place of ${{…}}; {_MOVE}"
    raw_key, equals, raw_value = line.partition("=")
    key = raw_key.strip(_JS_SPACE)
    if key.startswith("[") or key.startswith("//") or key.startswith("_") or ":_" in key:
        return f"{key!r} is a section or credentials, never a guest's; {_MOVE}"
    registry = _SCOPED_REGISTRY.match(key) or key == "registry"
    pattern = _REGISTRY if registry else _ALLOWED.get(key)
    if pattern is None:
        allowed = ", ".join(["@scope:registry", *_ALLOWED])
        return f"{key!r} is not a setting a guest may give npm (a guest's .npmrc may set {allowed}); {_MOVE}"
    value = _ini_value(raw_value) if equals else ""
    if value is None or not pattern.match(value) or (registry and not _registry_safe(value)):
        return f"{key}={raw_value.strip(_JS_SPACE)} is not a value npm takes for {key} here; {_MOVE}"
    return None


def _ini_value(raw: str) -> str | None:
    """The value npm's ini takes from the text after `=`, or None for a quoted one that is not a JSON string."""
    value = raw.strip(_JS_SPACE)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, str) else None
    if value[:1] == "'" or value[:1] == '"':
        return None  # single quotes (their inside parsed as JSON again), or an unmatched quote: not followed here
    kept, escaped = [], False
    for character in value:
        if escaped:
            kept.append(character if character in "\\;#" else "\\" + character)
            escaped = False
        elif character in ";#":
            break
        elif character == "\\":
            escaped = True
        else:
            kept.append(character)
    return ("".join(kept) + ("\\" if escaped else "")).strip(_JS_SPACE)


def _registry_safe(url: str) -> bool:
    """Whether npm would reach `url` over TLS (or on this machine) and with no credentials of the file's own."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return False
    return parts.scheme == "https" or is_loopback_host(parts.hostname)
