"""The cloud's private network: a host bridge, addresses on it, and per-machine netns.

Every link and namespace this module makes is named with the prefix `pg-e2e`
followed by the run's tag, so `sweep_leftovers` can find what a killed run left.
Interface names are limited to 15 characters by the kernel, hence the short
forms: bridge `pg-e2e<tag>-br`, host ends `pg-e2e<tag>-<n>`, peers `...p`.
"""

from __future__ import annotations

import ipaddress
import random
import re
import threading

from .shell import run, succeeds

PREFIX = "pg-e2e"
# Candidate subnets: 10.213.<n>.0/24, one per concurrent run.
SUBNET_BASE = "10.213"
FIRST_HOST = 10  # .1 is the bridge; machines and NICs from .10 up.
LAST_HOST = 250


def _used_subnets() -> set[int]:
    """Third octets of 10.213.x.0/24 networks already routed on this host."""
    used = set()
    text = run(["ip", "-4", "-o", "addr", "show"]) + run(["ip", "-4", "route", "show"])
    for match in re.finditer(rf"\b{re.escape(SUBNET_BASE)}\.(\d+)\.", text):
        used.add(int(match.group(1)))
    return used


class Network:
    """A bridge with a /24, an address allocator and helpers for netns plumbing."""

    def __init__(self, tag: str):
        self.tag = tag
        self.bridge = f"{PREFIX}{tag}-br"
        self._lock = threading.Lock()
        self._next_link = 0
        self._free_hosts: list[int] = list(range(FIRST_HOST, LAST_HOST + 1))
        free = sorted(set(range(1, 255)) - _used_subnets())
        if not free:
            raise RuntimeError(
                f"no free {SUBNET_BASE}.x.0/24 subnet on this host; "
                "remove stale bridges (see sweep_leftovers)"
            )
        self.third_octet = random.choice(free)
        self.subnet = ipaddress.ip_network(f"{SUBNET_BASE}.{self.third_octet}.0/24")
        self.gateway = str(self.subnet.network_address + 1)

    # -- bridge ------------------------------------------------------------
    def create_bridge(self) -> None:
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])

    def delete_bridge(self) -> None:
        if succeeds(["ip", "link", "show", self.bridge]):
            run(["ip", "link", "del", self.bridge])

    # -- addresses ---------------------------------------------------------
    def allocate_ip(self) -> str:
        with self._lock:
            if not self._free_hosts:
                raise RuntimeError(f"no free address left in {self.subnet}")
            host = self._free_hosts.pop(0)
        return str(self.subnet.network_address + host)

    def release_ip(self, ip: str) -> None:
        """A released address goes last: the next machine gets one never used while there is
        one, as a subnet with free addresses gives a new instance another address than the
        one just released. (Handing it straight back would hide what a replacement changes:
        a ZooKeeper server replaced at its old address changes no zoo.cfg.)"""
        host = int(ipaddress.ip_address(ip)) - int(self.subnet.network_address)
        with self._lock:
            if host not in self._free_hosts:
                self._free_hosts.append(host)

    def _link_name(self, kind: str) -> str:
        with self._lock:
            self._next_link += 1
            return f"{PREFIX}{self.tag}-{kind}{self._next_link}"

    # -- namespaces and interfaces ----------------------------------------
    def create_netns(self, machine_name: str) -> str:
        netns = f"{PREFIX}{self.tag}-{machine_name}"
        run(["ip", "netns", "add", netns])
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        # Two interfaces on one subnet: each answers ARP only for its own address,
        # as on an EC2 host with two ENIs.
        for key, value in (("arp_ignore", "1"), ("arp_announce", "2")):
            run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w",
                 f"net.ipv4.conf.all.{key}={value}"])
        return netns

    def delete_netns(self, netns: str) -> None:
        if netns in list_netns():
            run(["ip", "netns", "del", netns])

    def plug(self, netns: str, inner_name: str, ip: str, mac: str | None = None,
             default_route: bool = False) -> str:
        """Put a veth into `netns` named `inner_name` with `ip`; return the host end."""
        host_end = self._link_name("v")
        peer = f"{host_end}p"
        run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", peer])
        try:
            if mac:
                run(["ip", "link", "set", "dev", peer, "address", mac])
            run(["ip", "link", "set", host_end, "master", self.bridge])
            run(["ip", "link", "set", host_end, "up"])
            run(["ip", "link", "set", peer, "netns", netns])
            run(["ip", "-n", netns, "link", "set", peer, "name", inner_name])
            run(["ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", inner_name])
            run(["ip", "-n", netns, "link", "set", inner_name, "up"])
            if default_route:
                run(["ip", "-n", netns, "route", "add", "default", "via", self.gateway])
        except Exception:
            run(["ip", "link", "del", host_end], check=False)
            raise
        return host_end

    def unplug(self, host_end: str) -> None:
        """Remove a veth pair by its host end (the peer goes with it)."""
        if succeeds(["ip", "link", "show", host_end]):
            run(["ip", "link", "del", host_end])


def list_netns() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def list_links() -> list[str]:
    names = []
    for line in run(["ip", "-o", "link", "show"]).splitlines():
        # "12: name@peer: <...>"
        names.append(line.split(":")[1].strip().split("@")[0])
    return names
