"""Checks of values shared by the AWS and the own-servers validation: names, paths, limits."""

from __future__ import annotations

import posixpath
import re

from components.spec.reader import ConfigReader

# Every pattern is matched against the whole value (`fullmatch`): with `match` and `$`, a
# value ending in a newline passed, and reached scripts, ssh's command line and ZooKeeper.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# A DNS name or an IPv4 address: dot-separated labels of letters, digits and inner hyphens, so
# never starting with `-` (ssh would read it as an option).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
# A login name as useradd(8) takes it on Debian and Ubuntu (NAME_REGEX, 32 characters at most),
# also with upper-case letters and dots: never starting with `-`, no space or shell character.
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
# A user this program makes (serverUser): what useradd takes on Debian and Ubuntu without
# --badname (its NAME_REGEX, without the trailing $ of machine accounts).
SERVER_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Directories a mistaken appDir must never be, nor contain: destroy removes appDir.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/var",
)
MAX_DATA_DISKS = 16


def check_path(r: ConfigReader, key: str, value: str) -> bool:
    if not SAFE_PATH.fullmatch(value):
        r.problem(key, f"{value!r} must be an absolute path of letters, digits and . _ - / only "
                  "(it is used in shell scripts and config files)", "pick a plain absolute path")
        return False
    if posixpath.normpath(value) != value or "/../" in f"{value}/" or "/./" in f"{value}/":
        r.problem(key, f"{value!r} is not normalised", f"write it as {posixpath.normpath(value)!r}")
        return False
    if value == "/":
        r.problem(key, "must not be /", "use a dedicated directory such as /home/work")
        return False
    return True


def is_within(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")
