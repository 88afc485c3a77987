"""The Pegasus server package that `pack_server` made: its name, hash and config template.

The tarball is read once per run, in one streaming pass that hashes it and
picks `bin/config.ini` on the way; the result is cached by path, size and
modification time, and the config template by the package's sha256.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, cast

# pegasus-server-{version}-{gitSHA7}-{platform}-{buildType}.tar.gz
PACKAGE_NAME = re.compile(
    r"pegasus-server-"
    r"(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)-"
    r"(?P<git_sha>[0-9a-f]{7,40})-"
    r"(?P<platform>[0-9A-Za-z._]+)-"
    r"(?P<build_type>release|debug|relwithdebinfo)"
    r"\.tar\.gz"
)
REQUIRED_MEMBERS = ("bin/pegasus_server", "bin/config.ini")


class PackageError(ValueError):
    """The package file is missing, misnamed or incomplete."""


@dataclass(frozen=True)
class PackageName:
    file_name: str
    version: str
    git_sha: str
    platform: str
    build_type: str

    @property
    def release(self) -> str:
        """The directory name `pack_server` gives the unpacked package."""
        return self.file_name[: -len(".tar.gz")]

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        major, minor, patch = self.version.split("-")[0].split(".")
        return int(major), int(minor), int(patch)


@dataclass(frozen=True)
class PackageInfo:
    path: str
    name: PackageName
    sha256: str
    size: int

    @property
    def version(self) -> str:
        return self.name.version

    @property
    def release(self) -> str:
        return self.name.release

    @property
    def file_name(self) -> str:
        return self.name.file_name


def parse_package_name(file_name: str) -> PackageName:
    match = PACKAGE_NAME.fullmatch(file_name)
    if not match:
        raise PackageError(
            f"{file_name!r} is not named as pack_server names a package: expected "
            "pegasus-server-<version>-<gitSHA>-<platform>-<buildType>.tar.gz, "
            "e.g. pegasus-server-2.5.0-8f3c2ab-glibc2.17-release.tar.gz"
        )
    return PackageName(file_name=file_name, **match.groupdict())


class _HashingReader:
    """A file wrapper that hashes every byte read through it."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.digest.update(chunk)
        return chunk


def _member_key(member_name: str) -> str:
    """'pegasus-server-.../bin/config.ini' or './bin/config.ini' -> 'bin/config.ini'."""
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    if len(parts) >= 2 and parts[-2] == "bin":
        return "/".join(parts[-2:])
    return "/".join(parts)


@lru_cache(maxsize=8)
def _scan(path: str, size: int, mtime_ns: int) -> tuple[str, frozenset[str], str | None]:
    """One pass over the tarball: (sha256, member keys under bin/, config.ini text)."""
    found: set[str] = set()
    config_text = None
    with open(path, "rb") as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|gz") as tar:  # reads only
                for member in tar:
                    key = _member_key(member.name)
                    if key in REQUIRED_MEMBERS:
                        found.add(key)
                        if key == "bin/config.ini" and member.isfile():
                            extracted = tar.extractfile(member)
                            config_text = extracted.read().decode("utf-8") if extracted else None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PackageError(f"{path} is not a readable .tar.gz: {exc}") from exc
        while reader.read(1 << 20):  # hash whatever tarfile did not need to read
            pass
    return reader.digest.hexdigest(), frozenset(found), config_text


_CONFIG_TEMPLATES: dict[str, str] = {}


def inspect_package(path: Path) -> PackageInfo:
    """Validate the package file and return its identity; raises PackageError."""
    name = parse_package_name(path.name)
    if not path.is_file():
        raise PackageError(f"{path} does not exist or is not a file")
    stat = path.stat()
    sha256, members, config_text = _scan(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    missing = [m for m in REQUIRED_MEMBERS if m not in members]
    if missing:
        raise PackageError(
            f"{path.name} lacks {', '.join(missing)}: build it with pack_server, "
            "which puts the server binary and the release's config.ini in bin/"
        )
    if config_text is not None:
        _CONFIG_TEMPLATES[sha256] = config_text
    return PackageInfo(path=os.fspath(path), name=name, sha256=sha256, size=stat.st_size)


def release_config_template(package: PackageInfo) -> str:
    """The release's own bin/config.ini, from the scan cached by sha256."""
    if package.sha256 not in _CONFIG_TEMPLATES:
        inspect_package(Path(package.path))
    return _CONFIG_TEMPLATES[package.sha256]
