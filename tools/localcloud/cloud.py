"""LocalCloud: real Linux machines, volumes and NICs on this host, for e2e tests.

    with LocalCloud() as cloud:
        a = cloud.boot_machine("meta-0", [my_public_key])
        path = cloud.attach_volume(a, "vol-0123456789abcdef0", size_gib=10)
        ip = cloud.attach_nic(a, mac="02:aa:bb:cc:dd:ee")
        rc, out, err = a.ssh("lsblk")

Requires root, debootstrap and systemd-nspawn. `close()` (or leaving the `with`)
removes everything the cloud made, also after failures; `sweep_leftovers()`
removes what a killed earlier run left behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from . import cloud_init, coldplug, disks, private_dns, vpc_routes
from .aws_services import AwsServices, s3_names, trust_ca
from .disks import Volume
from .instance_metadata import InstanceMetadata
from .leftovers import (
    OPEN_TAGS, RunRecord, remove_tree, runs_root, sweep_leftovers, sweep_run, unmount_all_under,
)
from .machines import Machine, Nic, personalize, power_off, prepare_root, random_mac, start_nspawn
from .machines import NAME_PATTERN
from .network import Network
from .rootfs import base_rootfs
from .shell import run
from .ssh import wait_for_ssh
from .sshkeys import generate_key_pair

BOOT_TIMEOUT = 120.0


def missing_prerequisites() -> list[str]:
    """Why this host cannot run a local cloud (empty when it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("must run as root (netns, loop devices, systemd-nspawn)")
    for tool in ("systemd-nspawn", "debootstrap", "losetup", "ip", "mount", "nft"):
        if shutil.which(tool) is None:
            reasons.append(f"{tool} is not installed")
    return reasons


class LocalCloud:
    def __init__(self, *, base: Path | None = None, sweep: bool = True, keep: bool = False, with_aws: bool = True,
                 log=print):
        """`keep`: the machines outlive this process (a user's, see local_machines.py);
        never close() such a cloud, destroy it with leftovers.sweep_run.
        `with_aws`: the region's S3/IAM/STS and the metadata service, with their CA trusted
        and their routes on every machine; off for machines listed as your own servers,
        which use none of it (and would keep routes to services that die with this process)."""
        problems = missing_prerequisites()
        if problems:
            raise RuntimeError("cannot start a local cloud: " + "; ".join(problems))
        if sweep:
            swept = sweep_leftovers()
            if swept:
                log(f"localcloud: removed leftovers of earlier runs: {swept}")
        self.log = log
        self.base = base or base_rootfs(log=log)
        self.tag = secrets.token_hex(2)
        self.run_dir = runs_root() / self.tag
        self.run_dir.mkdir(parents=True)
        OPEN_TAGS.add(self.tag)
        self.record = RunRecord(self.run_dir, self.tag, keep=keep)
        self._lock = threading.RLock()
        self.machines: dict[str, Machine] = {}
        self.volumes: dict[str, Volume] = {}
        self.private_dns = True  # VPC DNS host names (see private_dns.py)
        self.s3_reachable = False  # an S3 gateway endpoint exists (vpc_routes.py)
        self.buckets: set[str] = set()  # their names resolve to the region's S3
        self.closed = False
        try:
            self.keys = generate_key_pair(self.run_dir)
            self.network = Network(self.tag)
            self.network.create_bridge()
            # The region's S3/IAM/STS (moto) and the instances' metadata service, on the bridge.
            self.aws: AwsServices | None = None
            self.metadata: InstanceMetadata | None = None
            if with_aws:
                self.aws = AwsServices(self.run_dir / "aws", self.network.gateway, self.tag)
                self.metadata = InstanceMetadata(self.network.gateway, self.aws, self.machine_at)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "LocalCloud":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- machines ----------------------------------------------------------
    @staticmethod
    def _permit_logins(machine: Machine) -> None:
        """Make sure the image's login user may log in, as on a cloud server.

        On a loaded build machine systemd inside a container now and then fails a
        unit while setting up its cgroup (exit 219/CGROUP). When that unit is
        systemd-user-sessions, /run/nologin stays and pam_nologin refuses every
        login but root's. The rootfs restarts that unit on failure; this is the
        last resort, and touches nothing else (restarting other units can cut
        SSH sessions)."""
        machine.ssh("test ! -e /run/nologin || systemctl restart systemd-user-sessions.service")
        if machine.ssh("test ! -e /run/nologin")[0] != 0:
            raise RuntimeError(f"{machine.name}: /run/nologin is still there after restarting "
                               "systemd-user-sessions: logins other than root's are refused")
    def boot_machine(self, name: str, authorized_keys: Sequence[str] = (), *, user_data: str | None = None,
                     timeout: float = BOOT_TIMEOUT) -> Machine:
        """Boot a machine; return once root can log in over SSH at `machine.ip`. `user_data`: an
        instance's, whose host keys cloud-init would install before sshd starts (cloud_init.py)."""
        if not NAME_PATTERN.match(name):
            raise ValueError(
                f"machine name {name!r} must be lower-case letters, digits and '-' "
                "(it becomes the host name), at most 40 characters"
            )
        with self._lock:
            if name in self.machines:
                raise ValueError(f"a machine named {name!r} already exists in this cloud")
            directory = self.run_dir / "machines" / name
            machine = Machine(
                name=name, ip=self.network.allocate_ip(), mac=random_mac(),
                netns=f"pending-{name}", directory=directory, root=directory / "root",
                log_path=self.run_dir / "machines" / f"{name}.console.log", cloud=self,
            )
            self.machines[name] = machine
        try:
            prepare_root(self.base, directory)
            personalize(machine.root, name, [self.keys.public_key, *authorized_keys])
            cloud_init.apply_first_boot(machine.root, user_data)
            if self.aws:
                trust_ca(machine.root, self.aws.ca_pem)
            machine.netns = self.network.create_netns(name)
            machine.primary_host_end = self.network.plug(
                machine.netns, "eth0", machine.ip, mac=machine.mac, default_route=True)
            if self.metadata:
                vpc_routes.apply(machine.netns, self.network.gateway, self.metadata.port, self.s3_reachable)
            started = time.monotonic()
            # Boot finishes before we return so units the tests start do not race early
            # boot jobs. "degraded" is fine: the state is printed in the log for a reader.
            state = self._start(machine, timeout)
            self.log(f"localcloud: {name} up at {machine.ip} in "
                     f"{time.monotonic() - started:.1f}s (systemd: {state.strip()})")
            self._refresh_dns()
        except BaseException as error:
            tail = machine.console_tail()
            self.terminate(machine)
            if isinstance(error, Exception):
                raise RuntimeError(
                    f"machine {name} did not boot: {error}\nconsole ({machine.log_path}):\n{tail}"
                ) from error
            raise
        return machine

    def _start(self, machine: Machine, timeout: float) -> str:
        machine.process = start_nspawn(machine.root, machine.name, machine.netns, machine.log_path)
        self.record.add("pids", machine.process.pid)
        wait_for_ssh(machine.ip, self.keys.private_key, timeout, machine.is_running)
        _, state, _ = machine.ssh("systemctl is-system-running --wait", timeout=timeout)
        if state.strip() != "running":
            self._permit_logins(machine)
        return state.strip()

    def reboot_machine(self, machine: Machine, *, timeout: float = BOOT_TIMEOUT) -> None:
        """Reboot keeping disks, NICs, addresses and firewall (as `ec2 reboot-instances`).

        The volumes go back to loop devices (numbers may change, as NVMe names do
        on a VM); at boot the coldplug unit makes their nodes and by-id/by-uuid
        links before fstab's mounts run (coldplug.py)."""
        started = time.monotonic()
        with machine.lock:
            old_pid = machine.process.pid if machine.process is not None else None
            power_off(machine)
            if old_pid is not None:
                self.record.remove("pids", old_pid)
            for volume in machine.volumes.values():
                old_loop = volume.loop
                if old_loop:
                    run(["losetup", "-d", old_loop], check=False)
                    self.record.remove("loops", old_loop)
                volume.loop = run(["losetup", "-f", "--show", str(volume.path)]).strip()
                self.record.add("loops", volume.loop)
            coldplug.install(machine.root, list(machine.volumes.values()))
            try:
                state = self._start(machine, timeout)
            except Exception as error:
                raise RuntimeError(f"machine {machine.name} did not come back from a reboot: {error}\n"
                                   f"console ({machine.log_path}):\n{machine.console_tail()}") from error
        self.log(f"localcloud: {machine.name} rebooted in {time.monotonic() - started:.1f}s "
                 f"(systemd: {state})")

    # -- private DNS --------------------------------------------------------
    def set_private_dns(self, enabled: bool) -> None:
        """Turn the VPC's DNS host names on or off (off: names no longer resolve)."""
        with self._lock:
            self.private_dns = enabled
        self._refresh_dns()

    def _refresh_dns(self) -> None:
        with self._lock:
            machines = [m for m in self.machines.values() if m.root.exists()]
            addresses = [a for m in machines for a in [m.ip, *(n.ip for n in m.nics.values())]]
            services = {self.network.gateway: s3_names(sorted(self.buckets))}
            for machine in machines:
                private_dns.rewrite_hosts(machine.root, addresses if self.private_dns else None, services)

    # -- the region's services ---------------------------------------------
    def machine_at(self, ip: str) -> str | None:
        """The name of the machine that has `ip` (primary address or an extra NIC's)."""
        with self._lock:
            for machine in self.machines.values():
                if ip == machine.ip or any(n.ip == ip for n in machine.nics.values()):
                    return machine.name
        return None

    def set_buckets(self, names: set[str]) -> None:
        """The buckets that exist: their virtual-hosted names resolve to the region's S3."""
        with self._lock:
            self.buckets = set(names)
        self._refresh_dns()

    def set_s3_route(self, reachable: bool) -> None:
        """An S3 gateway endpoint came (True) or went (False): every machine's route to S3."""
        if self.metadata is None:
            raise RuntimeError("this local cloud runs without AWS services (with_aws=False)")
        with self._lock:
            self.s3_reachable = reachable
            machines = [m for m in self.machines.values() if not m.netns.startswith("pending-")]
        for machine in machines:
            try:
                vpc_routes.apply(machine.netns, self.network.gateway, self.metadata.port, reachable)
            except Exception:
                if machine.name in self.machines and machine.is_running():
                    raise  # a machine being terminated meanwhile is no error

    def terminate(self, machine: Machine) -> None:
        """Power off and remove a machine; its attached volumes are detached, not deleted."""
        with machine.lock:
            for volume in list(machine.volumes.values()):
                self._detach(volume, machine)
            power_off(machine)
            if machine.process is not None:
                self.record.remove("pids", machine.process.pid)
            for nic in list(machine.nics.values()):
                self.network.unplug(nic.host_end)
                self.network.release_ip(nic.ip)
            machine.nics.clear()
            if machine.primary_host_end:
                self.network.unplug(machine.primary_host_end)
            if not machine.netns.startswith("pending-"):
                self.network.delete_netns(machine.netns)
            unmount_all_under(machine.directory)
            remove_tree(machine.directory)
            self.network.release_ip(machine.ip)
        with self._lock:
            if self.machines.get(machine.name) is machine:
                del self.machines[machine.name]
        if not self.closed:
            self._refresh_dns()

    # -- volumes -----------------------------------------------------------
    def create_volume(self, volume_id: str, size_gib: int, by_id_name: str | None = None) -> Volume:
        """`by_id_name`: its /dev/disk/by-id name in a machine (default: the one AWS gives EBS)."""
        with self._lock:
            if volume_id in self.volumes:
                raise ValueError(f"volume {volume_id} already exists")
            volume = Volume(volume_id, int(size_gib), self.run_dir / "volumes" / f"{volume_id}.img",
                            by_id_name=by_id_name)
            disks.create_backing_file(volume.path, volume.size_gib)
            self.volumes[volume_id] = volume
            return volume

    def attach_volume(self, machine: Machine, volume_id: str, size_gib: int | None = None) -> str:
        """Attach (creating it first if unknown and `size_gib` given); return the by-id path."""
        with self._lock:
            volume = self.volumes.get(volume_id)
            if volume is None:
                if size_gib is None:
                    raise KeyError(f"no volume {volume_id}; create it or pass size_gib")
                volume = self.create_volume(volume_id, size_gib)
        with machine.lock:
            if volume.attached_to is not None:
                raise RuntimeError(
                    f"volume {volume_id} is already attached to {volume.attached_to.name}; "
                    "detach it first"
                )
            path = disks.plug(volume, machine)
            machine.volumes[volume_id] = volume
            self.record.add("loops", volume.loop)
        return path

    def detach_volume(self, volume_id: str) -> None:
        volume = self.volumes[volume_id]
        machine = volume.attached_to
        if machine is None:
            return
        with machine.lock:
            self._detach(volume, machine)

    def _detach(self, volume: Volume, machine: Machine) -> None:
        loop = volume.loop
        disks.unplug(volume)
        machine.volumes.pop(volume.volume_id, None)
        if loop:
            self.record.remove("loops", loop)

    def grow_volume(self, volume_id: str, size_gib: int) -> None:
        """Enlarge a volume (as ModifyVolume does); the file system is not resized."""
        with self._lock:
            volume = self.volumes[volume_id]
            if size_gib > volume.size_gib:
                os.truncate(volume.path, size_gib * 1024**3)
                volume.size_gib = size_gib
                if volume.loop:
                    run(["losetup", "-c", volume.loop])

    def delete_volume(self, volume_id: str) -> None:
        with self._lock:
            volume = self.volumes.get(volume_id)
            if volume is None:
                return
            if volume.attached_to is not None:
                raise RuntimeError(
                    f"volume {volume_id} is attached to {volume.attached_to.name}; detach it first"
                )
            volume.path.unlink(missing_ok=True)
            del self.volumes[volume_id]

    def attached_loop_devices(self) -> list[str]:
        """Loop devices on this host still backed by one of this cloud's volume files."""
        listing = run(["losetup", "-n", "-O", "NAME,BACK-FILE", "-l"], check=False)
        return [line.split()[0] for line in listing.splitlines()
                if len(line.split()) > 1 and line.split()[1].startswith(str(self.run_dir))]

    # -- network interfaces -------------------------------------------------
    def allocate_ip(self) -> str:
        """Reserve an address on the cloud's subnet (for a NIC attached later)."""
        return self.network.allocate_ip()

    def release_ip(self, ip: str) -> None:
        self.network.release_ip(ip)

    def attach_nic(self, machine: Machine, mac: str, ip: str | None = None,
                   device_index: int | None = None) -> str:
        """Hot-plug a second NIC with `mac` (and `ip`, else a new one); return its IP."""
        mac = mac.lower()
        with machine.lock:
            if mac in machine.nics:
                raise RuntimeError(f"machine {machine.name} already has a NIC with MAC {mac}")
            ip = ip or self.network.allocate_ip()
            used = {"eth0", *(n.inner_name for n in machine.nics.values())}
            index = device_index if device_index and f"eth{device_index}" not in used else 1
            while f"eth{index}" in used:
                index += 1
            host_end = self.network.plug(machine.netns, f"eth{index}", ip, mac=mac)
            machine.nics[mac] = Nic(mac, ip, f"eth{index}", host_end)
        self._refresh_dns()
        return ip

    def detach_nic(self, machine: Machine, mac: str, release_ip: bool = False) -> None:
        with machine.lock:
            nic = machine.nics.pop(mac.lower(), None)
            if nic is None:
                return
            self.network.unplug(nic.host_end)
            if release_ip:
                self.network.release_ip(nic.ip)
        self._refresh_dns()

    # -- teardown ----------------------------------------------------------
    def close(self) -> None:
        """Remove every machine, volume, loop, netns, link and file of this cloud."""
        if self.closed:
            return
        self.closed = True
        errors = []
        machines = list(self.machines.values())
        if machines:
            with ThreadPoolExecutor(max_workers=len(machines)) as pool:
                for future in [pool.submit(self.terminate, m) for m in machines]:
                    try:
                        future.result()
                    except Exception as error:  # keep tearing down the rest
                        errors.append(error)
        for service in ("metadata", "aws"):
            try:
                if getattr(self, service, None) is not None:
                    getattr(self, service).close()
            except Exception as error:
                errors.append(error)
        try:
            if hasattr(self, "network"):
                self.network.delete_bridge()
            sweep_run(self.tag, self.run_dir)
        except Exception as error:
            errors.append(error)
        finally:
            OPEN_TAGS.discard(self.tag)
        if errors:
            raise RuntimeError(f"local cloud {self.tag} teardown had errors: {errors}")
