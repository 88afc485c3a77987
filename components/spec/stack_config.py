"""Read the stack's `pegasus:*` config out of the Pulumi runtime, untyped.

`pulumi.Config` only answers for keys one asks for; the spec also wants to see
keys nobody asked for (typos), and which keys are secrets.
"""

from __future__ import annotations

import json
from typing import Any

from pulumi.runtime import config as runtime_config

from components.spec.reader import NAMESPACE


def _all_config() -> dict[str, Any]:
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def read_stack_config() -> tuple[dict[str, Any], set[str]]:
    """(values of every `pegasus:` key, JSON objects decoded; the secret keys)."""
    values: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, raw in _all_config().items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.startswith("config:"):  # Pulumi's legacy "ns:config:key" spelling
            name = name[len("config:"):]
        values[name] = _decode(raw)
    secret = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return values, {k for k in secret if k.startswith(prefix)}


def _decode(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if text[:1] in "{[" or text in ("true", "false") or text.isdigit():
        try:
            return json.loads(text)
        except ValueError:
            return raw
    return raw
