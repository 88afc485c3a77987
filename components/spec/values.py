"""Checks of values shared by the AWS and the own-servers validation: names, paths, limits."""

from __future__ import annotations

import posixpath
import re

from components.spec.reader import ConfigReader

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
HOST_NAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
# Directories a mistaken appDir must never be, nor contain: destroy removes appDir.
SYSTEM_DIRS = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
    "/usr", "/var",
)
MAX_DATA_DISKS = 16


def check_path(r: ConfigReader, key: str, value: str) -> bool:
    if not SAFE_PATH.match(value):
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
