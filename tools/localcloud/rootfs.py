"""The base root file system every local machine boots from, built once and cached.

`debootstrap` takes minutes, so the tree is cached under a directory named after
a hash of the suite and the package list: change either and a new tree is built
next to the old one. The build happens in a temporary directory that is renamed
into place only when complete, so a killed build never leaves a half cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"

# What a host needs to run the product's scripts (bash, sha256sum, tar, blkid,
# mkfs.ext4, mountpoint, findmnt, systemctl, journalctl, curl, python3),
# ZooKeeper (the `zookeeper` package pulls in a JRE) and the monitoring
# (Debian's Prometheus, Alertmanager, node_exporter, and the exporter's
# library): the machines reach no package archive, so what the product would
# install with apt-get is in the image already.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "openssh-client",
    "iproute2",
    "iputils-ping",
    "netcat-openbsd",
    "python3",
    "python3-kazoo",
    "python3-thrift",  # the Pegasus stand-in speaks thrift (tests/e2e/standin/rdsn_thrift.py)
    "zookeeper",
    "e2fsprogs",
    "util-linux",
    "mount",
    "curl",
    "sudo",
    "procps",
    "ca-certificates",
    "tar",
    "coreutils",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "python3-prometheus-client",
)

# Units the packages above enable at installation. The product runs their
# binaries under units of its own and leaves these stopped and disabled where it
# installs the package (templates/_install_packages.sh.j2): so does the image.
PACKAGE_UNITS = ("prometheus.service", "prometheus-alertmanager.service", "prometheus-node-exporter.service")

# Bump when `_prepare` changes, so cached trees made the old way are not reused.
PREPARE_VERSION = "5"

# The login user of Debian's cloud images: passwordless sudo, the key pair's key.
LOGIN_USER = "admin"


def cache_root() -> Path:
    """Where cached trees live: $PEGASUS_E2E_CACHE, else /var/cache/pegasus-e2e."""
    return Path(os.environ.get("PEGASUS_E2E_CACHE", "/var/cache/pegasus-e2e"))


def cache_key(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> str:
    text = "\n".join([suite, PREPARE_VERSION, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_rootfs(
    suite: str = SUITE,
    packages: tuple[str, ...] = PACKAGES,
    mirror: str = MIRROR,
    log=print,
) -> Path:
    """Return the path of a ready root file system, building it if not cached."""
    root = cache_root()
    target = root / f"rootfs-{suite}-{cache_key(suite, packages)}"
    if (target / "etc" / "os-release").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        started = time.monotonic()
        log(f"localcloud: building {target.name} with debootstrap (a few minutes)")
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                suite,
                str(building / "tree"),
                mirror,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"debootstrap of {suite} failed (exit {result.returncode}); "
                f"check network access to {mirror}. Last output:\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        _prepare(building / "tree")
        try:
            os.rename(building / "tree", target)
        except OSError:
            # Another run finished the same tree first: use theirs.
            if not (target / "etc" / "os-release").exists():
                raise
        log(f"localcloud: built {target.name} in {time.monotonic() - started:.0f}s")
        return target
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _prepare(tree: Path) -> None:
    """Make the tree bootable as a container and reachable by root over SSH."""
    # Empty machine-id: systemd makes a fresh one per boot (each copy differs).
    (tree / "etc" / "machine-id").write_text("")
    dbus_id = tree / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    # Host keys are made at first boot per machine (see below), never shared.
    for key in (tree / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    _write(
        tree / "etc" / "systemd" / "system" / "ssh-host-keys.service",
        "[Unit]\n"
        "Description=Generate SSH host keys for this machine\n"
        "Before=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n"
        "[Service]\n"
        "Type=oneshot\n"
        "ExecStart=/usr/bin/ssh-keygen -A\n"
        "Restart=on-failure\n"  # see systemd-user-sessions below
        "RestartSec=1\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n",
    )
    _enable(tree, "ssh-host-keys.service", "multi-user.target")
    # Root logs in by key only. AcceptEnv stays as Debian ships it (LANG LC_*),
    # so environment variables reach remote commands exactly as on a stock host.
    _write(
        tree / "etc" / "ssh" / "sshd_config.d" / "pegasus-e2e.conf",
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "UseDNS no\n",
    )
    ssh_dir = tree / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["chroot", str(tree), "useradd", "--create-home", "--shell", "/bin/bash", LOGIN_USER],
                   check=True, capture_output=True)
    sudoers = tree / "etc" / "sudoers.d" / f"90-{LOGIN_USER}"
    _write(sudoers, f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    # In a container on a loaded machine systemd sometimes fails a boot unit while
    # setting up its cgroup (219/CGROUP). A cloud server boots clean, so the
    # oneshots that logins depend on retry: this one (or /run/nologin locks out
    # every user but root) and ssh-host-keys above (or sshd never starts).
    _write(tree / "etc" / "systemd" / "system" / "systemd-user-sessions.service.d" / "retry.conf",
           "[Service]\nRestart=on-failure\nRestartSec=1\n")
    # No apt timers or other periodic work competing with the tests.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                 "fstrim.timer", "man-db.timer", "dpkg-db-backup.timer"):
        _mask(tree, unit)
    # (Debian's zookeeper package ships no unit: nothing starts it until the
    # product installs pegasus-zookeeper.service.)
    for unit in PACKAGE_UNITS:
        _disable(tree, unit)
    # Nothing to wait for: the container has no udev and a fixed network.
    for unit in ("systemd-networkd-wait-online.service", "systemd-udevd.service",
                 "systemd-udev-trigger.service", "systemd-udev-settle.service",
                 "getty@tty1.service", "console-getty.service"):
        _mask(tree, unit)
    _write(tree / "etc" / "systemd" / "journald.conf.d" / "volatile.conf",
           "[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n")
    # Short host name resolution without DNS (the bridge has no resolver).
    _write(tree / "etc" / "resolv.conf", "")
    _write(tree / "etc" / "hosts", "127.0.0.1 localhost\n::1 localhost\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)


def _enable(tree: Path, unit: str, target: str) -> None:
    wants = tree / "etc" / "systemd" / "system" / f"{target}.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / unit
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{unit}")


def _disable(tree: Path, unit: str) -> None:
    """What `systemctl disable` does: drop the unit from every target that wants it."""
    for link in (tree / "etc" / "systemd" / "system").glob(f"*.wants/{unit}"):
        link.unlink()


def _mask(tree: Path, unit: str) -> None:
    link = tree / "etc" / "systemd" / "system" / unit
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("/dev/null")


if __name__ == "__main__":
    print(base_rootfs())
