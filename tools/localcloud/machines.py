"""Machines: a copy-on-write root from the base tree, booted with systemd-nspawn.

Each machine gets `<run>/machines/<name>/` holding an overlay (upper, work, root)
on top of the shared base tree (or a full copy where overlayfs is unavailable),
its console log, and runs `systemd-nspawn -b` in its own network namespace.
The host's PID 1 is not systemd, hence `--register=no --keep-unit`.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .leftovers import kill_processes, processes_in_netns
from .rootfs import LOGIN_USER
from .shell import run
from .ssh import run_over_ssh

if TYPE_CHECKING:
    from .cloud import LocalCloud
    from .disks import Volume

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def random_mac() -> str:
    """A random unicast, locally administered MAC, lower case (as AWS reports them)."""
    first = (random.randrange(256) & 0xFC) | 0x02
    rest = [random.randrange(256) for _ in range(5)]
    return ":".join(f"{b:02x}" for b in [first, *rest])


@dataclass
class Nic:
    mac: str
    ip: str
    inner_name: str  # interface name inside the machine (eth1, ...)
    host_end: str  # the veth end on the host bridge


@dataclass
class Machine:
    """A running local machine. `ssh` runs a shell command on it as root."""

    name: str
    ip: str
    mac: str
    netns: str
    directory: Path
    root: Path
    log_path: Path
    cloud: "LocalCloud" = field(repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    primary_host_end: str = ""
    nics: dict[str, Nic] = field(default_factory=dict)
    volumes: dict[str, "Volume"] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ssh(self, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
        """Run `command` as root over SSH; return (exit code, stdout, stderr)."""
        return run_over_ssh(self.ip, self.cloud.keys.private_key, command, timeout=timeout)

    def check(self, command: str, timeout: float = 300.0) -> str:
        """Run `command`; return stdout, raise with stderr when it fails."""
        rc, out, err = self.ssh(command, timeout)
        if rc != 0:
            raise RuntimeError(
                f"command on machine {self.name} ({self.ip}) failed with exit {rc}: "
                f"{command}\nstdout: {out.strip()}\nstderr: {err.strip()}"
            )
        return out

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def root_of_running(self) -> Path:
        """The running system's / seen from the host (/proc/<its init>/root): the cloud's
        own device plumbing goes through it, never through the machine's network."""
        if self.process is None:
            raise RuntimeError(f"machine {self.name} was never started")
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        if not children:
            raise RuntimeError(f"machine {self.name}: its init is not running")
        return Path(f"/proc/{children[0]}/root")

    def stop(self) -> None:
        """Power off and remove the machine (like terminating an instance)."""
        self.cloud.terminate(self)


def prepare_root(base: Path, directory: Path) -> Path:
    """Make `directory/root`: an overlay on `base`, or a reflink/plain copy of it."""
    root = directory / "root"
    upper, work = directory / "upper", directory / "work"
    for path in (root, upper, work):
        path.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={base},upperdir={upper},workdir={work}", str(root)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        run(["cp", "-a", "--reflink=auto", f"{base}/.", str(root)])
    return root


def personalize(root: Path, name: str, authorized_keys: list[str]) -> None:
    """Host name, and the authorized_keys of root and of the image's login user."""
    (root / "etc" / "hostname").write_text(f"{name}\n")
    hosts = root / "etc" / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n::1 localhost\n")
    text = "".join(k.strip() + "\n" for k in authorized_keys)
    _install_keys(root / "root" / ".ssh", text, 0, 0)
    uid, gid, home = _passwd_entry(root, LOGIN_USER)
    _install_keys(root / home.lstrip("/") / ".ssh", text, uid, gid)


def _install_keys(ssh_dir: Path, text: str, uid: int, gid: int) -> None:
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(text)
    os.chmod(keys, 0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)


def _passwd_entry(root: Path, user: str) -> tuple[int, int, str]:
    """uid, gid and home of `user` in the machine's own /etc/passwd (not the host's)."""
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise RuntimeError(f"the root file system has no user {user!r}: rebuild it (bump rootfs.PREPARE_VERSION)")


def start_nspawn(root: Path, name: str, netns: str, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            ["systemd-nspawn", "-q", "-D", str(root), "-M", name, "-b",
             "--register=no", "--keep-unit", f"--network-namespace-path=/run/netns/{netns}",
             "--capability=all", "--console=read-only"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def power_off(machine: Machine, timeout: float = 20.0) -> None:
    """Orderly shutdown (nspawn turns SIGTERM into a poweroff), then force."""
    process = machine.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    # Anything still running in the machine (nspawn died abnormally): kill it.
    for _ in range(50):
        pids = processes_in_netns(machine.netns)
        if not pids:
            break
        kill_processes(pids)
        time.sleep(0.1)
