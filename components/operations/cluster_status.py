"""`make status`: every server of a deployed cluster at a glance, as `tiup cluster display` shows a TiDB cluster.

From the stack's outputs (`ssh`: how to reach each host; `metaServers`; and
`monitoring` when the stack has it: `ssh`, how to reach the host that runs
Alertmanager, and `alertmanager`, its URL) and the servers' own answers, over
the project's SSH transport (components/ssh/session.py), one connection per
host, all hosts at once:

- each host (templates/status_probe.sh.j2): its Pegasus units, their state and
  uptime from systemd, their version from their own `/version`, the space used on
  the data dirs of the config each unit runs;
- one MetaServer host (templates/status_cluster.sh.j2): `/meta/nodes?detail`
  (ALIVE or not, primaries and secondaries per ReplicaServer) and
  `/meta/apps?detail` (unhealthy partitions), from whichever MetaServer answers
  (a follower redirects to the leader);
- the monitoring host (the same script): Alertmanager's firing alerts, asked on
  its loopback address, where it answers in every placement (on your own
  servers it listens there only, and on AWS its group admits the operators'
  range, not the cluster's hosts).

A host that does not answer SSH is shown as such; so is a unit that is not
active, and a ReplicaServer the MetaServers do not count ALIVE.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from components.render import host_layout as hl
from components.render.monitoring_layout import ALERTMANAGER_PORT
from components.render.templates import as_root, render
from components.ssh.known_hosts import Pin
from components.ssh.session import SSH_FAILED, SshResult
from components.ssh.tunnel import SshEndpoint

Runner = Callable[[str, str], SshResult]  # (host address, command line) -> result


@dataclass(frozen=True)
class HostAccess:
    name: str  # the host's name in the stack (meta-0, replica-3, ...)
    address: str  # where SSH logs in
    user: str
    bastion: SshEndpoint | None


def parse_ssh_hint(name: str, hint: str) -> HostAccess:
    """The `ssh` output's line for a host: `ssh [-J user@host:port ]user@address`."""
    words = shlex.split(hint)
    bastion = None
    if "-J" in words:
        jump = words[words.index("-J") + 1]
        juser, _, rest = jump.rpartition("@")
        jhost, _, jport = rest.rpartition(":") if re.search(r":\d+$", rest) else (rest, "", "22")
        bastion = SshEndpoint(jhost, juser or "root", int(jport or 22))
    user, _, address = words[-1].rpartition("@")
    return HostAccess(name, address, user or "root", bastion)


@dataclass
class RoleState:
    role: str
    state: str  # systemd ActiveState
    uptime_s: int | None
    version: str | None


@dataclass
class HostReport:
    access: HostAccess
    reachable: bool
    error: str = ""
    hostname: str = ""
    ips: list[str] = field(default_factory=list)
    roles: list[RoleState] = field(default_factory=list)
    disks: list[tuple[str, str, int, int]] = field(default_factory=list)  # role, dir, used, size


def parse_host_report(access: HostAccess, result: SshResult) -> HostReport:
    if result.returncode == SSH_FAILED:
        return HostReport(access, False, error=result.tail(1) or "SSH failed")
    report = HostReport(access, True, error="" if result.returncode == 0 else result.tail(2))
    for line in result.output.splitlines():
        parts = line.split("\t")
        if parts[0] == "host" and len(parts) == 3:
            report.hostname, report.ips = parts[1], parts[2].split()
        elif parts[0] == "role" and len(parts) == 5:
            report.roles.append(RoleState(parts[1], parts[2], int(parts[3]) if parts[3].lstrip("-").isdigit()
                                          else None, None if parts[4] == "-" else parts[4]))
        elif parts[0] == "disk" and len(parts) == 5 and parts[3].isdigit() and parts[4].isdigit():
            report.disks.append((parts[1], parts[2], int(parts[3]), int(parts[4])))
    return report


@dataclass
class ClusterView:
    nodes: dict[str, dict] | None = None  # /meta/nodes?detail "details"
    apps: dict | None = None  # /meta/apps?detail
    alerts: list[dict] | None = None  # Alertmanager's, None when not asked or not answered
    error: str = ""


def parse_cluster_view(result: SshResult | None) -> ClusterView:
    if result is None:
        return ClusterView(error="no MetaServer host answered SSH")
    view = ClusterView()
    for line in result.output.splitlines():
        kind, _, text = line.partition("\t")
        try:
            if kind == "nodes":
                view.nodes = json.loads(text).get("details", {})
            elif kind == "apps":
                view.apps = json.loads(text)
            elif kind == "alerts":
                view.alerts = json.loads(text)
        except (ValueError, AttributeError):
            continue
    if view.nodes is None:
        view.error = "no MetaServer answered /meta/nodes"
    return view


