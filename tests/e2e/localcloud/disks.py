"""Volumes: sparse files that live on while machines come and go, as EBS volumes do.

Attaching binds the file to a host loop device and hot-plugs it into the running
machine: a device node with the host's name (`/dev/loopN`, so libblkid's scan of
/proc/partitions finds it and `mount UUID=...` works without udev) and the
stable name AWS gives NVMe EBS volumes,
`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without dash>`.
"""

from __future__ import annotations

import os
import shlex
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

    @property
    def by_id(self) -> str:
        return by_id_path(self.volume_id)


def create_backing_file(path: Path, size_gib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as handle:
        handle.truncate(size_gib * 1024**3)


def plug(volume: Volume, machine: "Machine") -> str:
    """Bind the volume to a loop device and make it appear inside `machine`."""
    loop = run(["losetup", "-f", "--show", str(volume.path)]).strip()
    try:
        rdev = os.stat(loop).st_rdev
        major, minor = os.major(rdev), os.minor(rdev)
        node = f"/dev/{os.path.basename(loop)}"
        link = volume.by_id
        machine.check(
            "set -eu; "
            f"[ -e {node} ] || mknod {node} b {major} {minor}; "
            f"mkdir -p {BY_ID_DIR}; "
            f"ln -sfn {shlex.quote('../../' + os.path.basename(loop))} {shlex.quote(link)}"
        )
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
        node = f"/dev/{os.path.basename(loop)}"
        machine.ssh(f"rm -f {shlex.quote(volume.by_id)} {node}", timeout=30)
    if loop is not None:
        # A loop still mounted inside a machine is detached by the kernel once
        # that mount goes away (losetup -d sets autoclear on busy devices).
        run(["losetup", "-d", loop], check=False)
    volume.loop = None
    volume.attached_to = None
