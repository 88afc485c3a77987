"""The Pegasus admin tools package that `pack_tools` made: its name, hash and layout.

scripts/pack_tools.sh (v2.5.0) names it
`pegasus-tools-{version}-{gitSHA7}-glibc{version}-{buildType}.tar.gz` and lays out,
below one top directory of that name, `run.sh`, the shell at
`bin/pegasus_shell/pegasus_shell`, its libraries in `lib/`, `scripts/` and the
shell's config template `src/shell/config.ini`. The rolling restart runs
`./run.sh shell` from the unpacked directory, which needs all of these.
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

from components.spec.server_package import PackageError

TOOLS_NAME = re.compile(
    r"pegasus-tools-"
    r"(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)-"
    r"(?P<git_sha>[0-9a-f]{7,40})-"
    r"(?P<platform>[0-9A-Za-z._]+)-"
    r"(?P<build_type>release|debug|relwithdebinfo)"
    r"\.tar\.gz"
)
REQUIRED_MEMBERS = ("run.sh", "bin/pegasus_shell/pegasus_shell", "src/shell/config.ini")


@dataclass(frozen=True)
class ToolsPackage:
    path: str
    file_name: str
    version: str
    sha256: str

    @property
    def release(self) -> str:
        """The directory name pack_tools gives the unpacked package."""
        return self.file_name[: -len(".tar.gz")]


def _member_key(name: str) -> str:
    """'pegasus-tools-.../bin/pegasus_shell/pegasus_shell' -> 'bin/pegasus_shell/pegasus_shell'."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts[1:]) if parts and parts[0].startswith("pegasus-tools-") else "/".join(parts)


@lru_cache(maxsize=4)
def _scan(path: str, size: int, mtime_ns: int) -> tuple[str, frozenset[str], bool]:
    """One pass: (sha256, required members found as files, a lib/ entry seen)."""
    found: set[str] = set()
    has_lib = False
    digest = hashlib.sha256()

    class Hashing:
        def __init__(self, raw) -> None:
            self.raw = raw

        def read(self, n: int = -1) -> bytes:
            chunk = self.raw.read(n)
            digest.update(chunk)
            return chunk

    with open(path, "rb") as raw:
        reader = Hashing(raw)
        try:
            with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|gz") as tar:
                for member in tar:
                    key = _member_key(member.name)
                    if key in REQUIRED_MEMBERS and member.isfile():
                        found.add(key)
                    has_lib |= key.startswith("lib/") and member.isfile()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PackageError(f"{path} is not a readable .tar.gz: {exc}") from exc
        while reader.read(1 << 20):
            pass
    return digest.hexdigest(), frozenset(found), has_lib


def inspect_tools_package(path: Path) -> ToolsPackage:
    """Validate the tools package file and return its identity; raises PackageError."""
    match = TOOLS_NAME.fullmatch(path.name)
    if not match:
        raise PackageError(
            f"{path.name!r} is not named as pack_tools names a package: expected "
            "pegasus-tools-<version>-<gitSHA>-<platform>-<buildType>.tar.gz, "
            "e.g. pegasus-tools-2.5.0-8f3c2ab-glibc2.17-release.tar.gz")
    if not path.is_file():
        raise PackageError(f"{path} does not exist or is not a file")
    stat = path.stat()
    sha256, members, has_lib = _scan(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    missing = [m for m in REQUIRED_MEMBERS if m not in members] + ([] if has_lib else ["lib/ (the shell's libraries)"])
    if missing:
        raise PackageError(
            f"{path.name} lacks {', '.join(missing)}: build it with pack_tools (./run.sh pack_tools), "
            "which lays out run.sh, the shell, its libraries and its config template")
    return ToolsPackage(path=os.fspath(path), file_name=path.name, version=match.group("version"), sha256=sha256)