@dataclass
class Status:
    hosts: list[HostReport]
    cluster: ClusterView
    monitoring: bool
    seconds: float


def probe_script(cluster_name: str) -> str:
    # The cluster's units, then the names stacks deployed before gave them (until their roll).
    return render("status_probe.sh", role_ports=dict(hl.ROLE_PORTS),
                  role_units={role: [hl.role_unit(role, cluster_name), hl.legacy_role_unit(role)]
                              for role in hl.ROLE_PORTS})


def cluster_script(meta_addresses: list[str], alertmanager: str) -> str:
    return render("status_cluster.sh", meta_addresses=meta_addresses, alertmanager=alertmanager)


def stack_hosts(outputs: Mapping[str, Any]) -> list[HostAccess]:
    ssh = outputs.get("ssh") or {}
    if not ssh:
        raise ValueError("the stack has no `ssh` output: run `make up` first (or pick the stack with STACK=...)")
    return [parse_ssh_hint(name, hint) for name, hint in sorted(ssh.items(), key=lambda kv: host_order(kv[0]))]


def stack_pins(outputs: Mapping[str, Any]) -> tuple[Pin, ...]:
    """The host keys the stack holds (its `knownHosts` output), as an SSH session checks them:
    `make status` trusts no key the stack has not pinned."""
    names = {h.address: h.name for h in stack_hosts(outputs)}
    pins = []
    for line in str(outputs.get("knownHosts") or "").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        host, port = fields[0], 22
        if match := re.fullmatch(r"\[(.+)\]:(\d+)", host):
            host, port = match.group(1), int(match.group(2))
        pins.append(Pin(name=names.get(host, host), host=host, port=port, key=f"{fields[1]} {fields[2]}",
                        source="the stack's knownHosts output",
                        accept="if the server was rebuilt on purpose, `pulumi up` says how to accept its new key"))
    return tuple(pins)


def host_order(name: str) -> tuple:
    kind, _, index = name.rpartition("-")
    return ({"meta": 0, "replica": 1, "zk": 2}.get(kind, 3), kind, int(index) if index.isdigit() else 0, name)


def alertmanager_of(outputs: Mapping[str, Any]) -> tuple[HostAccess, str] | None:
    """(the monitoring host, Alertmanager's host:port as asked there), None without monitoring."""
    monitoring = outputs.get("monitoring")
    if not isinstance(monitoring, Mapping) or not monitoring.get("ssh") or not monitoring.get("alertmanager"):
        return None
    port = urlsplit(str(monitoring["alertmanager"])).port or ALERTMANAGER_PORT
    return parse_ssh_hint(str(monitoring.get("host") or "monitoring"), str(monitoring["ssh"])), f"127.0.0.1:{port}"


def collect(outputs: Mapping[str, Any], runner: Runner, workers: int = 64) -> Status:
    """Asks every host, and one MetaServer host, at once."""
    started = time.monotonic()
    hosts = stack_hosts(outputs)
    metas = [a.strip() for a in str(outputs.get("metaServers", "")).split(",") if a.strip()]
    alertmanager = alertmanager_of(outputs)
    # (a stack deployed before the clusterName output: the last part of its ZooKeeper path)
    name = str(outputs.get("clusterName") or str(outputs.get("clusterRoot") or "").rpartition("/")[2])
    probe = as_root(probe_script(name))
    ask = as_root(cluster_script(metas, "")) if metas else ""
    meta_hosts = [h for h in hosts if h.name.startswith("meta-")] or hosts

    def cluster_view() -> SshResult | None:
        for host in meta_hosts:
            result = runner(host.address, ask)
            if result.returncode != SSH_FAILED:
                return result
        return None

    def alerts() -> list[dict] | None:
        assert alertmanager is not None
        host, address = alertmanager
        result = runner(host.address, as_root(cluster_script([], address)))
        return None if result.returncode == SSH_FAILED else parse_cluster_view(result).alerts

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts) + 2))) as pool:
        view = pool.submit(cluster_view) if ask else None
        firing = pool.submit(alerts) if alertmanager else None
        results = list(pool.map(lambda h: parse_host_report(h, runner(h.address, probe)), hosts))
        cluster = parse_cluster_view(view.result()) if view else ClusterView(error="the stack lists no MetaServer")
        cluster.alerts = firing.result() if firing else None
    return Status(results, cluster, alertmanager is not None, time.monotonic() - started)


# ---------------------------------------------------------------- the table

