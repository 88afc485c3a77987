"""Which ReplicaServers may restart together: groups in which no two servers hold a replica of one partition.

A restarted ReplicaServer costs each of its partitions one replica. A partition
stays writable while its primary and secondaries number at least
`[replication] mutation_2pc_min_replica_count` (2 in the code and in every
release's config.ini: replication_common.cpp and replica_2pc.cpp, v2.5.0 and
master), so servers that share no partition can restart at once and every
partition keeps two of its three replicas. Finding such groups is colouring the
graph "these two servers hold a replica of the same partition"; here it is
done greedily (DSatur: the most-constrained server first, into the first group
that has no neighbour of it and room left), capped by `roll.maxParallel`,
largest group first.

The plan reads the cluster's own partition map, as the leading MetaServer serves
it over HTTP (meta_http_service.cpp, v2.4.0 (src/rdsn/src/meta/), v2.5.0 and
master (src/meta/)): `/meta/nodes` (each node ALIVE or UNALIVE), `/meta/apps`
(the AVAILABLE tables) and `/meta/app?name=T&detail` (each partition's primary
and secondaries; on master every node is `host:port`, add_app_info in
src/common/replication_common.cpp). The roll reads it again before each group:
partitions move while a roll runs.

Safety first: one server at a time, and why, when the map could not be read,
when a partition is not fully healthy, when any partition a rolled server holds
would keep fewer than `mutation_2pc_min_replica_count` replicas, when a server
cannot be found in the map, or when a group of two would freeze the cluster.
A MetaServer freezes (no primary is reassigned, no secondary added) while fewer
than `min_live_node_count_for_unfreeze` (3) nodes are ALIVE or fewer than
`node_live_percentage_threshold_for_update` percent of the nodes it knows
(meta_service.cpp check_freeze: 65 in the code, 50 in every release's
config.ini), so a group is never larger than keeps the cluster above both.

Pure: no I/O. Nodes are the MetaServer's names ("ip:port" up to 2.5,
"host:port" on master); servers are the caller's labels ("replica-3/replica").
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

ALIVE = "ALIVE"
# The floor every release ships (config.ini [replication] and the code default).
MIN_REPLICAS = 2
class MapUnreadable(ValueError):
    """The MetaServer's answers do not make a partition map."""


@dataclass(frozen=True)
class Partition:
    gpid: str  # "<app_id>.<partition index>"
    table: str
    primary: str  # "" when it has none
    secondaries: tuple[str, ...]
    max_replicas: int

    @property
    def members(self) -> tuple[str, ...]:
        return ((self.primary,) if self.primary else ()) + self.secondaries

    @property
    def healthy(self) -> bool:
        """Fully healthy as meta_http_service.cpp counts it: a primary and all its replicas."""
        return bool(self.primary) and len(self.members) >= self.max_replicas

    def describe(self) -> str:
        state = f"{len(self.members)} of {self.max_replicas} replicas"
        return f"{self.table} partition {self.gpid} ({state}{'' if self.primary else ', no primary'})"


@dataclass(frozen=True)
class ClusterMap:
    nodes: Mapping[str, str]  # node -> ALIVE | UNALIVE, as /meta/nodes lists them
    partitions: tuple[Partition, ...]

    @property
    def alive(self) -> int:
        return sum(1 for status in self.nodes.values() if status == ALIVE)


@dataclass(frozen=True)
class RollLimits:
    max_parallel: int  # roll.maxParallel
    min_replicas: int = MIN_REPLICAS  # [replication] mutation_2pc_min_replica_count
    min_live: int = 3  # [meta_server] min_live_node_count_for_unfreeze
    live_percentage: int = 50  # [meta_server] node_live_percentage_threshold_for_update


@dataclass(frozen=True)
class RollPlan:
    groups: tuple[tuple[str, ...], ...]  # servers, largest group first
    cap: int  # the largest group this plan allowed
    partitions: int  # how many partitions the map held
    reason: str = ""  # why the cap is below roll.maxParallel, or why one at a time

    @property
    def one_at_a_time(self) -> bool:
        return self.cap == 1

    def describe(self, limits: RollLimits) -> str:
        servers = sum(len(g) for g in self.groups)
        if self.one_at_a_time:
            return f"{servers} ReplicaServers one at a time (roll.maxParallel {limits.max_parallel}): {self.reason}"
        sizes = ", ".join(str(len(g)) for g in self.groups)
        text = (f"{servers} ReplicaServers in {len(self.groups)} groups ({sizes}) that share no partition, at most "
                f"{self.cap} at once (roll.maxParallel {limits.max_parallel})")
        return text + (f"; {self.reason}" if self.reason else "")


