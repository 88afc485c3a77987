"""Values as a Python dynamic provider receives them."""

from __future__ import annotations

from typing import Any, Mapping

from pulumi.runtime import rpc


def plain(value: Any) -> Any:
    """Strip Pulumi secret wrappers (the engine normally strips them for dynamic providers)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
