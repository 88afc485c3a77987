"""Reads typed values out of the stack's nested config, recording every problem by its key.

Each problem says which key (`pegasus:<path>`), what is wrong and what to do;
`SpecError` reports them all at once, before anything is created.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Mapping, Sequence

NAMESPACE = "pegasus"

INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


class SpecError(ValueError):
    """Every problem of a stack's config, reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"the stack config has {len(problems)} problem(s); nothing was created:\n{lines}"
        )


class ConfigReader:
    """Reads typed values out of nested config, recording problems by key path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, key: str, what: str, fix: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {what}; {fix}")

    def obj(self, raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
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

    def integer(self, raw: Mapping[str, Any], key: str, default: int | None) -> int | None:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            self.problem(key, f"must be a whole number, got {value!r}", "write it without quotes or units")
            return default
        return int(value)

    def boolean(self, raw: Mapping[str, Any], key: str, default: bool) -> bool:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(key, f"must be true or false, got {value!r}", "write true or false")
        return default

    def string(self, raw: Mapping[str, Any], key: str, default: str | None) -> str | None:
        value = raw.get(key.rsplit(".", 1)[-1], default)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {type(value).__name__}", "quote the value")
            return default
        return value

    def choice(self, raw: Mapping[str, Any], key: str, default: str, choices) -> str:
        value = self.string(raw, key, default)
        if value is None or value not in choices:
            self.problem(key, f"{value!r} is not supported", f"use one of {', '.join(choices)}")
            return default
        return value

    def instance_type(self, raw: Mapping[str, Any], key: str, default: str) -> str:
        value = self.string(raw, key, default)
        if value is None:
            return default
        if not INSTANCE_TYPE.match(value):
            self.problem(key, f"{value!r} is not an EC2 instance type", "use a name such as m6i.large")
        return value


def known_keys_fix(unknown: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(unknown, allowed, n=1, cutoff=0.6) or \
        [k for k in allowed if k.lower() == unknown.lower()]
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}remove it or use one of {', '.join(allowed)}"
