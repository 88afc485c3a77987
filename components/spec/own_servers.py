"""Your own servers: the `servers` key of a stack, validated into `OwnServers`.

A stack that lists its servers gets no AWS resource at all: per role, each
server's SSH address, the NIC Pegasus binds (a name or a MAC address; Pegasus's
own choice when absent) and, for a ReplicaServer, its data disks and shared-log
disk. A disk is a stable device path (`/dev/disk/by-id/...`, formatted only
when blank, mounted under homeDir) or a directory the operator already
mounted (used as it is: never formatted, unmounted or removed).

Called by spec.build_spec with its reader, so problems are collected with all
the others. Cluster addresses are not listed: the program reads each
server's address off the NIC it binds (components/resources/own_host.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from components.spec import keys
from components.spec.host_key import read_host_key
from components.spec.reader import ConfigReader
from components.spec.values import HOST_NAME, INTERFACE_NAME, MAX_DATA_DISKS, SAFE_PATH, check_path, is_within

ROLES = keys.children("servers")
SERVER_KEYS = {role: keys.children(f"servers.{role}[]") for role in ROLES}
STABLE_DEVICE_DIR = "/dev/disk/by-id/"
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
# Keys that describe machines AWS makes: with a list of servers they mean nothing.
AWS_ONLY_KEYS = keys.aws_only()


@dataclass(frozen=True)
class OwnServer:
    host: str  # where SSH logs in: a host name or an address
    nic: str  # the interface Pegasus binds: a name, a MAC address, or "" (Pegasus's own choice)
    data_disks: tuple[str, ...] = ()  # device paths (/dev/disk/by-id/...) or mounted directories
    slog_disk: str | None = None
    host_key: str | None = None  # `<type> <base64>`; None: the operator's known_hosts holds it


@dataclass(frozen=True)
class OwnServers:
    zookeeper: tuple[OwnServer, ...]
    meta: tuple[OwnServer, ...]
    replica: tuple[OwnServer, ...]
    collector: tuple[OwnServer, ...]
    monitoring: tuple[OwnServer, ...] = ()  # the monitoring host (monitoring.host: own), or none

    def server(self, kind: str, index: int) -> OwnServer:
        """The listed server of a host plan (kind and index, as topology names hosts)."""
        return getattr(self, kind)[index]

    def mounted_dirs(self) -> tuple[str, ...]:
        """Per data-disk position: the operator's mounted directory, or "" for a device
        (the same on every ReplicaServer: validation makes it so)."""
        first = self.replica[0].data_disks if self.replica else ()
        return tuple("" if is_device(d) else d for d in first)

    def mounted_slog(self) -> str:
        slog = self.replica[0].slog_disk if self.replica else None
        return slog if slog and not is_device(slog) else ""


def is_device(disk: str) -> bool:
    return disk.startswith("/dev/")


def read_own_servers(r: ConfigReader, raw: Mapping[str, Any], *, home_dir: str, app_dir: str,
                     external_zookeeper: bool, single_zookeeper_allowed: bool,
                     collector_host: bool, monitoring_host: bool = False) -> OwnServers:
    """Validate `servers`; `collector_host`: the Collector runs on a host of its own;
    `monitoring_host`: so does the monitoring (whose own checks name servers.monitoring otherwise)."""

    for key, subkeys in AWS_ONLY_KEYS.items():
        if subkeys is None:
            if raw.get(key) is not None:
                r.problem(key, "does not apply to your own servers (servers is set): it describes machines "
                          "and networks AWS makes", "remove it")
            continue
        section = raw.get(key)
        for sub in subkeys:
            if isinstance(section, Mapping) and sub in section:
                r.problem(f"{key}.{sub}", "does not apply to your own servers (servers is set)",
                          f"remove it; list the servers (and their disks) under servers.{key}"
                          if key not in ("collector", "monitoring") else "remove it")

    d = r.obj(raw, "servers")
    lists: dict[str, tuple[OwnServer, ...]] = {}
    seen: dict[str, str] = {}
    for role in ROLES:
        lists[role] = tuple(_server(r, role, i, entry, seen, HOST_NAME, INTERFACE_NAME, MAX_DATA_DISKS)
                            for i, entry in enumerate(_entries(r, d, role)))

    metas, replicas, zks, collectors = lists["meta"], lists["replica"], lists["zookeeper"], lists["collector"]
    if len(metas) not in (2, 3):
        r.problem("servers.meta", f"{len(metas)} MetaServers listed", "list 2 or 3 (3 survives a loss)")
    if len(replicas) < 3:
        r.problem("servers.replica", f"{len(replicas)} ReplicaServers cannot hold 3 replicas of a partition",
                  "list 3 or more")
    if external_zookeeper:
        if zks:
            r.problem("servers.zookeeper", "lists servers while zookeeper.servers names an existing ensemble",
                      "remove one of the two")
    elif len(zks) not in (1, 3, 5):
        r.problem("servers.zookeeper", f"an ensemble of {len(zks)} has no safe majority",
                  "list 3 or 5 servers, or give an existing ensemble as zookeeper.servers")
    elif len(zks) == 1 and not single_zookeeper_allowed:
        r.problem("servers.zookeeper", "1 ZooKeeper server is a single point of failure",
                  "list 3, or set zookeeper.allowSingleNode: true for a throwaway cluster")
    if collector_host and len(collectors) != 1:
        r.problem("servers.collector", f"{len(collectors)} servers listed for the Collector's own host",
                  "list exactly one (collector.colocate is false)")
    elif not collector_host and collectors:
        r.problem("servers.collector", "lists a server, but the Collector runs on the first MetaServer "
                  "(or not at all)", "remove it, or set collector.colocate: false")
    if monitoring_host and len(lists["monitoring"]) > 1:
        r.problem("servers.monitoring", f"{len(lists['monitoring'])} servers listed for the monitoring host",
                  "list exactly one")
    _same_disks_everywhere(r, replicas, home_dir, app_dir)
    return OwnServers(zookeeper=zks, meta=metas, replica=replicas, collector=collectors,
                      monitoring=lists["monitoring"] if monitoring_host else ())


def _entries(r: ConfigReader, d: Mapping[str, Any], role: str) -> list[Mapping[str, Any]]:
    value = d.get(role)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        r.problem(f"servers.{role}", "must be a list of servers, each a mapping",
                  "write e.g. [{host: 10.0.0.5, nic: eth1}]")
        return []
    return value


def _server(r: ConfigReader, role: str, index: int, entry: Mapping[str, Any], seen: dict[str, str],
            host_name: re.Pattern, interface_name: re.Pattern, max_disks: int) -> OwnServer:
    key = f"servers.{role}[{index}]"
    for unknown in sorted(set(entry) - set(SERVER_KEYS[role])):
        r.problem(f"{key}.{unknown}", "is not a known key", f"use {', '.join(SERVER_KEYS[role])}"
                  + (" (only ReplicaServers have disks)" if unknown in ("dataDisks", "slogDisk") else ""))
    host = entry.get("host")
    if not isinstance(host, str) or not host_name.fullmatch(host):
        r.problem(f"{key}.host", f"{host!r} is not a host name or address", "give the address SSH logs in to")
        host = ""
    elif host in seen:
        r.problem(f"{key}.host", f"{host} is also {seen[host]}",
                  "give every server its own machine: each is prepared, and cleaned up, as a whole")
    else:
        seen[host] = key
    nic = entry.get("nic", "")
    if not isinstance(nic, str) or (nic and not (interface_name.fullmatch(nic) or MAC.fullmatch(nic))):
        r.problem(f"{key}.nic", f"{nic!r} is neither an interface name nor a MAC address",
                  "e.g. eth1 or 02:00:0a:00:00:05; leave it out to let Pegasus pick the first private address")
        nic = ""
    host_key = read_host_key(r, f"{key}.hostKey", entry.get("hostKey"), "server")
    if role != "replica":
        return OwnServer(host=host, nic=nic.lower() if MAC.fullmatch(nic) else nic, host_key=host_key)
    disks_raw = entry.get("dataDisks")
    disks: list[str] = []
    if not isinstance(disks_raw, list) or not disks_raw:
        r.problem(f"{key}.dataDisks", "is required: the ReplicaServer's data disks",
                  "list device paths (/dev/disk/by-id/...) or mounted directories")
    elif len(disks_raw) > max_disks:
        r.problem(f"{key}.dataDisks", f"{len(disks_raw)} disks is more than {max_disks}", "list fewer")
    else:
        for i, disk in enumerate(disks_raw):
            disks.append(_disk(r, f"{key}.dataDisks[{i}]", disk))
    slog = entry.get("slogDisk")
    if slog is not None:
        slog = _disk(r, f"{key}.slogDisk", slog)
    for twice in sorted({d for d in [*disks, slog] if d and [*disks, slog].count(d) > 1}):
        r.problem(f"{key}.dataDisks", f"{twice} is listed twice", "list every disk once")
    return OwnServer(host=host, nic=nic.lower() if MAC.fullmatch(nic) else nic, data_disks=tuple(disks),
                     slog_disk=slog, host_key=host_key)


def _disk(r: ConfigReader, key: str, disk: Any) -> str:

    if not isinstance(disk, str) or not SAFE_PATH.fullmatch(disk):
        r.problem(key, f"{disk!r} is not an absolute path of letters, digits and . _ - / : only",
                  "give a /dev/disk/by-id/... path or a mounted directory")
        return ""
    if is_device(disk) and not disk.startswith(STABLE_DEVICE_DIR):
        r.problem(key, f"{disk} is not a stable device name: names like /dev/sdb or /dev/nvme1n1 can change "
                  "at the next boot", "use its /dev/disk/by-id/... link (ls -l /dev/disk/by-id)")
    return disk


def _same_disks_everywhere(r: ConfigReader, replicas: tuple[OwnServer, ...], home_dir: str, app_dir: str) -> None:
    """Pegasus wants the same disks on every ReplicaServer; a directory is the same path everywhere
    (it becomes the data dir in one config shared by all)."""

    if not replicas or not replicas[0].data_disks:
        return
    first = replicas[0]

    def shape(server: OwnServer) -> tuple:
        kinds = tuple("device" if is_device(d) else d for d in server.data_disks)
        slog = None if server.slog_disk is None else ("device" if is_device(server.slog_disk) else server.slog_disk)
        return kinds, slog

    for i, server in enumerate(replicas[1:], start=1):
        if server.data_disks and shape(server) != shape(first):
            r.problem(f"servers.replica[{i}].dataDisks",
                      f"differ from servers.replica[0]'s ({_describe(server)} against {_describe(first)})",
                      "give every ReplicaServer the same disks: as many, devices at the same positions, "
                      "mounted directories at the same paths, a slogDisk on all or none")
    device_mounts = {f"{home_dir}/ssd{i + 1}" for i, d in enumerate(first.data_disks) if is_device(d)}
    if first.slog_disk and is_device(first.slog_disk):
        device_mounts.add(f"{home_dir}/slog")
    for where, disk in [*((f"dataDisks[{i}]", d) for i, d in enumerate(first.data_disks)),
                        ("slogDisk", first.slog_disk)]:
        if not disk or is_device(disk):
            continue
        key = f"servers.replica[0].{where}"
        if not check_path(r, key, disk):
            continue
        if disk in device_mounts:
            r.problem(key, f"{disk} is where a listed device gets mounted", "mount your directory elsewhere")
        elif is_within(disk, app_dir) or is_within(home_dir, disk) or is_within(app_dir, disk):
            r.problem(key, f"{disk} overlaps homeDir or appDir, which the program manages",
                      "give a mount point of its own, e.g. /data/ssd1")


def _describe(server: OwnServer) -> str:
    kinds = ", ".join("device" if is_device(d) else d for d in server.data_disks)
    slog = "" if server.slog_disk is None else "; slog " + ("device" if is_device(server.slog_disk)
                                                           else server.slog_disk)
    return f"[{kinds}{slog}]"
