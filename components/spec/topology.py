"""Which servers a spec asks for, and which roles run on each.

Host names come from role and index (zk-0, meta-1, replica-7, collector-0) and
name every resource of that host, so adding a server never renames another.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.spec.model import ClusterSpec, DiskSpec

# Start order of the roles; destroy runs it backwards.
ROLE_ORDER = ("meta", "replica", "collector")
# Restart order of a rolling update (admin_tools/pegasus_rolling_update.sh):
# ReplicaServers first, MetaServers next (the leader last), the Collector last.
ROLL_ORDER = ("replica", "meta", "collector")


@dataclass(frozen=True)
class HostPlan:
    name: str
    kind: str  # "zookeeper", "meta", "replica" or "collector": what the machine is for
    index: int
    roles: tuple[str, ...]  # Pegasus roles it runs (empty for ZooKeeper hosts)
    instance_type: str
    data_disks: DiskSpec | None
    slog_disk: DiskSpec | None
    extra_nic: bool


def plan_hosts(spec: ClusterSpec) -> list[HostPlan]:
    hosts: list[HostPlan] = []
    for i in range(spec.zookeeper.count):
        hosts.append(HostPlan(f"zk-{i}", "zookeeper", i, (), spec.zookeeper.instance_type,
                              None, None, False))
    extra_nic = spec.network.extra_nics == 1
    for i in range(spec.meta.count):
        roles = ("meta", "collector") if i == 0 and spec.collector.enabled and spec.collector.colocate else ("meta",)
        hosts.append(HostPlan(f"meta-{i}", "meta", i, roles, spec.meta.instance_type, None, None, extra_nic))
    for i in range(spec.replica.count):
        hosts.append(HostPlan(f"replica-{i}", "replica", i, ("replica",), spec.replica.instance_type,
                              spec.replica.data_disks, spec.replica.slog_disk, extra_nic))
    if spec.collector.own_host:
        hosts.append(HostPlan("collector-0", "collector", 0, ("collector",), spec.collector.instance_type,
                              None, None, extra_nic))
    return hosts


def has_shared_log(config_template: str) -> bool:
    """Releases up to 2.5 keep a shared log (`%{slog.dir}`); 2.6 dropped it."""
    return "%{slog.dir}" in config_template
