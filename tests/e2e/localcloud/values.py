"""Registered inputs in a JSON form that compares the way Pulumi's diff does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime.rpc import UNKNOWN


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for directory, subdirs, files in sorted(os.walk(path)):
        subdirs.sort()
        for name in sorted(files):
            full = Path(directory) / name
            digest.update(str(full.relative_to(path)).encode() + b"\0")
            digest.update(_file_digest(full).encode())
    return digest.hexdigest()


_SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc's secret signature
_SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def unwrap_secrets(value: Any) -> Any:
    """Mocks receive secret inputs as {sig: secret, value: ...}: take the value out."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def normalize(value: Any) -> Any:
    """Assets/archives -> dicts carrying a content hash; unknowns -> UNKNOWN; the rest JSON-able."""
    if isinstance(value, Unknown):  # an input not known at preview (the SDK hands mocks Unknown())
        return UNKNOWN
    if isinstance(value, pulumi.StringAsset):
        return {"__asset": "string", "text": value.text,
                "sha256": hashlib.sha256(value.text.encode()).hexdigest()}
    if isinstance(value, pulumi.FileAsset):
        return {"__asset": "file", "path": str(value.path), "sha256": _file_digest(Path(value.path))}
    if isinstance(value, pulumi.FileArchive):
        path = Path(value.path)
        digest = _tree_digest(path) if path.is_dir() else _file_digest(path)
        return {"__archive": "file", "path": str(value.path), "sha256": digest}
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return {"__asset": type(value).__name__, "repr": repr(value)}
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def without(mapping: dict, *keys: str) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """Property paths (`connection.host`, `create`) holding a value unknown at preview."""
    if isinstance(value, Unknown) or value == UNKNOWN:
        return [path or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unknown_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in unknown_paths(v, f"{path}[{i}]")]
    return []
