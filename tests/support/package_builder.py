"""Build fake Pegasus server packages shaped like the output of `pack_server`.

The tarball holds one top-level directory named like the package, with `bin/`
inside: the server binary (our stand-in, or a placeholder that exits 1), the
release's `config.ini` template, `config.min.ini` and a shared library, since
the real package ships its libraries in `bin/`. Output is byte-for-byte
reproducible for equal inputs, so tests may compare sha256 digests.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
STANDIN = Path(__file__).resolve().parent.parent / "e2e" / "standin" / "pegasus_server.py"
SHELL_STANDIN = STANDIN.parent / "pegasus_shell.py"
CLIENT_STANDIN = STANDIN.parent / "standin_client.py"  # the shell stand-in imports its GET
METRICS_STANDIN = STANDIN.parent / "standin_metrics.py"  # the server stand-in's metrics, beside it in bin/
TOOLS_STANDIN = STANDIN.parent / "tools"

SHEBANG = b"#!/usr/bin/env python3\n"
PLACEHOLDER_SERVER = b"#!/bin/sh\nexit 1\n"
FAKE_LIBRARY = b"\x7fELF not really: pegasus stand-in library\n"
FIXED_MTIME = 1_700_000_000  # any constant works; a constant keeps digests stable

# A short config in the spirit of the release's config.min.ini (used for onebox runs).
CONFIG_MIN = """\
; short variant of config.ini for a single-machine trial; not used by deployments
[core]
  data_dir = %{app.dir}

[network]
  primary_interface = lo
  io_service_worker_count = 2

[meta_server]
  server_list = %{meta.server.list}
  cluster_root = /pegasus/%{cluster.name}

[zookeeper]
  hosts_list = %{zk.server.list}
"""


def package_name(version: str, git_sha: str, platform: str, build_type: str) -> str:
    """`pegasus-server-{version}-{gitSHA}-{platform}-{buildType}`, as pack_server names it."""
    for label, part in (("version", version), ("git_sha", git_sha), ("platform", platform),
                        ("build_type", build_type)):
        if not part or "/" in part or part.strip() != part:
            raise ValueError(f"package {label} {part!r} must be a non-empty word without '/' or spaces")
    return f"pegasus-server-{version}-{git_sha}-{platform}-{build_type}"


def fixture_for_version(version: str) -> Path:
    """config.ini fixture of a release: 2.4, 2.5, or 2.6 (master) for 2.6 and later."""
    match = re.match(r"^(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"version {version!r} does not start with major.minor")
    major_minor = (int(match.group(1)), int(match.group(2)))
    if major_minor < (2, 4):
        raise ValueError(f"version {version!r}: only Pegasus 2.4 and later are modelled")
    return FIXTURES / {(2, 4): "config-2.4.ini", (2, 5): "config-2.5.ini"}.get(major_minor, "config-2.6.ini")


def server_binary(server: str, version: str = "2.5.0", git_sha: str = "0000000") -> bytes:
    """The stand-in with its RELEASE and GIT_COMMIT stamped (it models the release it is)."""
    if server == "placeholder":
        return PLACEHOLDER_SERVER
    if server == "standin":
        return _stamp(STANDIN, {"RELEASE": version, "GIT_COMMIT": git_sha})
    raise ValueError(f"server {server!r} must be 'standin' or 'placeholder'")


def _stamp(path: Path, values: dict[str, str]) -> bytes:
    """A stand-in's source with its module constants (RELEASE, ...) set."""
    source = path.read_text(encoding="utf-8")
    for name, val in values.items():
        source, count = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{val}"', source, count=1, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"{path.name} has no {name} line to stamp")
    data = source.encode("utf-8")
    return data if data.startswith(SHEBANG) else SHEBANG + data


