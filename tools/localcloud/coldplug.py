"""Block devices at boot: what udev's coldplug gives a VM, for a rebooted machine.

nspawn gives each boot a fresh /dev without udev, so before local-fs.target
a oneshot unit (written into the machine's root by the host) makes the device
nodes of the attached volumes and the links a VM has: the by-id name AWS gives
NVMe EBS volumes and /dev/disk/by-uuid/<uuid> for formatted ones. Then it
mounts fstab's entries with `mount -a`, because systemd-fstab-generator skips
device entries in a container ("Running in a container, ignoring fstab device
entry"); a `nofail` entry whose volume is gone is skipped and the boot goes on,
as on a VM. Mounts are done before local-fs.target, so before ordinary services.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .shell import run

UNIT = "localcloud-coldplug.service"
SCRIPT = "/etc/localcloud/coldplug.sh"

_UNIT_TEXT = f"""\
[Unit]
Description=Local cloud: block device nodes and /dev/disk links (udev coldplug on a VM)
DefaultDependencies=no
Before=local-fs-pre.target
Wants=local-fs-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh {SCRIPT}
ExecStart=/bin/mount -a
"""


def script(volumes) -> str:
    lines = ["#!/bin/sh", "set -eu", "mkdir -p /dev/disk/by-id /dev/disk/by-uuid"]
    for volume in volumes:
        rdev = os.stat(volume.loop).st_rdev
        name = os.path.basename(volume.loop)
        lines.append(f"[ -e /dev/{name} ] || mknod /dev/{name} b {os.major(rdev)} {os.minor(rdev)}")
        lines.append(f"ln -sfn ../../{name} {shlex.quote(volume.by_id)}")
        uuid = run(["blkid", "-s", "UUID", "-o", "value", volume.loop], check=False).strip()
        if uuid:
            lines.append(f"ln -sfn ../../{name} /dev/disk/by-uuid/{shlex.quote(uuid)}")
    return "\n".join(lines) + "\n"


def install(root: Path, volumes) -> None:
    """Write the script for these volumes and enable the unit, from the host side."""
    (root / SCRIPT.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    (root / SCRIPT.lstrip("/")).write_text(script(volumes))
    units = root / "etc" / "systemd" / "system"
    (units / UNIT).write_text(_UNIT_TEXT)
    wants = units / "local-fs-pre.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / UNIT
    if not link.is_symlink():
        link.symlink_to(f"../{UNIT}")
