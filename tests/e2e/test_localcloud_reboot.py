"""Rebooting a machine keeps its disks and NICs; fstab's mounts come back as on a VM."""

from __future__ import annotations

import textwrap
import time

import pytest

from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]


def test_reboot_keeps_disks_and_nics_and_mounts_fstab_by_uuid(local_cloud):
    machine = local_cloud.boot_machine("rebooted")
    volume_id = "vol-0a1b2c3d4e5f60799"
    path = local_cloud.attach_volume(machine, volume_id, size_gib=1)
    nic_ip = local_cloud.attach_nic(machine, "02:5e:aa:bb:cc:09")
    machine.check(textwrap.dedent(f"""\
        set -eu
        mkfs.ext4 -q {path}
        uuid=$(blkid -s UUID -o value {path})
        mkdir -p /data/ssd1 /data/gone
        echo "UUID=$uuid /data/ssd1 ext4 defaults,noatime,nofail 0 2" >> /etc/fstab
        # A volume that is no longer attached: nofail lets the boot go on without it.
        echo "UUID=00000000-0000-4000-8000-000000000000 /data/gone ext4 defaults,nofail 0 2" >> /etc/fstab
        mount /data/ssd1
        echo kept > /data/ssd1/marker
        """))
    uuid = machine.check(f"blkid -s UUID -o value {path}").strip()
    old_pid = machine.process.pid

    started = time.monotonic()
    local_cloud.reboot_machine(machine)
    print(f"reboot took {time.monotonic() - started:.1f}s")

    assert machine.process.pid != old_pid and machine.is_running()
    # Mounted by systemd from fstab at boot, through the by-uuid link; the by-id path stays.
    assert machine.check("findmnt -n -o TARGET --source " + f"UUID={uuid}").strip() == "/data/ssd1"
    assert machine.check("cat /data/ssd1/marker").strip() == "kept"
    assert machine.check("systemctl is-active data-ssd1.mount").strip() == "active"
    machine.check(f"test -b {path} && test -L /dev/disk/by-uuid/{uuid}")
    assert machine.check("findmnt -n /data/gone || true").strip() == ""
    # The extra NIC (same MAC, same address) and the primary address are still there.
    assert f" {nic_ip}/24 " in machine.check("ip -4 -o addr")
    assert "02:5e:aa:bb:cc:09" in machine.check("ip -o link")
    assert machine.check("hostname").strip() == "rebooted"
