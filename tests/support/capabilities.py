"""Whether a process may do what a test needs, read from /proc/<pid>/status.

Growing a mounted ext4 file system (resize2fs online, EXT4_IOC_RESIZE_FS)
needs CAP_SYS_RESOURCE (fs/ext4/ioctl.c). A root that runs inside a
container may lack it, and so may every machine the local cloud boots there
(systemd-nspawn cannot grant more than its own bounding set).
"""

from __future__ import annotations

CAP_SYS_RESOURCE = 24  # include/uapi/linux/capability.h


def has_capability(status_text: str, capability: int, field: str = "CapEff") -> bool:
    """`status_text`: the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith(f"{field}:"):
            return bool(int(line.split()[1], 16) >> capability & 1)
    return False


def may_grow_mounted_file_systems() -> bool:
    with open("/proc/self/status", encoding="ascii") as status:
        return has_capability(status.read(), CAP_SYS_RESOURCE)


ONLINE_RESIZE_REASON = ("growing a mounted ext4 file system needs CAP_SYS_RESOURCE, which this machine's "
                        "root does not hold (a container without it)")
