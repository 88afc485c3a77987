"""Reads typed values out of the stack's nested config, recording every problem by its key.

Each problem says which key (`pegasus:<path>`), what is wrong and what to do;
`SpecError` reports them all at once, before anything is created.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Mapping, Sequence

from components.spec import keys

NAMESPACE = "pegasus"

INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")


class SpecError(ValueError):
    """Every problem of a stack's config, reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"the stack config has {len(problems)} problem(s); nothing was created:\n{lines}"
        )


class _Declared:
    """The default of a read: the key's declaration in keys.py."""


DECLARED: Any = _Declared()


def _declared_default(key: str, default: Any) -> Any:
    return keys.key(key).default if default is DECLARED else default


class ConfigReader:
    """Reads typed values out of nested config, recording problems by key path.

    A read's default, an object's known keys and a choice's options come from
    the key's declaration (keys.py) unless the caller gives them: a default
    that depends on other keys (ssh.user on the image, say).
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, key: str, what: str, fix: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {what}; {fix}")

    def obj(self, raw: Mapping[str, Any], key: str) -> dict[str, Any]:
        allowed = keys.children(key)
        value = raw.get(key.rsplit(".", 1)[-1])
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key, f"must be an object, got {type(value).__name__}",
                         f"write it as a YAML mapping with keys {', '.join(allowed)}")
            return {}
        for unknown in sorted(set(value) - set(allowed)):
            self.problem(f"{key}.{unknown}", "is not a known key", known_keys_fix(unknown, allowed))
        return dict(value)

    def integer(self, raw: Mapping[str, Any], key: str, default: int | None = DECLARED) -> int | None:
        default = _declared_default(key, default)
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            self.problem(key, f"must be a whole number, got {value!r}", "write it without quotes or units")
            return default
        return int(value)

    def boolean(self, raw: Mapping[str, Any], key: str, default: bool = DECLARED) -> bool:
        default = _declared_default(key, default)
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(key, f"must be true or false, got {value!r}", "write true or false")
        return default

    def string(self, raw: Mapping[str, Any], key: str, default: str | None = DECLARED) -> str | None:
        default = _declared_default(key, default)
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {type(value).__name__}", "quote the value")
            return default
        return value

    def choice(self, raw: Mapping[str, Any], key: str) -> str:
        default, choices = keys.key(key).default, keys.key(key).choices
        value = self.string(raw, key, default)
        if value is None or value not in choices:
            self.problem(key, f"{value!r} is not supported", f"use one of {', '.join(choices)}")
            return default
        return value

    def instance_type(self, raw: Mapping[str, Any], key: str) -> str:
        default = keys.key(key).default
        value = self.string(raw, key, default)
        if value is None:
            return default
        if not INSTANCE_TYPE.fullmatch(value):
            self.problem(key, f"{value!r} is not an EC2 instance type", "use a name such as m6i.large")
        return value


def known_keys_fix(unknown: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6) or \
        [k for k in allowed if k.lower() == unknown.lower()]
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}remove it or use one of {', '.join(allowed)}"