def node_of(report: HostReport, port: int, nodes: Mapping[str, dict]) -> dict | None:
    """This host's ReplicaServer in /meta/nodes: keyed ip:port up to 2.5, host:port on 2.6."""
    names = {*report.ips, report.hostname, report.hostname.split(".")[0], report.access.address}
    for key, row in nodes.items():
        host, _, p = key.rpartition(":")
        if p == str(port) and (host in names or host.split(".")[0] in names):
            return row
    return None


def human_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(max(0, seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return f"{days}d{hours}h" if days else f"{hours}h{minutes}m" if hours else f"{minutes}m{rest % 60}s"


def percent(used: int, size: int) -> str:
    return f"{100 * used / size:.0f}%" if size else "-"


def disk_use(report: HostReport, role: str) -> str:
    dirs = [(d, used, size) for r, d, used, size in report.disks if r == role]
    if not dirs:
        return "-"
    used, size = sum(d[1] for d in dirs), sum(d[2] for d in dirs)
    worst = max(dirs, key=lambda d: d[1] / d[2] if d[2] else 0)
    return f"{percent(used, size)} of {size / 2**30:.0f}G (max {percent(worst[1], worst[2])} {worst[0]})"


def rows(status: Status) -> list[list[str]]:
    nodes = status.cluster.nodes or {}
    out = []
    for report in status.hosts:
        access = report.access
        if not report.reachable:
            out.append([access.name, "?", access.address, "-", "Down (no SSH)", "-", "-", "-", "-", "-"])
            continue
        if not report.roles:
            out.append([access.name, "zookeeper" if access.name.startswith("zk-") else "-", access.address, "-",
                        "Up (host)", "-", "-", "-", "-", "-"])
            continue
        for role in report.roles:
            port = hl.ROLE_PORTS.get(role.role, 0)
            state = "Up" if role.state == "active" else f"Down ({role.state})"
            primaries = secondaries = "-"
            if role.role == "replica" and role.state == "active":
                node = node_of(report, port, nodes)
                if node is None:
                    state = "Up, unknown to meta" if status.cluster.nodes is not None else "Up"
                else:
                    state = node.get("status", "?")
                    primaries, secondaries = node.get("primary_count", "-"), node.get("secondary_count", "-")
            out.append([access.name, role.role, ", ".join(report.ips[:1]) or access.address, str(port), state,
                        role.version or "-", human_uptime(role.uptime_s), primaries, secondaries,
                        disk_use(report, role.role)])
    return out


def unhealthy_partitions(view: ClusterView) -> list[str]:
    if view.apps is None:
        return []
    names = {k: v.get("app_name", k) for k, v in view.apps.get("general_info", {}).items()}
    out = []
    for app_id, row in sorted(view.apps.get("healthy_info", {}).items()):
        if row.get("unhealthy", "0") != "0":
            out.append(f"{names.get(app_id, app_id)}: {row['unhealthy']} of {row.get('partition_count', '?')} "
                       f"partitions unhealthy ({row.get('write_unhealthy', '?')} unwritable, "
                       f"{row.get('read_unhealthy', '?')} unreadable)")
    return out


def firing_alerts(view: ClusterView) -> list[str]:
    out = []
    for alert in view.alerts or []:
        labels = alert.get("labels", {})
        where = labels.get("instance") or labels.get("table") or ""
        out.append(f"{labels.get('alertname', '?')} [{labels.get('severity', '-')}] {where} "
                   f"{alert.get('annotations', {}).get('summary', '')}".rstrip())
    return out


HEADER = ["ID", "Role", "Host", "Port", "Status", "Version", "Uptime", "Primaries", "Secondaries", "Data disk"]


def format_status(status: Status, cluster_name: str = "") -> str:
    table = [HEADER, *rows(status)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = [f"Cluster {cluster_name}".rstrip()] if cluster_name else []
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if status.cluster.error:
        lines.append(f"MetaServers: {status.cluster.error}")
    unhealthy = unhealthy_partitions(status.cluster)
    lines.append("Unhealthy partitions: " + ("unknown" if status.cluster.apps is None
                                              else str(len(unhealthy)) + " table(s)" if unhealthy else "none"))
    lines += [f"  {u}" for u in unhealthy]
    if status.monitoring:
        alerts = firing_alerts(status.cluster)
        lines.append("Alerts firing: " + ("unknown (Alertmanager did not answer)" if status.cluster.alerts is None
                                          else "none" if not alerts else str(len(alerts))))
        lines += [f"  {a}" for a in alerts]
    else:
        lines.append("Alerts firing: no monitoring in this stack")
    lines.append(f"({len(status.hosts)} hosts asked in {status.seconds:.1f} s)")
    return "\n".join(lines) + "\n"
