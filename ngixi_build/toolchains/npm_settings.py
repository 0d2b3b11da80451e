"""A guest's `.npmrc`, which npm reads beside the package.json it installs: only settings that cannot run a program,
read or write a file elsewhere, weaken TLS, route traffic or carry credentials, each with a value of its kind.

npm 10 reads `.npmrc` as ini: lines split at any CR or LF, `#` or `;` starts a comment line, `key=value` (a key
alone is `true`), and `${VAR}` anywhere is replaced by the environment's value. Every other key (`git`,
`script-shell`, `node-options`, `prefix`, `cache`, `userconfig`, `globalconfig`, `init-module`, `proxy`, `cafile`,
`strict-ssl`, …), an auth line (`_auth`, `_authToken`, `//host/:…`), a `[section]` and a `${VAR}` are refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from ngixi_runtime.errors import InvalidInput
from ngixi_runtime.files import KEY_FILE_LIMIT, read_input_text

_BOOLEAN = re.compile(r"^(true|false|)$")
_NUMBER = re.compile(r"^[0-9]{1,9}$")
_REGISTRY = re.compile(r"^https?://[A-Za-z0-9._~:/?&=%+@!,*-]+$")
_SCOPED_REGISTRY = re.compile(r"^@[a-z0-9][a-z0-9._-]*:registry$")
ALLOWED: dict[str, re.Pattern[str]] = {
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
_COMMENT = re.compile(r"^\s*([#;].*)?$")
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
    key, _equals, value = (part.strip() for part in line.partition("="))
    if key.startswith("[") or key.startswith("//") or key.startswith("_") or ":_" in key:
        return f"{key!r} is a section or credentials, never a guest's; {_MOVE}"
    pattern = _REGISTRY if _SCOPED_REGISTRY.match(key) else ALLOWED.get(key)
    if pattern is None:
        allowed = ", ".join(["@scope:registry", *ALLOWED])
        return f"{key!r} is not a setting a guest may give npm (a guest's .npmrc may set {allowed}); {_MOVE}"
    if not pattern.match(value if _equals else ""):
        return f"{key}={value} is not a value npm takes for {key} here; {_MOVE}"
    return None
