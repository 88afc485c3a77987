"""`make bench`: planning a grouped roll from a partition map at 100 and 1000 ReplicaServers.

The map is a balanced cluster's (tests/support/partition_placement.py: 20 tables
of 128 partitions, 3 replicas), served as the MetaServer's JSON pages; the time
covers reading those pages and planning the groups with roll.maxParallel's
default. Goal (issue 22): 1000 ReplicaServers in at most 1/20 of the steps of
one at a time, planned in under a second.
"""

from __future__ import annotations

import time

from components.operations.roll_plan import ClusterMap, RollLimits, parse_cluster_map, plan_roll
from components.spec.model import default_max_parallel
from tests.support.partition_placement import balanced_map

TABLES, PARTITIONS, REPLICAS = 20, 128, 3
PLAN_TARGET_S = 1.0
STEPS_TARGET = 1 / 20  # of one at a time, at 1000 ReplicaServers


def pages(cluster: ClusterMap) -> tuple[dict, dict, dict]:
    """The leader's /meta/nodes, /meta/apps and /meta/app?name=T&detail answers for `cluster`."""
    nodes = {"details": {n: {"address": n, "status": s} for n, s in cluster.nodes.items()}}
    tables: dict[str, dict] = {}
    for p in cluster.partitions:
        app_id, pidx = p.gpid.split(".")
        page = tables.setdefault(p.table, {"general": {"app_name": p.table, "app_id": app_id,
                                                       "max_replica_count": str(p.max_replicas)}, "replicas": {}})
        page["replicas"][pidx] = {"pidx": pidx, "primary": p.primary or "-",
                                  "secondaries": "[" + ",".join(p.secondaries) + "]"}
    apps = {"general_info": {page["general"]["app_id"]: {"app_name": name, "status": "AVAILABLE"}
                             for name, page in tables.items()}}
    return nodes, apps, tables


def measure(servers: int) -> tuple[str, bool]:
    cluster = balanced_map(servers, TABLES, PARTITIONS, REPLICAS)
    nodes, apps, tables = pages(cluster)
    keys = [f"replica-{i}/replica" for i in range(servers)]
    node_of = dict(zip(keys, cluster.nodes))
    limits = RollLimits(default_max_parallel(servers))
    started = time.perf_counter()
    plan = plan_roll(keys, node_of, parse_cluster_map(nodes, apps, tables), limits)
    seconds = time.perf_counter() - started
    line = (f"roll plan: {servers} ReplicaServers, {plan.partitions} partitions: {len(plan.groups)} groups, "
            f"largest {len(plan.groups[0])}, planned in {seconds:.3f} s (roll.maxParallel {limits.max_parallel})")
    ok = seconds < PLAN_TARGET_S and (servers < 1000 or len(plan.groups) <= servers * STEPS_TARGET)
    if servers >= 1000:
        line += f" (target: at most {int(servers * STEPS_TARGET)} groups, under {PLAN_TARGET_S:.0f} s)"
    return line, ok
