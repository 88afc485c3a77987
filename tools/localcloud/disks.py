"""Volumes: sparse files that live on while machines come and go, as EBS volumes do.

Attaching binds the file to a host loop device and hot-plugs it into the running
machine: a device node with the host's name (`/dev/loopN`, so libblkid's scan of
/proc/partitions finds it and `mount UUID=...` works without udev) and the
stable name AWS gives NVMe EBS volumes,
`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without dash>`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .shell import run

if TYPE_CHECKING:
    from .machines import Machine

BY_ID_DIR = "/dev/disk/by-id"


def by_id_path(volume_id: str) -> str:
    return f"{BY_ID_DIR}/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


@dataclass
class Volume:
    volume_id: str
    size_gib: int
    path: Path
    attached_to: "Machine | None" = None
    loop: str | None = None  # /dev/loopN on the host while attached
    by_id_name: str | None = None  # a disk of one's own server; None: an EBS volume's name

    @property
    def by_id(self) -> str:
        return f"{BY_ID_DIR}/{self.by_id_name}" if self.by_id_name else by_id_path(self.volume_id)


def create_backing_file(path: Path, size_gib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.truncate(size_gib * 1024**3)


def plug(volume: Volume, machine: "Machine") -> str:
    """Bind the volume to a loop device and make it appear inside `machine`."""
    loop = run(["losetup", "-f", "--show", str(volume.path)]).strip()
    try:
        rdev = os.stat(loop).st_rdev
        # Hot-plug from the host side (as the hypervisor does), not over SSH: the
        # machine's firewall must not stand between it and its disks.
        root = machine.root_of_running()
        node = root / "dev" / os.path.basename(loop)
        if not node.exists():
            os.mknod(node, stat.S_IFBLK | 0o660, os.makedev(os.major(rdev), os.minor(rdev)))
        link = root / volume.by_id.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"../../{os.path.basename(loop)}")
    except Exception:
        run(["losetup", "-d", loop], check=False)
        raise
    volume.loop = loop
    volume.attached_to = machine
    return volume.by_id


def unplug(volume: Volume) -> None:
    """Remove the device from its machine (if still running) and free the loop."""
    machine, loop = volume.attached_to, volume.loop
    if machine is not None and loop is not None and machine.is_running():
        try:
            root = machine.root_of_running()
            for path in (root / volume.by_id.lstrip("/"), root / "dev" / os.path.basename(loop)):
                if path.is_symlink() or path.exists():
                    path.unlink()
        except (OSError, RuntimeError):
            pass  # the machine is going down
    if loop is not None:
        # A loop still mounted inside a machine is detached by the kernel once
        # that mount goes away (losetup -d sets autoclear on busy devices).
        run(["losetup", "-d", loop], check=False)
    volume.loop = None
    volume.attached_to = None
