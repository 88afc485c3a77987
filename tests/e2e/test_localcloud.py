"""The local cloud itself: machines, SSH, volumes, NICs, and complete teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import paramiko
import pytest

from tools.localcloud import LocalCloud, by_id_path, sweep_leftovers
from tools.localcloud.leftovers import loops_backed_under, processes_in_netns, runs_root
from tools.localcloud.network import PREFIX, list_links, list_netns
from tools.localcloud.ssh import run_over_ssh
from tests.e2e.localcloud.testing import skip_unless_local_cloud_possible

pytestmark = [pytest.mark.e2e, skip_unless_local_cloud_possible()]

PROJECT_DIR = Path(__file__).resolve().parents[2]


def traces_of(tag: str, run_dir: Path) -> dict[str, list]:
    """Everything of run `tag` still present on the host."""
    namespaces = [n for n in list_netns() if n.startswith(f"{PREFIX}{tag}-")]
    return {
        "netns": namespaces,
        "links": [n for n in list_links() if n.startswith(f"{PREFIX}{tag}-")],
        "loops": loops_backed_under(run_dir) if run_dir.exists() else [],
        "processes": [pid for n in namespaces for pid in processes_in_netns(n)],
        "files": [str(run_dir)] if run_dir.exists() else [],
    }


NOTHING = {"netns": [], "links": [], "loops": [], "processes": [], "files": []}


def test_machines_boot_with_systemd_and_reach_each_other_over_ssh(local_cloud):
    first = local_cloud.boot_machine("first")
    first.check("ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
    first_key = first.check("cat /root/.ssh/id_ed25519.pub")
    second = local_cloud.boot_machine("second", [first_key])

    assert first.ip != second.ip
    assert first.check("systemctl is-system-running || true").strip() in ("running", "degraded")
    out = first.check(
        f"ssh -o StrictHostKeyChecking=no -o BatchMode=yes root@{second.ip} hostname"
    )
    assert out.strip() == "second"


def test_the_login_user_gets_in_even_when_a_boot_unit_failed(local_cloud):
    machine = local_cloud.boot_machine("login-user")

    def login():
        return run_over_ssh(machine.ip, local_cloud.keys.private_key, "sudo -n id -u", user="admin", timeout=20)

    assert login()[:2] == (0, "0\n")  # the image's login user, with passwordless sudo
    # What a loaded build machine sometimes does at boot: systemd-user-sessions fails
    # (219/CGROUP), /run/nologin stays, and pam_nologin refuses every login but root's.
    # The image retries that unit...
    restart = machine.check("systemctl show -p Restart --value systemd-user-sessions.service").strip()
    assert restart == "on-failure"
    # ...and when even the retries failed, the cloud's last resort lets the user in.
    # (The simulated failure's drop-in sorts after the image's retry.conf, so it wins.)
    machine.check("systemctl stop systemd-user-sessions.service && test -e /run/nologin")
    machine.check("mkdir -p /run/systemd/system/systemd-user-sessions.service.d && "
                  "printf '[Service]\\nExecStartPre=/bin/false\\nRestart=no\\n' "
                  ">/run/systemd/system/systemd-user-sessions.service.d/zz-fail.conf && systemctl daemon-reload")
    machine.check("systemctl start systemd-user-sessions.service || systemctl is-failed systemd-user-sessions.service")
    machine.check("rm -r /run/systemd/system/systemd-user-sessions.service.d && systemctl daemon-reload")
    # Refused by pam_nologin (sshd's PAM account stack), not any other failure to connect:
    # the key is accepted, then the account check fails, and sshd answers "auth failed".
    with pytest.raises(paramiko.AuthenticationException):
        login()
    assert machine.check("test -e /run/nologin && echo nologin").strip() == "nologin"
    journal = machine.check("journalctl -b --no-pager -o cat _COMM=sshd | tail -n 20")
    assert "Access denied for user admin by PAM account configuration" in journal, journal
    local_cloud._permit_logins(machine)
    assert login()[:2] == (0, "0\n")


def test_environment_is_not_accepted_by_stock_sshd(local_cloud):
    machine = local_cloud.boot_machine("env-check")
    client_config = machine.check("sshd -T | grep -i '^acceptenv' || true").lower()
    assert "pegasus" not in client_config
    assert "acceptenv lang" in client_config


def test_volume_appears_by_id_and_mounts_by_uuid_from_fstab(local_cloud):
    machine = local_cloud.boot_machine("disk-owner")
    volume_id = "vol-0a1b2c3d4e5f60718"
    path = local_cloud.attach_volume(machine, volume_id, size_gib=2)

    assert path == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0a1b2c3d4e5f60718"
    assert path == by_id_path(volume_id)
    machine.check(f"test -b {path}")
    # What the product's disk script does: fstab by UUID, then `mount <mountpoint>`.
    machine.check(textwrap.dedent(f"""\
        set -eu
        mkfs.ext4 -q {path}
        uuid=$(blkid -s UUID -o value {path})
        mkdir -p /data/ssd1
        echo "UUID=$uuid /data/ssd1 ext4 defaults,noatime,nofail 0 2" >> /etc/fstab
        mount /data/ssd1
        echo kept > /data/ssd1/marker
        """))
    assert machine.check("findmnt -n -o FSTYPE /data/ssd1").strip() == "ext4"
    source = machine.check("findmnt -n -o SOURCE /data/ssd1").strip()
    assert source == machine.check(f"readlink -f {path}").strip()

    # The volume outlives the attachment, as an EBS volume does.
    machine.check("umount /data/ssd1")
    local_cloud.detach_volume(volume_id)
    rc, _, _ = machine.ssh(f"test -e {path}")
    assert rc != 0
    other = local_cloud.boot_machine("disk-heir")
    local_cloud.attach_volume(other, volume_id)
    assert other.check(f"mkdir -p /m && mount {path} /m && cat /m/marker").strip() == "kept"


def test_nic_has_the_given_mac_and_answers_on_its_address(local_cloud):
    machine = local_cloud.boot_machine("two-nics")
    mac = "02:5e:aa:bb:cc:01"
    ip = local_cloud.attach_nic(machine, mac)

    links = machine.check("ip -o link show")
    line = next(line for line in links.splitlines() if mac in line)
    name = line.split(":")[1].strip().split("@")[0]
    assert name != "eth0"
    addresses = machine.check(f"ip -4 -o addr show dev {name}")
    assert f" {ip}/24 " in addresses
    rc, out, _ = run_over_ssh(ip, local_cloud.keys.private_key, "hostname")
    assert (rc, out.strip()) == (0, "two-nics")

    local_cloud.detach_nic(machine, mac)
    assert mac not in machine.check("ip -o link show")


def test_close_leaves_nothing_behind():
    cloud = LocalCloud()
    tag, run_dir = cloud.tag, cloud.run_dir
    try:
        machine = cloud.boot_machine("doomed")
        cloud.attach_volume(machine, "vol-0ffffffffffffffff", size_gib=1)
        cloud.attach_nic(machine, "02:5e:aa:bb:cc:02")
        machine.check("mkfs.ext4 -q /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0ffffffffffffffff"
                      " && mkdir -p /x && mount /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0ffffffffffffffff /x")
        during = traces_of(tag, run_dir)
        assert during["netns"] and during["links"] and during["loops"] and during["processes"]
    finally:
        cloud.close()
    assert traces_of(tag, run_dir) == NOTHING
    assert cloud.network.bridge not in list_links()


def test_sweep_removes_what_a_killed_run_left():
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""\
            import sys, time
            from tools.localcloud import LocalCloud
            cloud = LocalCloud(sweep=False, log=lambda *_: None)
            machine = cloud.boot_machine("orphan")
            cloud.attach_volume(machine, "vol-0eeeeeeeeeeeeeeee", size_gib=1)
            print(cloud.tag, flush=True)
            time.sleep(600)
            """)],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    )
    try:
        tag = child.stdout.readline().strip()
        assert tag, "the child run did not start its cloud"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    run_dir = runs_root() / tag
    left = traces_of(tag, run_dir)
    assert left["processes"] and left["loops"] and left["netns"]

    swept = sweep_leftovers()

    assert tag in swept
    deadline = time.monotonic() + 10
    while traces_of(tag, run_dir) != NOTHING and time.monotonic() < deadline:
        time.sleep(0.2)
    assert traces_of(tag, run_dir) == NOTHING