def _entry(name: str, mode: int, data: bytes | None = None) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = tarfile.TarInfo(name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = mode
    if data is None:
        info.type = tarfile.DIRTYPE
        return info, None
    info.size = len(data)
    return info, io.BytesIO(data)


def _write_tarball(dest_dir: Path, top: str, dirs: list[str], files: dict[str, tuple[int, bytes]]) -> Path:
    entries = [_entry(f"{top}/{d}", 0o755) for d in ["", *dirs]]
    entries += [_entry(name, mode, data) for name, (mode, data) in sorted(files.items())]
    buffer = io.BytesIO()
    # gzip with mtime 0 and no file name in its header: the digest depends on content only.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for info, data in entries:
                tar.addfile(info, data)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{top}.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


def build_package(dest_dir: Path, *, version: str = "2.5.0", git_sha: str = "8f3c2ab",
                  platform: str = "glibc2.17", build_type: str = "release",
                  config_ini: str | None = None, server: str = "standin") -> Path:
    """Write `<package name>.tar.gz` into dest_dir and return its path."""
    top = package_name(version, git_sha, platform, build_type)
    config = config_ini if config_ini is not None else fixture_for_version(version).read_text(encoding="utf-8")
    files = {
        f"{top}/bin/config.ini": (0o644, config.encode("utf-8")),
        f"{top}/bin/config.min.ini": (0o644, CONFIG_MIN.encode("utf-8")),
        f"{top}/bin/libpegasus_standin.so": (0o755, FAKE_LIBRARY),
        f"{top}/bin/pegasus_server": (0o755, server_binary(server, version, git_sha)),
    }
    if server == "standin":
        files[f"{top}/bin/standin_metrics.py"] = (0o644, METRICS_STANDIN.read_bytes())
    if tuple(int(part) for part in version.split(".")[:2]) >= (2, 4):
        # What the real binary's ELF header asks the loader for beyond bin/ (the stand-in reads it).
        files[f"{top}/bin/NEEDED"] = (0o644, b"libjvm.so\n")
    return _write_tarball(dest_dir, top, ["bin/"], files)


# The shell's config template (src/shell/config.ini in the package): run.sh fills
# @CLUSTER_NAME@ and @CLUSTER_ADDRESS@; the shell reads [pegasus.clusters].
SHELL_CONFIG = """\
; the admin shell's config; run.sh shell substitutes the cluster name and address
[core]
  data_dir = ./pegasus_shell.data

[pegasus.clusters]
  @CLUSTER_NAME@ = @CLUSTER_ADDRESS@
"""


def tools_package_name(version: str, git_sha: str, platform: str, build_type: str) -> str:
    """`pegasus-tools-{version}-{gitSHA7}-{platform}-{buildType}`, as pack_tools (v2.5.0) names it."""
    return package_name(version, git_sha, platform, build_type).replace("pegasus-server-", "pegasus-tools-", 1)


def build_tools_package(dest_dir: Path, *, version: str = "2.5.0", git_sha: str = "8f3c2ab",
                        platform: str = "glibc2.17", build_type: str = "release",
                        omit: tuple[str, ...] = ()) -> Path:
    """Write a `pack_tools`-shaped `<name>.tar.gz` (scripts/pack_tools.sh, v2.5.0): run.sh,
    bin/pegasus_shell/pegasus_shell, lib/, scripts/migrate_node.sh and downgrade_node.sh,
    src/shell/config.ini and VERSION; the shell and scripts are the stand-ins.
    `omit`: member paths (below the top directory) left out, for tests of refusals."""
    top = tools_package_name(version, git_sha, platform, build_type)
    node_tool = (TOOLS_STANDIN / "node_tool.sh").read_bytes()
    files = {
        "run.sh": (0o755, (TOOLS_STANDIN / "run.sh").read_bytes()),
        "bin/pegasus_shell/pegasus_shell": (0o755, _stamp(SHELL_STANDIN, {"RELEASE": version})),
        "bin/pegasus_shell/standin_client.py": (0o644, CLIENT_STANDIN.read_bytes()),
        "lib/libpegasus_standin.so": (0o644, FAKE_LIBRARY),  # pack_tools: chmod -x lib/*
        "scripts/migrate_node.sh": (0o755, node_tool),
        "scripts/downgrade_node.sh": (0o755, node_tool),
        "src/shell/config.ini": (0o644, SHELL_CONFIG.encode("utf-8")),
        # pack_tools writes $platform, which it never sets: two spaces before the build type.
        "VERSION": (0o644, f"Pegasus Tools {version} ({git_sha})  {build_type}\n".encode("utf-8")),
    }
    files = {f"{top}/{name}": entry for name, entry in files.items() if name not in omit}
    return _write_tarball(dest_dir, top, ["bin/", "bin/pegasus_shell/", "lib/", "scripts/", "src/", "src/shell/"],
                          files)