def _table(page: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(page, Mapping):
        raise MapUnreadable(f"{what} is not a JSON object")
    return page


def parse_cluster_map(nodes_page: Any, apps_page: Any, app_pages: Mapping[str, Any]) -> ClusterMap:
    """The map from the leader's answers: `/meta/nodes`, `/meta/apps` and, for every table
    `/meta/apps` lists, `/meta/app?name=<table>&detail` (kJsonCompact: every value a string)."""
    try:
        nodes = {str(node): str(row["status"]) for node, row in _table(nodes_page, "/meta/nodes")["details"].items()}
        tables = [str(row["app_name"]) for row in _table(apps_page, "/meta/apps")["general_info"].values()
                  if row.get("status", "AVAILABLE") == "AVAILABLE"]
    except (KeyError, AttributeError, TypeError) as exc:
        raise MapUnreadable(f"an answer of /meta/nodes or /meta/apps lacks {exc}") from exc
    partitions: list[Partition] = []
    for table in tables:
        if table not in app_pages:
            raise MapUnreadable(f"no answer for table {table} (/meta/app?name={table}&detail)")
        page = _table(app_pages[table], f"/meta/app?name={table}&detail")
        try:
            app_id = str(page["general"]["app_id"])
            max_replicas = int(page["general"]["max_replica_count"])
            for pidx, row in sorted(page["replicas"].items(), key=lambda item: int(item[0])):
                primary = str(row["primary"])
                secondaries = tuple(s for s in str(row["secondaries"]).strip("[]").split(",") if s)
                partitions.append(Partition(f"{app_id}.{int(pidx)}", table, "" if primary == "-" else primary,
                                            secondaries, max_replicas))
        except (KeyError, AttributeError, TypeError, ValueError) as exc:
            raise MapUnreadable(f"the answer for table {table} is not a partition table ({exc!r})") from exc
    return ClusterMap(nodes, tuple(partitions))


MAP_LINE = "partition-map: "  # how templates/partition_map.sh prints the map


def read_map_output(output: str) -> tuple[ClusterMap, dict[str, set[str]]]:
    """The map and the host names' IPv4 addresses (host -> addresses) from the output of
    templates/partition_map.sh."""
    lines = [line[len(MAP_LINE):] for line in output.splitlines() if line.startswith(MAP_LINE)]
    if not lines:
        raise MapUnreadable("the MetaServer host printed no partition map")
    try:
        answer = json.loads(lines[-1])
        resolved = {str(host): {str(ip) for ip in ips} for host, ips in (answer.get("resolved") or {}).items()}
        return parse_cluster_map(answer["nodes"], answer["apps"], answer["tables"]), resolved
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise MapUnreadable(f"the partition map printed is not one ({exc!r})") from exc


def node_names(addresses: Mapping[str, str], cluster: ClusterMap, resolved: Mapping[str, set[str]]) -> dict[str, str]:
    """server -> the name the MetaServers list it by, for each server of `addresses`
    (server -> "ip:port") found: the address itself (up to 2.5), or the one listed
    `host:port` whose host resolves to that IP (master). Ambiguous or unlisted: left out."""
    out = {}
    for server, address in addresses.items():
        if address in cluster.nodes:
            out[server] = address
            continue
        ip, _, port = address.rpartition(":")
        named = [n for n in cluster.nodes
                 if n.rpartition(":")[2] == port and ip in resolved.get(n.rpartition(":")[0], ())]
        if len(named) == 1:
            out[server] = named[0]
    return out


def freeze_cap(cluster: ClusterMap, limits: RollLimits) -> int:
    """How many ALIVE servers may be down at once with the cluster still unfrozen."""
    floor = max(limits.min_live, math.ceil(limits.live_percentage * len(cluster.nodes) / 100))
    return cluster.alive - floor


def group_problems(nodes: Sequence[str], cluster: ClusterMap, min_replicas: int = MIN_REPLICAS) -> list[str]:
    """What restarting `nodes` together would do that it must not: two of them in one partition,
    or a partition left with fewer than `min_replicas`. Empty when the group is safe."""
    group = set(nodes)
    problems = []
    for p in cluster.partitions:
        inside = [n for n in p.members if n in group]
        if len(inside) > 1:
            problems.append(f"{p.describe()} is on {' and '.join(inside)}")
        elif inside and len(p.members) - 1 < min_replicas:
            problems.append(f"{p.describe()} would keep {len(p.members) - 1}, fewer than {min_replicas}")
    return problems


def conflicts(servers: Sequence[str], node_of: Mapping[str, str], cluster: ClusterMap) -> list[set[int]]:
    """Per server (by position), the servers it shares a partition with."""
    position = {node_of[s]: i for i, s in enumerate(servers)}
    neighbours: list[set[int]] = [set() for _ in servers]
    for p in cluster.partitions:
        inside = [position[n] for n in p.members if n in position]
        for i in inside:
            neighbours[i].update(j for j in inside if j != i)
    return neighbours


def colour(count: int, neighbours: Sequence[set[int]], cap: int) -> list[list[int]]:
    """Groups of positions 0..count-1, none holding two neighbours nor more than `cap`.
    DSatur (Brelaz): next the server barred from the most groups (then the one with the
    most neighbours, then the earlier), into the first group with room and no neighbour
    of it; optimal on two-colourable maps, where first-fit in a bad order is not.
    Largest group first; members in their order."""
    groups: list[list[int]] = []
    barred: list[set[int]] = [set() for _ in range(count)]  # per server: groups holding a neighbour
    placed = [False] * count
    heap = [(0, -len(neighbours[i]), i) for i in range(count)]
    heapq.heapify(heap)
    while heap:
        saturation, _, i = heapq.heappop(heap)
        if placed[i] or -saturation != len(barred[i]):
            continue  # placed already, or an entry from before its neighbours moved
        g = next((g for g, members in enumerate(groups) if len(members) < cap and g not in barred[i]), len(groups))
        if g == len(groups):
            groups.append([])
        groups[g].append(i)
        placed[i] = True
        for j in neighbours[i]:
            if not placed[j] and g not in barred[j]:
                barred[j].add(g)
                heapq.heappush(heap, (-len(barred[j]), -len(neighbours[j]), j))
    for members in groups:
        members.sort()
    return sorted(groups, key=lambda members: (-len(members), members[0]))


def _singly(servers: Sequence[str], partitions: int, reason: str) -> RollPlan:
    return RollPlan(tuple((s,) for s in servers), 1, partitions, reason)


def plan_roll(servers: Sequence[str], node_of: Mapping[str, str], cluster: Optional[ClusterMap],
              limits: RollLimits, unreadable: str = "") -> RollPlan:
    """Groups for `servers` (in the caller's order, which breaks ties). `node_of`: server ->
    its node name in the map; `cluster`: None when the map could not be read (`unreadable` says why)."""
    if cluster is None:
        return _singly(servers, 0, f"the partition map could not be read ({unreadable or 'no answer'})")
    count = len(cluster.partitions)
    if limits.max_parallel <= 1:
        return _singly(servers, count, "roll.maxParallel is 1")
    unknown = [s for s in servers if s not in node_of]
    if unknown:
        return _singly(servers, count, f"the MetaServers list no node for {', '.join(unknown)}")
    unhealthy = [p for p in cluster.partitions if not p.healthy]
    if unhealthy:
        return _singly(servers, count, f"{len(unhealthy)} partitions are not fully healthy, e.g. "
                             + "; ".join(p.describe() for p in unhealthy[:3]))
    rolled = {node_of[s] for s in servers}
    thin = [p for p in cluster.partitions
            if len(p.members) - 1 < limits.min_replicas and any(n in rolled for n in p.members)]
    if thin:
        return _singly(servers, count, f"a restart would leave {len(thin)} partitions with fewer than "
                             f"{limits.min_replicas} replicas (mutation_2pc_min_replica_count), e.g. "
                             + "; ".join(p.describe() for p in thin[:3]))
    cap, reason = limits.max_parallel, ""
    unfrozen = freeze_cap(cluster, limits)
    if unfrozen < cap:
        cap = max(1, unfrozen)
        reason = (f"at most {cap} of the {cluster.alive} ALIVE nodes ({len(cluster.nodes)} listed) may be down at "
                  f"once: a MetaServer freezes below {limits.min_live} ALIVE (min_live_node_count_for_unfreeze) or "
                  f"{limits.live_percentage}% of its nodes (node_live_percentage_threshold_for_update)")
        if cap == 1:
            return _singly(servers, count, reason)
    groups = colour(len(servers), conflicts(servers, node_of, cluster), cap)
    return RollPlan(tuple(tuple(servers[i] for i in members) for members in groups), cap, count, reason)
